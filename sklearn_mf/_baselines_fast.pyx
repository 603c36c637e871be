"""SGD kernel for the bias-only baseline ``mu + b_u + b_i``.

The per-rating penalty is scaled per user and item (``reg_u[u] = lambda / W_u``
with ``W_u`` the user's total weight) so that one epoch of stochastic
gradients sums to the gradient of the same objective the ALS solver minimises,
``sum w e^2 + lambda (sum_u b_u^2 + sum_i b_i^2)``.
"""

from libc.math cimport isfinite


def bias_sgd_epoch(const int[::1] users, const int[::1] items,
                   const double[::1] ratings, const double[::1] weights,
                   const Py_ssize_t[::1] order,
                   double[::1] bu, double[::1] bi,
                   const double[::1] reg_u, const double[::1] reg_i,
                   double mu, double lr):
    """Visit the ratings in ``order``; update the biases in place.

    ``weights`` may be empty (all ones).  Returns ``(weighted SSE seen during
    the epoch, number of non-finite errors)``; the pass stops at the first
    non-finite error.
    """
    cdef Py_ssize_t j, n, u, i
    cdef double e, w, step, sse = 0.0
    cdef bint weighted = weights.shape[0] > 0
    cdef int n_bad = 0
    with nogil:
        for j in range(order.shape[0]):
            n = order[j]
            u = users[n]
            i = items[n]
            e = ratings[n] - (mu + bu[u] + bi[i])
            if not isfinite(e):
                n_bad = 1
                break
            w = weights[n] if weighted else 1.0
            sse += w * e * e
            step = lr * w
            bu[u] += step * (e - reg_u[u] * bu[u])
            bi[i] += step * (e - reg_i[i] * bi[i])
    return sse, n_bad
