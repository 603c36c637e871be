# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""SGD kernels for biased matrix factorization (Funk / Koren updates).

The Python layer (``_mf.py``) encodes ids, partitions the ratings into a grid of
user-blocks x item-blocks and builds a schedule; these functions only compute.

For a rating ``r`` of user ``u`` on item ``i`` with weight ``w`` the update is::

    e    = r - (mu + b_u + b_i + p_u . q_i)
    b_u += lr * w * (e - reg_b * b_u)
    b_i += lr * w * (e - reg_b * b_i)
    p_u += lr * w * (e * q_i - reg * p_u)
    q_i += lr * w * (e * p_u_old - reg * q_i)

Ratings are visited block by block.  Every stratum of the schedule lists blocks
that share no user and no item, so the blocks of one stratum run on different
threads without touching the same factors: the result does not depend on which
thread runs which block, and a given order and schedule always give the same
factors.
"""

from cython.parallel cimport prange
from libc.math cimport isfinite
from libc.stdint cimport uint64_t

ctypedef fused floating:
    float
    double


cdef inline uint64_t _splitmix64(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15ULL
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline Py_ssize_t _randbelow(uint64_t* state, Py_ssize_t n) noexcept nogil:
    # Lemire-style multiply-shift; the tiny bias is irrelevant for shuffling.
    return <Py_ssize_t>(((_splitmix64(state) >> 32) * <uint64_t>n) >> 32)


def shuffle_blocks(Py_ssize_t[::1] order, const Py_ssize_t[::1] block_ptr,
                   const uint64_t[::1] seeds, int n_threads):
    """Fisher-Yates shuffle of each segment ``order[block_ptr[b]:block_ptr[b+1]]``.

    Block ``b`` uses its own generator seeded with ``seeds[b]``, so the result is
    the same for any number of threads.  Segments must have fewer than 2**32 entries.
    """
    cdef Py_ssize_t n_blocks = block_ptr.shape[0] - 1
    cdef Py_ssize_t b, j, t, start, size, tmp
    cdef uint64_t state
    with nogil:
        for b in prange(n_blocks, num_threads=n_threads, schedule="dynamic"):
            state = seeds[b]
            start = block_ptr[b]
            size = block_ptr[b + 1] - start
            j = size - 1
            while j > 0:
                t = _randbelow(&state, j + 1)
                tmp = order[start + j]
                order[start + j] = order[start + t]
                order[start + t] = tmp
                j = j - 1


cdef Py_ssize_t _sgd_block(const int* users, const int* items,
                           const floating* ratings, const floating* weights,
                           const Py_ssize_t* order, Py_ssize_t start, Py_ssize_t stop,
                           floating* P, floating* Q, floating* bu, floating* bi,
                           Py_ssize_t k, floating mu, floating lr, floating reg,
                           floating reg_b, bint biased, bint weighted,
                           double* loss) noexcept nogil:
    """Sequential SGD over ``order[start:stop]``; returns the number of non-finite errors."""
    cdef Py_ssize_t j, n, f, u, i
    cdef floating e, w, pred, pf, qf, step
    cdef floating* p
    cdef floating* q
    cdef double acc = 0.0
    for j in range(start, stop):
        n = order[j]
        u = users[n]
        i = items[n]
        p = P + u * k
        q = Q + i * k
        pred = mu
        if biased:
            pred = pred + bu[u] + bi[i]
        for f in range(k):
            pred = pred + p[f] * q[f]
        e = ratings[n] - pred
        if not isfinite(e):
            loss[0] += acc
            return 1
        w = weights[n] if weighted else 1
        acc += w * e * e
        step = lr * w
        if biased:
            bu[u] += step * (e - reg_b * bu[u])
            bi[i] += step * (e - reg_b * bi[i])
        for f in range(k):
            pf = p[f]
            qf = q[f]
            p[f] = pf + step * (e * qf - reg * pf)
            q[f] = qf + step * (e * pf - reg * qf)
    loss[0] += acc
    return 0


def sgd_epoch(const int[::1] users, const int[::1] items,
              const floating[::1] ratings, const floating[::1] weights,
              const Py_ssize_t[::1] order, const Py_ssize_t[::1] block_ptr,
              const Py_ssize_t[:, ::1] schedule,
              floating[:, ::1] P, floating[:, ::1] Q,
              floating[::1] bu, floating[::1] bi,
              double mu, double lr, double reg, double reg_bias, bint biased,
              double[::1] block_loss, int n_threads):
    """One SGD epoch.

    Parameters
    ----------
    users, items : int32 arrays of shape (n_ratings,)
        Internal indices.
    ratings, weights : floating arrays
        Targets and sample weights (``weights`` may be empty: all ones).
    order : intp array
        Visiting order, grouped by block: block ``b`` is
        ``order[block_ptr[b]:block_ptr[b + 1]]``.
    schedule : intp array of shape (n_strata, n_parallel)
        Blocks to run, stratum after stratum; the blocks of one row are run in
        parallel and must not share users or items.  ``-1`` entries are skipped.
    P, Q, bu, bi : factors and biases, updated in place.
    block_loss : float64 array of shape (n_blocks,)
        Receives the weighted sum of squared errors seen in each block.

    Returns
    -------
    n_bad : int
        Number of blocks stopped by a non-finite error (divergence).
    """
    cdef Py_ssize_t n_strata = schedule.shape[0], n_par = schedule.shape[1]
    cdef Py_ssize_t s, t, b, k = P.shape[1]
    cdef Py_ssize_t n_bad = 0
    cdef bint weighted = weights.shape[0] > 0
    cdef const floating* wptr = &weights[0] if weighted else NULL
    cdef floating* bu_ptr = &bu[0] if bu.shape[0] > 0 else NULL
    cdef floating* bi_ptr = &bi[0] if bi.shape[0] > 0 else NULL
    if ratings.shape[0] == 0:
        return 0
    block_loss[:] = 0.0
    with nogil:
        for s in range(n_strata):
            for t in prange(n_par, num_threads=n_threads, schedule="dynamic", chunksize=1):
                b = schedule[s, t]
                if b >= 0 and block_ptr[b + 1] > block_ptr[b]:
                    n_bad += _sgd_block(&users[0], &items[0], &ratings[0], wptr,
                                        &order[0], block_ptr[b], block_ptr[b + 1],
                                        &P[0, 0], &Q[0, 0], bu_ptr, bi_ptr, k,
                                        <floating>mu, <floating>lr, <floating>reg,
                                        <floating>reg_bias, biased and bu_ptr != NULL,
                                        weighted, &block_loss[b])
    return n_bad


def predict(const int[::1] users, const int[::1] items,
            const floating[:, ::1] P, const floating[:, ::1] Q,
            const floating[::1] bu, const floating[::1] bi,
            double mu, floating[::1] out, int n_threads):
    """``out[n] = mu + b_u + b_i + p_u . q_i`` where unknown ids (index -1)
    contribute nothing: an unknown user keeps ``mu + b_i``, an unknown item
    ``mu + b_u``, both unknown ``mu``.  Empty ``bu``/``bi`` mean no biases."""
    cdef Py_ssize_t n_rows = users.shape[0], k = P.shape[1]
    cdef Py_ssize_t n, f, u, i
    cdef bint biased = bu.shape[0] > 0
    cdef floating acc
    with nogil:
        for n in prange(n_rows, num_threads=n_threads, schedule="static"):
            u = users[n]
            i = items[n]
            acc = <floating>mu
            if biased:
                if u >= 0:
                    acc = acc + bu[u]
                if i >= 0:
                    acc = acc + bi[i]
            if u >= 0 and i >= 0:
                for f in range(k):
                    acc = acc + P[u, f] * Q[i, f]
            out[n] = acc
