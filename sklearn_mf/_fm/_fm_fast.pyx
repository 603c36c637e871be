r"""Kernels for second-order factorization machines (Rendle 2010).

The model scores a feature row :math:`x` as

    y(x) = w0 + sum_j w_j x_j + 1/2 sum_f [ (sum_j v_jf x_j)^2 - sum_j v_jf^2 x_j^2 ]

which is the pairwise form ``sum_{j<l} <v_j, v_l> x_j x_l`` rewritten so that a
row costs O(k * nnz).  ``q_f = sum_j v_jf x_j`` is the row's "factor sum".

Losses (``loss`` argument): 0 = squared, ``l = (p - y)^2 / 2``; 1 = logistic
with ``y`` in {-1, +1}, ``l = log(1 + exp(-y p))``.

The objective of both solvers is

    J = sum_i s_i l(y_i, p_i) + sum_j m_j (lam_w/2 w_j^2 + lam_V/2 |v_j|^2) + m_0 lam0/2 w0^2

with a penalty multiplier ``m_j`` per feature chosen in Python: 1 ("total"
penalty) or ``n_j``, the number of training rows where feature ``j`` is
non-zero ("occurrence" penalty, as in matrix factorization's per-rating
regularization).

* ``sgd_epoch`` visits the rows of a CSR matrix in a given order.  The penalty
  of feature ``j`` is shared out over the ``n_j`` rows in which it is
  non-zero (``scale[j] = m_j / n_j``), so that one epoch of per-row gradients
  sums to the gradient of ``J``.
* ``cd_epoch`` is coordinate descent ("ALS" in libFM) over the columns of a CSC
  matrix, with the predictions ``p`` and factor sums ``q`` cached so that a
  coordinate update costs O(nnz of its column).  Each update is the exact
  minimiser for the squared loss and a Newton step with the curvature bound
  1/4 for the logistic loss (which cannot increase ``J``).

Training kernels run on one thread (every update depends on the previous one);
``predict`` is parallel over rows.  The Python layer validates everything; the
kernels assume contiguous arrays of matching dtype and valid indices.
"""

from cython.parallel cimport prange
from libc.math cimport exp, log1p, isfinite

ctypedef fused floating:
    float
    double


cdef inline double _loss(double p, double y, int loss) noexcept nogil:
    cdef double z
    if loss == 0:
        return 0.5 * (p - y) * (p - y)
    z = y * p
    if z > 0:
        return log1p(exp(-z))
    return -z + log1p(exp(z))


cdef inline double _dloss(double p, double y, int loss) noexcept nogil:
    """Derivative of the loss with respect to the prediction ``p``."""
    cdef double z
    if loss == 0:
        return p - y
    z = y * p
    if z > 0:
        return -y * exp(-z) / (1.0 + exp(-z))
    return -y / (1.0 + exp(z))


cdef inline double _predict_row(const floating* data, const Py_ssize_t* indices,
                                Py_ssize_t start, Py_ssize_t stop, double w0,
                                const floating* w, const floating* V, Py_ssize_t k,
                                floating* q, Py_ssize_t qstride) noexcept nogil:
    """FM score of one CSR row; stores the factor sums in ``q[f * qstride]``
    unless ``q`` is NULL."""
    cdef Py_ssize_t j, f
    cdef double pred = w0, s, s2, v, x
    for j in range(start, stop):
        pred += w[indices[j]] * data[j]
    for f in range(k):
        s = 0.0
        s2 = 0.0
        for j in range(start, stop):
            v = V[indices[j] * k + f] * data[j]
            s += v
            s2 += v * v
        pred += 0.5 * (s * s - s2)
        if q != NULL:
            q[f * qstride] = <floating>s
    return pred


def predict(const floating[::1] data, const Py_ssize_t[::1] indices,
            const Py_ssize_t[::1] indptr, double w0, const floating[::1] w,
            const floating[:, ::1] V, double[::1] out, int n_threads):
    """FM scores of the rows of a CSR matrix into ``out`` (parallel over rows)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, k = V.shape[1], r
    cdef const floating* dp = &data[0] if data.shape[0] else NULL
    cdef const Py_ssize_t* ip = &indices[0] if indices.shape[0] else NULL
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="static"):
            out[r] = _predict_row(dp, ip, indptr[r], indptr[r + 1], w0,
                                  &w[0], &V[0, 0], k, <floating*>NULL, 0)


def predict_cache(const floating[::1] data, const Py_ssize_t[::1] indices,
                  const Py_ssize_t[::1] indptr, double w0, const floating[::1] w,
                  const floating[:, ::1] V, floating[::1] pred, floating[:, ::1] q,
                  int n_threads, bint rows_major=False):
    """Predictions and factor sums ``sum_j v_jf x_ij`` of CSR rows.

    ``q`` has shape (n_factors, n_rows), the layout ``cd_epoch`` reads, or
    with ``rows_major=True`` (n_rows, n_factors), the layout of the Gibbs
    sampler (``_mcmc_fast``), where a row's sums share a cache line.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, k = V.shape[1], r
    cdef Py_ssize_t row_step = k if rows_major else 1
    cdef Py_ssize_t f_step = 1 if rows_major else n_rows
    cdef const floating* dp = &data[0] if data.shape[0] else NULL
    cdef const Py_ssize_t* ip = &indices[0] if indices.shape[0] else NULL
    cdef floating dummy = 0
    cdef floating* qp = &q[0, 0] if k > 0 else &dummy
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="static"):
            pred[r] = <floating>_predict_row(dp, ip, indptr[r], indptr[r + 1], w0,
                                             &w[0], &V[0, 0], k, qp + r * row_step,
                                             f_step)


def sgd_epoch(const floating[::1] data, const Py_ssize_t[::1] indices,
              const Py_ssize_t[::1] indptr, const floating[::1] y,
              const floating[::1] sample_weight, const Py_ssize_t[::1] order,
              floating[::1] w0, floating[::1] w, floating[:, ::1] V,
              const floating[::1] scale, double scale0, double reg_w0,
              double reg_w, double reg_V, double lr, int loss, bint fit_intercept,
              floating[::1] q):
    """One pass of SGD over the rows ``order`` of a CSR matrix.

    For row ``i`` with prediction ``p``, ``g = s_i * dl/dp`` and factor sums
    ``q`` (taken before the update)::

        w0   -= lr * (g + reg_w0 * scale0 * w0)
        w_j  -= lr * (g x_j + reg_w * scale[j] * w_j)
        v_jf -= lr * (g x_j (q_f - v_jf x_j) + reg_V * scale[j] * v_jf)

    ``scale`` is the per-row share of each feature's penalty (see the module
    docstring).

    Returns ``(sum_i s_i l_i, n_bad)``: the weighted loss observed before each
    update and the number of rows whose prediction was not finite (the pass
    stops at the first one).
    """
    cdef Py_ssize_t n = order.shape[0], k = V.shape[1], t, r, j, f, idx
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double p, g, x, v, total = 0.0, sw, c
    cdef Py_ssize_t n_bad = 0
    cdef const floating* dp = &data[0] if data.shape[0] else NULL
    cdef const Py_ssize_t* ip = &indices[0] if indices.shape[0] else NULL
    cdef floating* Vp = &V[0, 0]
    with nogil:
        for t in range(n):
            r = order[t]
            p = _predict_row(dp, ip, indptr[r], indptr[r + 1], w0[0], &w[0], Vp, k, &q[0], 1)
            if not isfinite(p):
                n_bad += 1
                break
            sw = sample_weight[r] if weighted else 1.0
            total += sw * _loss(p, y[r], loss)
            g = sw * _dloss(p, y[r], loss)
            if fit_intercept:
                w0[0] -= <floating>(lr * (g + reg_w0 * scale0 * w0[0]))
            for j in range(indptr[r], indptr[r + 1]):
                idx = indices[j]
                x = data[j]
                c = scale[idx]
                w[idx] -= <floating>(lr * (g * x + reg_w * c * w[idx]))
                for f in range(k):
                    v = Vp[idx * k + f]
                    Vp[idx * k + f] = <floating>(
                        v - lr * (g * x * (q[f] - v * x) + reg_V * c * v)
                    )
    return total, n_bad


cdef inline double _cd_update(double theta, double grad, double curv,
                              double reg) noexcept nogil:
    """Change of a coordinate: Newton step on ``J`` with curvature ``curv``."""
    cdef double denom = curv + reg
    if denom <= 0.0:
        return 0.0
    return -(grad + reg * theta) / denom


cdef int _cd_sweep(const floating[::1] data, const Py_ssize_t[::1] rows,
                   const Py_ssize_t[::1] indptr, const floating[::1] y,
                   const floating[::1] sample_weight, floating[::1] w0, floating[::1] w,
                   floating[:, ::1] V, floating[::1] pred, floating[:, ::1] q,
                   const floating[::1] scale, double scale0,
                   double reg_w0, double reg_w, double reg_V, int loss,
                   bint fit_intercept) noexcept nogil:
    cdef Py_ssize_t n = pred.shape[0], n_cols = indptr.shape[0] - 1, k = V.shape[1]
    cdef Py_ssize_t i, j, f, t, r
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double c = 1.0 if loss == 0 else 0.25
    cdef double grad, curv, h, x, sw, delta, v
    if fit_intercept:
        grad = 0.0
        curv = 0.0
        for i in range(n):
            sw = sample_weight[i] if weighted else 1.0
            grad += sw * _dloss(pred[i], y[i], loss)
            curv += sw * c
        delta = _cd_update(w0[0], grad, curv, reg_w0 * scale0)
        if not isfinite(delta):
            return 1
        w0[0] += <floating>delta
        for i in range(n):
            pred[i] += <floating>delta
    for j in range(n_cols):
        grad = 0.0
        curv = 0.0
        for t in range(indptr[j], indptr[j + 1]):
            r = rows[t]
            x = data[t]
            sw = sample_weight[r] if weighted else 1.0
            grad += sw * _dloss(pred[r], y[r], loss) * x
            curv += sw * c * x * x
        delta = _cd_update(w[j], grad, curv, reg_w * scale[j])
        if not isfinite(delta):
            return 1
        w[j] += <floating>delta
        for t in range(indptr[j], indptr[j + 1]):
            pred[rows[t]] += <floating>(delta * data[t])
    for f in range(k):
        for j in range(n_cols):
            v = V[j, f]
            grad = 0.0
            curv = 0.0
            for t in range(indptr[j], indptr[j + 1]):
                r = rows[t]
                x = data[t]
                h = x * (q[f, r] - v * x)
                sw = sample_weight[r] if weighted else 1.0
                grad += sw * _dloss(pred[r], y[r], loss) * h
                curv += sw * c * h * h
            delta = _cd_update(v, grad, curv, reg_V * scale[j])
            if not isfinite(delta):
                return 1
            V[j, f] = <floating>(v + delta)
            for t in range(indptr[j], indptr[j + 1]):
                r = rows[t]
                x = data[t]
                h = x * (q[f, r] - v * x)
                pred[r] += <floating>(delta * h)
                q[f, r] += <floating>(delta * x)
    return 0


def cd_epoch(const floating[::1] data, const Py_ssize_t[::1] rows,
             const Py_ssize_t[::1] indptr, const floating[::1] y,
             const floating[::1] sample_weight, floating[::1] w0, floating[::1] w,
             floating[:, ::1] V, floating[::1] pred, floating[:, ::1] q,
             const floating[::1] scale, double scale0,
             double reg_w0, double reg_w, double reg_V, int loss,
             bint fit_intercept):
    """One sweep of coordinate descent: ``w0``, every ``w_j``, then ``v_jf``
    factor by factor.

    ``data/rows/indptr`` is the CSC matrix; ``pred`` and ``q`` must hold the
    predictions and factor sums of the current parameters (see
    ``predict_cache``) and are kept up to date.  For a coordinate ``theta``
    with partial derivative ``h_i = d p_i / d theta`` (1 for ``w0``, ``x_ij``
    for ``w_j``, ``x_ij (q_if - v_jf x_ij)`` for ``v_jf``)::

        theta += -(sum_i s_i l'_i h_i + lam theta) / (c sum_i s_i h_i^2 + lam)

    with ``c = 1`` (squared loss, exact) or ``1/4`` (logistic bound) and
    ``lam = reg * scale[j]`` (``reg_w0 * scale0`` for the intercept).
    Returns the number of non-finite updates (the sweep stops at the first).
    """
    cdef int n_bad
    with nogil:
        n_bad = _cd_sweep(data, rows, indptr, y, sample_weight, w0, w, V, pred, q,
                          scale, scale0, reg_w0, reg_w, reg_V, loss, fit_intercept)
    return n_bad


def objective(const floating[::1] pred, const floating[::1] y,
              const floating[::1] sample_weight, int loss):
    """Weighted loss ``sum_i s_i l(y_i, pred_i)`` (penalties added in Python)."""
    cdef Py_ssize_t n = pred.shape[0], i
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double total = 0.0
    with nogil:
        for i in range(n):
            total += (sample_weight[i] if weighted else 1.0) * _loss(pred[i], y[i], loss)
    return total
