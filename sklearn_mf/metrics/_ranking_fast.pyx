"""Relevance lookup for the ranking metrics: one binary search per list slot.

The truth is a CSR matrix (users x items) with sorted column indices; for
each recommended slot ``codes[u, j]`` the kernel finds that item in row ``u``
and writes its grade (0 when absent or when the slot is padding, ``< 0``).
Users are processed in parallel; the result does not depend on the number of
threads.
"""

from cython.parallel cimport prange

ctypedef fused integral:
    int
    long long


def lookup_gains(const integral[::1] indptr,
                 const integral[::1] indices,
                 const double[::1] data,
                 const Py_ssize_t[:, ::1] codes,
                 double[:, ::1] out,
                 int n_threads):
    """``out[u, j] = T[u, codes[u, j]]`` (0 if absent or ``codes[u, j] < 0``)."""
    cdef Py_ssize_t n_users = codes.shape[0], k = codes.shape[1]
    cdef Py_ssize_t u, j, lo, hi, mid, start, end, c
    with nogil:
        for u in prange(n_users, num_threads=max(1, n_threads), schedule="static"):
            start = indptr[u]
            end = indptr[u + 1]
            for j in range(k):
                out[u, j] = 0.0
                c = codes[u, j]
                if c < 0 or start == end:
                    continue
                lo = start
                hi = end
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if indices[mid] < c:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < end and indices[lo] == c:
                    out[u, j] = data[lo]
