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


cdef void _exclusive_offsets(int64_t[:, ::1] offsets, Py_ssize_t[::1] ptr) noexcept nogil:
    """Per-thread counts ``offsets[t, key]`` to the position where thread
    ``t`` writes its first entry of ``key`` (keys in order, threads in order
    within a key: a stable order); ``ptr[key + 1]`` receives the end of key."""
    cdef Py_ssize_t key, t
    cdef int64_t acc = 0, c
    for key in range(offsets.shape[1]):
        for t in range(offsets.shape[0]):
            c = offsets[t, key]
            offsets[t, key] = acc
            acc += c
        ptr[key + 1] = acc


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
    ptr_arr = np.zeros(n_keys + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] ptr = ptr_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                offsets[t, keys[r]] += 1
        _exclusive_offsets(offsets, ptr)
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                key = keys[r]
                perm[offsets[t, key]] = <int>r
                offsets[t, key] += 1
    return perm_arr, np.diff(ptr_arr).astype(np.int64)


ctypedef fused real:
    float
    double


def coo_to_csr(const int[::1] rows, const int[::1] cols, const real[::1] values,
               Py_ssize_t n_rows, Py_ssize_t n_cols, int n_threads,
               const int[::1] row_map=None, const int[::1] col_map=None,
               bint return_col_counts=False):
    """CSR arrays of the triples, column indices sorted and duplicates summed.

    Returns ``(indptr, indices, data)`` as int64, int32 and float32 arrays
    (``values`` is read as float32).  Duplicate (row, column) entries are
    summed in their input order.  Besides the output, one int32 array of the
    triples' positions is the only temporary.

    With ``row_map`` (``col_map``) the row of triple ``p`` is
    ``row_map[rows[p]]`` (the same for columns): codes stored in another
    numbering are read without a relabelled copy.  With
    ``return_col_counts`` a fourth array (int64, ``n_cols``) counts the
    triples of each column, duplicates included.
    """
    cdef Py_ssize_t n = rows.shape[0], r, c, p, q, end, write
    cdef Py_ssize_t n_dup = 0
    cdef bint map_rows = row_map is not None, map_cols = col_map is not None
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        # a parallel region costs more than this pass on a busy machine
        n_threads = 1
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
            c = col_map[cols[p]] if map_cols else cols[p]
            r = row_map[rows[p]] if map_rows else rows[p]
            col_ptr[c + 1] += 1
            indptr[r + 1] += 1
        for c in range(n_cols):
            col_ptr[c + 1] += col_ptr[c]
        for r in range(n_rows):
            indptr[r + 1] += indptr[r]
        # pass 1: positions of the triples, stable by column
        for p in range(n):
            c = col_map[cols[p]] if map_cols else cols[p]
            by_col[col_ptr[c]] = <int>p
            col_ptr[c] += 1
        # col_ptr[c] is now the end of column c: walk the columns in order and
        # scatter by row (pass 2, stable), which leaves every row sorted
        p = 0
        for c in range(n_cols):
            end = col_ptr[c]
            while p < end:
                q = by_col[p]
                r = row_map[rows[q]] if map_rows else rows[q]
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
    counts = ()
    if return_col_counts:
        # col_ptr[c] is the end of column c: the counts are its differences
        counts = (np.diff(col_ptr_arr[:n_cols], prepend=0),)
    if n_dup == 0:
        return (indptr_arr, indices_arr, data_arr) + counts
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
    return (indptr_arr, indices_arr[:write].copy(), data_arr[:write].copy()) + counts


ctypedef fused out_real:
    float
    double


def block_arrange(const int[::1] user_codes, const int[::1] item_codes,
                  const real[::1] ratings, const out_real[::1] weights,
                  const Py_ssize_t[::1] rows,
                  const int[::1] user_pos, const int[::1] item_pos, Py_ssize_t n_blocks,
                  int[::1] out_users, int[::1] out_items,
                  out_real[::1] out_ratings, out_real[::1] out_weights, int n_threads):
    """The ratings of the parallel SGD grid, block by block, in one counting sort.

    Rating ``rows[r]`` (every rating when ``rows`` is empty) of user ``u`` and
    item ``i`` falls in block ``bu * n_blocks + bi`` with ``bu = user_pos[u] *
    n_blocks // n_users`` (``n_users = len(user_pos)``; the same for items).
    Its working codes ``user_pos[u]``, ``item_pos[i]``, its rating (cast to
    the output dtype) and its weight (when ``weights``, already of the output
    dtype, is not empty) are written to the ``out_*`` arrays
    (of length ``len(rows)`` or the number of ratings) so that each block is
    contiguous and, inside a block, the ratings keep their input order: the
    same arrays as a stable ``argsort`` by block followed by gathers, without
    the permutation, the block keys or the gathered copies.

    Returns ``block_ptr`` (intp, ``n_blocks**2 + 1``): block ``b`` is
    ``out_*[block_ptr[b]:block_ptr[b + 1]]``.
    """
    cdef Py_ssize_t n = rows.shape[0] if rows.shape[0] > 0 else user_codes.shape[0]
    cdef bint subset = rows.shape[0] > 0
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t B = n_blocks, n_keys = n_blocks * n_blocks
    cdef int64_t n_u = user_pos.shape[0], n_i = item_pos.shape[0]
    cdef Py_ssize_t t, r, q, key, start, stop, chunk, pos
    cdef int wu, wi
    if n >= 2**31 - 1:
        raise ValueError(f"At most 2**31 - 2 entries, got {n}.")
    if out_users.shape[0] != n or out_items.shape[0] != n or out_ratings.shape[0] != n:
        raise ValueError("The output arrays must have one entry per arranged rating.")
    if weighted and out_weights.shape[0] != n:
        raise ValueError("out_weights must have one entry per arranged rating.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    chunk = (n + n_threads - 1) // n_threads
    offsets_arr = np.zeros((n_threads, n_keys), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    ptr_arr = np.zeros(n_keys + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] ptr = ptr_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                q = rows[r] if subset else r
                key = (user_pos[user_codes[q]] * B // n_u) * B + item_pos[item_codes[q]] * B // n_i
                offsets[t, key] += 1
        _exclusive_offsets(offsets, ptr)
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for r in range(start, stop):
                q = rows[r] if subset else r
                wu = user_pos[user_codes[q]]
                wi = item_pos[item_codes[q]]
                key = (wu * B // n_u) * B + wi * B // n_i
                pos = offsets[t, key]
                offsets[t, key] = pos + 1
                out_users[pos] = wu
                out_items[pos] = wi
                out_ratings[pos] = <out_real>ratings[q]
                if weighted:
                    out_weights[pos] = weights[q]
    return ptr_arr


def group_by_row(const int[::1] rows, const int[::1] cols, const out_real[::1] values,
                 const out_real[::1] weights, Py_ssize_t n_rows, int n_threads):
    """Entries ``(rows[j], cols[j], values[j], weights[j])`` grouped by row, stably.

    Returns ``(indptr, indices, values, weights)`` (intp, int32 and the dtype
    of ``values``; ``weights`` empty when given empty): the arrays of
    ``counting_order`` followed by gathers, written directly by one counting
    sort (a histogram per thread over its slice, then a scatter), so that the
    output is the only memory of the size of the entries.
    """
    cdef Py_ssize_t n = rows.shape[0]
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t t, j, r, start, stop, chunk, pos
    if n >= 2**31 - 1:
        raise ValueError(f"At most 2**31 - 2 entries, got {n}.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    chunk = (n + n_threads - 1) // n_threads
    offsets_arr = np.zeros((n_threads, n_rows), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    indptr_arr = np.zeros(n_rows + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] indptr = indptr_arr
    indices_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] indices = indices_arr
    values_arr = np.empty(n, dtype=np.asarray(values).dtype)
    cdef out_real[::1] out_v = values_arr
    weights_arr = np.empty(n if weighted else 0, dtype=np.asarray(values).dtype)
    cdef out_real[::1] out_w = weights_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for j in range(start, stop):
                offsets[t, rows[j]] += 1
        _exclusive_offsets(offsets, indptr)
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for j in range(start, stop):
                r = rows[j]
                pos = offsets[t, r]
                offsets[t, r] = pos + 1
                indices[pos] = cols[j]
                out_v[pos] = values[j]
                if weighted:
                    out_w[pos] = weights[j]
    return indptr_arr, indices_arr, values_arr, weights_arr


def transpose_rows(const Py_ssize_t[::1] indptr, const int[::1] indices,
                   const out_real[::1] values, const out_real[::1] weights,
                   Py_ssize_t n_cols, int n_threads):
    """The column-major arrays of row-major ``(indptr, indices, values, weights)``.

    Returns ``(indptr, indices, values, weights)`` of the transpose: inside a
    column, entries in increasing row order (the order of a stable grouping
    of the row-major entries by column), without a per-entry row array or
    permutation.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, n = indices.shape[0]
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t t, r, p, col, pos, r0, r1
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    # thread t handles rows [bounds[t], bounds[t + 1]) (about n / n_threads entries)
    bounds_arr = np.searchsorted(np.asarray(indptr), np.arange(n_threads + 1) * (n / n_threads))
    bounds_arr[0], bounds_arr[-1] = 0, n_rows
    cdef Py_ssize_t[::1] bounds = bounds_arr.astype(np.intp)
    offsets_arr = np.zeros((n_threads, n_cols), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    out_ptr_arr = np.zeros(n_cols + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] out_ptr = out_ptr_arr
    out_idx_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] out_idx = out_idx_arr
    values_arr = np.empty(n, dtype=np.asarray(values).dtype)
    cdef out_real[::1] out_v = values_arr
    weights_arr = np.empty(n if weighted else 0, dtype=np.asarray(values).dtype)
    cdef out_real[::1] out_w = weights_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            for p in range(indptr[bounds[t]], indptr[bounds[t + 1]]):
                offsets[t, indices[p]] += 1
        _exclusive_offsets(offsets, out_ptr)
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            r0 = bounds[t]
            r1 = bounds[t + 1]
            for r in range(r0, r1):
                for p in range(indptr[r], indptr[r + 1]):
                    col = indices[p]
                    pos = offsets[t, col]
                    offsets[t, col] = pos + 1
                    out_idx[pos] = <int>r
                    out_v[pos] = values[p]
                    if weighted:
                        out_w[pos] = weights[p]
    return out_ptr_arr, out_idx_arr, values_arr, weights_arr
