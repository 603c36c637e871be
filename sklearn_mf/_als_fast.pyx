"""Alternating-least-squares kernels (explicit and implicit feedback).

The Python layer (``_mf.py``, ``_implicit.py``, ``_base.py``) encodes ids,
builds CSR matrices (one per orientation), subtracts the global mean and
computes ``Y^T Y``; these functions only compute.  Every function solves one
*half-step*: the rows of one side (users or items) given the fixed factors of
the other side.  Rows are independent, so they run in a ``prange``; each thread
owns its scratch buffers, allocated inside ``with nogil, parallel()``.

Explicit feedback (weighted-lambda ALS with biases, Zhou et al. 2008).  For a
row ``u`` with entries ``(i, t_ui, w_ui)`` (``t = r - mu``), with
``z_i = [y_i, 1]`` when biases are learned, the unknown ``x_u = [p_u, b_u]``
solves::

    (sum_i w_ui z_i z_i^T + diag(lam_u, ..., lam_u, lam_b_u)) x_u
        = sum_i w_ui (t_ui - b_i) z_i

with ``lam_u = reg * n_u`` (``n_u = sum_i w_ui``) when ``scale_by_count`` else
``reg``.  The Gram matrix is accumulated in chunks of rows with ``syrk``, then
factorised with ``potrf`` and solved with ``potrs``.

Implicit feedback (Hu, Koren & Volinsky 2008).  ``cw_ui = alpha * y_ui``
(confidence minus one); the preference is 1 where ``cw_ui > 0``.  With the
precomputed ``G = Y^T Y``::

    (G + reg I + sum_i cw_ui y_i y_i^T) x_u = sum_{i: cw_ui > 0} (1 + cw_ui) y_i

solved exactly (Cholesky) or by a few conjugate-gradient steps warm-started
from the current ``x_u`` (Takacs et al. 2011), which never forms the matrix:
a product is ``G p + reg p + sum_i cw_ui (y_i . p) y_i``.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport (
    daxpy, ddot, dgemm, dgemv, dsyrk, saxpy, sdot, sgemm, sgemv, ssyrk,
)
from scipy.linalg.cython_lapack cimport dpotrf, dpotrs, spotrf, spotrs

from sklearn_mf._openmp cimport omp_get_thread_num

cdef extern from *:
    """
    #define SKMF_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    """
    void SKMF_PREFETCH(const void* p) noexcept nogil


ctypedef fused floating:
    float
    double

# Rows gathered per syrk call (bounds the per-thread scratch).
cdef enum:
    CHUNK = 128
    # Rows solved together by the conjugate-gradient kernel: their products
    # with Y^T Y form one matrix product (BLAS-3) instead of many symv calls.
    CG_BLOCK = 32
    # Interactions gathered into a contiguous buffer by the CG kernel, so that
    # a row's sparse part is two gemv calls instead of 2 * nnz level-1 calls.
    GATHER = 2048
    # Rows gathered at once by the explicit CG kernel (a row with more
    # entries is gathered anew, in chunks, for every product)
    XGATHER = 16384
    # rows ahead of the copy whose cache lines the gather prefetches
    PREFETCH_AHEAD = 8


# ----------------------------------------------------------------- BLAS shims
cdef inline void _prefetch_row(const floating* row, int k) noexcept nogil:
    """Ask for every cache line of the ``k`` values at ``row``."""
    cdef int f = 0
    while f < k:
        SKMF_PREFETCH(row + f)
        f = f + 64 // sizeof(floating)
    SKMF_PREFETCH(row + k - 1)


cdef inline floating _dot(int n, const floating* x, const floating* y) noexcept nogil:
    cdef int one = 1
    if floating is double:
        return ddot(&n, <double*>x, &one, <double*>y, &one)
    else:
        return sdot(&n, <float*>x, &one, <float*>y, &one)


cdef inline void _axpy(int n, floating a, const floating* x, floating* y) noexcept nogil:
    cdef int one = 1
    if floating is double:
        daxpy(&n, &a, <double*>x, &one, y, &one)
    else:
        saxpy(&n, &a, <float*>x, &one, y, &one)


cdef inline void _rows_times_sym(int m, int k, const floating* A, const floating* G,
                                 floating* C) noexcept nogil:
    # C = A G for row-major A, C of shape (m, k) and symmetric G (k, k):
    # in column-major terms C^T = G A^T
    cdef char trans = b'N'
    cdef floating one = 1, zero = 0
    if floating is double:
        dgemm(&trans, &trans, &k, &m, &k, &one, <double*>G, &k, <double*>A, &k,
              &zero, C, &k)
    else:
        sgemm(&trans, &trans, &k, &m, &k, &one, <float*>G, &k, <float*>A, &k,
              &zero, C, &k)


cdef inline void _gemv_rows(bint trans, int m, int k, const floating* A,
                            const floating* x, floating beta, floating* y) noexcept nogil:
    # A row-major (m, k).  trans: y = A x (length m); else y = A^T x + beta y (length k)
    cdef char t = b'T' if trans else b'N'
    cdef int one = 1
    cdef floating a = 1
    if floating is double:
        dgemv(&t, &k, &m, &a, <double*>A, &k, <double*>x, &one, &beta, y, &one)
    else:
        sgemv(&t, &k, &m, &a, <float*>A, &k, <float*>x, &one, &beta, y, &one)


cdef inline void _syrk(int n, int m, floating* Z, floating* C) noexcept nogil:
    # C += Z Z^T where Z is n x m column-major (m rows of length n, row-major)
    cdef char uplo = b'U'
    cdef char trans = b'N'
    cdef floating one = 1
    if floating is double:
        dsyrk(&uplo, &trans, &n, &m, &one, Z, &n, &one, C, &n)
    else:
        ssyrk(&uplo, &trans, &n, &m, &one, Z, &n, &one, C, &n)


cdef inline int _chol_solve(int n, floating* A, floating* b) noexcept nogil:
    """Solve A x = b in place (A symmetric positive definite, upper triangle
    used); returns LAPACK's info (non-zero: not positive definite)."""
    cdef char uplo = b'U'
    cdef int info = 0
    cdef int nrhs = 1
    if floating is double:
        dpotrf(&uplo, &n, A, &n, &info)
        if info == 0:
            dpotrs(&uplo, &n, &nrhs, A, &n, b, &n, &info)
    else:
        spotrf(&uplo, &n, A, &n, &info)
        if info == 0:
            spotrs(&uplo, &n, &nrhs, A, &n, b, &n, &info)
    return info


# ------------------------------------------------------------ explicit rows
cdef int _explicit_row_dual(const int* idx, const floating* t, const floating* w,
                            Py_ssize_t nnz, const floating* Y, const floating* by,
                            int k, bint biased, floating lam, floating lam_b,
                            floating* A, floating* rhs, floating* Z,
                            floating* x_out, floating* b_out) noexcept nogil:
    """The same ridge solution through the n x n dual system (n = nnz < d).

    With rows ``s_j = sqrt(w_j) z_j L^{-1/2}`` (``L`` the diagonal penalty),
    ``x = L^{-1/2} S^T a`` where ``(S S^T + I) a = sqrt(w) * t`` (push-through
    identity): O(n^2 d + n^3) instead of O(n d^2 + d^3) for short rows.
    """
    cdef int d = k + 1 if biased else k
    cdef int n = <int>nnz
    cdef Py_ssize_t j, f, i
    cdef floating sw, tj
    cdef floating il = 1 / sqrt(lam)
    cdef floating ilb = 1 / sqrt(lam_b) if biased else 0
    cdef floating* z
    cdef char uplo = b'U'
    cdef char trans = b'T'
    cdef floating one = 1, zero = 0
    for j in range(nnz):
        i = idx[j]
        sw = 1 if w == NULL else sqrt(w[j])
        tj = t[j]
        if biased:
            tj = tj - by[i]
        rhs[j] = sw * tj
        z = Z + j * d
        for f in range(k):
            z[f] = sw * il * Y[i * k + f]
        if biased:
            z[k] = sw * ilb
    # A (n x n) = S S^T + I, with S row-major (n, d) = column-major (d, n)
    if floating is double:
        dsyrk(&uplo, &trans, &n, &d, &one, Z, &d, &zero, A, &n)
    else:
        ssyrk(&uplo, &trans, &n, &d, &one, Z, &d, &zero, A, &n)
    for j in range(n):
        A[j * n + j] = A[j * n + j] + 1
    if _chol_solve(n, A, rhs) != 0:
        return 1
    # x = L^{-1/2} S^T a  (written to A, free after the solve)
    _gemv_rows(False, n, d, Z, rhs, 0, A)
    for f in range(k):
        x_out[f] = il * A[f]
    if biased:
        b_out[0] = ilb * A[k]
    return 0


cdef int _explicit_row(const int* idx, const floating* t, const floating* w,
                       Py_ssize_t nnz, const floating* Y, const floating* by,
                       int k, bint biased, floating reg, floating reg_b,
                       bint scale, floating* A, floating* rhs, floating* Z,
                       floating* x_out, floating* b_out) noexcept nogil:
    cdef int d = k + 1 if biased else k
    cdef Py_ssize_t j, j0, m, f, i
    cdef floating wj, sw, tj, n_eff = 0, lam, lam_b
    cdef floating* z
    if w == NULL:
        n_eff = <floating>nnz
    else:
        for j in range(nnz):
            n_eff = n_eff + w[j]
    if n_eff <= 0:
        memset(x_out, 0, k * sizeof(floating))
        if biased:
            b_out[0] = 0
        return 0
    lam = reg * n_eff if scale else reg
    lam_b = reg_b * n_eff if scale else reg_b
    if nnz < d and nnz <= CHUNK and lam > 0 and (lam_b > 0 or not biased):
        return _explicit_row_dual(idx, t, w, nnz, Y, by, k, biased, lam, lam_b,
                                  A, rhs, Z, x_out, b_out)
    memset(A, 0, d * d * sizeof(floating))
    memset(rhs, 0, d * sizeof(floating))
    j0 = 0
    while j0 < nnz:
        m = nnz - j0
        if m > CHUNK:
            m = CHUNK
        for j in range(j0, j0 + m):
            i = idx[j]
            wj = 1 if w == NULL else w[j]
            sw = sqrt(wj)
            tj = t[j]
            if biased:
                tj = tj - by[i]
            z = Z + (j - j0) * d
            for f in range(k):
                z[f] = sw * Y[i * k + f]
            if biased:
                z[k] = sw
            tj = sw * tj
            for f in range(d):
                rhs[f] = rhs[f] + tj * z[f]
        _syrk(d, <int>m, Z, A)
        j0 = j0 + m
    for f in range(k):
        A[f * d + f] = A[f * d + f] + lam
    if biased:
        A[k * d + k] = A[k * d + k] + lam_b
    if _chol_solve(d, A, rhs) != 0:
        return 1
    memcpy(x_out, rhs, k * sizeof(floating))
    if biased:
        b_out[0] = rhs[k]
    return 0


def explicit_solve(const Py_ssize_t[::1] indptr, const int[::1] indices,
                   const floating[::1] targets, const floating[::1] weights,
                   const floating[:, ::1] Y, const floating[::1] other_bias,
                   floating[:, ::1] X, floating[::1] bias,
                   double reg, double reg_bias, bint scale_by_count, int n_threads):
    """One explicit ALS half-step: solve every row of a CSR matrix.

    Parameters
    ----------
    indptr, indices : CSR structure of shape (n_rows, n_cols) (duplicates allowed).
    targets : ratings minus the global mean, aligned with ``indices``.
    weights : sample weights aligned with ``indices``, or empty (all ones).
    Y : fixed factors of the other side, shape (n_cols, k).
    other_bias : fixed biases of the other side, or empty (no biases).
    X : output factors, shape (n_rows, k), overwritten.
    bias : output biases, shape (n_rows,), or empty (no biases).
    reg, reg_bias : L2 penalties on the factors and on the biases.
    scale_by_count : multiply the penalties by each row's total weight.

    Returns
    -------
    n_bad : int
        Rows whose system was not positive definite (their output is untouched).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef int k = <int>Y.shape[1]
    cdef bint biased = bias.shape[0] > 0
    cdef int d = k + 1 if biased else k
    cdef Py_ssize_t r, tid
    cdef bint weighted = weights.shape[0] > 0
    cdef floating* A
    cdef floating* rhs
    cdef floating* Z
    cdef int[::1] bad = _zeros_int(n_threads)
    cdef const floating* by = &other_bias[0] if biased else NULL
    cdef floating* bptr = &bias[0] if biased else NULL
    cdef floating dummy = 0
    if n_rows == 0:
        return 0
    if X.shape[0] != n_rows or X.shape[1] != k:
        raise ValueError("X has the wrong shape")
    if indices.shape[0] == 0:
        X[:, :] = 0
        if biased:
            bias[:] = 0
        return 0
    with nogil, parallel(num_threads=n_threads):
        tid = omp_get_thread_num()
        A = <floating*>malloc(d * d * sizeof(floating))
        rhs = <floating*>malloc(d * sizeof(floating))
        Z = <floating*>malloc(CHUNK * d * sizeof(floating))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=16):
                if A == NULL or rhs == NULL or Z == NULL:
                    bad[tid] += 1
                    continue
                bad[tid] += _explicit_row(
                    &indices[indptr[r]], &targets[indptr[r]],
                    &weights[indptr[r]] if weighted else NULL,
                    indptr[r + 1] - indptr[r], &Y[0, 0], by, k, biased,
                    <floating>reg, <floating>reg_bias, scale_by_count,
                    A, rhs, Z, &X[r, 0], bptr + r if biased else &dummy)
        finally:
            free(A)
            free(rhs)
            free(Z)
    return int(sum(bad))


cdef const floating* _z_rows(const int* idx, Py_ssize_t j0, Py_ssize_t m,
                               const floating* Y, int k, bint biased,
                               floating* buf) noexcept nogil:
    """Rows ``z_j = [y_idx[j], 1]`` (or ``y_idx[j]``) of entries ``j0 .. j0 + m - 1``
    gathered contiguously into ``buf`` (row stride ``d``)."""
    cdef int d = k + 1 if biased else k
    cdef Py_ssize_t j, ahead
    for j in range(m):
        # the rows are scattered over Y: ask for a later one while copying this
        ahead = j + PREFETCH_AHEAD
        if ahead < m:
            _prefetch_row(Y + idx[j0 + ahead] * k, k)
        memcpy(buf + j * d, Y + idx[j0 + j] * k, k * sizeof(floating))
        if biased:
            buf[j * d + k] = 1
    return buf


cdef int _explicit_row_cg(const int* idx, const floating* t, const floating* w,
                          Py_ssize_t nnz, const floating* Y, const floating* by,
                          int k, bint biased, floating reg, floating reg_b,
                          bint scale, int cg_steps, floating* x, floating* b_out,
                          floating* buf, floating* e, floating* q, floating* s,
                          floating* work, double* sse_out) noexcept nogil:
    """``cg_steps`` conjugate-gradient steps on one row's explicit system,
    warm-started from ``x`` (and ``b_out``), never forming the matrix.

    With ``z_j = [y_j, 1]`` gathered in chunks of XGATHER rows (once when the
    row has at most XGATHER entries), a product is
    ``A v = sum_j w_j (z_j . v) z_j + L v``; the residuals of the ratings,
    ``e_j = t_j - b_j - z_j . [x, b]``, are updated along with ``x`` so that
    the row's weighted squared error after the solve costs nothing more.
    ``e`` and ``q`` hold ``nnz`` values, ``s`` XGATHER, ``work`` ``4 d``.
    """
    cdef int d = k + 1 if biased else k
    cdef Py_ssize_t j, j0, m, f
    cdef floating* xv = work          # [x, b]
    cdef floating* r = work + d
    cdef floating* p = work + 2 * d
    cdef floating* ap = work + 3 * d
    cdef floating n_eff = 0, lam, lam_b, a, pap, rs, rs_new, beta, wj
    cdef double sse = 0
    cdef const floating* Z
    cdef bint once = nnz <= XGATHER
    cdef int it, n_bad = 0
    if w == NULL:
        n_eff = <floating>nnz
    else:
        for j in range(nnz):
            n_eff = n_eff + w[j]
    if n_eff <= 0:
        memset(x, 0, k * sizeof(floating))
        if biased:
            b_out[0] = 0
        sse_out[0] = 0
        return 0
    lam = reg * n_eff if scale else reg
    lam_b = reg_b * n_eff if scale else reg_b
    memcpy(xv, x, k * sizeof(floating))
    if biased:
        xv[k] = b_out[0]
    # e = t - b_other - Z xv ;  r = Z^T (w e) - L xv
    for f in range(k):
        r[f] = -lam * xv[f]
    if biased:
        r[k] = -lam_b * xv[k]
    if once:
        Z = _z_rows(idx, 0, nnz, Y, k, biased, buf)
    j0 = 0
    while j0 < nnz:
        m = nnz - j0
        if m > XGATHER:
            m = XGATHER
        if not once:
            Z = _z_rows(idx, j0, m, Y, k, biased, buf)
        else:
            Z = buf + j0 * d
        _gemv_rows(True, <int>m, d, Z, xv, 0, e + j0)
        for j in range(j0, j0 + m):
            e[j] = t[j] - (by[idx[j]] if biased else 0) - e[j]
            q[j] = e[j] if w == NULL else w[j] * e[j]
        _gemv_rows(False, <int>m, d, Z, q + j0, 1, r)
        j0 = j0 + m
    memcpy(p, r, d * sizeof(floating))
    rs = _dot(d, r, r)
    for it in range(cg_steps):
        if rs < 1e-30:
            break
        # ap = Z^T (w (Z p)) + L p, keeping q = Z p for the residuals
        for f in range(k):
            ap[f] = lam * p[f]
        if biased:
            ap[k] = lam_b * p[k]
        j0 = 0
        while j0 < nnz:
            m = nnz - j0
            if m > XGATHER:
                m = XGATHER
            if not once:
                Z = _z_rows(idx, j0, m, Y, k, biased, buf)
            else:
                Z = buf + j0 * d
            _gemv_rows(True, <int>m, d, Z, p, 0, q + j0)
            if w == NULL:
                _gemv_rows(False, <int>m, d, Z, q + j0, 1, ap)
            else:
                for j in range(m):
                    s[j] = w[j0 + j] * q[j0 + j]
                _gemv_rows(False, <int>m, d, Z, s, 1, ap)
            j0 = j0 + m
        pap = _dot(d, p, ap)
        if pap <= 0:
            n_bad = 1
            break
        a = rs / pap
        _axpy(d, a, p, xv)
        _axpy(d, -a, ap, r)
        for j in range(nnz):
            e[j] = e[j] - a * q[j]
        rs_new = _dot(d, r, r)
        beta = rs_new / rs
        for f in range(d):
            p[f] = r[f] + beta * p[f]
        rs = rs_new
    for j in range(nnz):
        wj = 1 if w == NULL else w[j]
        sse = sse + <double>wj * e[j] * e[j]
    sse_out[0] = sse
    memcpy(x, xv, k * sizeof(floating))
    if biased:
        b_out[0] = xv[k]
    return n_bad


def explicit_solve_cg(const Py_ssize_t[::1] indptr, const int[::1] indices,
                      const floating[::1] targets, const floating[::1] weights,
                      const floating[:, ::1] Y, const floating[::1] other_bias,
                      floating[:, ::1] X, floating[::1] bias,
                      double reg, double reg_bias, bint scale_by_count, int cg_steps,
                      double[::1] row_sse, int n_threads):
    """One explicit ALS half-step by a few conjugate-gradient steps per row.

    The same systems as :func:`explicit_solve` (factors and bias of each row
    jointly), solved approximately by ``cg_steps`` CG steps warm-started from
    the current ``X`` / ``bias`` (Takacs et al. 2011): ``O(nnz d)`` per step
    instead of the ``O(nnz d^2 + d^3)`` of the Cholesky solve.

    Parameters
    ----------
    indptr, indices, targets, weights, Y, other_bias, reg, reg_bias, scale_by_count
        As in :func:`explicit_solve`.
    X, bias : factors and biases of the rows, updated in place (the start).
    cg_steps : CG steps per row.
    row_sse : float64 of shape (n_rows,) or empty.  When given, receives each
        row's weighted squared error ``sum w (t - b_r - b_c - x_r . y_c)^2``
        after its solve.

    Returns
    -------
    n_bad : int
        Rows whose system showed a non-positive curvature (stopped early).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef int k = <int>Y.shape[1]
    cdef bint biased = bias.shape[0] > 0
    cdef int d = k + 1 if biased else k
    cdef Py_ssize_t r, tid, max_nnz = 0, gcap
    cdef bint weighted = weights.shape[0] > 0
    cdef bint want_sse = row_sse.shape[0] > 0
    cdef floating* buf
    cdef floating* e
    cdef floating* q
    cdef floating* s
    cdef floating* work
    cdef double* sse
    cdef int[::1] bad = _zeros_int(n_threads)
    cdef const floating* by = &other_bias[0] if biased else NULL
    cdef floating* bptr = &bias[0] if biased else NULL
    cdef floating dummy = 0
    if n_rows == 0:
        return 0
    if X.shape[0] != n_rows or X.shape[1] != k:
        raise ValueError("X has the wrong shape")
    if want_sse and row_sse.shape[0] != n_rows:
        raise ValueError("row_sse has the wrong shape")
    if indices.shape[0] == 0:
        X[:, :] = 0
        if biased:
            bias[:] = 0
        if want_sse:
            row_sse[:] = 0
        return 0
    for r in range(n_rows):
        if indptr[r + 1] - indptr[r] > max_nnz:
            max_nnz = indptr[r + 1] - indptr[r]
    gcap = min(max_nnz, <Py_ssize_t>XGATHER)
    with nogil, parallel(num_threads=n_threads):
        tid = omp_get_thread_num()
        buf = <floating*>malloc(gcap * d * sizeof(floating))
        e = <floating*>malloc(2 * max_nnz * sizeof(floating))
        q = e + max_nnz
        work = <floating*>malloc((4 * d + XGATHER) * sizeof(floating))
        s = work + 4 * d
        sse = <double*>malloc(sizeof(double))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=4):
                if buf == NULL or e == NULL or work == NULL or sse == NULL:
                    bad[tid] += 1
                    continue
                bad[tid] += _explicit_row_cg(
                    &indices[indptr[r]], &targets[indptr[r]],
                    &weights[indptr[r]] if weighted else NULL,
                    indptr[r + 1] - indptr[r], &Y[0, 0], by, k, biased,
                    <floating>reg, <floating>reg_bias, scale_by_count, cg_steps,
                    &X[r, 0], bptr + r if biased else &dummy, buf, e, q, s, work,
                    &row_sse[r] if want_sse else sse)
        finally:
            free(buf)
            free(e)
            free(work)
            free(sse)
    return int(sum(bad))


def explicit_sse(const Py_ssize_t[::1] indptr, const int[::1] indices,
                 const floating[::1] targets, const floating[::1] weights,
                 const floating[:, ::1] X, const floating[::1] bias,
                 const floating[:, ::1] Y, const floating[::1] other_bias,
                 int n_threads):
    """Weighted sum of squared errors ``sum w (t - b_r - b_c - x_r . y_c)^2``
    over the CSR entries (``t`` = rating minus global mean), in float64."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef int k = <int>Y.shape[1]
    cdef bint biased = bias.shape[0] > 0
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t r, j, i
    cdef double e, total = 0.0
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic", chunksize=64):
            for j in range(indptr[r], indptr[r + 1]):
                i = indices[j]
                e = targets[j] - _dot(k, &X[r, 0], &Y[i, 0])
                if biased:
                    e = e - bias[r] - other_bias[i]
                total += (weights[j] if weighted else 1.0) * e * e
    return total


# ------------------------------------------------------------ implicit rows
cdef int _implicit_row_cholesky(const int* idx, const floating* cw, Py_ssize_t nnz,
                                const floating* Y, const floating* G, int k,
                                floating reg, floating* A, floating* rhs,
                                floating* Z, floating* x_out) noexcept nogil:
    cdef Py_ssize_t j, j0, m, f, i
    cdef floating c, sc
    cdef floating* z
    memcpy(A, G, k * k * sizeof(floating))
    for f in range(k):
        A[f * k + f] = A[f * k + f] + reg
    memset(rhs, 0, k * sizeof(floating))
    j0 = 0
    while j0 < nnz:
        m = nnz - j0
        if m > CHUNK:
            m = CHUNK
        for j in range(j0, j0 + m):
            i = idx[j]
            c = cw[j]
            sc = sqrt(c)
            z = Z + (j - j0) * k
            for f in range(k):
                z[f] = sc * Y[i * k + f]
            if c > 0:
                _axpy(k, 1 + c, Y + i * k, rhs)
        _syrk(k, <int>m, Z, A)
        j0 = j0 + m
    if _chol_solve(k, A, rhs) != 0:
        return 1
    memcpy(x_out, rhs, k * sizeof(floating))
    return 0


cdef inline void _gather_rows(const int* idx, Py_ssize_t m, const floating* Y, int k,
                              floating* buf) noexcept nogil:
    """Rows ``Y[idx[j]]`` of ``j < m`` copied contiguously into ``buf``; the rows
    are scattered over ``Y``, so every cache line of a later row is requested
    while this one is copied."""
    cdef Py_ssize_t j
    for j in range(m):
        if j + PREFETCH_AHEAD < m:
            _prefetch_row(Y + idx[j + PREFETCH_AHEAD] * k, k)
        memcpy(buf + j * k, Y + idx[j] * k, k * sizeof(floating))


cdef inline const floating* _chunk_rows(const int* idx, Py_ssize_t j0, Py_ssize_t m,
                                       const floating* Y, int k,
                                       const floating* gathered,
                                       floating* buf) noexcept nogil:
    """The ``y_j`` of entries ``j0 .. j0 + m - 1`` of a row, contiguous: in
    ``gathered`` when the row's rows were gathered already, else copied into
    ``buf``."""
    if gathered != NULL:
        return gathered + j0 * k
    _gather_rows(idx + j0, m, Y, k, buf)
    return buf


cdef void _sparse_part(const int* idx, const floating* cw, Py_ssize_t nnz,
                       const floating* Y, int k, const floating* v, floating* out,
                       const floating* gathered, floating* buf, floating* s,
                       bint residual, floating* keep) noexcept nogil:
    """``out += sum_j w_j y_j`` over a row's entries, with ``s_j = y_j . v`` and
    ``w_j = c_j s_j`` (product with ``A - G - reg I``) or, when ``residual``,
    ``w_j = (1 + c_j) [c_j > 0] - c_j s_j`` (right-hand side minus that product).

    ``gathered`` holds the row's ``y_j`` contiguously, or is NULL: then they
    are gathered into ``buf`` in chunks of GATHER rows.  ``keep`` (or NULL)
    receives every ``s_j``.
    """
    cdef Py_ssize_t j0 = 0, j, m
    cdef floating c
    cdef const floating* A
    while j0 < nnz:
        m = nnz - j0
        if m > GATHER:
            m = GATHER
        A = _chunk_rows(idx, j0, m, Y, k, gathered, buf)
        _gemv_rows(True, <int>m, k, A, v, 0, s)
        if keep != NULL:
            memcpy(keep + j0, s, m * sizeof(floating))
        for j in range(m):
            c = cw[j0 + j]
            if residual:
                s[j] = ((1 + c) if c > 0 else 0) - c * s[j]
            else:
                s[j] = c * s[j]
        _gemv_rows(False, <int>m, k, A, s, 1, out)
        j0 = j0 + m


cdef double _row_observed(const int* idx, const floating* cw, Py_ssize_t nnz,
                          const floating* Y, int k, const floating* x,
                          const floating* gathered, floating* buf,
                          floating* s) noexcept nogil:
    """The observed cells' part of the implicit objective for one row with
    factors ``x`` (see :func:`implicit_loss_observed`): the sum over its
    entries of ``(1 + cw)(p - s)^2 - s^2``, ``s = x . y_j``, in float64.
    ``gathered`` holds the row's ``y_j`` contiguously, or is NULL: then they
    are gathered into ``buf`` in chunks of GATHER rows."""
    cdef Py_ssize_t j0 = 0, j, m
    cdef const floating* A
    cdef double sj, pref, total = 0.0
    while j0 < nnz:
        m = nnz - j0
        if m > GATHER:
            m = GATHER
        A = _chunk_rows(idx, j0, m, Y, k, gathered, buf)
        _gemv_rows(True, <int>m, k, A, x, 0, s)
        for j in range(m):
            sj = s[j]
            pref = 1.0 if cw[j0 + j] > 0 else 0.0
            total += (1.0 + cw[j0 + j]) * (pref - sj) * (pref - sj) - sj * sj
        j0 = j0 + m
    return total


cdef double _row_observed_direct(const int* idx, const floating* cw, Py_ssize_t nnz,
                                 const floating* Y, int k,
                                 const floating* x) noexcept nogil:
    """:func:`_row_observed` reading the ``y_j`` where they are in ``Y``."""
    cdef Py_ssize_t j
    cdef double sj, pref, total = 0.0
    for j in range(nnz):
        sj = _dot(k, x, Y + idx[j] * k)
        pref = 1.0 if cw[j] > 0 else 0.0
        total += (1.0 + cw[j]) * (pref - sj) * (pref - sj) - sj * sj
    return total


cdef int _implicit_block_cg(const Py_ssize_t* indptr, const int* indices,
                            const floating* cw, Py_ssize_t r0, Py_ssize_t nb,
                            const floating* Y, const floating* G, int k, floating reg,
                            int cg_steps, floating* X, floating* R, floating* P,
                            floating* AP, floating* rs, floating* buf,
                            floating* s, double* row_loss,
                            floating* sx) noexcept nogil:
    """``cg_steps`` CG steps for rows ``r0 .. r0 + nb - 1`` (warm start from X).

    The rows run in lockstep so that their products with ``G`` are one GEMM;
    everything else is per row, exactly as in single-row CG.  When the rows
    have at most GATHER entries in total, their ``y_j`` are gathered once into
    ``buf`` and reused by every step.

    With ``row_loss``, each row's observed part of the objective is written
    there at its new factors.  Gathered rows compute it from ``buf``; the
    others keep ``y_j . x`` up to date in ``sx`` (room for the block's
    entries, twice) from the products every step computes anyway, since a
    further gather of their rows would cost as much as a CG step.
    """
    cdef Py_ssize_t b, r, j, f, base = indptr[r0]
    cdef Py_ssize_t n_entries = indptr[r0 + nb] - base
    cdef floating* keep_x = NULL
    cdef floating* keep_p = NULL
    cdef double sj, pref, total
    cdef int it, n_bad = 0
    cdef floating a, rs_new
    cdef floating* x
    cdef floating* rr
    cdef floating* p
    cdef floating* ap
    cdef bint gathered = indptr[r0 + nb] - base <= GATHER
    cdef const floating* g = NULL
    cdef Py_ssize_t nnz
    cdef floating* Xb = X + r0 * k
    if row_loss != NULL and not gathered:
        keep_x = sx
        keep_p = sx + n_entries
    if gathered:
        _gather_rows(indices + base, indptr[r0 + nb] - base, Y, k, buf)
    # residual r = b - A x, with A x = G x + reg x + sum_i cw_i (y_i . x) y_i
    _rows_times_sym(<int>nb, k, Xb, G, AP)
    for b in range(nb):
        r = r0 + b
        x = Xb + b * k
        rr = R + b * k
        ap = AP + b * k
        for f in range(k):
            rr[f] = -(ap[f] + reg * x[f])
        nnz = indptr[r + 1] - indptr[r]
        if gathered:
            g = buf + (indptr[r] - base) * k
        _sparse_part(indices + indptr[r], cw + indptr[r], nnz, Y, k, x, rr, g,
                     buf + GATHER * k, s, True,
                     keep_x + (indptr[r] - base) if keep_x != NULL else NULL)
        memcpy(P + b * k, rr, k * sizeof(floating))
        rs[b] = _dot(k, rr, rr)
    for it in range(cg_steps):
        _rows_times_sym(<int>nb, k, P, G, AP)
        for b in range(nb):
            if rs[b] < 1e-20:
                continue
            r = r0 + b
            p = P + b * k
            ap = AP + b * k
            _axpy(k, reg, p, ap)
            nnz = indptr[r + 1] - indptr[r]
            if gathered:
                g = buf + (indptr[r] - base) * k
            _sparse_part(indices + indptr[r], cw + indptr[r], nnz, Y, k, p, ap, g,
                         buf + GATHER * k, s, False,
                         keep_p + (indptr[r] - base) if keep_p != NULL else NULL)
            a = _dot(k, p, ap)
            if a <= 0:
                n_bad += 1
                rs[b] = 0
                continue
            a = rs[b] / a
            if keep_x != NULL:
                # y_j . x of the updated x, from y_j . p (same step as x)
                _axpy(<int>nnz, a, keep_p + (indptr[r] - base), keep_x + (indptr[r] - base))
            x = Xb + b * k
            rr = R + b * k
            _axpy(k, a, p, x)
            _axpy(k, -a, ap, rr)
            rs_new = _dot(k, rr, rr)
            for f in range(k):
                p[f] = rr[f] + (rs_new / rs[b]) * p[f]
            rs[b] = rs_new
    if row_loss != NULL:
        for b in range(nb):
            r = r0 + b
            nnz = indptr[r + 1] - indptr[r]
            if gathered:
                row_loss[r] = _row_observed(
                    indices + indptr[r], cw + indptr[r], nnz, Y, k, Xb + b * k,
                    buf + (indptr[r] - base) * k, buf + GATHER * k, s)
                continue
            total = 0.0
            for j in range(indptr[r], indptr[r + 1]):
                sj = keep_x[j - base]
                pref = 1.0 if cw[j] > 0 else 0.0
                total += (1.0 + cw[j]) * (pref - sj) * (pref - sj) - sj * sj
            row_loss[r] = total
    return n_bad


def _cg_blocks(indptr):
    """Consecutive row blocks of at most CG_BLOCK rows that do not straddle a
    multiple of GATHER entries (so most blocks fit the gather buffer)."""
    import numpy as np

    indptr = np.asarray(indptr)
    n = len(indptr) - 1
    key = indptr[:-1] // GATHER
    change = np.r_[True, key[1:] != key[:-1]]
    first = np.flatnonzero(change)
    pos = np.arange(n) - first[np.cumsum(change) - 1]
    starts = np.flatnonzero(change | (pos % CG_BLOCK == 0))
    return np.r_[starts, n].astype(np.intp)


def implicit_solve(const Py_ssize_t[::1] indptr, const int[::1] indices,
                   const floating[::1] cw, const floating[:, ::1] Y,
                   const floating[:, ::1] G, floating[:, ::1] X, double reg,
                   bint use_cg, int cg_steps, int n_threads, double[::1] row_loss=None):
    """One implicit ALS half-step over every row of a CSR matrix.

    Parameters
    ----------
    indptr, indices : CSR structure of shape (n_rows, n_cols), no duplicates.
    cw : ``alpha * y`` per entry (confidence minus one); preference is
        1 where ``cw > 0``.
    Y : fixed factors of the other side, shape (n_cols, k).
    G : ``Y^T Y``, shape (k, k).
    X : factors being solved, shape (n_rows, k); updated in place (the CG
        solver starts from its current value).
    reg : L2 penalty.
    use_cg, cg_steps : conjugate gradient with ``cg_steps`` steps, or the
        exact Cholesky solve.

    row_loss : float64 array of shape (n_rows,), or None
        If given, ``row_loss[r]`` is set to row ``r``'s observed cells' part
        of the objective (as :func:`implicit_loss_observed` sums it) at the
        solved factors, from the factor rows the solve has just read.

    Returns
    -------
    n_bad : int
        Rows whose system was not positive definite (left unchanged).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef double* loss_ptr = NULL
    cdef floating* keep
    cdef Py_ssize_t keep_len = 0
    cdef int k = <int>Y.shape[1]
    cdef Py_ssize_t r, tid, nnz, blk, n_blocks
    cdef Py_ssize_t[::1] blocks
    cdef floating* A
    cdef floating* b1
    cdef floating* Z
    cdef int[::1] bad = _zeros_int(n_threads)
    cdef const int* idx_ptr = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const floating* cw_ptr = &cw[0] if cw.shape[0] > 0 else NULL
    if n_rows == 0:
        return 0
    if X.shape[0] != n_rows or X.shape[1] != k or G.shape[0] != k:
        raise ValueError("X or G has the wrong shape")
    if row_loss is not None:
        if row_loss.shape[0] != n_rows:
            raise ValueError("row_loss has the wrong shape")
        loss_ptr = &row_loss[0]
    if use_cg:
        blocks = _cg_blocks(indptr)
        n_blocks = blocks.shape[0] - 1
        if loss_ptr != NULL:
            # scratch for the y_j . x and y_j . p of the largest block
            import numpy as np
            keep_len = 2 * max(1, int(np.max(np.diff(np.asarray(indptr)[np.asarray(blocks)]))))
        with nogil, parallel(num_threads=n_threads):
            tid = omp_get_thread_num()
            A = <floating*>malloc(3 * CG_BLOCK * k * sizeof(floating))
            b1 = <floating*>malloc((CG_BLOCK + GATHER) * sizeof(floating))
            Z = <floating*>malloc(2 * GATHER * k * sizeof(floating))
            keep = NULL
            if loss_ptr != NULL:
                keep = <floating*>malloc(keep_len * sizeof(floating))
            try:
                for blk in prange(n_blocks, schedule="dynamic", chunksize=1):
                    if A == NULL or b1 == NULL or Z == NULL or (
                            loss_ptr != NULL and keep == NULL):
                        bad[tid] += 1
                        continue
                    bad[tid] += _implicit_block_cg(
                        &indptr[0], idx_ptr, cw_ptr, blocks[blk],
                        blocks[blk + 1] - blocks[blk], &Y[0, 0], &G[0, 0], k,
                        <floating>reg, cg_steps, &X[0, 0], A, A + CG_BLOCK * k,
                        A + 2 * CG_BLOCK * k, b1, Z, b1 + CG_BLOCK, loss_ptr, keep)
            finally:
                free(keep)
                free(A)
                free(b1)
                free(Z)
        return int(sum(bad))
    with nogil, parallel(num_threads=n_threads):
        tid = omp_get_thread_num()
        A = <floating*>malloc(k * k * sizeof(floating))
        b1 = <floating*>malloc(k * sizeof(floating))
        Z = <floating*>malloc(CHUNK * k * sizeof(floating))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=16):
                if A == NULL or b1 == NULL or Z == NULL:
                    bad[tid] += 1
                    continue
                nnz = indptr[r + 1] - indptr[r]
                bad[tid] += _implicit_row_cholesky(
                    idx_ptr + indptr[r], cw_ptr + indptr[r], nnz, &Y[0, 0],
                    &G[0, 0], k, <floating>reg, A, b1, Z, &X[r, 0])
                if loss_ptr != NULL:
                    loss_ptr[r] = _row_observed_direct(
                        idx_ptr + indptr[r], cw_ptr + indptr[r], nnz, &Y[0, 0], k, &X[r, 0])
        finally:
            free(A)
            free(b1)
            free(Z)
    return int(sum(bad))


def implicit_loss_observed(const Py_ssize_t[::1] indptr, const int[::1] indices,
                           const floating[::1] cw, const floating[:, ::1] X,
                           const floating[:, ::1] Y, int n_threads):
    """Observed-cell correction of the implicit objective, in float64.

    ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2`` over *all* cells equals
    ``trace(X G X^T)`` (every cell with c = 1, p = 0; a matrix product left
    to the caller) plus, for each observed cell, ``(1 + cw)(p - s)^2 - s^2``
    with ``s = x_u . y_i``; this returns the sum of the latter.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef int k = <int>Y.shape[1]
    cdef Py_ssize_t r, j
    cdef double s, pref, total = 0.0
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic", chunksize=64):
            for j in range(indptr[r], indptr[r + 1]):
                s = _dot(k, &X[r, 0], &Y[indices[j], 0])
                pref = 1.0 if cw[j] > 0 else 0.0
                total += (1.0 + cw[j]) * (pref - s) * (pref - s) - s * s
    return total


def _zeros_int(n):
    import numpy as np
    return np.zeros(max(int(n), 1), dtype=np.intc)
