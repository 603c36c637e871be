"""Per-user sampling of distinct items for :func:`make_ratings`.

``sample_user_items`` gives user ``u`` the ``offsets[u + 1] - offsets[u]``
distinct items of her slot in ``out``.  Items are drawn by popularity from a
Walker/Vose alias table (one 64-bit draw per item: the high half picks the
column, the low half tosses the coin) and a draw already held by the user is
rejected (a per-thread array stamped with ``u + 1`` remembers what she holds,
so it is never cleared).  When a very active user has collected most of the
popular items, rejections pile up: after ``4 * d + 64`` draws the rest of her
``d`` items are drawn uniformly among the items she does not hold yet (``d``
is at most half the catalogue, so that ends quickly).

The random numbers are counter-based: user ``u``'s stream is splitmix64
started from a hash of ``(seed, u)``, so the items depend on the seed and the
user only, whatever the number of threads and the order they visit users.
"""

from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free

from sklearn_mf._openmp cimport omp_get_thread_num


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    """splitmix64 finaliser (Steele, Lea & Flood 2014)."""
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t _next(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    return _mix(state[0])


def build_alias(const double[::1] p, double[::1] prob, int32_t[::1] alias):
    """Vose's alias table for the probabilities ``p`` (summing to 1).

    Column ``j`` keeps itself with probability ``prob[j]`` and otherwise gives
    ``alias[j]``; a column picked uniformly then yields ``j`` with probability
    ``p[j]``.
    """
    cdef Py_ssize_t n = p.shape[0], j, s, l, n_small = 0, n_large = 0
    cdef int32_t* small = <int32_t*> calloc(n + 1, sizeof(int32_t))
    cdef int32_t* large = <int32_t*> calloc(n + 1, sizeof(int32_t))
    if small == NULL or large == NULL:
        free(small)
        free(large)
        raise MemoryError("alias table")
    with nogil:
        for j in range(n):
            prob[j] = p[j] * n
            alias[j] = <int32_t> j
            if prob[j] < 1.0:
                small[n_small] = <int32_t> j
                n_small += 1
            else:
                large[n_large] = <int32_t> j
                n_large += 1
        while n_small > 0 and n_large > 0:
            n_small -= 1
            s = small[n_small]
            l = large[n_large - 1]
            alias[s] = <int32_t> l
            prob[l] = (prob[l] + prob[s]) - 1.0
            if prob[l] < 1.0:
                n_large -= 1
                small[n_small] = <int32_t> l
                n_small += 1
        # what is left is 1 up to rounding
        while n_large > 0:
            n_large -= 1
            prob[large[n_large]] = 1.0
        while n_small > 0:
            n_small -= 1
            prob[small[n_small]] = 1.0
    free(small)
    free(large)


def sample_user_items(const int64_t[::1] offsets, const double[::1] prob,
                      const int32_t[::1] alias, uint64_t seed, int32_t[::1] out,
                      int n_threads):
    """Fill ``out[offsets[u]:offsets[u + 1]]`` with distinct items of user ``u``.

    Every slot must hold at most ``len(prob)`` items (the caller caps them at
    half the catalogue).
    """
    cdef Py_ssize_t n_users = offsets.shape[0] - 1
    cdef uint64_t n_items = prob.shape[0]
    cdef Py_ssize_t u, start, d, got, tries, max_tries
    cdef uint64_t state, x, j
    cdef int32_t stamp
    cdef int32_t* mark
    cdef int32_t* marks = <int32_t*> calloc(
        <size_t> max(n_threads, 1) * n_items + 1, sizeof(int32_t))
    if marks == NULL:
        raise MemoryError("per-thread item marks")
    with nogil:
        for u in prange(n_users, schedule="dynamic", chunksize=64,
                        num_threads=n_threads):
            mark = marks + <size_t> omp_get_thread_num() * n_items
            start = offsets[u]
            d = offsets[u + 1] - start
            stamp = <int32_t> (u + 1)
            state = _mix(seed ^ _mix(<uint64_t> u + <uint64_t>0x632BE59BD9B4E019))
            got = 0
            tries = 0
            max_tries = 4 * d + 64
            while got < d and tries < max_tries:
                x = _next(&state)
                j = ((x >> 32) * n_items) >> 32
                if <double> (x & <uint64_t>0xFFFFFFFF) * 2.3283064365386963e-10 >= prob[j]:
                    j = <uint64_t> alias[j]
                tries = tries + 1
                if mark[j] != stamp:
                    mark[j] = stamp
                    out[start + got] = <int32_t> j
                    got = got + 1
            while got < d:
                j = ((_next(&state) >> 32) * n_items) >> 32
                if mark[j] != stamp:
                    mark[j] = stamp
                    out[start + got] = <int32_t> j
                    got = got + 1
    free(marks)
