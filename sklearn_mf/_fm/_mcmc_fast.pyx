r"""Gibbs sampling kernel of the Bayesian factorization machine (``solver="mcmc"``).

Bayesian FM (Freudenthaler, Schmidt-Thieme & Rendle 2011; libFM's "MCMC"):
y_i ~ N(p_i, 1 / (alpha s_i)), w_j ~ N(mu_w, 1 / lam_w), v_jf ~ N(mu_f, 1 / lam_f),
with the hyperparameters drawn in Python at the start of each sweep.

The parameters of one column j, theta_j = (w_j, v_j1 .. v_jk), are drawn
jointly (a blocked Gibbs step).  The prediction of row i is linear in theta_j:
p_i = c_i + <theta_j, h_i> with h_i = x_ij (1, q_i - x_ij v_j), where q_i - x_ij v_j
are the row's factor sums without feature j.  So, given everything else,
theta_j ~ N(A^-1 b, A^-1) with

    A = alpha sum_i s_i h_i h_i^T + diag(lam)
    b = alpha sum_i s_i h_i (y_i - p_i + <theta_j, h_i>) + diag(lam) mu

(the sum over the rows where x_ij != 0), drawn as A^-1 b + L^-T z with A = L L^T
and z standard normal.  One pass over the column builds A and b, a second
applies the change to the cached predictions p and factor sums q (row-major,
so that a row's k sums share a cache line).

Two columns that share no row have independent posteriors (neither touches the
other's residuals or factor sums), so the columns are first coloured into
row-disjoint classes and each class is sampled in parallel.  The normal draws
come from a counter-based generator keyed by (sweep seed, parameter index), so
a run gives the same draws whatever the number of threads.

The caches (predictions and row-major factor sums) are filled by
``_fm_fast.predict_cache(..., rows_major=True)``; the hyperparameters are
drawn in Python (``_mcmc``).  The kernels assume validated, contiguous input.
"""

import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport cos, isfinite, log, sqrt
from libc.stdint cimport uint64_t

from sklearn_mf._kernel_helpers cimport skmf_mix64 as _mix64
from sklearn_mf._openmp cimport omp_get_thread_num

ctypedef fused floating:
    float
    double

# Classes whose small columns hold fewer non-zeros than this are sampled on
# one thread (a thread team costs more than it saves).
cdef Py_ssize_t _MIN_PARALLEL_NNZ = 20000
# A column with at least this many non-zeros is split into _N_SEGMENTS fixed
# row segments, accumulated in parallel and summed in a fixed order, so that a
# few long columns (a gender indicator, a genre) keep every thread busy and the
# result does not depend on the number of threads.
cdef Py_ssize_t _SPLIT_NNZ = 8192
DEF _N_SEGMENTS = 8

cdef extern from *:
    """
    /* The two passes of a column's blocked Gibbs step, in plain C so that they
       are compiled for AVX2+FMA and for baseline x86-64, the right version
       picked when the module loads (as in _sgd_fast), with `omp simd`
       reductions (honoured with -fopenmp-simd) instead of one long chain of
       dependent additions per row.  Defined for float and double caches. */
    /* The shared macros of _kernel_helpers.pxd under this kernel's names. */
    #define SKMF_FM_CLONES SKMF_CLONES
    #define SKMF_FM_PRAGMA(x) SKMF_PRAGMA(x)
    #define SKMF_FM_PREFETCH(p, w) SKMF_PREFETCH(p, w)
    /* The rows of a column are scattered over the caches: fetch the row this
       many steps ahead while the current one is computed. */
    #define SKMF_FM_AHEAD 12

    /* Pass 1: A (m x m, lower triangle, row-major) += sum_r s_r h_r h_r^T and
       b += sum_r s_r h_r (y_r - p_r + <theta, h_r>), where
       h_r = x_r (1, q_r - x_r theta[1:]) and m = k + 1.  The h_r of up to
       SKMF_FM_CHUNK rows are gathered column-major (in T: 8 floats a vector
       for the float32 models) with y_r - p_r and s_r; each chunk then costs
       vectorised dot products over its rows (fit, b, and the lower triangle
       of A, accumulated in double across chunks). */
    #define SKMF_FM_CHUNK 64
    #define SKMF_FM_GIBBS_ACC(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            const T *data, const Py_ssize_t *rows, Py_ssize_t start, \
            Py_ssize_t stop, const T *y, const T *sw, const T *pred, \
            const T *q, Py_ssize_t k, const double *theta, double *A, \
            double *b, T *H) { \
        const Py_ssize_t m = k + 1, C = SKMF_FM_CHUNK; \
        T *E = H + m * C, *W = E + C, *F = W + C; \
        T th[m]; \
        for (Py_ssize_t a = 0; a < m; a++) th[a] = (T)theta[a]; \
        Py_ssize_t t = start; \
        while (t < stop) { \
            const Py_ssize_t nr = (stop - t < C) ? stop - t : C; \
            for (Py_ssize_t i = 0; i < nr; i++, t++) { \
                const Py_ssize_t r = rows[t]; \
                const T x = data[t]; \
                const T *qr = q + r * k; \
                if (t + SKMF_FM_AHEAD < stop) { \
                    const Py_ssize_t ra = rows[t + SKMF_FM_AHEAD]; \
                    SKMF_FM_PREFETCH(q + ra * k, 0); \
                    SKMF_FM_PREFETCH(pred + ra, 0); \
                    SKMF_FM_PREFETCH(y + ra, 0); \
                } \
                H[i] = x; \
                for (Py_ssize_t f = 0; f < k; f++) \
                    H[(1 + f) * C + i] = x * (qr[f] - x * th[1 + f]); \
                E[i] = y[r] - pred[r]; \
                W[i] = sw ? sw[r] : (T)1; \
            } \
            /* F = <theta, h_r>: the column's current share of each prediction */ \
            for (Py_ssize_t i = 0; i < nr; i++) F[i] = 0; \
            for (Py_ssize_t a = 0; a < m; a++) { \
                const T *ha = H + a * C, ta = th[a]; \
                SKMF_FM_PRAGMA(omp simd) \
                for (Py_ssize_t i = 0; i < nr; i++) F[i] += ta * ha[i]; \
            } \
            SKMF_FM_PRAGMA(omp simd) \
            for (Py_ssize_t i = 0; i < nr; i++) E[i] = W[i] * (E[i] + F[i]); \
            for (Py_ssize_t a = 0; a < m; a++) { \
                const T *ha = H + a * C; \
                T sb = 0; \
                SKMF_FM_PRAGMA(omp simd reduction(+:sb)) \
                for (Py_ssize_t i = 0; i < nr; i++) sb += ha[i] * E[i]; \
                b[a] += (double)sb; \
                if (sw) { /* weighted copy of column a, in F (free again) */ \
                    SKMF_FM_PRAGMA(omp simd) \
                    for (Py_ssize_t i = 0; i < nr; i++) F[i] = W[i] * ha[i]; \
                    ha = F; \
                } \
                for (Py_ssize_t l = 0; l <= a; l++) { \
                    const T *hl = H + l * C; \
                    T s = 0; \
                    SKMF_FM_PRAGMA(omp simd reduction(+:s)) \
                    for (Py_ssize_t i = 0; i < nr; i++) s += ha[i] * hl[i]; \
                    A[a * m + l] += (double)s; \
                } \
            } \
        } \
    }

    /* Pass 2: apply the change delta (length m) of theta to the cached
       predictions and factor sums of the column's rows. */
    #define SKMF_FM_GIBBS_APPLY(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            const T *data, const Py_ssize_t *rows, Py_ssize_t start, \
            Py_ssize_t stop, T *pred, T *q, Py_ssize_t k, \
            const double *theta, const double *delta) { \
        for (Py_ssize_t t = start; t < stop; t++) { \
            const Py_ssize_t r = rows[t]; \
            const double x = data[t]; \
            T *qr = q + r * k; \
            if (t + SKMF_FM_AHEAD < stop) { \
                const Py_ssize_t ra = rows[t + SKMF_FM_AHEAD]; \
                SKMF_FM_PREFETCH(q + ra * k, 1); \
                SKMF_FM_PREFETCH(pred + ra, 1); \
            } \
            double s = delta[0] * x; \
            SKMF_FM_PRAGMA(omp simd reduction(+:s)) \
            for (Py_ssize_t f = 0; f < k; f++) { \
                const double qf = qr[f]; \
                s += delta[1 + f] * x * (qf - x * theta[1 + f]); \
                qr[f] = (T)(qf + delta[1 + f] * x); \
            } \
            pred[r] = (T)((double)pred[r] + s); \
        } \
    }

    SKMF_FM_GIBBS_ACC(skmf_gibbs_acc_f, float)
    SKMF_FM_GIBBS_ACC(skmf_gibbs_acc_d, double)
    SKMF_FM_GIBBS_APPLY(skmf_gibbs_apply_f, float)
    SKMF_FM_GIBBS_APPLY(skmf_gibbs_apply_d, double)
    """
    void skmf_gibbs_acc_f(const float* data, const Py_ssize_t* rows, Py_ssize_t start,
                          Py_ssize_t stop, const float* y, const float* sw,
                          const float* pred, const float* q, Py_ssize_t k,
                          const double* theta, double* A, double* b,
                          float* H) noexcept nogil
    void skmf_gibbs_acc_d(const double* data, const Py_ssize_t* rows, Py_ssize_t start,
                          Py_ssize_t stop, const double* y, const double* sw,
                          const double* pred, const double* q, Py_ssize_t k,
                          const double* theta, double* A, double* b,
                          double* H) noexcept nogil
    void skmf_gibbs_apply_f(const float* data, const Py_ssize_t* rows, Py_ssize_t start,
                            Py_ssize_t stop, float* pred, float* q, Py_ssize_t k,
                            const double* theta, const double* delta) noexcept nogil
    void skmf_gibbs_apply_d(const double* data, const Py_ssize_t* rows, Py_ssize_t start,
                            Py_ssize_t stop, double* pred, double* q, Py_ssize_t k,
                            const double* theta, const double* delta) noexcept nogil




cdef inline double _std_normal(uint64_t seed, uint64_t counter) noexcept nogil:
    """A standard normal draw determined by (seed, counter) (Box-Muller)."""
    cdef uint64_t a = _mix64(seed ^ _mix64(counter))
    cdef uint64_t b = _mix64(a)
    cdef double u1 = ((a >> 11) + 0.5) * (1.0 / 9007199254740992.0)
    cdef double u2 = (b >> 11) * (1.0 / 9007199254740992.0)
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)


def std_normal_draws(unsigned long long seed, unsigned long long start, Py_ssize_t n):
    """The kernel's normal draws for counters ``start .. start + n - 1`` (tests)."""
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef Py_ssize_t t
    for t in range(n):
        o[t] = _std_normal(seed, start + t)
    return out


def color_columns(const Py_ssize_t[::1] rows, const Py_ssize_t[::1] indptr,
                  Py_ssize_t n_rows, const Py_ssize_t[::1] order):
    """Greedy colouring of CSC columns into classes that share no row.

    Columns are taken in ``order``; each gets the smallest of 64 colours that
    none of its rows has yet, or a class of its own when all 64 are taken.
    Returns ``(columns, ptr)``: the columns grouped by class, class ``c`` being
    ``columns[ptr[c]:ptr[c + 1]]``.
    """
    cdef Py_ssize_t n_cols = order.shape[0], t, j, r, c
    cdef uint64_t used, one = 1
    cdef uint64_t[::1] mask = np.zeros(max(n_rows, 1), dtype=np.uint64)
    color_np = np.empty(n_cols, dtype=np.intp)
    cdef Py_ssize_t[::1] color = color_np
    cdef Py_ssize_t n_own = 0
    with nogil:
        for t in range(n_cols):
            j = order[t]
            used = 0
            for r in range(indptr[j], indptr[j + 1]):
                used = used | mask[rows[r]]
            c = 0
            while c < 64 and (used >> c) & one:
                c = c + 1
            if c == 64:
                color[t] = 64 + n_own  # every shared colour is taken: alone
                n_own = n_own + 1
            else:
                color[t] = c
                for r in range(indptr[j], indptr[j + 1]):
                    mask[rows[r]] = mask[rows[r]] | (one << c)
    sort = np.argsort(color_np, kind="stable")
    columns = np.ascontiguousarray(np.asarray(order)[sort], dtype=np.intp)
    sorted_colors = color_np[sort]
    starts = np.flatnonzero(np.diff(sorted_colors)) + 1
    ptr = np.concatenate([[0], starts, [n_cols]]).astype(np.intp)
    return columns, ptr


cdef inline int _cholesky(double* A, Py_ssize_t m) noexcept nogil:
    """In-place lower Cholesky factor of the symmetric m x m ``A`` (lower part
    read and written); returns 1 if ``A`` is not positive definite."""
    cdef Py_ssize_t i, j, l
    cdef double s
    for j in range(m):
        s = A[j * m + j]
        for l in range(j):
            s -= A[j * m + l] * A[j * m + l]
        if not s > 0.0:
            return 1
        s = sqrt(s)
        A[j * m + j] = s
        for i in range(j + 1, m):
            A[i * m + j] = (A[i * m + j]
                            - _dot_prefix(A + i * m, A + j * m, j)) / s
    return 0


cdef inline double _dot_prefix(const double* a, const double* b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t l
    cdef double s = 0.0
    for l in range(n):
        s += a[l] * b[l]
    return s


cdef inline void _acc(const floating[::1] data, const Py_ssize_t[::1] rows,
                      Py_ssize_t start, Py_ssize_t stop, const floating[::1] y,
                      const floating[::1] sample_weight, bint weighted,
                      floating[::1] pred, floating[:, ::1] q, Py_ssize_t k,
                      const double* theta, double* A, double* bvec,
                      double* scratch) noexcept nogil:
    """Pass 1 over rows ``start:stop`` of a column, added to ``A`` (lower
    triangle) and ``bvec`` (``scratch``: the C pass's gathered rows)."""
    if stop <= start:
        return
    if floating is float:
        skmf_gibbs_acc_f(&data[0], &rows[0], start, stop, &y[0],
                         &sample_weight[0] if weighted else NULL, &pred[0],
                         &q[0, 0] if k > 0 else NULL, k, theta, A, bvec,
                         <float*>scratch)
    else:
        skmf_gibbs_acc_d(&data[0], &rows[0], start, stop, &y[0],
                         &sample_weight[0] if weighted else NULL, &pred[0],
                         &q[0, 0] if k > 0 else NULL, k, theta, A, bvec, scratch)


cdef inline void _apply(const floating[::1] data, const Py_ssize_t[::1] rows,
                        Py_ssize_t start, Py_ssize_t stop, floating[::1] pred,
                        floating[:, ::1] q, Py_ssize_t k, const double* theta,
                        const double* delta) noexcept nogil:
    """Pass 2: move the caches of rows ``start:stop`` by the change ``delta``."""
    if stop <= start:
        return
    if floating is float:
        skmf_gibbs_apply_f(&data[0], &rows[0], start, stop, &pred[0],
                           &q[0, 0] if k > 0 else NULL, k, theta, delta)
    else:
        skmf_gibbs_apply_d(&data[0], &rows[0], start, stop, &pred[0],
                           &q[0, 0] if k > 0 else NULL, k, theta, delta)


cdef int _posterior_draw(double* A, double* A_copy, double* bvec, const double* theta,
                         double* z, Py_ssize_t m, double alpha, const double* lam,
                         const double* mu, uint64_t seed, uint64_t counter) noexcept nogil:
    """Turn the data sums (``A`` lower triangle, ``bvec``) into a draw from
    N(P^-1 c, P^-1), P = alpha A + diag(lam), c = alpha bvec + lam mu, and
    leave the change ``draw - theta`` in ``bvec``.  Returns 1 if P is not
    positive definite even with a small jitter or the draw is not finite."""
    cdef Py_ssize_t a, b
    cdef double s, top = 0.0
    for a in range(m):
        bvec[a] = alpha * bvec[a] + lam[a] * mu[a]
        for b in range(a + 1):
            A[a * m + b] *= alpha
        A[a * m + a] += lam[a]
        top = max(top, A[a * m + a])
    for a in range(m * m):
        A_copy[a] = A[a]
    if _cholesky(A, m):
        # Rounding (float32 accumulation, nearly collinear features) can leave
        # P numerically indefinite: retry once with its diagonal raised by
        # 1e-6 of its largest entry.
        for a in range(m * m):
            A[a] = A_copy[a]
        for a in range(m):
            A[a * m + a] += 1e-6 * top
        if _cholesky(A, m):
            return 1
    # mean: solve L L^T theta_new = c; draw: + L^-T z
    for a in range(m):
        z[a] = _std_normal(seed, counter + <uint64_t>a)
    for a in range(m):  # forward: L u = c
        s = bvec[a]
        for b in range(a):
            s -= A[a * m + b] * bvec[b]
        bvec[a] = s / A[a * m + a]
    for a in range(m):  # L^T theta_new = u + z
        bvec[a] += z[a]
    for a in range(m - 1, -1, -1):
        s = bvec[a]
        for b in range(a + 1, m):
            s -= A[b * m + a] * bvec[b]
        bvec[a] = s / A[a * m + a]
        if not isfinite(bvec[a]):
            return 1
    for a in range(m):
        bvec[a] -= theta[a]
    return 0


cdef inline void _load_theta(const floating* wj, const floating* vj, Py_ssize_t k,
                             double* theta) noexcept nogil:
    cdef Py_ssize_t f
    theta[0] = wj[0]
    for f in range(k):
        theta[1 + f] = vj[f]


cdef inline void _store_theta(floating* wj, floating* vj, Py_ssize_t k,
                              const double* theta, const double* delta) noexcept nogil:
    cdef Py_ssize_t f
    wj[0] = <floating>(theta[0] + delta[0])
    for f in range(k):
        vj[f] = <floating>(theta[1 + f] + delta[1 + f])


# Layout of a thread's work area (doubles): A, its copy, b, theta, z, then the
# gathered rows of the C pass (64 x (m + 3) values of the model's type).
cdef inline Py_ssize_t _work_size(Py_ssize_t m) noexcept nogil:
    return 2 * m * m + 3 * m + 64 * (m + 3) + 8


cdef int _gibbs_column(const floating[::1] data, const Py_ssize_t[::1] rows,
                       Py_ssize_t start, Py_ssize_t stop, const floating[::1] y,
                       const floating[::1] sample_weight, bint weighted,
                       floating[::1] pred, floating[:, ::1] q, floating* wj, floating* vj,
                       Py_ssize_t k, double alpha, const double* lam, const double* mu,
                       uint64_t seed, uint64_t counter, double* work) noexcept nogil:
    """Draw ``(w_j, v_j)`` of one column from its conditional posterior and
    update the caches, on the calling thread.  ``lam``/``mu``: prior
    precisions and means of the ``m = k + 1`` coordinates.  Returns 1 if the
    draw failed (nothing is changed then), else 0."""
    cdef Py_ssize_t m = k + 1, a
    cdef double* A = work
    cdef double* bvec = A + 2 * m * m
    cdef double* theta = bvec + m
    cdef double* z = theta + m
    _load_theta(wj, vj, k, theta)
    for a in range(m * m):
        A[a] = 0.0
    for a in range(m):
        bvec[a] = 0.0
    _acc(data, rows, start, stop, y, sample_weight, weighted, pred, q, k, theta, A, bvec,
         z + m)
    if _posterior_draw(A, A + m * m, bvec, theta, z, m, alpha, lam, mu, seed, counter):
        return 1
    _store_theta(wj, vj, k, theta, bvec)
    _apply(data, rows, start, stop, pred, q, k, theta, bvec)
    return 0


cdef int _gibbs_column_split(const floating[::1] data, const Py_ssize_t[::1] rows,
                             Py_ssize_t start, Py_ssize_t stop, const floating[::1] y,
                             const floating[::1] sample_weight, bint weighted,
                             floating[::1] pred, floating[:, ::1] q, floating* wj,
                             floating* vj, Py_ssize_t k, double alpha, const double* lam,
                             const double* mu, uint64_t seed, uint64_t counter,
                             double* work, Py_ssize_t work_stride, double* segments,
                             int n_threads) noexcept nogil:
    """``_gibbs_column`` for a long column: both passes run over
    ``_N_SEGMENTS`` fixed row segments in parallel; the segments' sums are
    added in segment order (the same result on any number of threads)."""
    cdef Py_ssize_t m = k + 1, mm = m * m, n_rows = stop - start, sg, a, lo, hi
    cdef double* A = work
    cdef double* bvec = A + 2 * mm
    cdef double* theta = bvec + m
    cdef double* z = theta + m
    cdef double* part
    _load_theta(wj, vj, k, theta)
    for sg in prange(_N_SEGMENTS, num_threads=n_threads, schedule="dynamic", chunksize=1):
        lo = start + sg * n_rows // _N_SEGMENTS
        hi = start + (sg + 1) * n_rows // _N_SEGMENTS
        part = segments + sg * (mm + m)
        for a in range(mm + m):
            part[a] = 0.0
        _acc(data, rows, lo, hi, y, sample_weight, weighted, pred, q, k, theta, part,
             part + mm, work + omp_get_thread_num() * work_stride + 2 * mm + 3 * m)
    for a in range(mm):
        A[a] = 0.0
    for a in range(m):
        bvec[a] = 0.0
    for sg in range(_N_SEGMENTS):
        part = segments + sg * (mm + m)
        for a in range(mm):
            A[a] += part[a]
        for a in range(m):
            bvec[a] += part[mm + a]
    if _posterior_draw(A, A + mm, bvec, theta, z, m, alpha, lam, mu, seed, counter):
        return 1
    _store_theta(wj, vj, k, theta, bvec)
    for sg in prange(_N_SEGMENTS, num_threads=n_threads, schedule="dynamic", chunksize=1):
        lo = start + sg * n_rows // _N_SEGMENTS
        hi = start + (sg + 1) * n_rows // _N_SEGMENTS
        _apply(data, rows, lo, hi, pred, q, k, theta, bvec)
    return 0


cdef int _gibbs_sweep(const floating[::1] data, const Py_ssize_t[::1] rows,
                      const Py_ssize_t[::1] indptr, const floating[::1] y,
                      const floating[::1] sample_weight, floating[::1] w0, floating[::1] w,
                      floating[:, ::1] V, floating[::1] pred, floating[:, ::1] q,
                      const Py_ssize_t[::1] columns, const Py_ssize_t[::1] class_ptr,
                      double alpha, double lam0, const Py_ssize_t[::1] group,
                      const double[:, ::1] lam, const double[:, ::1] mu,
                      bint fit_intercept, uint64_t seed,
                      double* work, Py_ssize_t work_stride, double* segments,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t n = pred.shape[0], k = V.shape[1], m = k + 1
    cdef Py_ssize_t n_classes = class_ptr.shape[0] - 1, c, t, j, i, lo, hi, nnz, n_small
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double new, delta, sw, num, prec
    cdef int n_bad = 0, team
    cdef floating dummy = 0
    if fit_intercept:
        num = 0.0
        prec = 0.0
        for i in range(n):
            sw = sample_weight[i] if weighted else 1.0
            num += sw * (y[i] - pred[i] + w0[0])
            prec += sw
        prec = alpha * prec + lam0
        new = alpha * num / prec + _std_normal(seed, 0) / sqrt(prec)
        if not isfinite(new):
            return 1
        delta = new - w0[0]
        w0[0] = <floating>new
        for i in range(n):
            pred[i] += <floating>delta
    for c in range(n_classes):
        lo = class_ptr[c]
        hi = class_ptr[c + 1]
        # long columns first, one at a time, each split over the threads
        nnz = 0
        n_small = 0
        for t in range(lo, hi):
            j = columns[t]
            if indptr[j + 1] - indptr[j] >= _SPLIT_NNZ:
                n_bad += _gibbs_column_split(
                    data, rows, indptr[j], indptr[j + 1], y, sample_weight, weighted,
                    pred, q, &w[j], &V[j, 0] if k > 0 else &dummy, k, alpha,
                    &lam[group[j], 0], &mu[group[j], 0], seed, 1 + <uint64_t>j * m,
                    work, work_stride, segments, n_threads)
            else:
                nnz = nnz + indptr[j + 1] - indptr[j]
                n_small = n_small + 1
        if n_bad:
            return n_bad
        # then the others, several at a time
        team = n_threads if (n_small > 1 and nnz > _MIN_PARALLEL_NNZ) else 1
        for t in prange(lo, hi, num_threads=team, schedule="dynamic", chunksize=1):
            j = columns[t]
            if indptr[j + 1] - indptr[j] < _SPLIT_NNZ:
                n_bad += _gibbs_column(
                    data, rows, indptr[j], indptr[j + 1], y, sample_weight, weighted,
                    pred, q, &w[j], &V[j, 0] if k > 0 else &dummy, k, alpha,
                    &lam[group[j], 0], &mu[group[j], 0], seed, 1 + <uint64_t>j * m,
                    work + omp_get_thread_num() * work_stride)
        if n_bad:
            return n_bad
    return n_bad


def gibbs_sweep(const floating[::1] data, const Py_ssize_t[::1] rows,
                const Py_ssize_t[::1] indptr, const floating[::1] y,
                const floating[::1] sample_weight, floating[::1] w0, floating[::1] w,
                floating[:, ::1] V, floating[::1] pred, floating[:, ::1] q,
                const Py_ssize_t[::1] columns, const Py_ssize_t[::1] class_ptr,
                double alpha, double lam0, const Py_ssize_t[::1] group,
                const double[:, ::1] lam, const double[:, ::1] mu,
                bint fit_intercept, unsigned long long seed, int n_threads):
    """One Gibbs sweep: ``w0``, then ``(w_j, v_j)`` column by column.

    ``data/rows/indptr`` is the CSC matrix; ``pred`` and ``q`` (row-major,
    see ``_fm_fast.predict_cache(..., rows_major=True)``) must hold the
    predictions and factor sums of the current parameters and are kept up
    to date.
    ``columns``/``class_ptr`` come from ``color_columns`` (columns left out
    are not sampled).  Column ``j`` belongs to prior group ``group[j]``;
    ``lam[g]``/``mu[g]`` (length ``k + 1``) are group ``g``'s prior
    precisions and means of ``w_j`` and of ``v_j1 .. v_jk``.  The intercept
    has the prior N(0, 1 / lam0).  The intercept uses the normal draw of
    counter 0 and column ``j`` those of counters ``1 + j (k + 1) ..
    (j + 1)(k + 1)`` (``std_normal_draws``).  Returns the number of columns
    whose draw failed (the sweep stops after the class where one occurred).
    """
    cdef Py_ssize_t k = V.shape[1], m = k + 1, stride = _work_size(m)
    cdef int n_bad
    work_np = np.zeros(max(n_threads, 1) * stride, dtype=np.float64)
    segments_np = np.zeros(_N_SEGMENTS * (m * m + m), dtype=np.float64)
    cdef double[::1] work = work_np
    cdef double[::1] segments = segments_np
    with nogil:
        n_bad = _gibbs_sweep(data, rows, indptr, y, sample_weight, w0, w, V, pred, q,
                             columns, class_ptr, alpha, lam0, group, lam, mu, fit_intercept,
                             seed, &work[0], stride, &segments[0], n_threads)
    return n_bad


# ------------------------------------------------------------ relational blocks
#
# A relational block (myfm's term) is a group of columns whose values depend
# only on a "block row" of each training row -- e.g. the items a user rated,
# weighted 1/sqrt|N(u)| (Bayesian SVD++): every rating of user u carries the
# same implicit vector b_u.  It is kept as the (n_block_rows x d_B) matrix B
# and the map row_of (training row -> block row), never as the n x d_B matrix
# it stands for.  Its share of a row's prediction is a per-block-row term:
#
#     s_u = sum_j b_uj v_j,   T_u = sum_j b_uj w_j + (|s_u|^2 - sum_j b_uj^2 |v_j|^2) / 2
#     p_i = c_i + T_u + <s_u, q_i^rest>,   q_i = q_i^rest + s_u
#
# (q_i the row's factor sums, the cached q; q_i^rest those of its other
# features).  Drawing (w_j, v_j) of block column j needs, for each block row
# u holding j, sums over u's training rows of s_i, s_i q^rest, s_i q^rest
# q^rest^T, s_i e_i and s_i e_i q^rest (e_i = y_i - c_i): computed once per
# block and sweep in O(n k^2), after which a column costs O(k^2) per block row
# it holds, so a sweep of the block costs O(nnz(B) k^2) -- as the plain
# columns do per non-zero.  With g_u = s_u - b v_j and
# beta_u = T_u - b w_j - b <v_j, g_u> (the block without column j), row i of
# u has h_i = b (1, q_i^rest + g_u) and residual r_i = e_i - beta_u -
# <g_u, q_i^rest>, which the sums turn into A and b of the blocked step.

cdef extern from *:
    """
    /* Relational blocks: the per-block-row sums of one block row's training
       rows, and a column's accumulation over its block rows, in plain C with
       `omp simd` loops over the k factors (compiled for AVX2+FMA and for
       baseline x86-64 like the passes above).  Q2 is k x k row-major per
       block row; M collects sum_u b^2 (Q2_u + G g^T + g Q1_u^T) in full. */
    #define SKMF_BLOCK_STATS(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            const Py_ssize_t *rows, Py_ssize_t start, Py_ssize_t stop, const T *y, \
            const T *sw, const T *pred, const T *q, Py_ssize_t k, const double *su, \
            double Tu, double *N, double *Q1, double *Q2, double *E, double *EQ, \
            double *qr) { \
        for (Py_ssize_t t = start; t < stop; t++) { \
            const Py_ssize_t i = rows[t]; \
            const double w = sw ? (double)sw[i] : 1.0; \
            const T *qi = q + i * k; \
            double e = (double)y[i] - (double)pred[i] + Tu; \
            SKMF_FM_PRAGMA(omp simd reduction(+:e)) \
            for (Py_ssize_t a = 0; a < k; a++) { \
                qr[a] = (double)qi[a] - su[a]; \
                e += su[a] * qr[a]; \
            } \
            *N += w; \
            *E += w * e; \
            for (Py_ssize_t a = 0; a < k; a++) { \
                const double wa = w * qr[a]; \
                double *q2a = Q2 + a * k; \
                Q1[a] += wa; \
                EQ[a] += wa * e; \
                SKMF_FM_PRAGMA(omp simd) \
                for (Py_ssize_t l = 0; l < k; l++) q2a[l] += wa * qr[l]; \
            } \
        } \
    }

    #define SKMF_BLOCK_ACC(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            const T *data, const Py_ssize_t *brows, Py_ssize_t start, Py_ssize_t stop, \
            const double *theta, Py_ssize_t k, const double *s, const double *Tu, \
            const double *N, const double *Q1, const double *Q2, const double *E, \
            const double *EQ, double *M, double *A0, double *bvec, double *g) { \
        const double w = theta[0]; \
        const double *v = theta + 1; \
        double *rq = g + k; \
        for (Py_ssize_t t = start; t < stop; t++) { \
            const Py_ssize_t u = brows[t]; \
            const double b = (double)data[t], bb = b * b, nu = N[u]; \
            const double *su = s + u * k, *q1 = Q1 + u * k, *q2 = Q2 + u * k * k; \
            const double *eq = EQ + u * k; \
            double vg = 0.0, gq = 0.0; \
            SKMF_FM_PRAGMA(omp simd reduction(+:vg, gq)) \
            for (Py_ssize_t a = 0; a < k; a++) { \
                g[a] = su[a] - b * v[a]; \
                vg += v[a] * g[a]; \
                gq += g[a] * q1[a]; \
            } \
            const double beta = Tu[u] - b * w - b * vg; \
            const double r0 = E[u] - beta * nu - gq; \
            A0[0] += bb * nu; \
            bvec[0] += b * r0; \
            SKMF_FM_PRAGMA(omp simd) \
            for (Py_ssize_t a = 0; a < k; a++) { \
                rq[a] = eq[a] - beta * q1[a] + g[a] * r0; \
                A0[1 + a] += bb * (q1[a] + nu * g[a]); \
            } \
            for (Py_ssize_t l = 0; l < k; l++) { /* rq -= Q2_u g (Q2 symmetric) */ \
                const double gl = g[l], *row = q2 + l * k; \
                SKMF_FM_PRAGMA(omp simd) \
                for (Py_ssize_t a = 0; a < k; a++) rq[a] -= row[a] * gl; \
            } \
            SKMF_FM_PRAGMA(omp simd) \
            for (Py_ssize_t a = 0; a < k; a++) bvec[1 + a] += b * rq[a]; \
            for (Py_ssize_t a = 0; a < k; a++) { \
                const double Ga = bb * (q1[a] + nu * g[a]), ga = bb * g[a]; \
                const double *q2a = q2 + a * k; \
                double *Ma = M + a * k; \
                SKMF_FM_PRAGMA(omp simd) \
                for (Py_ssize_t l = 0; l < k; l++) \
                    Ma[l] += bb * q2a[l] + Ga * g[l] + ga * q1[l]; \
            } \
        } \
    }

    SKMF_BLOCK_STATS(skmf_block_stats_f, float)
    SKMF_BLOCK_STATS(skmf_block_stats_d, double)
    SKMF_BLOCK_ACC(skmf_block_acc_f, float)
    SKMF_BLOCK_ACC(skmf_block_acc_d, double)
    """
    void skmf_block_stats_f(const Py_ssize_t* rows, Py_ssize_t start, Py_ssize_t stop,
                            const float* y, const float* sw, const float* pred,
                            const float* q, Py_ssize_t k, const double* su, double Tu,
                            double* N, double* Q1, double* Q2, double* E, double* EQ,
                            double* qr) noexcept nogil
    void skmf_block_stats_d(const Py_ssize_t* rows, Py_ssize_t start, Py_ssize_t stop,
                            const double* y, const double* sw, const double* pred,
                            const double* q, Py_ssize_t k, const double* su, double Tu,
                            double* N, double* Q1, double* Q2, double* E, double* EQ,
                            double* qr) noexcept nogil
    void skmf_block_acc_f(const float* data, const Py_ssize_t* brows, Py_ssize_t start,
                          Py_ssize_t stop, const double* theta, Py_ssize_t k,
                          const double* s, const double* Tu, const double* N,
                          const double* Q1, const double* Q2, const double* E,
                          const double* EQ, double* M, double* A0, double* bvec,
                          double* g) noexcept nogil
    void skmf_block_acc_d(const double* data, const Py_ssize_t* brows, Py_ssize_t start,
                          Py_ssize_t stop, const double* theta, Py_ssize_t k,
                          const double* s, const double* Tu, const double* N,
                          const double* Q1, const double* Q2, const double* E,
                          const double* EQ, double* M, double* A0, double* bvec,
                          double* g) noexcept nogil


# A column with at least this many block rows is accumulated over
# _N_SEGMENTS fixed segments in parallel (summed in segment order).
cdef Py_ssize_t _BLOCK_SPLIT_NNZ = 4096


def block_state(const floating[::1] data, const Py_ssize_t[::1] indices,
                const Py_ssize_t[::1] indptr, const floating[::1] w,
                const floating[:, ::1] V, double[:, ::1] s, double[::1] T,
                int n_threads):
    """Per-block-row factor sum ``s_u`` and scalar term ``T_u`` of a block
    (CSR ``data/indices/indptr``, one row per block row), into ``s`` and ``T``."""
    cdef Py_ssize_t nb = indptr.shape[0] - 1, k = V.shape[1], u, t, j, f
    cdef double b, acc, sq
    for u in prange(nb, nogil=True, num_threads=n_threads, schedule="static"):
        acc = 0.0
        sq = 0.0
        for f in range(k):
            s[u, f] = 0.0
        for t in range(indptr[u], indptr[u + 1]):
            j = indices[t]
            b = data[t]
            acc = acc + b * w[j]
            for f in range(k):
                s[u, f] += b * V[j, f]
                sq = sq + b * b * V[j, f] * V[j, f]
        for f in range(k):
            sq = sq - s[u, f] * s[u, f]
        T[u] = acc - 0.5 * sq


def block_add(const Py_ssize_t[::1] row_of, const double[:, ::1] s, const double[::1] T,
              floating[::1] pred, floating[:, ::1] q, int n_threads):
    """Add a block to the caches of the training rows: ``pred_i += T_u +
    <s_u, q_i>`` and then ``q_i += s_u`` with ``u = row_of[i]``."""
    cdef Py_ssize_t n = pred.shape[0], k = q.shape[1], i, u, f
    cdef double acc
    for i in prange(n, nogil=True, num_threads=n_threads, schedule="static"):
        u = row_of[i]
        acc = T[u]
        for f in range(k):
            acc = acc + s[u, f] * q[i, f]
            q[i, f] = <floating>(q[i, f] + s[u, f])
        pred[i] = <floating>(pred[i] + acc)


cdef inline void _block_acc(const floating[::1] data, const Py_ssize_t[::1] brows,
                            Py_ssize_t start, Py_ssize_t stop, const double* theta,
                            Py_ssize_t k, const double[:, ::1] s, const double[::1] T,
                            const double[::1] N, const double[:, ::1] Q1,
                            const double[:, :, ::1] Q2, const double[::1] E,
                            const double[:, ::1] EQ, double* part,
                            double* g) noexcept nogil:
    """Add block rows ``brows[start:stop]`` of a column to ``part`` = [M (k x
    k), A0 (k + 1), b (k + 1)] (``g``: 2k doubles of scratch)."""
    if stop <= start:
        return
    if floating is float:
        skmf_block_acc_f(&data[0], &brows[0], start, stop, theta, k, &s[0, 0], &T[0],
                         &N[0], &Q1[0, 0], &Q2[0, 0, 0], &E[0], &EQ[0, 0], part,
                         part + k * k, part + k * k + k + 1, g)
    else:
        skmf_block_acc_d(&data[0], &brows[0], start, stop, theta, k, &s[0, 0], &T[0],
                         &N[0], &Q1[0, 0], &Q2[0, 0, 0], &E[0], &EQ[0, 0], part,
                         part + k * k, part + k * k + k + 1, g)


cdef void _block_move(const floating[::1] data, const Py_ssize_t[::1] brows,
                      Py_ssize_t start, Py_ssize_t stop, const double* theta,
                      const double* delta, Py_ssize_t k, double[:, ::1] s,
                      double[::1] T) noexcept nogil:
    """Update ``s_u``, ``T_u`` of block rows ``brows[start:stop]`` for the
    change ``delta`` of the column's ``theta = (w_j, v_j)``."""
    cdef Py_ssize_t t, u, a
    cdef double b, g, gv
    for t in range(start, stop):
        u = brows[t]
        b = data[t]
        # T_u = beta_u + b w + b <v, g_u>, g_u = s_u - b v the rest of s_u:
        # the change is b dw + b <dv, g_u>; s_u moves by b dv
        gv = 0.0
        for a in range(k):
            g = s[u, a] - b * theta[1 + a]
            gv += delta[1 + a] * g
            s[u, a] = g + b * (theta[1 + a] + delta[1 + a])
        T[u] += b * delta[0] + b * gv


def block_sweep(const floating[::1] data, const Py_ssize_t[::1] brows,
                const Py_ssize_t[::1] bptr, const Py_ssize_t[::1] columns,
                const Py_ssize_t[::1] row_of, const Py_ssize_t[::1] group_ptr,
                const Py_ssize_t[::1] group_rows, const floating[::1] y,
                const floating[::1] sample_weight, floating[::1] w, floating[:, ::1] V,
                double[:, ::1] s, double[::1] T, floating[::1] pred, floating[:, ::1] q,
                double alpha, const double[::1] lam, const double[::1] mu,
                unsigned long long seed, int n_threads):
    """One Gibbs pass over the columns of a relational block.

    ``data/brows/bptr``: the block in CSC (rows are block rows); ``columns``:
    the columns to draw, in order; ``row_of``: the block row of each
    training row, and ``group_rows[group_ptr[u]:group_ptr[u + 1]]`` the
    training rows of block row ``u``.  ``w``/``V``: the block's parameters;
    ``s``/``T``: its per-block-row terms (``block_state``), which must be
    included in the caches ``pred``/``q`` (``block_add``) and are kept up to
    date with them.  ``lam``/``mu`` (length ``k + 1``): the block's prior.
    Column ``j`` uses the normal draws of counters ``j (k + 1) ..
    (j + 1)(k + 1) - 1`` of ``seed``.  Returns the number of failed draws
    (the pass stops at the first).
    """
    cdef Py_ssize_t nb = s.shape[0], k = V.shape[1], m = k + 1, mm = m * m
    cdef Py_ssize_t n = pred.shape[0], P = k * k + 2 * m, stride = 2 * mm + 2 * m + P + 2 * k + 8
    cdef Py_ssize_t c, j, u, i, a, l, lo, hi, sg, nnz
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double e, qr
    cdef int n_bad = 0
    N_np = np.zeros(nb)
    Q1_np = np.zeros((nb, k))
    Q2_np = np.zeros((nb, k, k))
    E_np = np.zeros(nb)
    EQ_np = np.zeros((nb, k))
    s_old_np = np.array(s, dtype=np.float64)
    T_old_np = np.array(T, dtype=np.float64)
    work_np = np.zeros(max(n_threads, 1) * stride)
    seg_np = np.zeros(_N_SEGMENTS * P)
    theta_np = np.zeros(2 * m)
    cdef double[::1] N = N_np, E = E_np, T_old = T_old_np, work = work_np, seg = seg_np
    cdef double[::1] theta = theta_np
    cdef double[:, ::1] Q1 = Q1_np, EQ = EQ_np, s_old = s_old_np
    cdef double[:, :, ::1] Q2 = Q2_np
    cdef double* wk
    cdef double* part
    cdef double* A
    cdef double* bvec
    cdef double* acc
    if nb == 0 or n == 0:
        return 0
    with nogil:
        # the sums over each block row's training rows
        for u in prange(nb, num_threads=n_threads, schedule="dynamic", chunksize=64):
            wk = &work[0] + omp_get_thread_num() * stride
            if floating is float:
                skmf_block_stats_f(&group_rows[0], group_ptr[u], group_ptr[u + 1], &y[0],
                                   &sample_weight[0] if weighted else NULL, &pred[0],
                                   &q[0, 0], k, &s[u, 0], T[u], &N[u], &Q1[u, 0],
                                   &Q2[u, 0, 0], &E[u], &EQ[u, 0], wk)
            else:
                skmf_block_stats_d(&group_rows[0], group_ptr[u], group_ptr[u + 1], &y[0],
                                   &sample_weight[0] if weighted else NULL, &pred[0],
                                   &q[0, 0], k, &s[u, 0], T[u], &N[u], &Q1[u, 0],
                                   &Q2[u, 0, 0], &E[u], &EQ[u, 0], wk)
        A = &work[0]
        bvec = A + 2 * mm
        acc = bvec + 2 * m
        for c in range(columns.shape[0]):
            j = columns[c]
            theta[0] = w[j]
            for a in range(k):
                theta[1 + a] = V[j, a]
            nnz = bptr[j + 1] - bptr[j]
            for a in range(P):
                acc[a] = 0.0
            if nnz < _BLOCK_SPLIT_NNZ:
                _block_acc(data, brows, bptr[j], bptr[j + 1], &theta[0], k, s, T, N, Q1,
                           Q2, E, EQ, acc, acc + P)
            else:
                for sg in prange(_N_SEGMENTS, num_threads=n_threads, schedule="dynamic",
                                 chunksize=1):
                    lo = bptr[j] + sg * nnz // _N_SEGMENTS
                    hi = bptr[j] + (sg + 1) * nnz // _N_SEGMENTS
                    part = &seg[0] + sg * P
                    for a in range(P):
                        part[a] = 0.0
                    _block_acc(data, brows, lo, hi, &theta[0], k, s, T, N, Q1, Q2, E, EQ,
                               part, &work[0] + omp_get_thread_num() * stride
                               + 2 * mm + 2 * m + P)
                for sg in range(_N_SEGMENTS):
                    part = &seg[0] + sg * P
                    for a in range(P):
                        acc[a] += part[a]
            # A (lower triangle) and b of the blocked step from [M, A0, b]
            for a in range(m):
                A[a * m] = acc[k * k + a]
                bvec[a] = acc[k * k + m + a]
            for a in range(k):
                for l in range(a + 1):
                    A[(1 + a) * m + 1 + l] = acc[a * k + l]
            if _posterior_draw(A, A + mm, bvec, &theta[0], &theta[m], m, alpha, &lam[0],
                               &mu[0], seed, <uint64_t>j * m):
                n_bad = 1
                break
            w[j] = <floating>(theta[0] + bvec[0])
            for a in range(k):
                V[j, a] = <floating>(theta[1 + a] + bvec[1 + a])
            _block_move(data, brows, bptr[j], bptr[j + 1], &theta[0], bvec, k, s, T)
        # the caches follow the block's change
        for i in prange(n, num_threads=n_threads, schedule="static"):
            u = row_of[i]
            e = T[u] - T_old[u]
            for a in range(k):
                qr = q[i, a] - s_old[u, a]
                e = e + (s[u, a] - s_old[u, a]) * qr
                q[i, a] = <floating>(qr + s[u, a])
            pred[i] = <floating>(pred[i] + e)
    return n_bad


# ------------------------------------------------- per-coordinate Gibbs sweep
#
# libFM's scheme (Rendle 2013, "Scaling factorization machines to relational
# data"): every parameter is drawn alone from its scalar Gaussian conditional,
# in the order w0, every w_j, then for each factor f every v_jf.  The
# prediction of row i is linear in one parameter theta: p_i = c_i + theta h_i
# with h_i = x_ij for w_j and h_i = x_ij (q_if - x_ij v_jf) for v_jf, so
#
#     prec = alpha sum_i s_i h_i^2 + lam,   mean = (alpha sum_i s_i h_i (e_i + theta h_i) + lam mu) / prec
#
# (e_i = y_i - p_i the cached residual, q_if the cached factor sum).  A draw
# costs O(nnz_j) and the sweep O(nnz k), against O(nnz k^2) for the blocked
# draw.  The driver hands the kernels one factor at a time: ``qf`` is the
# contiguous copy of the cached factor sums q[:, f].  The normal draw of
# column j's coordinate a (0: w_j, 1 + f: v_jf) has counter 1 + j (k + 1) + a,
# as in the blocked sweep, so results do not depend on the number of threads.

cdef inline void _coord_acc(const floating[::1] data, const Py_ssize_t[::1] rows,
                            Py_ssize_t start, Py_ssize_t stop,
                            const floating[::1] sample_weight, bint weighted,
                            const floating[::1] e, const floating[::1] qf, bint factor,
                            double theta, double* hh, double* he) noexcept nogil:
    """Add sum s h^2 to ``hh[0]`` and sum s h (e + theta h) to ``he[0]`` over
    rows ``start:stop`` of a column."""
    cdef Py_ssize_t t, r
    cdef double x, h, sw, a = 0.0, b = 0.0
    for t in range(start, stop):
        r = rows[t]
        x = data[t]
        h = x * (qf[r] - x * theta) if factor else x
        sw = sample_weight[r] if weighted else 1.0
        a += sw * h * h
        b += sw * h * (e[r] + theta * h)
    hh[0] += a
    he[0] += b


cdef inline void _coord_apply(const floating[::1] data, const Py_ssize_t[::1] rows,
                              Py_ssize_t start, Py_ssize_t stop, floating[::1] e,
                              floating[::1] qf, bint factor, double theta,
                              double delta) noexcept nogil:
    """Move the residuals (and factor sums) of rows ``start:stop`` by the
    change ``delta`` of the coordinate (old value ``theta``)."""
    cdef Py_ssize_t t, r
    cdef double x
    for t in range(start, stop):
        r = rows[t]
        x = data[t]
        if factor:
            e[r] = <floating>(e[r] - delta * x * (qf[r] - x * theta))
            qf[r] = <floating>(qf[r] + delta * x)
        else:
            e[r] = <floating>(e[r] - delta * x)


cdef inline double _scalar_draw(double hh, double he, double alpha, double lam,
                                double mu, uint64_t seed, uint64_t counter) noexcept nogil:
    """A draw from N((alpha he + lam mu) / P, 1 / P), P = alpha hh + lam."""
    cdef double prec = alpha * hh + lam
    return (alpha * he + lam * mu) / prec + _std_normal(seed, counter) / sqrt(prec)


def intercept_draw(floating[::1] e, const floating[::1] sample_weight, floating[::1] w0,
                   double alpha, double lam0, unsigned long long seed):
    """Draw the intercept (flat prior for ``lam0 = 0``) given the residuals
    ``e``, with the normal draw of counter 0; ``e`` follows the change.
    Returns 1 if the draw is not finite (nothing changed then)."""
    cdef Py_ssize_t n = e.shape[0], i
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double sw, hh = 0.0, he = 0.0, new, delta
    with nogil:
        for i in range(n):
            sw = sample_weight[i] if weighted else 1.0
            hh += sw
            he += sw * (e[i] + w0[0])
        new = _scalar_draw(hh, he, alpha, lam0, 0.0, seed, 0)
    if not isfinite(new):
        return 1
    delta = new - w0[0]
    w0[0] = <floating>new
    with nogil:
        for i in range(n):
            e[i] = <floating>(e[i] - delta)
    return 0


def coordinate_pass(const floating[::1] data, const Py_ssize_t[::1] rows,
                    const Py_ssize_t[::1] indptr, const floating[::1] sample_weight,
                    floating[::1] e, floating[::1] qf, floating[:] theta,
                    const Py_ssize_t[::1] columns, const Py_ssize_t[::1] class_ptr,
                    const Py_ssize_t[::1] group, const double[:, ::1] lam,
                    const double[:, ::1] mu, Py_ssize_t coord, Py_ssize_t k,
                    double alpha, unsigned long long seed, int n_threads):
    """Draw coordinate ``coord`` (0: the weights ``w``, 1 + f: factor f of the
    latent vectors) of every column in ``columns`` (grouped into row-disjoint
    classes by ``class_ptr``, see ``color_columns``), one scalar conditional
    each.  ``theta`` is ``w`` or ``V[:, f]`` (updated in place); ``e`` the
    residuals y - p and ``qf`` the factor sums q[:, f] of the training rows
    (unused for ``coord = 0``), both kept up to date.  ``lam``/``mu``:
    (n_groups, k + 1) priors, column j in group ``group[j]``.  Columns of one
    class are drawn in parallel; a long column's sums are split over fixed
    segments added in order.  Returns the number of non-finite draws (the
    pass stops after the class where one occurred)."""
    cdef Py_ssize_t n_classes = class_ptr.shape[0] - 1, m = k + 1, c, t, j, g, sg
    cdef Py_ssize_t lo, hi, nnz, s0, s1
    cdef bint weighted = sample_weight.shape[0] > 0, factor = coord > 0
    cdef double old, new, hh, he
    cdef int n_bad = 0, team
    seg_np = np.zeros(2 * _N_SEGMENTS)
    cdef double[::1] seg = seg_np
    with nogil:
        for c in range(n_classes):
            lo = class_ptr[c]
            hi = class_ptr[c + 1]
            nnz = 0
            for t in range(lo, hi):
                j = columns[t]
                if indptr[j + 1] - indptr[j] >= _SPLIT_NNZ:
                    # a long column: segments in parallel, summed in order
                    old = theta[j]
                    for sg in prange(_N_SEGMENTS, num_threads=n_threads, schedule="static"):
                        s0 = indptr[j] + sg * (indptr[j + 1] - indptr[j]) // _N_SEGMENTS
                        s1 = indptr[j] + (sg + 1) * (indptr[j + 1] - indptr[j]) // _N_SEGMENTS
                        seg[2 * sg] = 0.0
                        seg[2 * sg + 1] = 0.0
                        _coord_acc(data, rows, s0, s1, sample_weight, weighted, e, qf,
                                   factor, old, &seg[2 * sg], &seg[2 * sg + 1])
                    hh = 0.0
                    he = 0.0
                    for sg in range(_N_SEGMENTS):
                        hh = hh + seg[2 * sg]
                        he = he + seg[2 * sg + 1]
                    g = group[j]
                    new = _scalar_draw(hh, he, alpha, lam[g, coord], mu[g, coord], seed,
                                       1 + <uint64_t>j * m + coord)
                    if not isfinite(new):
                        n_bad = n_bad + 1
                        continue
                    theta[j] = <floating>new
                    for sg in prange(_N_SEGMENTS, num_threads=n_threads, schedule="static"):
                        s0 = indptr[j] + sg * (indptr[j + 1] - indptr[j]) // _N_SEGMENTS
                        s1 = indptr[j] + (sg + 1) * (indptr[j + 1] - indptr[j]) // _N_SEGMENTS
                        _coord_apply(data, rows, s0, s1, e, qf, factor, old,
                                     <double>theta[j] - old)
                else:
                    nnz = nnz + indptr[j + 1] - indptr[j]
            if n_bad:
                break
            team = n_threads if nnz > _MIN_PARALLEL_NNZ else 1
            for t in prange(lo, hi, num_threads=team, schedule="dynamic", chunksize=4):
                j = columns[t]
                if indptr[j + 1] - indptr[j] >= _SPLIT_NNZ:
                    continue
                old = theta[j]
                hh = 0.0
                he = 0.0
                _coord_acc(data, rows, indptr[j], indptr[j + 1], sample_weight, weighted, e,
                           qf, factor, old, &hh, &he)
                g = group[j]
                new = _scalar_draw(hh, he, alpha, lam[g, coord], mu[g, coord], seed,
                                   1 + <uint64_t>j * m + coord)
                if not isfinite(new):
                    n_bad += 1
                    continue
                theta[j] = <floating>new
                _coord_apply(data, rows, indptr[j], indptr[j + 1], e, qf, factor, old,
                             <double>theta[j] - old)
            if n_bad:
                break
    return n_bad


# ------------------------------------------- relational blocks, coordinate draws
#
# A block's coordinate step (coordinate a of every column of the block) needs,
# per block row u, sums over u's training rows: the weights N_u, the residuals
# E_u and, for a factor f, with r_i = q_if - s_uf (the factor sum without the
# block), R1_u = sum r_i, R2_u = sum r_i^2, ER_u = sum e_i r_i.  They are
# added over a fixed split of the training rows into ``_walk_parts(n, nb)``
# contiguous segments (a function of the sizes only, never of the number of
# threads), each segment into its own table, and the tables are then added in
# segment order: the threads walk disjoint ranges of the row arrays (no two
# threads write one cache line of the residuals or factor sums) and the sums
# do not depend on the number of threads.  A step's per-block-row table holds,
# side by side (one cache line): N, E, R1, R2, ER, the change D of the
# block's terms, s_uf before the step and s_uf now.

DEF _N_WALK_PARTS = 4


cdef inline Py_ssize_t _walk_parts(Py_ssize_t n, Py_ssize_t nb) noexcept nogil:
    """Segments of the training rows for the sums of a block of ``nb`` block
    rows: up to ``_N_WALK_PARTS``, each with at least 8 rows per block row
    (a segment's table costs O(nb) to clear and to add)."""
    cdef Py_ssize_t p = n // (8 * nb) if nb > 0 else 1
    return max(1, min(_N_WALK_PARTS, p))


cdef inline double* _line_aligned(double* p) noexcept nogil:
    """``p`` moved up to the next 64-byte boundary (a table row on one cache
    line; the buffer has 8 spare doubles)."""
    return p + ((64 - (<size_t>p) % 64) % 64) // sizeof(double)


def walk_parts(Py_ssize_t n, Py_ssize_t nb):
    """``_walk_parts`` (tests)."""
    return _walk_parts(n, nb)


cdef extern from *:
    """
    /* The sums of a walk over training rows lo:hi whose next step's block
       rows are sorted (runs of equal block rows), after the rows have been
       moved by the finished step (in _walk_rows, whose arithmetic the
       per-step path shares): each run's four sums with `omp simd`
       reductions (a fixed order for given rows, so the same on any number of
       threads).  Factor sums contiguous (stride 1). */
    #define SKMF_WALK_RUNS(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            Py_ssize_t lo, Py_ssize_t hi, const T *e, \
            const T *sw, const T *qn, const Py_ssize_t *next_row_of, \
            const double *next_s, Py_ssize_t s_stride, double *S) { \
        Py_ssize_t a = lo; \
        while (a < hi) { \
            const Py_ssize_t u = next_row_of[a]; \
            Py_ssize_t b = a + 1; \
            while (b < hi && next_row_of[b] == u) b++; \
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0; \
            if (qn) { \
                const double sn = next_s[u * s_stride]; \
                if (sw) { \
                    SKMF_FM_PRAGMA(omp simd reduction(+:s0, s1, s2, s3)) \
                    for (Py_ssize_t i = a; i < b; i++) { \
                        const double w = sw[i], ei = e[i], r = qn[i] - sn; \
                        s0 += w * ei; s1 += w * r; s2 += w * r * r; s3 += w * ei * r; \
                    } \
                } else { \
                    SKMF_FM_PRAGMA(omp simd reduction(+:s0, s1, s2, s3)) \
                    for (Py_ssize_t i = a; i < b; i++) { \
                        const double ei = e[i], r = qn[i] - sn; \
                        s0 += ei; s1 += r; s2 += r * r; s3 += ei * r; \
                    } \
                } \
            } else if (sw) { \
                SKMF_FM_PRAGMA(omp simd reduction(+:s0)) \
                for (Py_ssize_t i = a; i < b; i++) s0 += (double)sw[i] * e[i]; \
            } else { \
                SKMF_FM_PRAGMA(omp simd reduction(+:s0)) \
                for (Py_ssize_t i = a; i < b; i++) s0 += e[i]; \
            } \
            double *st = S + 4 * u; \
            st[0] += s0; st[1] += s1; st[2] += s2; st[3] += s3; \
            a = b; \
        } \
    }
    SKMF_WALK_RUNS(skmf_walk_runs_f, float)
    SKMF_WALK_RUNS(skmf_walk_runs_d, double)
    """
    void skmf_walk_runs_f(Py_ssize_t lo, Py_ssize_t hi, const float* e, const float* sw,
                          const float* qn, const Py_ssize_t* next_row_of,
                          const double* next_s, Py_ssize_t s_stride,
                          double* S) noexcept nogil
    void skmf_walk_runs_d(Py_ssize_t lo, Py_ssize_t hi, const double* e, const double* sw,
                          const double* qn, const Py_ssize_t* next_row_of,
                          const double* next_s, Py_ssize_t s_stride,
                          double* S) noexcept nogil


cdef inline void _walk_rows(
        Py_ssize_t lo, Py_ssize_t hi, floating* e, const floating* y, floating* pred,
        const floating* sw, floating* qp, Py_ssize_t qp_stride,
        const Py_ssize_t* prev_row_of, const double* prev_U,
        const floating* qn, Py_ssize_t qn_stride, const Py_ssize_t* next_row_of,
        const double* next_s, Py_ssize_t s_stride, double* S, bint first,
        bint last, bint runs) noexcept nogil:
    """One walk over the training rows ``lo:hi`` in increasing order.  For
    each row: for the first step the residual ``e = y - pred``; the change of
    the finished step (its table ``prev_U``, NULL for none) applied to ``e``
    and, for a factor step (``qp`` not NULL: that factor's sums, a row every
    ``qp_stride``), to the factor sums; ``last``: ``pred = y - e`` after the
    change; then the row added to the next step's segment table ``S`` (NULL
    for none; 4 doubles a block row: E, R1, R2, ER) with ``r = qn - s_u``
    for a factor step (``qn`` not NULL, ``next_s[u * s_stride]`` the block
    row's s_uf).  ``runs``: the next step's block rows are sorted
    (``_sorted_rows``): each run of equal block rows is summed at once
    (``skmf_walk_runs``, vectorised; in registers otherwise) and added to the
    table once."""
    cdef Py_ssize_t i, u, cur = -1
    cdef double r, ei, w, sn = 0.0
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    cdef double* st
    cdef const double* pst
    cdef bint vector_runs = runs and S != NULL and (qn == NULL or qn_stride == 1)
    for i in range(lo, hi):
        if first:
            e[i] = y[i] - pred[i]
        if prev_U != NULL:
            pst = prev_U + 8 * prev_row_of[i]
            if qp != NULL:
                r = qp[i * qp_stride] - pst[6]
                e[i] = <floating>(e[i] - pst[5] - (pst[7] - pst[6]) * r)
                qp[i * qp_stride] = <floating>(r + pst[7])
            else:
                e[i] = <floating>(e[i] - pst[5])
        if last:
            pred[i] = y[i] - e[i]
        if S == NULL or vector_runs:
            continue
        u = next_row_of[i]
        if not runs:  # rows of a block row scattered: straight into the table
            st = S + 4 * u
            ei = e[i]
            if sw != NULL:
                w = sw[i]
                st[0] += w * ei
                if qn != NULL:
                    r = qn[i * qn_stride] - next_s[u * s_stride]
                    st[1] += w * r
                    st[2] += w * r * r
                    st[3] += w * ei * r
            else:
                st[0] += ei
                if qn != NULL:
                    r = qn[i * qn_stride] - next_s[u * s_stride]
                    st[1] += r
                    st[2] += r * r
                    st[3] += ei * r
            continue
        # rows sorted by block row: a run of one block row's rows is summed
        # in registers and added to the table once
        if u != cur:
            if cur >= 0:
                st = S + 4 * cur
                st[0] += a0
                st[1] += a1
                st[2] += a2
                st[3] += a3
            cur = u
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            if qn != NULL:
                sn = next_s[u * s_stride]
        ei = e[i]
        if sw != NULL:
            w = sw[i]
            a0 += w * ei
            if qn != NULL:
                r = qn[i * qn_stride] - sn
                a1 += w * r
                a2 += w * r * r
                a3 += w * ei * r
        else:
            a0 += ei
            if qn != NULL:
                r = qn[i * qn_stride] - sn
                a1 += r
                a2 += r * r
                a3 += ei * r
    if vector_runs:  # the sums, over the moved rows
        if floating is float:
            skmf_walk_runs_f(lo, hi, e, sw, qn, next_row_of, next_s, s_stride, S)
        else:
            skmf_walk_runs_d(lo, hi, e, sw, qn, next_row_of, next_s, s_stride, S)
        return
    if S != NULL and cur >= 0:
        st = S + 4 * cur
        st[0] += a0
        st[1] += a1
        st[2] += a2
        st[3] += a3


cdef bint _sorted_rows(const Py_ssize_t* row_of, Py_ssize_t n) noexcept nogil:
    """Whether the block rows of the training rows are non-decreasing."""
    cdef Py_ssize_t i
    for i in range(1, n):
        if row_of[i] < row_of[i - 1]:
            return False
    return True


cdef void _walk(Py_ssize_t n, floating* e, const floating* y, floating* pred,
                const floating* sw, floating* qp, Py_ssize_t qp_stride,
                const Py_ssize_t* prev_row_of, const double* prev_U,
                const floating* qn, Py_ssize_t qn_stride, const Py_ssize_t* next_row_of,
                const double* next_s, Py_ssize_t s_stride, Py_ssize_t nb, double* S,
                bint first, bint last, bint runs, int n_threads) noexcept nogil:
    """``_walk_rows`` over all n training rows: with a next step (``S`` not
    NULL, room for ``_walk_parts(n, nb)`` tables of ``4 nb``) over its fixed
    segments, each segment's table cleared first; otherwise over one range a
    thread."""
    cdef Py_ssize_t n_parts, c, a
    cdef int team
    cdef double* Sc
    if S != NULL:
        n_parts = _walk_parts(n, nb)
    else:
        n_parts = max(1, n_threads)
    team = max(1, min(n_threads, n_parts))
    if n < 4096:
        team = 1
    for c in prange(n_parts, num_threads=team, schedule="static", chunksize=1):
        Sc = NULL
        if S != NULL:
            Sc = S + c * 4 * nb
            for a in range(4 * nb):
                Sc[a] = 0.0
        _walk_rows(c * n // n_parts, (c + 1) * n // n_parts, e, y, pred, sw, qp, qp_stride,
                   prev_row_of, prev_U, qn, qn_stride, next_row_of, next_s, s_stride, Sc,
                   first, last, runs)


cdef void _table(double* U, const double* S, Py_ssize_t n_parts, Py_ssize_t nb,
                 const double* N, const double* s, Py_ssize_t s_stride,
                 int n_threads) noexcept nogil:
    """A step's table from its segment tables (added in segment order) and
    the weights ``N``; ``s`` (NULL for the ``w`` step) the block rows' s_uf."""
    cdef Py_ssize_t u, c
    cdef double* st
    cdef const double* a
    cdef int team = n_threads if nb * n_parts >= 16384 else 1
    for u in prange(nb, num_threads=team, schedule="static"):
        st = U + 8 * u
        st[0] = N[u]
        st[1] = 0.0
        st[2] = 0.0
        st[3] = 0.0
        st[4] = 0.0
        st[5] = 0.0
        for c in range(n_parts):
            a = S + (c * nb + u) * 4
            st[1] += a[0]
            st[2] += a[1]
            st[3] += a[2]
            st[4] += a[3]
        if s != NULL:
            st[6] = s[u * s_stride]
            st[7] = st[6]
        else:
            st[6] = 0.0
            st[7] = 0.0


def block_row_weights(const Py_ssize_t[::1] row_of, const floating[::1] sample_weight,
                      Py_ssize_t nb):
    """The sum of the weights of each block row's training rows (its count
    when ``sample_weight`` is empty), added over the segments of
    ``_walk_parts`` as the coordinate steps add their sums."""
    cdef Py_ssize_t n = row_of.shape[0], n_parts = _walk_parts(n, nb), c, i, u
    cdef bint weighted = sample_weight.shape[0] > 0
    out = np.zeros(nb)
    S_np = np.zeros((n_parts, max(nb, 1)))
    cdef double[::1] N = out
    cdef double[:, ::1] S = S_np
    with nogil:
        for c in range(n_parts):
            for i in range(c * n // n_parts, (c + 1) * n // n_parts):
                S[c, row_of[i]] += sample_weight[i] if weighted else 1.0
        for u in range(nb):
            for c in range(n_parts):
                N[u] += S[c, u]
    return out


cdef extern from *:
    """
    /* The two passes of a block column's coordinate draw over the block rows
       holding it (tables of 8 doubles a block row: N, E, R1, R2, ER, D,
       s before, s now), in plain C so that they are compiled for AVX2+FMA and
       for baseline x86-64 like the passes above. */
    /* The accumulation is a chain of dependent additions, so its sums are
       split: even and odd block rows into two partial sums each (added at
       the end), and he = sum b (g R1 + ER) + old hh, the part shared with
       hh factored out.  A fixed order: the same sums on any number of
       threads. */
    #define SKMF_BCOL_ACC(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            const T *data, const Py_ssize_t *brows, Py_ssize_t lo, Py_ssize_t hi, \
            const double *U, int factor, double old, double *hh_out, double *he_out) { \
        double h0 = 0.0, h1 = 0.0, p0 = 0.0, p1 = 0.0; \
        Py_ssize_t t = lo; \
        if (factor) { \
            for (; t + 1 < hi; t += 2) { \
                const double *s0 = U + 8 * brows[t], *s1 = U + 8 * brows[t + 1]; \
                const double b0 = (double)data[t], b1 = (double)data[t + 1]; \
                const double g0 = s0[7] - b0 * old, g1 = s1[7] - b1 * old; \
                h0 += b0 * b0 * (s0[0] * g0 * g0 + 2.0 * g0 * s0[2] + s0[3]); \
                h1 += b1 * b1 * (s1[0] * g1 * g1 + 2.0 * g1 * s1[2] + s1[3]); \
                p0 += b0 * (g0 * s0[1] + s0[4]); \
                p1 += b1 * (g1 * s1[1] + s1[4]); \
            } \
            if (t < hi) { \
                const double *s0 = U + 8 * brows[t]; \
                const double b0 = (double)data[t]; \
                const double g0 = s0[7] - b0 * old; \
                h0 += b0 * b0 * (s0[0] * g0 * g0 + 2.0 * g0 * s0[2] + s0[3]); \
                p0 += b0 * (g0 * s0[1] + s0[4]); \
            } \
        } else { \
            for (; t + 1 < hi; t += 2) { \
                const double *s0 = U + 8 * brows[t], *s1 = U + 8 * brows[t + 1]; \
                const double b0 = (double)data[t], b1 = (double)data[t + 1]; \
                h0 += b0 * b0 * s0[0]; \
                h1 += b1 * b1 * s1[0]; \
                p0 += b0 * s0[1]; \
                p1 += b1 * s1[1]; \
            } \
            if (t < hi) { \
                const double *s0 = U + 8 * brows[t]; \
                const double b0 = (double)data[t]; \
                h0 += b0 * b0 * s0[0]; \
                p0 += b0 * s0[1]; \
            } \
        } \
        const double hh = h0 + h1; \
        *hh_out = hh; \
        *he_out = (p0 + p1) + old * hh; \
    }
    #define SKMF_BCOL_MOVE(NAME, T) \
    static SKMF_FM_CLONES void NAME( \
            const T *data, const Py_ssize_t *brows, Py_ssize_t lo, Py_ssize_t hi, \
            double *U, int factor, double old, double dv) { \
        if (factor) { \
            for (Py_ssize_t t = lo; t < hi; t++) { \
                double *st = U + 8 * brows[t]; \
                const double b = (double)data[t]; \
                const double g = st[7] - b * old; \
                st[1] -= dv * b * (st[0] * g + st[2]); \
                st[4] -= dv * b * (g * st[2] + st[3]); \
                st[7] += b * dv; \
                st[5] += g * b * dv; \
            } \
        } else { \
            for (Py_ssize_t t = lo; t < hi; t++) { \
                double *st = U + 8 * brows[t]; \
                const double b = (double)data[t]; \
                st[1] -= dv * b * st[0]; \
                st[5] += b * dv; \
            } \
        } \
    }
    SKMF_BCOL_ACC(skmf_bcol_acc_f, float)
    SKMF_BCOL_ACC(skmf_bcol_acc_d, double)
    SKMF_BCOL_MOVE(skmf_bcol_move_f, float)
    SKMF_BCOL_MOVE(skmf_bcol_move_d, double)
    """
    void skmf_bcol_acc_f(const float* data, const Py_ssize_t* brows, Py_ssize_t lo,
                         Py_ssize_t hi, const double* U, int factor, double old,
                         double* hh_out, double* he_out) noexcept nogil
    void skmf_bcol_acc_d(const double* data, const Py_ssize_t* brows, Py_ssize_t lo,
                         Py_ssize_t hi, const double* U, int factor, double old,
                         double* hh_out, double* he_out) noexcept nogil
    void skmf_bcol_move_f(const float* data, const Py_ssize_t* brows, Py_ssize_t lo,
                          Py_ssize_t hi, double* U, int factor, double old,
                          double dv) noexcept nogil
    void skmf_bcol_move_d(const double* data, const Py_ssize_t* brows, Py_ssize_t lo,
                          Py_ssize_t hi, double* U, int factor, double old,
                          double dv) noexcept nogil


cdef int _coord_columns(const floating* data, const Py_ssize_t* brows,
                        const Py_ssize_t* bptr, const Py_ssize_t* columns,
                        Py_ssize_t n_columns, floating* theta, Py_ssize_t stride,
                        double* U, bint factor, double alpha, double lam, double mu,
                        uint64_t seed, Py_ssize_t coord, Py_ssize_t m) noexcept nogil:
    """The draws of one block coordinate step, column by column in order, the
    table ``U`` following each draw; ``theta[j * stride]`` is the coordinate of
    column j.  A column's draw costs O(1) per block row holding it: h_i = b
    (g_u + r_i) with g_u = s_uf - b v_jf.  Returns 1 at the first non-finite
    draw."""
    cdef Py_ssize_t c, j
    cdef double hh, he, old, new
    for c in range(n_columns):
        j = columns[c]
        old = theta[j * stride]
        if floating is float:
            skmf_bcol_acc_f(data, brows, bptr[j], bptr[j + 1], U, factor, old, &hh, &he)
        else:
            skmf_bcol_acc_d(data, brows, bptr[j], bptr[j + 1], U, factor, old, &hh, &he)
        new = _scalar_draw(hh, he, alpha, lam, mu, seed, 1 + <uint64_t>j * m + coord)
        if not isfinite(new):
            return 1
        theta[j * stride] = <floating>new
        if floating is float:
            skmf_bcol_move_f(data, brows, bptr[j], bptr[j + 1], U, factor, old,
                             <double>theta[j * stride] - old)
        else:
            skmf_bcol_move_d(data, brows, bptr[j], bptr[j + 1], U, factor, old,
                             <double>theta[j * stride] - old)
    return 0


def block_coordinate_pass(const floating[::1] data, const Py_ssize_t[::1] brows,
                          const Py_ssize_t[::1] bptr, const Py_ssize_t[::1] columns,
                          const Py_ssize_t[::1] row_of, const double[::1] N,
                          const floating[::1] sample_weight,
                          floating[::1] e, floating[::1] qf, floating[:] theta,
                          double[:] sf, double[::1] T, double alpha, double lam,
                          double mu, Py_ssize_t coord, Py_ssize_t k,
                          unsigned long long seed, int n_threads):
    """Draw coordinate ``coord`` (0: ``w``, 1 + f: ``V[:, f]``, as ``theta``)
    of every column of a relational block, one scalar conditional each.

    The block (CSC ``data/brows/bptr`` over block rows, ``row_of`` the block
    row of each training row, ``N`` the block rows' weights from
    ``block_row_weights``) adds to row i of block row u the terms ``T_u +
    <s_u, q_i - s_u>``; ``sf`` is ``s[:, f]`` and ``T`` the per-block-row
    terms, both kept up to date, as are the residuals ``e`` and the factor
    sums ``qf = q[:, f]`` of the training rows.  One walk over the training
    rows adds the per-block-row sums (see above), the columns are drawn in
    order on one thread (counters as in ``coordinate_pass``), and a second
    walk moves the residuals.  Returns 1 if a draw is not finite (the pass
    stops).
    """
    cdef Py_ssize_t nb = T.shape[0], n = e.shape[0], m = k + 1, u
    cdef bint weighted = sample_weight.shape[0] > 0, factor = coord > 0
    cdef Py_ssize_t s_stride = sf.strides[0] // sizeof(double) if sf.shape[0] else 0
    cdef Py_ssize_t t_stride = theta.strides[0] // sizeof(floating) if theta.shape[0] else 0
    cdef int n_bad = 0
    U_np = np.zeros(8 * nb + 8)
    S_np = np.zeros(_walk_parts(n, nb) * 4 * max(nb, 1))
    cdef double[::1] U_mem = U_np
    cdef double[::1] S = S_np
    cdef double* U = _line_aligned(&U_mem[0])
    cdef const floating* swp = &sample_weight[0] if weighted else NULL
    cdef double* sp_ = &sf[0] if factor and sf.shape[0] else NULL
    if nb == 0 or n == 0:
        return 0
    with nogil:
        _walk(n, &e[0], NULL, NULL, swp, NULL, 0, NULL, NULL,
              &qf[0] if factor else NULL, 1, &row_of[0], sp_, s_stride, nb, &S[0],
              False, False, _sorted_rows(&row_of[0], n), n_threads)
        _table(U, &S[0], _walk_parts(n, nb), nb, &N[0], sp_, s_stride, n_threads)
        if columns.shape[0]:
            n_bad = _coord_columns(&data[0], &brows[0], &bptr[0], &columns[0],
                                   columns.shape[0], &theta[0], t_stride, U, factor,
                                   alpha, lam, mu, seed, coord, m)
        # the residuals and factor sums of the training rows follow the block
        _walk(n, &e[0], NULL, NULL, swp, &qf[0] if factor else NULL, 1, &row_of[0],
              U, NULL, 0, NULL, NULL, 0, nb, NULL, False, False, False, n_threads)
        for u in range(nb):
            T[u] += U[8 * u + 5]
            if factor:
                sf[u] = U[8 * u + 7]
    return n_bad


# --------------------------------------- the blocks' coordinate sweep, fused
#
# ``block_coordinate_pass`` above is one (block, coordinate) step; the
# "mixed" sampler would run k + 1 of them per block and sweep from Python,
# copying q[:, f] out and back for every factor and walking the training rows
# twice per step.  ``blocks_coordinate_sweep`` runs every step of the sweep in
# one call with the same arithmetic in the same order (so the same draws, bit
# for bit): the residual update of one step and the sums of the next share
# one walk over the training rows, and q is updated in place.

# The walks of the fused sweep are shared by a team of our own inside one
# OpenMP region per sweep: thread 0 runs the sweep (the serial draws, tables
# and terms) and publishes each walk as a job of fixed segments; every thread
# claims segments from a ticket (generation << 32 | next segment) until none
# is left, and thread 0 then waits only for segments another thread has
# claimed -- never for a thread to arrive.  A thread that the OS has not
# scheduled (a loaded machine) costs nothing, where a fork/join per walk
# waits a time slice for it.  Segments are fixed by the sizes, so the result
# is the same whichever thread adds which.

cdef extern from *:
    """
    #include <sched.h>
    #include <stdint.h>
    typedef struct { uint64_t ticket; long done; long n; int stop; } skmf_team_t;
    static inline void skmf_pause(void) {
    #if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
    #endif
    }
    static void skmf_team_init(skmf_team_t *t) {
        t->ticket = 0; t->done = 0; t->n = 0; t->stop = 0;
    }
    /* thread 0: the job's fields are written; open generation gen with n segments */
    static void skmf_team_publish(skmf_team_t *t, uint64_t gen, long n, int stop) {
        __atomic_store_n(&t->done, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&t->n, n, __ATOMIC_RELAXED);
        __atomic_store_n(&t->stop, stop, __ATOMIC_RELAXED);
        __atomic_store_n(&t->ticket, gen << 32, __ATOMIC_RELEASE);
    }
    /* the next segment of generation gen, or -1 */
    static long skmf_team_claim(skmf_team_t *t, uint64_t gen) {
        uint64_t cur = __atomic_load_n(&t->ticket, __ATOMIC_ACQUIRE);
        for (;;) {
            if ((cur >> 32) != gen) return -1;
            long c = (long)(cur & 0xffffffffu);
            if (c >= __atomic_load_n(&t->n, __ATOMIC_RELAXED)) return -1;
            if (__atomic_compare_exchange_n(&t->ticket, &cur, cur + 1, 0,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return c;
        }
    }
    static void skmf_team_done(skmf_team_t *t) {
        __atomic_fetch_add(&t->done, 1, __ATOMIC_RELEASE);
    }
    static void skmf_team_wait_done(skmf_team_t *t, long n) {
        while (__atomic_load_n(&t->done, __ATOMIC_ACQUIRE) < n) skmf_pause();
    }
    /* a helper: wait for a generation after `seen` (spinning, yielding the
       core now and then); returns it, or 0 to stop */
    static uint64_t skmf_team_next(skmf_team_t *t, uint64_t seen) {
        unsigned spins = 0;
        for (;;) {
            uint64_t g = __atomic_load_n(&t->ticket, __ATOMIC_ACQUIRE) >> 32;
            if (g != seen) return __atomic_load_n(&t->stop, __ATOMIC_RELAXED) ? 0 : g;
            if (++spins % 512 == 0) sched_yield(); else skmf_pause();
        }
    }
    """
    ctypedef struct skmf_team_t:
        pass
    void skmf_team_init(skmf_team_t* t) noexcept nogil
    void skmf_team_publish(skmf_team_t* t, uint64_t gen, long n, int stop) noexcept nogil
    long skmf_team_claim(skmf_team_t* t, uint64_t gen) noexcept nogil
    void skmf_team_done(skmf_team_t* t) noexcept nogil
    void skmf_team_wait_done(skmf_team_t* t, long n) noexcept nogil
    uint64_t skmf_team_next(skmf_team_t* t, uint64_t seen) noexcept nogil


cdef struct WalkJob:
    # the arguments of one walk (_walk_rows), shared with the team
    Py_ssize_t n, qp_stride, qn_stride, s_stride, nb, n_parts
    void* e
    void* y
    void* pred
    void* sw
    void* qp
    void* qn
    const Py_ssize_t* prev_row_of
    const double* prev_U
    const Py_ssize_t* next_row_of
    const double* next_s
    double* S
    bint first, last, runs


cdef inline void _walk_segment(WalkJob* j, Py_ssize_t c, floating* tag) noexcept nogil:
    """Segment ``c`` of the walk ``j`` (as one iteration of ``_walk``)."""
    cdef double* Sc = NULL
    cdef Py_ssize_t a
    if j.S != NULL:
        Sc = j.S + c * 4 * j.nb
        for a in range(4 * j.nb):
            Sc[a] = 0.0
    _walk_rows(c * j.n // j.n_parts, (c + 1) * j.n // j.n_parts, <floating*>j.e,
               <floating*>j.y, <floating*>j.pred, <floating*>j.sw, <floating*>j.qp,
               j.qp_stride, j.prev_row_of, j.prev_U, <floating*>j.qn, j.qn_stride,
               j.next_row_of, j.next_s, j.s_stride, Sc, j.first, j.last, j.runs)


cdef void _team_worker(skmf_team_t* tp, WalkJob* jp, floating* tag) noexcept nogil:
    """A helper thread: the segments it can claim of every published walk."""
    cdef uint64_t gen = 0
    cdef long c
    while True:
        gen = skmf_team_next(tp, gen)
        if gen == 0:
            return
        c = skmf_team_claim(tp, gen)
        while c >= 0:
            _walk_segment(jp, c, tag)
            skmf_team_done(tp)
            c = skmf_team_claim(tp, gen)


cdef void _team_walk(skmf_team_t* tp, WalkJob* jp, uint64_t* gen,
                     floating* tag) noexcept nogil:
    """Thread 0: publish the walk ``jp`` (its fields set), take segments,
    wait for the ones the helpers took."""
    cdef long c
    gen[0] += 1
    skmf_team_publish(tp, gen[0], jp.n_parts, 0)
    c = skmf_team_claim(tp, gen[0])
    while c >= 0:
        _walk_segment(jp, c, tag)
        skmf_team_done(tp)
        c = skmf_team_claim(tp, gen[0])
    skmf_team_wait_done(tp, jp.n_parts)


cdef void _transpose_q(floating* q, floating* qT, Py_ssize_t n, Py_ssize_t k, bint forward,
                       int team) noexcept nogil:
    """Copy the row-major factor sums ``q`` (n, k) into the factor-major ``qT``
    (``forward``) or back."""
    cdef Py_ssize_t i, f, c, lo, hi
    if k == 0:
        return
    for c in prange(team, num_threads=team, schedule="static", chunksize=1):
        lo = c * n // team
        hi = (c + 1) * n // team
        for i in range(lo, hi):
            for f in range(k):
                if forward:
                    qT[f * n + i] = q[i * k + f]
                else:
                    q[i * k + f] = qT[f * n + i]


def sweep_buffers(Py_ssize_t n, Py_ssize_t k, Py_ssize_t max_nb, dtype):
    """Scratch of ``blocks_coordinate_sweep`` for ``n`` training rows, rank
    ``k`` and blocks of at most ``max_nb`` block rows: the step table, the
    segment tables and the factor-major factor sums (of ``dtype``)."""
    max_nb = max(max_nb, 1)
    return (np.zeros(8 * max_nb + 8), np.zeros(_N_WALK_PARTS * 4 * max_nb),
            np.empty(max(1, k * n), dtype=dtype))


def blocks_coordinate_sweep(list blocks, const floating[::1] y,
                            const floating[::1] sample_weight, floating[::1] pred,
                            floating[:, ::1] q, floating[::1] e,
                            double alpha, const double[:, ::1] lam,
                            const double[:, ::1] mu, const unsigned long long[::1] seeds,
                            int n_threads, tuple buffers=None):
    """Every block's coordinate draws of one sweep in the order of
    ``coordinate_draws`` without the columns (coordinate a = 0 .. k, and
    for each the blocks in order): the same draws as the k + 1 rounds of
    ``block_coordinate_pass`` calls, bit for bit.

    ``blocks``: one ``(data, brows, bptr, columns, row_of, N, w, V, s, T)``
    per block (CSC of the block, its columns with data, the training rows'
    block rows, the block rows' weights from ``block_row_weights``; the
    block's parameters and per-block-row terms, updated in place);
    ``lam``/``mu`` (n_blocks, k + 1) its prior, ``seeds`` its stream.
    ``pred``/``q`` are the caches (kept up to date), ``e`` (n,) scratch.
    ``buffers``: None, or the scratch of an earlier call of the same sizes
    (``sweep_buffers``), reused instead of allocated (a fit's sweeps share it).
    Returns the number of failed draws (then stops; the caches are then
    stale, as after a failed ``coordinate_draws``)."""
    cdef Py_ssize_t nblk = len(blocks), n = pred.shape[0], k = q.shape[1], m = k + 1
    cdef Py_ssize_t n_steps = nblk * m, step, t, u, nb, max_nb = 1
    cdef Py_ssize_t pt, pf, nt, nf
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef int n_bad = 0
    cdef const floating[::1] mv_data
    cdef const Py_ssize_t[::1] mv_idx
    cdef floating[::1] mv_w
    cdef floating[:, ::1] mv_V
    cdef double[:, ::1] mv_s
    cdef const double[::1] mv_N
    cdef double[::1] mv_T
    if nblk == 0 or n == 0:
        return 0
    # raw pointers of every block (the list keeps the arrays alive)
    keep = []
    P = np.zeros((nblk, 10), dtype=np.uintp)
    NB = np.zeros(nblk, dtype=np.intp)
    NC = np.zeros(nblk, dtype=np.intp)
    for t in range(nblk):
        data, brows, bptr, columns, row_of, N, w, V, s, T = blocks[t]
        keep.append(blocks[t])
        nb = s.shape[0]
        NB[t] = nb
        NC[t] = columns.shape[0]
        if nb == 0:
            continue
        max_nb = max(max_nb, nb)
        if data.shape[0]:
            mv_data = data
            P[t, 0] = <size_t>&mv_data[0]
            mv_idx = brows
            P[t, 1] = <size_t>&mv_idx[0]
        mv_idx = bptr
        P[t, 2] = <size_t>&mv_idx[0]
        if columns.shape[0]:
            mv_idx = columns
            P[t, 3] = <size_t>&mv_idx[0]
        if row_of.shape[0] != n:
            raise ValueError("row_of must hold every training row.")
        mv_idx = row_of
        P[t, 4] = <size_t>&mv_idx[0]
        if N.shape[0] != nb:
            raise ValueError("N must hold every block row.")
        mv_N = N
        P[t, 9] = <size_t>&mv_N[0]
        if w.shape[0]:
            mv_w = w
            P[t, 5] = <size_t>&mv_w[0]
            mv_V = V
            P[t, 6] = <size_t>&mv_V[0, 0]
        mv_s = s
        P[t, 7] = <size_t>&mv_s[0, 0]
        mv_T = T
        P[t, 8] = <size_t>&mv_T[0]
    if buffers is None:
        buffers = sweep_buffers(n, k, max_nb, np.float32 if floating is float else np.float64)
    U_np, S_np, qT_np = buffers
    if U_np.shape[0] < 8 * max_nb + 8 or S_np.shape[0] < _N_WALK_PARTS * 4 * max_nb:
        raise ValueError("buffers are too small for these blocks.")
    cdef double[::1] U_mem = U_np, S = S_np
    cdef double* U = _line_aligned(&U_mem[0])
    cdef size_t[:, ::1] ptr = P
    cdef Py_ssize_t[::1] nbs = NB, ncs = NC
    SR = np.zeros(nblk, dtype=np.intp)
    cdef Py_ssize_t[::1] sorted_ = SR
    for t in range(nblk):
        if nbs[t]:
            sorted_[t] = _sorted_rows(<Py_ssize_t*>ptr[t, 4], n)
    cdef const floating* swp = &sample_weight[0] if weighted else NULL
    cdef double* sp_
    cdef double* Tp
    cdef floating* theta
    # the factor sums factor-major for the sweep (qT[f * n + i] = q[i, f]), so
    # that a step's walk reads and writes one contiguous column
    cdef floating[::1] qT_mem = qT_np
    if qT_mem.shape[0] < k * n:
        raise ValueError("buffers are too small for these blocks.")
    cdef floating* qT = &qT_mem[0] if k > 0 else NULL
    cdef int n_team = max(1, n_threads) if n >= 4096 else 1
    cdef skmf_team_t team_state
    cdef WalkJob job
    cdef skmf_team_t* tp = &team_state
    cdef WalkJob* jp = &job
    cdef int res[1]
    cdef uint64_t gen[1]
    skmf_team_init(tp)
    res[0] = 0
    gen[0] = 0
    with nogil:
        if n_team > 1:
            # one region a sweep: thread 0 runs it, the others help with the walks
            with parallel(num_threads=n_team):
                if omp_get_thread_num() == 0:
                    _blocks_driver(ptr, nbs, ncs, sorted_, e, y, pred, swp, q, qT, U, S,
                                   alpha, lam, mu, seeds, tp, jp, gen, res)
                    gen[0] += 1
                    skmf_team_publish(tp, gen[0], 0, 1)  # stop the helpers
                else:
                    _team_worker(tp, jp, qT)
        else:
            _blocks_driver(ptr, nbs, ncs, sorted_, e, y, pred, swp, q, qT, U, S,
                           alpha, lam, mu, seeds, tp, jp, gen, res)
    return res[0]


cdef void _blocks_driver(
        const size_t[:, ::1] ptr, const Py_ssize_t[::1] nbs, const Py_ssize_t[::1] ncs,
        const Py_ssize_t[::1] sorted_, floating[::1] e, const floating[::1] y,
        floating[::1] pred, const floating* swp, floating[:, ::1] q, floating* qT,
        double* U, double[::1] S, double alpha, const double[:, ::1] lam,
        const double[:, ::1] mu, const unsigned long long[::1] seeds, skmf_team_t* tp,
        WalkJob* jp, uint64_t* gen, int* res) noexcept nogil:
    """The steps of ``blocks_coordinate_sweep`` on thread 0 (the walks shared
    with the team ``tp`` through ``jp``); the number of failed draws in ``res``."""
    cdef Py_ssize_t nblk = nbs.shape[0], n = pred.shape[0], k = q.shape[1], m = k + 1
    cdef Py_ssize_t n_steps = nblk * m, step, u, nb, pt, pf, nt, nf
    cdef double* sp_
    cdef double* Tp
    cdef floating* theta
    _transpose_q(&q[0, 0] if k > 0 else NULL, qT, n, k, True, 1)
    step = 0
    pt = -1
    pf = -1
    while step <= n_steps:
        # the next step (t, a) with block rows, or none at the end
        while step < n_steps and nbs[step % nblk] == 0:
            step = step + 1
        nt = step % nblk if step < n_steps else -1
        nf = step // nblk - 1 if step < n_steps else -1
        # one walk: the finished step's change (table U), the next step's sums
        jp.n = n
        jp.e = &e[0]
        jp.y = &y[0]
        jp.pred = &pred[0]
        jp.sw = <void*>swp
        jp.qp = qT + pf * n if pt >= 0 and pf >= 0 else NULL
        jp.qp_stride = 1
        jp.prev_row_of = <Py_ssize_t*>ptr[pt, 4] if pt >= 0 else NULL
        jp.prev_U = U if pt >= 0 else NULL
        jp.qn = qT + nf * n if nt >= 0 and nf >= 0 else NULL
        jp.qn_stride = 1
        jp.next_row_of = <Py_ssize_t*>ptr[nt, 4] if nt >= 0 else NULL
        jp.next_s = <double*>ptr[nt, 7] + nf if nt >= 0 and nf >= 0 else NULL
        jp.s_stride = k
        jp.nb = nbs[nt] if nt >= 0 else 0
        jp.S = &S[0] if nt >= 0 else NULL
        jp.first = pt < 0
        jp.last = nt < 0
        jp.runs = sorted_[nt] != 0 if nt >= 0 else False
        jp.n_parts = _walk_parts(n, jp.nb) if nt >= 0 else _N_WALK_PARTS
        _team_walk(tp, jp, gen, qT)
        if nt < 0:
            break
        nb = nbs[nt]
        sp_ = <double*>ptr[nt, 7]
        _table(U, &S[0], _walk_parts(n, nb), nb, <double*>ptr[nt, 9],
               sp_ + nf if nf >= 0 else NULL, k, 1)
        # the draws of step (nt, nf)
        if nf >= 0:
            theta = <floating*>ptr[nt, 6] + nf
        else:
            theta = <floating*>ptr[nt, 5]
        if ncs[nt] and _coord_columns(
                <floating*>ptr[nt, 0], <Py_ssize_t*>ptr[nt, 1], <Py_ssize_t*>ptr[nt, 2],
                <Py_ssize_t*>ptr[nt, 3], ncs[nt], theta, k if nf >= 0 else 1, U,
                nf >= 0, alpha, lam[nt, nf + 1], mu[nt, nf + 1], seeds[nt], nf + 1, m):
            res[0] = 1
            break
        # the block's terms follow (the table itself is read by the next walk)
        Tp = <double*>ptr[nt, 8]
        for u in range(nb):
            Tp[u] += U[8 * u + 5]
            if nf >= 0:
                sp_[u * k + nf] = U[8 * u + 7]
        pt = nt
        pf = nf
        step = step + 1
    _transpose_q(&q[0, 0] if k > 0 else NULL, qT, n, k, False, 1)
