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
from libc.stdint cimport uint64_t

from sklearn_mf._kernel_helpers cimport skmf_shuffle_int

ctypedef fused floating:
    float
    double


cdef extern from *:
    """
    /* The per-block SGD loop is plain C so that it can be compiled twice, for
       AVX2+FMA and for baseline x86-64, with the right version picked when the
       module loads (SKMF_CLONES of _kernel_helpers.pxd).  The loops carry
       `omp simd` hints, honoured with -fopenmp-simd. */

    /* Fisher-Yates shuffle of order[start:stop] with its own generator. */
    static void skmf_shuffle(int *order, Py_ssize_t start, Py_ssize_t stop,
                             uint64_t seed) {
        uint64_t state = seed;
        skmf_shuffle_int(order + start, stop - start, &state);
    }

    /* SGD over order[start:stop]; returns 1 if an error became non-finite. */
    #define SKMF_DEFINE_SGD_BLOCK(NAME, T)                                        \
    SKMF_CLONES static int NAME(                                                  \
            const int *users, const int *items, const T *ratings,                 \
            const T *weights, const int *order, Py_ssize_t start,                 \
            Py_ssize_t stop, T *P, T *Q, T *bu, T *bi, Py_ssize_t k, T mu,        \
            T lr, T reg, T reg_b, double *loss) {                                 \
        double acc = 0.0;                                                         \
        for (Py_ssize_t j = start; j < stop; j++) {                               \
            Py_ssize_t n = order[j];                                              \
            if (j + 2 < stop) {                                                   \
                Py_ssize_t m = order[j + 2];                                      \
                SKMF_PREFETCH(P + (Py_ssize_t)users[m] * k, 0);                    \
                SKMF_PREFETCH(Q + (Py_ssize_t)items[m] * k, 0);                    \
            }                                                                     \
            Py_ssize_t u = users[n], i = items[n];                                \
            T *p = P + u * k, *q = Q + i * k;                                     \
            T dot = 0;                                                            \
            SKMF_PRAGMA(omp simd reduction(+:dot))                                \
            for (Py_ssize_t f = 0; f < k; f++) dot += p[f] * q[f];                \
            T pred = mu + dot;                                                    \
            if (bu) pred += bu[u] + bi[i];                                        \
            T e = ratings[n] - pred;                                              \
            if (!isfinite(e)) { *loss += acc; return 1; }                         \
            T w = weights ? weights[n] : (T)1;                                    \
            acc += (double)(w * e * e);                                           \
            T step = lr * w;                                                      \
            if (bu) {                                                             \
                bu[u] += step * (e - reg_b * bu[u]);                              \
                bi[i] += step * (e - reg_b * bi[i]);                              \
            }                                                                     \
            SKMF_PRAGMA(omp simd)                                                 \
            for (Py_ssize_t f = 0; f < k; f++) {                                  \
                T pf = p[f], qf = q[f];                                           \
                p[f] = pf + step * (e * qf - reg * pf);                           \
                q[f] = qf + step * (e * pf - reg * qf);                           \
            }                                                                     \
        }                                                                         \
        *loss += acc;                                                             \
        return 0;                                                                 \
    }
    #include <math.h>
    SKMF_DEFINE_SGD_BLOCK(skmf_sgd_block_f, float)
    SKMF_DEFINE_SGD_BLOCK(skmf_sgd_block_d, double)
    """
    void skmf_shuffle(int* order, Py_ssize_t start, Py_ssize_t stop,
                      uint64_t seed) noexcept nogil
    int skmf_sgd_block_f(const int* users, const int* items, const float* ratings,
                         const float* weights, const int* order,
                         Py_ssize_t start, Py_ssize_t stop, float* P, float* Q,
                         float* bu, float* bi, Py_ssize_t k, float mu, float lr,
                         float reg, float reg_b, double* loss) noexcept nogil
    int skmf_sgd_block_d(const int* users, const int* items, const double* ratings,
                         const double* weights, const int* order,
                         Py_ssize_t start, Py_ssize_t stop, double* P, double* Q,
                         double* bu, double* bi, Py_ssize_t k, double mu, double lr,
                         double reg, double reg_b, double* loss) noexcept nogil


cdef inline int _sgd_block(const int* users, const int* items,
                           const floating* ratings, const floating* weights,
                           const int* order, Py_ssize_t start, Py_ssize_t stop,
                           floating* P, floating* Q, floating* bu, floating* bi,
                           Py_ssize_t k, double mu, double lr, double reg,
                           double reg_b, double* loss) noexcept nogil:
    if floating is float:
        return skmf_sgd_block_f(users, items, ratings, weights, order, start, stop,
                                P, Q, bu, bi, k, <float>mu, <float>lr, <float>reg,
                                <float>reg_b, loss)
    else:
        return skmf_sgd_block_d(users, items, ratings, weights, order, start, stop,
                                P, Q, bu, bi, k, mu, lr, reg, reg_b, loss)


def sgd_epoch(const int[::1] users, const int[::1] items,
              const floating[::1] ratings, const floating[::1] weights,
              int[::1] order, const Py_ssize_t[::1] block_ptr,
              const Py_ssize_t[:, ::1] schedule,
              floating[:, ::1] P, floating[:, ::1] Q,
              floating[::1] bu, floating[::1] bi,
              double mu, double lr, double reg, double reg_bias, bint biased,
              double[::1] block_loss, int n_threads,
              const uint64_t[::1] seeds=None):
    """One SGD epoch.

    Parameters
    ----------
    users, items : int32 arrays of shape (n_ratings,)
        Internal indices.
    ratings, weights : floating arrays
        Targets and sample weights (``weights`` may be empty: all ones).
    order : int32 array
        Visiting order, grouped by block: block ``b`` is
        ``order[block_ptr[b]:block_ptr[b + 1]]``.
    schedule : intp array of shape (n_strata, n_parallel)
        Blocks to run, stratum after stratum; the blocks of one row are run in
        parallel and must not share users or items.  ``-1`` entries are skipped.
    P, Q, bu, bi : factors and biases, updated in place.
    block_loss : float64 array of shape (n_blocks,)
        Receives the weighted sum of squared errors seen in each block.
    n_threads : int
    seeds : uint64 array of shape (n_blocks,), optional
        When given, each block's segment of ``order`` is first shuffled in place
        (Fisher-Yates, generator seeded with ``seeds[b]``), just before the
        block is visited, while its data is hot in cache.

    Returns
    -------
    n_bad : int
        Number of blocks stopped by a non-finite error (divergence).
    """
    cdef Py_ssize_t n_strata = schedule.shape[0], n_par = schedule.shape[1]
    cdef Py_ssize_t s, t, b, k = P.shape[1]
    cdef Py_ssize_t n_bad = 0
    cdef bint shuffle = seeds is not None
    cdef const floating* wptr = &weights[0] if weights.shape[0] > 0 else NULL
    cdef floating* bu_ptr = &bu[0] if (biased and bu.shape[0] > 0) else NULL
    cdef floating* bi_ptr = &bi[0] if (biased and bi.shape[0] > 0) else NULL
    if ratings.shape[0] == 0:
        return 0
    block_loss[:] = 0.0
    with nogil:
        for s in range(n_strata):
            for t in prange(n_par, num_threads=n_threads, schedule="dynamic", chunksize=1):
                b = schedule[s, t]
                if b >= 0 and block_ptr[b + 1] > block_ptr[b]:
                    if shuffle:
                        skmf_shuffle(&order[0], block_ptr[b], block_ptr[b + 1], seeds[b])
                    n_bad += _sgd_block(&users[0], &items[0], &ratings[0], wptr,
                                        &order[0], block_ptr[b], block_ptr[b + 1],
                                        &P[0, 0], &Q[0, 0], bu_ptr, bi_ptr, k,
                                        mu, lr, reg, reg_bias, &block_loss[b])
    return n_bad
