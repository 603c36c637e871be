# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
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
    daxpy, ddot, dsymv, dsyrk, saxpy, sdot, ssymv, ssyrk,
)
from scipy.linalg.cython_lapack cimport dpotrf, dpotrs, spotrf, spotrs

from sklearn_mf._openmp cimport omp_get_thread_num

ctypedef fused floating:
    float
    double

# Rows gathered per syrk call (bounds the per-thread scratch).
cdef enum:
    CHUNK = 128


# ----------------------------------------------------------------- BLAS shims
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


cdef inline void _symv(int n, floating a, const floating* A, const floating* x,
                       floating b, floating* y) noexcept nogil:
    # y = a * A x + b * y for a full symmetric A (either triangle may be read)
    cdef char uplo = b'U'
    cdef int one = 1
    if floating is double:
        dsymv(&uplo, &n, &a, <double*>A, &n, <double*>x, &one, &b, y, &one)
    else:
        ssymv(&uplo, &n, &a, <float*>A, &n, <float*>x, &one, &b, y, &one)


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
    lam = reg * n_eff if scale else reg
    lam_b = reg_b * n_eff if scale else reg_b
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


cdef inline void _implicit_matvec(const int* idx, const floating* cw, Py_ssize_t nnz,
                                  const floating* Y, const floating* G, int k,
                                  floating reg, const floating* p,
                                  floating* out) noexcept nogil:
    # out = (G + reg I + sum_i cw_i y_i y_i^T) p
    cdef Py_ssize_t j
    cdef const floating* y
    memcpy(out, p, k * sizeof(floating))
    _symv(k, 1, G, p, reg, out)
    for j in range(nnz):
        if cw[j] != 0:
            y = Y + idx[j] * k
            _axpy(k, cw[j] * _dot(k, y, p), y, out)


cdef int _implicit_row_cg(const int* idx, const floating* cw, Py_ssize_t nnz,
                          const floating* Y, const floating* G, int k,
                          floating reg, int cg_steps, floating* r,
                          floating* p, floating* Ap, floating* x) noexcept nogil:
    cdef Py_ssize_t j, f
    cdef int it
    cdef floating rs_old, rs_new, a, c
    cdef const floating* y
    # residual r = b - A x
    _implicit_matvec(idx, cw, nnz, Y, G, k, reg, x, Ap)
    for f in range(k):
        r[f] = -Ap[f]
    for j in range(nnz):
        c = cw[j]
        if c > 0:
            _axpy(k, 1 + c, Y + idx[j] * k, r)
    memcpy(p, r, k * sizeof(floating))
    rs_old = _dot(k, r, r)
    for it in range(cg_steps):
        if rs_old < 1e-20:
            break
        _implicit_matvec(idx, cw, nnz, Y, G, k, reg, p, Ap)
        a = _dot(k, p, Ap)
        if a <= 0:
            return 1
        a = rs_old / a
        _axpy(k, a, p, x)
        _axpy(k, -a, Ap, r)
        rs_new = _dot(k, r, r)
        for f in range(k):
            p[f] = r[f] + (rs_new / rs_old) * p[f]
        rs_old = rs_new
    return 0


def implicit_solve(const Py_ssize_t[::1] indptr, const int[::1] indices,
                   const floating[::1] cw, const floating[:, ::1] Y,
                   const floating[:, ::1] G, floating[:, ::1] X, double reg,
                   bint use_cg, int cg_steps, int n_threads):
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

    Returns
    -------
    n_bad : int
        Rows whose system was not positive definite (left unchanged).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef int k = <int>Y.shape[1]
    cdef Py_ssize_t r, tid, nnz
    cdef floating* A
    cdef floating* b1
    cdef floating* b2
    cdef floating* Z
    cdef int[::1] bad = _zeros_int(n_threads)
    cdef const int* idx_ptr = &indices[0] if indices.shape[0] > 0 else NULL
    cdef const floating* cw_ptr = &cw[0] if cw.shape[0] > 0 else NULL
    if n_rows == 0:
        return 0
    if X.shape[0] != n_rows or X.shape[1] != k or G.shape[0] != k:
        raise ValueError("X or G has the wrong shape")
    with nogil, parallel(num_threads=n_threads):
        tid = omp_get_thread_num()
        A = <floating*>malloc(k * k * sizeof(floating))
        b1 = <floating*>malloc(k * sizeof(floating))
        b2 = <floating*>malloc(k * sizeof(floating))
        Z = <floating*>malloc(CHUNK * k * sizeof(floating))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=16):
                if A == NULL or b1 == NULL or b2 == NULL or Z == NULL:
                    bad[tid] += 1
                    continue
                nnz = indptr[r + 1] - indptr[r]
                if use_cg:
                    bad[tid] += _implicit_row_cg(
                        idx_ptr + indptr[r], cw_ptr + indptr[r], nnz, &Y[0, 0],
                        &G[0, 0], k, <floating>reg, cg_steps, A, b1, b2, &X[r, 0])
                else:
                    bad[tid] += _implicit_row_cholesky(
                        idx_ptr + indptr[r], cw_ptr + indptr[r], nnz, &Y[0, 0],
                        &G[0, 0], k, <floating>reg, A, b1, Z, &X[r, 0])
        finally:
            free(A)
            free(b1)
            free(b2)
            free(Z)
    return int(sum(bad))


def implicit_loss(const Py_ssize_t[::1] indptr, const int[::1] indices,
                  const floating[::1] cw, const floating[:, ::1] X,
                  const floating[:, ::1] Y, const floating[:, ::1] G, int n_threads):
    """Data term of the implicit objective, without dense matrices.

    ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2`` over *all* cells equals
    ``sum_u x_u^T G x_u`` (every cell with c = 1, p = 0) plus, for each
    observed cell, ``(1 + cw)(p - s)^2 - s^2`` with ``s = x_u . y_i``.
    Accumulated in float64.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef int k = <int>Y.shape[1]
    cdef Py_ssize_t r, j, tid
    cdef double s, pref, total = 0.0
    cdef floating* buf
    cdef double[::1] acc = _zeros_double(n_threads)
    if n_rows == 0:
        return 0.0
    with nogil, parallel(num_threads=n_threads):
        tid = omp_get_thread_num()
        buf = <floating*>malloc(k * sizeof(floating))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=64):
                if buf == NULL:
                    continue
                _symv(k, 1, &G[0, 0], &X[r, 0], 0, buf)
                acc[tid] += _dot(k, buf, &X[r, 0])
                for j in range(indptr[r], indptr[r + 1]):
                    s = _dot(k, &X[r, 0], &Y[indices[j], 0])
                    pref = 1.0 if cw[j] > 0 else 0.0
                    acc[tid] += (1.0 + cw[j]) * (pref - s) * (pref - s) - s * s
        finally:
            free(buf)
    for r in range(acc.shape[0]):
        total += acc[r]
    return total


def _zeros_int(n):
    import numpy as np
    return np.zeros(max(int(n), 1), dtype=np.intc)


def _zeros_double(n):
    import numpy as np
    return np.zeros(max(int(n), 1), dtype=np.float64)
