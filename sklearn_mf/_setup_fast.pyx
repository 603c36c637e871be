# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Set-up kernels: the linear-time sorts behind the CSR build and the block schedule.

Everything ``fit`` does before its first epoch must grow linearly with the
number of ratings.  Comparison sorts do not (and NumPy's stable ``argsort`` of
keys wider than 16 bits is a merge sort), so the two reorderings of the
ratings that set-up needs are counting sorts here:

- :func:`counting_order`: a stable order by a small integer key (the block
  of the parallel SGD grid a rating falls in, the row of a CSR matrix), with
  a histogram per thread over its own slice of the entries;
- :func:`coo_to_csr`: (row, column, value) triples to a CSR matrix with sorted
  column indices and duplicates summed, by two stable counting passes (by
  column, then by row: a least-significant-digit radix sort).

Codes must be valid (``0 <= code < n``); the Python side guarantees it.
"""

import numpy as np

from cython.parallel cimport prange
from libc.stdint cimport int64_t

from sklearn_mf._openmp cimport omp_get_max_threads


def counting_order(const int[::1] keys, Py_ssize_t n_keys, int n_threads):
    """Stable order of ``keys`` (``0 <= key < n_keys``) and the count of each key.

    Returns ``(perm, counts)``: ``perm`` (int32) lists the positions key by key,
    in their original order within a key; ``counts`` (int64) has length
    ``n_keys``.  The same result as a stable ``argsort``, in linear time: one
    histogram per thread over its own contiguous slice, an exclusive prefix
    sum over (key, thread), then each thread scatters its slice.
    """
    cdef Py_ssize_t n = keys.shape[0]
    cdef Py_ssize_t t, r, key, start, stop, chunk
    cdef int64_t acc, c
    if n >= 2**31 - 1:
        raise ValueError(f"At most 2**31 - 2 entries, got {n}.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    chunk = (n + n_threads - 1) // n_threads
    offsets_arr = np.zeros((n_threads, n_keys), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    perm_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] perm = perm_arr
    counts_arr = np.zeros(n_keys, dtype=np.int64)
    cdef int64_t[::1] counts = counts_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                offsets[t, keys[r]] += 1
        acc = 0
        for key in range(n_keys):
            for t in range(n_threads):
                c = offsets[t, key]
                offsets[t, key] = acc
                acc += c
                counts[key] += c
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                key = keys[r]
                perm[offsets[t, key]] = <int>r
                offsets[t, key] += 1
    return perm_arr, counts_arr


ctypedef fused real:
    float
    double


def coo_to_csr(const int[::1] rows, const int[::1] cols, const real[::1] values,
               Py_ssize_t n_rows, Py_ssize_t n_cols, int n_threads):
    """CSR arrays of the triples, column indices sorted and duplicates summed.

    Returns ``(indptr, indices, data)`` as int64, int32 and float32 arrays
    (``values`` is read as float32).  Duplicate (row, column) entries are
    summed in their input order.  Besides the output, one int32 array of the
    triples' positions is the only temporary.
    """
    cdef Py_ssize_t n = rows.shape[0], r, c, p, q, end, write
    cdef Py_ssize_t n_dup = 0
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    col_ptr_arr = np.zeros(n_cols + 1, dtype=np.int64)
    cdef int64_t[::1] col_ptr = col_ptr_arr
    indptr_arr = np.zeros(n_rows + 1, dtype=np.int64)
    cdef int64_t[::1] indptr = indptr_arr
    by_col_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] by_col = by_col_arr
    indices_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] indices = indices_arr
    data_arr = np.empty(n, dtype=np.float32)
    cdef float[::1] data = data_arr
    with nogil:
        for p in range(n):
            col_ptr[cols[p] + 1] += 1
            indptr[rows[p] + 1] += 1
        for c in range(n_cols):
            col_ptr[c + 1] += col_ptr[c]
        for r in range(n_rows):
            indptr[r + 1] += indptr[r]
        # pass 1: positions of the triples, stable by column
        for p in range(n):
            c = cols[p]
            by_col[col_ptr[c]] = <int>p
            col_ptr[c] += 1
        # col_ptr[c] is now the end of column c: walk the columns in order and
        # scatter by row (pass 2, stable), which leaves every row sorted
        p = 0
        for c in range(n_cols):
            end = col_ptr[c]
            while p < end:
                q = by_col[p]
                r = rows[q]
                indices[indptr[r]] = <int>c
                data[indptr[r]] = <float>values[q]
                indptr[r] += 1
                p += 1
        # indptr[r] is now the end of row r: shift back to starts
        for r in range(n_rows, 0, -1):
            indptr[r] = indptr[r - 1]
        indptr[0] = 0
        for r in prange(n_rows, num_threads=n_threads, schedule="static"):
            for p in range(indptr[r] + 1, indptr[r + 1]):
                if indices[p] == indices[p - 1]:
                    n_dup += 1
    del by_col_arr
    if n_dup == 0:
        return indptr_arr, indices_arr, data_arr
    with nogil:
        # compact in place, summing runs of equal (row, column)
        write = 0
        p = 0
        for r in range(n_rows):
            end = indptr[r + 1]
            while p < end:
                c = indices[p]
                indices[write] = <int>c
                data[write] = data[p]
                p += 1
                while p < end and indices[p] == c:
                    data[write] += data[p]
                    p += 1
                write += 1
            indptr[r + 1] = write
    return indptr_arr, indices_arr[:write].copy(), data_arr[:write].copy()
