"""SGD kernel for SVD++ (Koren 2008).

Prediction for user ``u`` and item ``i``, with ``N(u)`` the items ``u`` rated
in ``fit`` and ``s_u = |N(u)|^(-1/2)``::

    z_u   = s_u * sum_{j in N(u)} y_j
    r_hat = mu + b_u + b_i + q_i . (p_u + z_u)

Plain SGD (Koren 2008, Surprise) updates *every* ``y_j, j in N(u)`` after each
rating, ``y_j += lr * (e * s_u * q_i - reg_y * y_j)``, which costs
``O(|N(u)| k)`` per rating and ``O(sum_u |N(u)|^2 k)`` per epoch.  Ratings here
are visited user by user (as Surprise does), and within one user visit that
update moves every ``y_j`` by the same affine map: after ``t`` ratings,

    y_j = D_t * y_j0 + A_t,   D_t = prod (1 - lr w reg_y),
    A_t = (1 - lr w_t reg_y) * A_{t-1} + lr w_t e_t s_u q_i

and ``z_u`` follows ``z <- (1 - lr w reg_y) z + lr w e q_i`` (because
``s_u^2 |N(u)| = 1``).  So the kernel keeps ``(D, A, z)`` in O(k) per rating and
writes ``y_j = D y_j + A`` once per user visit: the *same* iterates as the
per-rating update, for ``O(|N(u)| k)`` per user instead of per rating.

The epoch is sequential: every user touches the shared ``y_j`` of the items
she rated, so no two users can be updated concurrently without races.
"""

from libc.math cimport isfinite, sqrt
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from sklearn_mf._kernel_helpers cimport skmf_shuffle_intp as _shuffle

ctypedef fused floating:
    float
    double


def svdpp_epoch(const int[::1] items, const floating[::1] ratings,
                const floating[::1] weights,
                const Py_ssize_t[::1] rating_ptr, Py_ssize_t[::1] order,
                uint64_t seed,
                const Py_ssize_t[::1] user_order,
                const int[::1] n_indptr, const int[::1] n_indices,
                floating[:, ::1] P, floating[:, ::1] Q, floating[:, ::1] Y,
                floating[::1] bu, floating[::1] bi,
                double mu, double lr, double reg, double reg_bias, double reg_y,
                bint biased):
    """One SGD epoch of SVD++.

    Parameters
    ----------
    items, ratings, weights : arrays of shape (n_ratings,)
        Training ratings grouped by user: user ``u``'s ratings are positions
        ``order[rating_ptr[u]:rating_ptr[u + 1]]``, visited in that order.
        ``weights`` may be empty (all ones).
    seed : uint64
        When non-zero, each user's segment of ``order`` is first shuffled in
        place (Fisher-Yates, one generator seeded with ``seed``); 0 keeps the
        given order (for testing).
    user_order : intp array
        Users to visit, in order.
    n_indptr, n_indices : int32 CSR arrays
        The implicit set ``N(u)`` of each user (must be non-empty for every
        visited user with ratings).
    P, Q, Y, bu, bi : factors and biases, updated in place.  Empty ``bu`` /
        ``bi`` or ``biased=False`` mean no biases.

    Returns
    -------
    sse : float
        Weighted sum of squared errors seen during the epoch.
    n_bad : int
        1 when a non-finite error stopped the epoch (divergence), else 0.
    """
    cdef Py_ssize_t k = P.shape[1], n_users = user_order.shape[0]
    cdef Py_ssize_t a, t, n, f, u, i, jj
    cdef int n_bad = 0
    cdef bint weighted = weights.shape[0] > 0
    cdef bint use_bias = biased and bu.shape[0] > 0
    cdef double sse = 0.0
    cdef floating s, e, w, step, decay, D, pred, pf, qf, zf
    cdef floating* z
    cdef floating* acc
    cdef floating* p
    cdef floating* q
    cdef floating* y
    cdef uint64_t state = seed
    if k == 0 or rating_ptr.shape[0] < 2:
        return 0.0, 0
    z = <floating*> malloc(2 * k * sizeof(floating))
    if z == NULL:
        raise MemoryError()
    acc = z + k
    try:
        with nogil:
            for a in range(n_users):
                u = user_order[a]
                if rating_ptr[u + 1] == rating_ptr[u] or n_indptr[u + 1] == n_indptr[u]:
                    continue
                s = <floating>(1.0 / sqrt(<double>(n_indptr[u + 1] - n_indptr[u])))
                for f in range(k):
                    z[f] = 0
                    acc[f] = 0
                for jj in range(n_indptr[u], n_indptr[u + 1]):
                    y = &Y[n_indices[jj], 0]
                    for f in range(k):
                        z[f] += y[f]
                for f in range(k):
                    z[f] *= s
                D = 1
                p = &P[u, 0]
                if seed != 0:
                    _shuffle(&order[rating_ptr[u]], rating_ptr[u + 1] - rating_ptr[u], &state)
                for t in range(rating_ptr[u], rating_ptr[u + 1]):
                    n = order[t]
                    i = items[n]
                    q = &Q[i, 0]
                    pred = <floating>mu
                    if use_bias:
                        pred = pred + bu[u] + bi[i]
                    for f in range(k):
                        pred = pred + q[f] * (p[f] + z[f])
                    e = ratings[n] - pred
                    if not isfinite(e):
                        n_bad = 1
                        break
                    w = weights[n] if weighted else 1
                    sse += w * e * e
                    step = <floating>lr * w
                    if use_bias:
                        bu[u] += step * (e - <floating>reg_bias * bu[u])
                        bi[i] += step * (e - <floating>reg_bias * bi[i])
                    decay = 1 - step * <floating>reg_y
                    for f in range(k):
                        pf = p[f]
                        qf = q[f]
                        zf = z[f]
                        p[f] = pf + step * (e * qf - <floating>reg * pf)
                        q[f] = qf + step * (e * (pf + zf) - <floating>reg * qf)
                        acc[f] = decay * acc[f] + step * e * s * qf
                        z[f] = decay * zf + step * e * qf
                    D = D * decay
                # apply the accumulated implicit-factor update once per visit
                for jj in range(n_indptr[u], n_indptr[u + 1]):
                    y = &Y[n_indices[jj], 0]
                    for f in range(k):
                        y[f] = D * y[f] + acc[f]
                if n_bad:
                    break
    finally:
        free(z)
    return sse, n_bad
