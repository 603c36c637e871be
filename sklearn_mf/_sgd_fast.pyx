"""SGD kernels for biased matrix factorization (Funk / Koren updates).

The Python layer (``_mf.py``) encodes ids, partitions the ratings into a grid of
user-blocks x item-blocks and builds a schedule; these functions only compute.

For a rating ``r`` of user ``u`` on item ``i`` with weight ``w`` the update is::

    e    = r - (mu + b_u + b_i + p_u . q_i)
    b_u += lr * w * (e - reg_b * b_u)
    b_i += lr * w * (e - reg_b * b_i)
    p_u += lr * w * (e * q_i - reg * p_u)
    q_i += lr * w * (e * p_u_old - reg * q_i)

Ratings are stored block by block (``_setup_fast.block_arrange``) and
visited in storage order; each block is shuffled in place just before its
visit, so the storage carries the visiting order and a rating's user, item
and value are read sequentially, with the factor rows of the next ratings
prefetched.  Every stratum of the schedule lists blocks
that share no user and no item, so the blocks of one stratum run on different
threads without touching the same factors: the result does not depend on which
thread runs which block, and a given order and schedule always give the same
factors.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint64_t

from sklearn_mf._kernel_helpers cimport skmf_below

ctypedef fused floating:
    float
    double


cdef extern from *:
    """
    /* The per-block SGD loop is plain C so that it can be compiled twice, for
       AVX2+FMA and for baseline x86-64, with the right version picked when the
       module loads (SKMF_CLONES of _kernel_helpers.pxd).  The loops carry
       `omp simd` hints, honoured with -fopenmp-simd. */

    /* Rows ahead of the current rating whose factor rows are prefetched. */
    #define SKMF_SGD_AHEAD 6

    /* Prefetch the whole factor row p[0:k] (every cache line of it). */
    #define SKMF_PREFETCH_ROW(p, bytes)                                           \
        for (Py_ssize_t c_ = 0; c_ < (bytes); c_ += 64)                           \
            SKMF_PREFETCH((const char *)(p) + c_, 1);

    /* Fisher-Yates shuffle, in place, of the ratings [0:n) of one block: the
       same draws as skmf_shuffle_int of _kernel_helpers.pxd, applied to every
       array of the block at once (weights may be NULL). */
    #define SKMF_DEFINE_SHUFFLE_BLOCK(NAME, T)                                    \
    static void NAME(int *users, int *items, T *ratings, T *weights,              \
                     Py_ssize_t n, uint64_t seed) {                               \
        uint64_t state = seed;                                                    \
        for (Py_ssize_t j = n - 1; j > 0; j--) {                                  \
            Py_ssize_t t = skmf_below(&state, j + 1);                             \
            int a = users[j]; users[j] = users[t]; users[t] = a;                  \
            a = items[j]; items[j] = items[t]; items[t] = a;                      \
            T x = ratings[j]; ratings[j] = ratings[t]; ratings[t] = x;            \
            if (weights) { x = weights[j]; weights[j] = weights[t]; weights[t] = x; } \
        }                                                                         \
    }

    /* SGD over the ratings [0:n) of one block, in storage order; returns 1 if
       an error became non-finite. */
    #define SKMF_DEFINE_SGD_BLOCK(NAME, T)                                        \
    SKMF_CLONES static int NAME(                                                  \
            const int *users, const int *items, const T *ratings,                 \
            const T *weights, Py_ssize_t n_ratings, T *P, T *Q, T *bu, T *bi,     \
            Py_ssize_t k, T mu, T lr, T reg, T reg_b, double *loss) {             \
        double acc = 0.0;                                                         \
        Py_ssize_t row_bytes = k * (Py_ssize_t)sizeof(T);                         \
        for (Py_ssize_t j = 0; j < SKMF_SGD_AHEAD && j < n_ratings; j++) {        \
            SKMF_PREFETCH_ROW(P + (Py_ssize_t)users[j] * k, row_bytes)            \
            SKMF_PREFETCH_ROW(Q + (Py_ssize_t)items[j] * k, row_bytes)            \
        }                                                                         \
        for (Py_ssize_t n = 0; n < n_ratings; n++) {                              \
            if (n + SKMF_SGD_AHEAD < n_ratings) {                                 \
                Py_ssize_t m = n + SKMF_SGD_AHEAD;                                \
                SKMF_PREFETCH_ROW(P + (Py_ssize_t)users[m] * k, row_bytes)        \
                SKMF_PREFETCH_ROW(Q + (Py_ssize_t)items[m] * k, row_bytes)        \
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
    SKMF_DEFINE_SHUFFLE_BLOCK(skmf_shuffle_block_f, float)
    SKMF_DEFINE_SHUFFLE_BLOCK(skmf_shuffle_block_d, double)
    """
    void skmf_shuffle_block_f(int* users, int* items, float* ratings, float* weights,
                              Py_ssize_t n, uint64_t seed) noexcept nogil
    void skmf_shuffle_block_d(int* users, int* items, double* ratings, double* weights,
                              Py_ssize_t n, uint64_t seed) noexcept nogil
    int skmf_sgd_block_f(const int* users, const int* items, const float* ratings,
                         const float* weights, Py_ssize_t n, float* P, float* Q,
                         float* bu, float* bi, Py_ssize_t k, float mu, float lr,
                         float reg, float reg_b, double* loss) noexcept nogil
    int skmf_sgd_block_d(const int* users, const int* items, const double* ratings,
                         const double* weights, Py_ssize_t n, double* P, double* Q,
                         double* bu, double* bi, Py_ssize_t k, double mu, double lr,
                         double reg, double reg_b, double* loss) noexcept nogil


cdef inline int _sgd_block(int* users, int* items, floating* ratings, floating* weights,
                           Py_ssize_t n, floating* P, floating* Q, floating* bu,
                           floating* bi, Py_ssize_t k, double mu, double lr, double reg,
                           double reg_b, bint shuffle, uint64_t seed,
                           double* loss) noexcept nogil:
    if floating is float:
        if shuffle:
            skmf_shuffle_block_f(users, items, ratings, weights, n, seed)
        return skmf_sgd_block_f(users, items, ratings, weights, n, P, Q, bu, bi, k,
                                <float>mu, <float>lr, <float>reg, <float>reg_b, loss)
    else:
        if shuffle:
            skmf_shuffle_block_d(users, items, ratings, weights, n, seed)
        return skmf_sgd_block_d(users, items, ratings, weights, n, P, Q, bu, bi, k,
                                mu, lr, reg, reg_b, loss)


def sgd_epoch(int[::1] users, int[::1] items,
              floating[::1] ratings, floating[::1] weights,
              const Py_ssize_t[::1] block_ptr,
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
        Internal indices, grouped by block: block ``b`` is
        ``[block_ptr[b]:block_ptr[b + 1]]`` of these and of the ratings.
    ratings, weights : floating arrays
        Targets and sample weights (``weights`` may be empty: all ones).
    block_ptr : intp array of shape (n_blocks + 1,)
    schedule : intp array of shape (n_strata, n_parallel)
        Blocks to run, stratum after stratum; the blocks of one row are run in
        parallel and must not share users or items.  ``-1`` entries are skipped.
    P, Q, bu, bi : factors and biases, updated in place.
    block_loss : float64 array of shape (n_blocks,)
        Receives the weighted sum of squared errors seen in each block.
    n_threads : int
    seeds : uint64 array of shape (n_blocks,), optional
        When given, the ratings of each block (users, items, ratings and
        weights together) are first shuffled in place (Fisher-Yates, generator
        seeded with ``seeds[b]``), just before the block is visited, while its
        data is hot in cache.  Ratings are visited in storage order, so the
        storage itself carries the visiting order from epoch to epoch.

    Returns
    -------
    n_bad : int
        Number of blocks stopped by a non-finite error (divergence).
    """
    cdef Py_ssize_t n_strata = schedule.shape[0], n_par = schedule.shape[1]
    cdef Py_ssize_t s, t, b, start, k = P.shape[1]
    cdef Py_ssize_t n_bad = 0
    cdef bint shuffle = seeds is not None
    cdef floating* wptr = &weights[0] if weights.shape[0] > 0 else NULL
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
                    start = block_ptr[b]
                    n_bad += _sgd_block(&users[start], &items[start], &ratings[start],
                                        (wptr + start) if wptr != NULL else NULL,
                                        block_ptr[b + 1] - start,
                                        &P[0, 0], &Q[0, 0], bu_ptr, bi_ptr, k,
                                        mu, lr, reg, reg_bias, shuffle,
                                        seeds[b] if shuffle else 0, &block_loss[b])
    return n_bad
