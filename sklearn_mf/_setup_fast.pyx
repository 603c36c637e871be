# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Set-up kernels: the linear-time sorts behind the CSR build and the block schedule.

Everything ``fit`` does before its first epoch must grow linearly with the
number of ratings.  Comparison sorts do not (and NumPy's stable ``argsort`` of
keys wider than 16 bits is a merge sort), so the two reorderings of the
ratings that set-up needs are counting sorts here:

- :func:`block_order`: ratings grouped by the block of the parallel SGD grid
  they fall in, stable (ratings keep their relative order inside a block), with
  a histogram per thread over its own slice of the ratings;
- :func:`coo_to_csr`: (row, column, value) triples to a CSR matrix with sorted
  column indices and duplicates summed, by two stable counting passes (by
  column, then by row: a least-significant-digit radix sort).

Codes must be valid (``0 <= code < n``); the Python side guarantees it.
"""

import numpy as np

from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from sklearn_mf._openmp cimport omp_get_max_threads


def block_order(const int[::1] user_codes, const int[::1] item_codes,
                const int[::1] user_block, const int[::1] item_block,
                Py_ssize_t n_blocks, int n_threads):
    """Stable order of the ratings by block ``user_block[u] * n_blocks + item_block[i]``.

    Returns ``(perm, counts)``: ``perm`` (int32) lists the ratings block by block,
    in their original order within a block; ``counts`` (int64) the ratings of each
    of the ``n_blocks**2`` blocks.  The same result as a stable ``argsort`` of
    the block keys, in linear time.
    """
    cdef Py_ssize_t n = user_codes.shape[0], n_keys = n_blocks * n_blocks
    cdef Py_ssize_t t, r, key, start, stop, chunk
    cdef int64_t acc, c
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
        # 1. one histogram per thread over its own contiguous slice
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                key = user_block[user_codes[r]] * n_blocks + item_block[item_codes[r]]
                offsets[t, key] += 1
        # 2. exclusive prefix over (key, thread): slices keep their order
        acc = 0
        for key in range(n_keys):
            for t in range(n_threads):
                c = offsets[t, key]
                offsets[t, key] = acc
                acc += c
                counts[key] += c
        # 3. each thread scatters its slice
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                key = user_block[user_codes[r]] * n_blocks + item_block[item_codes[r]]
                perm[offsets[t, key]] = <int>r
                offsets[t, key] += 1
    return perm_arr, counts_arr


def coo_to_csr(const int[::1] rows, const int[::1] cols, const float[::1] values,
               Py_ssize_t n_rows, Py_ssize_t n_cols, int n_threads):
    """CSR arrays of the triples, column indices sorted and duplicates summed.

    Returns ``(indptr, indices, data)`` as int64, int32 and float32 arrays.
    Duplicate (row, column) entries are summed in their input order.
    """
    cdef Py_ssize_t n = rows.shape[0], r, c, p, q, end, write
    cdef int64_t acc, cnt
    cdef Py_ssize_t n_dup = 0
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    col_ptr_arr = np.zeros(n_cols + 1, dtype=np.int64)
    cdef int64_t[::1] col_ptr = col_ptr_arr
    indptr_arr = np.zeros(n_rows + 1, dtype=np.int64)
    cdef int64_t[::1] indptr = indptr_arr
    by_col_rows_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] by_col_rows = by_col_rows_arr
    by_col_vals_arr = np.empty(n, dtype=np.float32)
    cdef float[::1] by_col_vals = by_col_vals_arr
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
        # pass 1: stable by column
        for p in range(n):
            c = cols[p]
            q = col_ptr[c]
            by_col_rows[q] = rows[p]
            by_col_vals[q] = values[p]
            col_ptr[c] = q + 1
        # col_ptr[c] is now the end of column c: walk the columns in order and
        # scatter by row (pass 2, stable), which leaves every row sorted
        p = 0
        for c in range(n_cols):
            end = col_ptr[c]
            while p < end:
                r = by_col_rows[p]
                q = indptr[r]
                indices[q] = <int>c
                data[q] = by_col_vals[p]
                indptr[r] = q + 1
                p += 1
        # indptr[r] is now the end of row r: shift back to starts
        for r in range(n_rows, 0, -1):
            indptr[r] = indptr[r - 1]
        indptr[0] = 0
        for r in prange(n_rows, num_threads=n_threads, schedule="static"):
            for p in range(indptr[r] + 1, indptr[r + 1]):
                if indices[p] == indices[p - 1]:
                    n_dup += 1
    del by_col_rows_arr, by_col_vals_arr
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
