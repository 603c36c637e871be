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
  column indices and duplicates summed: a parallel scatter by row block,
  then each row block sorted in cache (by column, then by row);
- :func:`group_by_row` and :func:`transpose_rows`: entries grouped by row
  (by column) stably, in the same two parallel steps;
- :func:`block_arrange`: the ratings of the parallel SGD grid block by block
  (one counting pass, or two radix passes on a large grid);
- :func:`blocked_csr`: the CSR of block-ordered ratings, row block by row
  block in cache.

The tables of a million users do not stay in cache: the kernels that read
them at random prefetch their entries ahead of use.

Codes must be valid (``0 <= code < n``); the Python side guarantees it.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t
from libc.string cimport memcpy

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


cdef Py_ssize_t _sum_duplicates(int64_t[::1] indptr, int[::1] indices,
                                float[::1] data) noexcept:
    """Compact CSR arrays with sorted columns in place, summing the runs of
    equal (row, column) in their order; returns the number of entries kept
    (``indptr`` is updated)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r, p = 0, end, write = 0
    cdef int c
    with nogil:
        for r in range(n_rows):
            end = indptr[r + 1]
            while p < end:
                c = indices[p]
                indices[write] = c
                data[write] = data[p]
                p += 1
                while p < end and indices[p] == c:
                    data[write] += data[p]
                    p += 1
                write += 1
            indptr[r + 1] = write
    return write


ctypedef fused real:
    float
    double


def _coo_to_csr_serial(const int[::1] rows, const int[::1] cols, const real[::1] values,
               Py_ssize_t n_rows, Py_ssize_t n_cols, int n_threads,
               const int[::1] row_map=None, const int[::1] col_map=None,
               bint return_col_counts=False):
    """The one-thread :func:`coo_to_csr` (two counting passes over all the
    triples: by column, then by row), for small or very skewed inputs; the
    same arrays."""
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
    write = _sum_duplicates(indptr_arr, indices_arr, data_arr)
    return (indptr_arr, indices_arr[:write].copy(), data_arr[:write].copy()) + counts


ctypedef fused out_real:
    float
    double


# A grid with more blocks than this is arranged in two passes (by row block,
# then by column block inside each row block) so that each scatter writes to
# few destinations; up to it, one counting pass by block is as cache-friendly.
cdef enum:
    _ONE_PASS_KEYS = 4096


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n, int n_threads) noexcept nogil:
    """Work units of a dynamically scheduled pass over ``n`` entries: about
    eight per thread (a busy core takes fewer), at least 64k entries each."""
    cdef Py_ssize_t c = n // 65536
    if c > 8 * n_threads:
        c = 8 * n_threads
    return c if c > 0 else 1


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define SKMF_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 1)
    #define SKMF_PREFETCH_W(p) __builtin_prefetch((const void*)(p), 1, 1)
    #else
    #define SKMF_PREFETCH(p) ((void)0)
    #define SKMF_PREFETCH_W(p) ((void)0)
    #endif
    """
    void SKMF_PREFETCH(const void* p) noexcept nogil
    void SKMF_PREFETCH_W(const void* p) noexcept nogil


cdef enum:
    # ratings ahead whose table entries are prefetched: the tables of a
    # million users do not stay in cache, and their random reads dominate
    _AHEAD = 24
    # users ahead whose CSR rows blocked_csr prefetches
    _ROWS_AHEAD = 4


cdef inline int64_t _block_of(int64_t w, int64_t B, int64_t n, double scale) noexcept nogil:
    """``w * B // n`` without an integer division: a floating-point estimate
    (``scale = B / n``; off by at most one), then corrected."""
    cdef int64_t num = w * B, b = <int64_t>(<double>w * scale)
    if b * n > num:
        b -= 1
    elif (b + 1) * n <= num:
        b += 1
    return b


cdef void _arrange_chunk(const int* user_codes, const int* item_codes, const real* ratings,
                         const out_real* weights, const Py_ssize_t* rows,
                         Py_ssize_t start, Py_ssize_t stop,
                         const int* user_pos, const int* item_pos, int64_t n_u, int64_t n_i,
                         int64_t B, double su, double si, bint by_row_block,
                         int64_t* offsets, bint scatter, int* out_users, int* out_items,
                         out_real* out_ratings, out_real* out_weights) noexcept nogil:
    """One chunk of ratings ``[start, stop)`` of :func:`block_arrange`: count
    them by key (the row block when ``by_row_block``, else the block) into
    ``offsets``, or (``scatter``) write them where ``offsets`` says, stably."""
    cdef Py_ssize_t r, q, q2, pos
    cdef int64_t key
    cdef int wu, wi
    for r in range(start, stop):
        if r + _AHEAD < stop:
            q2 = rows[r + _AHEAD] if rows != NULL else r + _AHEAD
            SKMF_PREFETCH(&user_pos[user_codes[q2]])
            if scatter or not by_row_block:
                SKMF_PREFETCH(&item_pos[item_codes[q2]])
        q = rows[r] if rows != NULL else r
        wu = user_pos[user_codes[q]]
        key = _block_of(wu, B, n_u, su)
        if scatter or not by_row_block:
            wi = item_pos[item_codes[q]]
            if not by_row_block:
                key = key * B + _block_of(wi, B, n_i, si)
        if not scatter:
            offsets[key] += 1
            continue
        pos = offsets[key]
        offsets[key] = pos + 1
        out_users[pos] = wu
        out_items[pos] = wi
        out_ratings[pos] = <out_real>ratings[q]
        if weights != NULL:
            out_weights[pos] = weights[q]


cdef void _arrange_row_block(int* users, int* items, out_real* ratings, out_real* weights,
                             Py_ssize_t m, bint weighted, int64_t B, int64_t n_i, double si,
                             int64_t* cnt, Py_ssize_t* block_ptr,
                             Py_ssize_t base, int* buf_u, int* buf_i, out_real* buf_r,
                             out_real* buf_w) noexcept nogil:
    """Stable counting sort of one row block's ``m`` ratings by column block
    (of the working item, among ``n_i``), in place through the buffers; writes the
    ends of the row block's ``B`` blocks to ``block_ptr`` (offset ``base``)."""
    cdef Py_ssize_t p, b, pos
    cdef int64_t acc = 0, c
    for b in range(B):
        cnt[b] = 0
    for p in range(m):
        cnt[_block_of(items[p], B, n_i, si)] += 1
    for b in range(B):
        c = cnt[b]
        cnt[b] = acc
        acc += c
        block_ptr[b + 1] = base + acc
    for p in range(m):
        b = _block_of(items[p], B, n_i, si)
        pos = cnt[b]
        cnt[b] = pos + 1
        buf_u[pos] = users[p]
        buf_i[pos] = items[p]
        buf_r[pos] = ratings[p]
        if weighted:
            buf_w[pos] = weights[p]
    memcpy(users, buf_u, m * sizeof(int))
    memcpy(items, buf_i, m * sizeof(int))
    memcpy(ratings, buf_r, m * sizeof(out_real))
    if weighted:
        memcpy(weights, buf_w, m * sizeof(out_real))


def block_arrange(const int[::1] user_codes, const int[::1] item_codes,
                  const real[::1] ratings, const out_real[::1] weights,
                  const Py_ssize_t[::1] rows,
                  const int[::1] user_pos, const int[::1] item_pos, Py_ssize_t n_blocks,
                  int[::1] out_users, int[::1] out_items,
                  out_real[::1] out_ratings, out_real[::1] out_weights, int n_threads):
    """The ratings of the parallel SGD grid, block by block, by a counting sort.

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

    A grid of more than 4096 blocks is sorted as a two-digit radix sort: a
    stable scatter by row block into the outputs, then, row block by row
    block, a stable counting sort by column block through a buffer of one row
    block per thread (which stays in cache); each scatter writes to ``B``
    places rather than ``B**2``.  Both passes are dynamically scheduled (in
    chunks of the ratings, then by row block), so a busy core takes less.

    Returns ``block_ptr`` (intp, ``n_blocks**2 + 1``): block ``b`` is
    ``out_*[block_ptr[b]:block_ptr[b + 1]]``.
    """
    cdef Py_ssize_t n = rows.shape[0] if rows.shape[0] > 0 else user_codes.shape[0]
    cdef bint subset = rows.shape[0] > 0
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t B = n_blocks, n_keys = n_blocks * n_blocks
    cdef int64_t n_u = user_pos.shape[0], n_i = item_pos.shape[0]
    cdef Py_ssize_t c, start, stop, chunk, n_chunks, bu, s, m, longest
    cdef bint two_pass = n_keys > _ONE_PASS_KEYS
    cdef int tid
    if n >= 2**31 - 1:
        raise ValueError(f"At most 2**31 - 2 entries, got {n}.")
    if out_users.shape[0] != n or out_items.shape[0] != n or out_ratings.shape[0] != n:
        raise ValueError("The output arrays must have one entry per arranged rating.")
    if weighted and out_weights.shape[0] != n:
        raise ValueError("out_weights must have one entry per arranged rating.")
    ptr_arr = np.zeros(n_keys + 1, dtype=np.intp)
    if n == 0:
        return ptr_arr
    cdef Py_ssize_t[::1] ptr = ptr_arr
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    cdef double su = <double>B / n_u, si = <double>B / n_i
    n_chunks = _n_chunks(n, n_threads)
    chunk = (n + n_chunks - 1) // n_chunks
    # the first digit: the block (one pass) or the row block (two passes)
    cdef Py_ssize_t n_first = B if two_pass else n_keys
    offsets_arr = np.zeros((n_chunks, n_first), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    first_ptr_arr = np.zeros(n_first + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] first_ptr = first_ptr_arr
    cdef const Py_ssize_t* rows_ptr = &rows[0] if subset else NULL
    cdef const out_real* w_in = &weights[0] if weighted else NULL
    cdef out_real* w_out = &out_weights[0] if weighted else NULL
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            start = c * chunk
            stop = min(start + chunk, n)
            _arrange_chunk(&user_codes[0], &item_codes[0], &ratings[0], w_in, rows_ptr,
                           start, stop, &user_pos[0], &item_pos[0], n_u, n_i, B, su, si,
                           two_pass, &offsets[c, 0], False, NULL, NULL, <out_real*>NULL, NULL)
        _exclusive_offsets(offsets, first_ptr)
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            start = c * chunk
            stop = min(start + chunk, n)
            _arrange_chunk(&user_codes[0], &item_codes[0], &ratings[0], w_in, rows_ptr,
                           start, stop, &user_pos[0], &item_pos[0], n_u, n_i, B, su, si,
                           two_pass, &offsets[c, 0], True, &out_users[0], &out_items[0],
                           &out_ratings[0], w_out)
    if not two_pass:
        return first_ptr_arr
    longest = int(np.diff(first_ptr_arr).max())
    # one row block of scratch per thread
    cnt_arr = np.empty((n_threads, B), dtype=np.int64)
    cdef int64_t[:, ::1] cnt = cnt_arr
    dtype = np.asarray(out_ratings).dtype
    buf_u_arr = np.empty((n_threads, longest), dtype=np.int32)
    buf_i_arr = np.empty((n_threads, longest), dtype=np.int32)
    buf_r_arr = np.empty((n_threads, longest), dtype=dtype)
    buf_w_arr = np.empty((n_threads, longest if weighted else 1), dtype=dtype)
    cdef int[:, ::1] buf_u = buf_u_arr
    cdef int[:, ::1] buf_i = buf_i_arr
    cdef out_real[:, ::1] buf_r = buf_r_arr
    cdef out_real[:, ::1] buf_w = buf_w_arr
    with nogil:
        for bu in prange(B, num_threads=n_threads, schedule="dynamic", chunksize=1):
            tid = threadid()
            s = first_ptr[bu]
            m = first_ptr[bu + 1] - s
            _arrange_row_block(&out_users[s], &out_items[s], &out_ratings[s],
                               (w_out + s) if weighted else NULL, m, weighted, B, n_i, si,
                               &cnt[tid, 0], &ptr[bu * B], s,
                               &buf_u[tid, 0], &buf_i[tid, 0], &buf_r[tid, 0],
                               &buf_w[tid, 0])
    return ptr_arr


# Digits of the item codes in the radix sort of a row block: at most 2**11
# buckets (a histogram of 16 kB per digit).
cdef enum:
    _MAX_DIGIT_BITS = 11


cdef bint _radix_passes(int* key_a, int* row_a, float* val_a,
                        int* key_b, int* row_b, float* val_b, Py_ssize_t m,
                        int64_t* hist, int n_digits, int digit_bits) noexcept nogil:
    """The stable LSD radix passes of the ``m`` (key, row, value) triples in
    the ``a`` buffers, ``n_digits`` digits of ``digit_bits``, through the
    ``b`` buffers; ``hist`` holds each digit's counts on entry.  A digit
    whose values all fall in one bucket is skipped (the identity).  Returns
    True when the sorted triples ended in the ``b`` buffers."""
    cdef Py_ssize_t p, d, x, pos, n_buckets = (<Py_ssize_t>1) << digit_bits
    cdef int mask = <int>(n_buckets - 1), shift
    cdef int64_t acc, c
    cdef int* tmp_k
    cdef int* tmp_r
    cdef float* tmp_v
    cdef bint skip, in_b = False
    for d in range(n_digits):
        shift = d * digit_bits
        skip = False
        acc = 0
        for x in range(n_buckets):
            c = hist[d * n_buckets + x]
            if c == m:
                skip = True  # one bucket holds everything: the pass is the identity
            hist[d * n_buckets + x] = acc
            acc += c
        if skip:
            continue
        for p in range(m):
            x = d * n_buckets + ((key_a[p] >> shift) & mask)
            pos = hist[x]
            hist[x] = pos + 1
            key_b[pos] = key_a[p]
            row_b[pos] = row_a[p]
            val_b[pos] = val_a[p]
        tmp_k, tmp_r, tmp_v = key_a, row_a, val_a
        key_a, row_a, val_a = key_b, row_b, val_b
        key_b, row_b, val_b = tmp_k, tmp_r, tmp_v
        in_b = not in_b
    return in_b


cdef void _csr_row_block(const int* users, const int* items, const out_real* values,
                         Py_ssize_t m, Py_ssize_t lo, Py_ssize_t n_local,
                         const int* user_order, const int* item_order,
                         const int64_t* indptr, int* indices, float* data,
                         int* key_a, int* row_a, float* val_a,
                         int* key_b, int* row_b, float* val_b,
                         int64_t* hist, int n_digits, int digit_bits,
                         int64_t* cursor, int64_t* n_dup) noexcept nogil:
    """Write the ``m`` entries of one row block (working users ``lo`` to
    ``lo + n_local``) to their CSR rows, columns sorted: a stable LSD radix
    sort by original item code (``n_digits`` digits of ``digit_bits``) in
    the thread's buffers, a stable scatter by user inside the buffers (in
    cache), then each user's run copied to its CSR row (the rows of a row
    block are scattered over the CSR: copying whole runs replaces a random
    write per entry)."""
    cdef Py_ssize_t p, d, x, pos, e, n_buckets = (<Py_ssize_t>1) << digit_bits
    cdef int mask = <int>(n_buckets - 1), k, shift, lu
    cdef int64_t acc, c, dst
    cdef int* tmp_k
    cdef int* tmp_r
    cdef float* tmp_v
    cdef bint skip
    for x in range(n_digits * n_buckets):
        hist[x] = 0
    for lu in range(n_local + 1):
        cursor[lu] = 0
    for p in range(m):
        if p + _AHEAD < m:
            SKMF_PREFETCH(&item_order[items[p + _AHEAD]])
        k = item_order[items[p]]
        lu = <int>(users[p] - lo)
        key_a[p] = k
        row_a[p] = lu
        val_a[p] = <float>values[p]
        cursor[lu + 1] += 1
        for d in range(n_digits):
            hist[d * n_buckets + ((k >> (d * digit_bits)) & mask)] += 1
    if _radix_passes(key_a, row_a, val_a, key_b, row_b, val_b, m, hist, n_digits,
                     digit_bits):
        tmp_k, tmp_r, tmp_v = key_a, row_a, val_a
        key_a, row_a, val_a = key_b, row_b, val_b
        key_b, row_b, val_b = tmp_k, tmp_r, tmp_v
    # cursor[lu + 1] counts user lu: exclusive prefix sums, local starts
    for lu in range(n_local):
        cursor[lu + 1] += cursor[lu]
    for p in range(m):
        lu = row_a[p]
        pos = cursor[lu]
        cursor[lu] = pos + 1
        key_b[pos] = key_a[p]
        val_b[pos] = val_a[p]
    # cursor[lu] is now the end of user lu's run (its start: cursor[lu - 1])
    p = 0
    for lu in range(n_local):
        # the CSR row starts of users ahead (an 8 MB table read at random),
        # then the first lines of their rows, are fetched before use
        if lu + 2 * _ROWS_AHEAD < n_local:
            SKMF_PREFETCH(&indptr[user_order[lo + lu + 2 * _ROWS_AHEAD]])
        if lu + _ROWS_AHEAD < n_local:
            dst = indptr[user_order[lo + lu + _ROWS_AHEAD]]
            SKMF_PREFETCH_W(&indices[dst])
            SKMF_PREFETCH_W(&data[dst])
        e = cursor[lu]
        if e == p:
            continue
        dst = indptr[user_order[lo + lu]]
        memcpy(&indices[dst], &key_b[p], (e - p) * sizeof(int))
        memcpy(&data[dst], &val_b[p], (e - p) * sizeof(float))
        p += 1
        while p < e:
            if key_b[p] == key_b[p - 1]:
                n_dup[0] += 1
            p += 1


def blocked_csr(const int[::1] users, const int[::1] items, const out_real[::1] values,
                const Py_ssize_t[::1] block_ptr, Py_ssize_t n_blocks,
                const int[::1] user_order, const int[::1] item_order, int n_threads,
                indices_out=None, data_out=None):
    """The CSR of ratings stored block by block (:func:`block_arrange`) in
    the original codes: ``coo_to_csr`` with ``row_map=user_order``,
    ``col_map=item_order`` and ``return_col_counts=True``, the same arrays.

    ``users`` and ``items`` are working codes (row ``j`` of the working order
    is user ``user_order[j]``), in the blocks of an ``n_blocks x n_blocks``
    grid over ``n_users = len(user_order)`` users and ``len(item_order)``
    items.  A row block holds every rating of its users, so each row block
    (in parallel, dynamically scheduled) is sorted on its own, in cache: a
    stable least-significant-digit radix sort by original item, then a stable
    scatter by user straight into the CSR rows.  Duplicates of a (user, item)
    pair share a block and keep their order there, so they are summed in
    input order, as by ``coo_to_csr``.

    ``indices_out`` (int32) and ``data_out`` (float32), of one entry per
    rating, receive the CSR's indices and data when given (memory the caller
    no longer needs, already paged in: a new array of 100M entries costs
    about 0.3 s of page faults); then they are the returned arrays unless
    duplicates were summed.

    Returns ``(indptr, indices, data, col_counts)``: int64, int32, float32 and
    int64 (``n_items``) arrays.
    """
    cdef Py_ssize_t n = users.shape[0], B = n_blocks
    cdef Py_ssize_t n_u = user_order.shape[0], n_i = item_order.shape[0]
    cdef Py_ssize_t bu, p, s, e, lo, hi, longest = 0, widest = 0, t
    cdef int tid, n_digits = 0, digit_bits = 1, bits = 0
    if items.shape[0] != n or values.shape[0] != n:
        raise ValueError("users, items and values must have the same length.")
    if block_ptr.shape[0] != B * B + 1 or block_ptr[B * B] != n:
        raise ValueError("block_ptr must have n_blocks**2 + 1 entries ending at the number of ratings.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    while n_i > 1 and (<int64_t>1 << bits) < n_i:
        bits += 1
    if bits > 0:
        n_digits = (bits + _MAX_DIGIT_BITS - 1) // _MAX_DIGIT_BITS
        digit_bits = (bits + n_digits - 1) // n_digits
    # rows per user (working order) -> indptr in the original order
    counts_arr = np.zeros(n_u, dtype=np.int64)
    cdef int64_t[::1] counts = counts_arr
    with nogil:
        for bu in prange(B, num_threads=n_threads, schedule="dynamic", chunksize=1):
            # a row block's users are its own: no two threads count one user
            for p in range(block_ptr[bu * B], block_ptr[bu * B + B]):
                counts[users[p]] += 1
    indptr_arr = np.zeros(n_u + 1, dtype=np.int64)
    indptr_arr[1:][np.asarray(user_order)] = counts_arr
    np.cumsum(indptr_arr, out=indptr_arr)
    cdef const int64_t[::1] indptr = indptr_arr
    indices_arr = np.empty(n, dtype=np.int32) if indices_out is None else indices_out
    data_arr = np.empty(n, dtype=np.float32) if data_out is None else data_out
    cdef int[::1] indices = indices_arr
    cdef float[::1] data = data_arr
    if indices.shape[0] != n or data.shape[0] != n:
        raise ValueError("indices_out and data_out must have one entry per rating.")
    for bu in range(B):
        longest = max(longest, block_ptr[bu * B + B] - block_ptr[bu * B])
        lo = (bu * n_u + B - 1) // B
        hi = ((bu + 1) * n_u + B - 1) // B
        widest = max(widest, hi - lo)
    longest = max(longest, 1)
    widest = max(widest, 1)
    key_arr = np.empty((n_threads, 2, longest), dtype=np.int32)
    row_arr = np.empty((n_threads, 2, longest), dtype=np.int32)
    val_arr = np.empty((n_threads, 2, longest), dtype=np.float32)
    hist_arr = np.empty((n_threads, max(n_digits, 1) << digit_bits), dtype=np.int64)
    cursor_arr = np.empty((n_threads, widest + 1), dtype=np.int64)
    dup_arr = np.zeros(n_threads, dtype=np.int64)
    cdef int[:, :, ::1] key_buf = key_arr
    cdef int[:, :, ::1] row_buf = row_arr
    cdef float[:, :, ::1] val_buf = val_arr
    cdef int64_t[:, ::1] hist = hist_arr
    cdef int64_t[:, ::1] cursor = cursor_arr
    cdef int64_t[::1] dup = dup_arr
    # the popularity of the working items, column block by column block (a
    # column block's items are its own and stay in cache), then relabelled
    work_pop_arr = np.zeros(n_i, dtype=np.int64)
    cdef int64_t[::1] work_pop = work_pop_arr
    cdef Py_ssize_t bi, bu2
    with nogil:
        for bi in prange(B, num_threads=n_threads, schedule="dynamic", chunksize=1):
            for bu2 in range(B):
                for p in range(block_ptr[bu2 * B + bi], block_ptr[bu2 * B + bi + 1]):
                    work_pop[items[p]] += 1
        for bu in prange(B, num_threads=n_threads, schedule="dynamic", chunksize=1):
            tid = threadid()
            s = block_ptr[bu * B]
            e = block_ptr[bu * B + B]
            lo = (bu * n_u + B - 1) // B
            hi = ((bu + 1) * n_u + B - 1) // B
            _csr_row_block(&users[s], &items[s], &values[s], e - s, lo, hi - lo,
                           &user_order[0], &item_order[0], &indptr[0],
                           &indices[0], &data[0],
                           &key_buf[tid, 0, 0], &row_buf[tid, 0, 0], &val_buf[tid, 0, 0],
                           &key_buf[tid, 1, 0], &row_buf[tid, 1, 0], &val_buf[tid, 1, 0],
                           &hist[tid, 0], n_digits, digit_bits,
                           &cursor[tid, 0], &dup[tid])
    popularity = np.empty(n_i, dtype=np.int64)
    popularity[np.asarray(item_order)] = work_pop_arr
    if dup_arr.sum() == 0:
        return indptr_arr, indices_arr, data_arr, popularity
    write = _sum_duplicates(indptr_arr, indices_arr, data_arr)
    return indptr_arr, indices_arr[:write].copy(), data_arr[:write].copy(), popularity


# Row blocks of the parallel coo_to_csr: about this many triples each (their
# sort buffers, 24 bytes a triple, stay in a core's L2 cache), at most
# _CSR_MAX_BLOCKS of them (the scatter by row block writes to that many places).
cdef enum:
    _CSR_BLOCK_TRIPLES = 1 << 14
    _CSR_MAX_BLOCKS = 4096


cdef void _csr_count_chunk(const int* rows, const int* row_map, Py_ssize_t start,
                           Py_ssize_t stop, int shift, int64_t* counts) noexcept nogil:
    """Count the triples ``[start, stop)`` by row block (``row >> shift``)."""
    cdef Py_ssize_t p
    if row_map != NULL:
        for p in range(start, stop):
            if p + _AHEAD < stop:
                SKMF_PREFETCH(&row_map[rows[p + _AHEAD]])
            counts[row_map[rows[p]] >> shift] += 1
    else:
        for p in range(start, stop):
            counts[rows[p] >> shift] += 1


cdef void _csr_scatter_chunk(const int* rows, const int* cols, const real* values,
                             const int* row_map, const int* col_map,
                             Py_ssize_t start, Py_ssize_t stop, int shift, int64_t* offsets,
                             int* out_rows, int* out_cols, float* out_vals) noexcept nogil:
    """Write the triples ``[start, stop)`` (rows and columns mapped) where
    ``offsets`` says for their row block, stably."""
    cdef Py_ssize_t p, q, pos
    cdef int r, c
    for p in range(start, stop):
        if p + _AHEAD < stop:
            if row_map != NULL:
                SKMF_PREFETCH(&row_map[rows[p + _AHEAD]])
            if col_map != NULL:
                SKMF_PREFETCH(&col_map[cols[p + _AHEAD]])
        r = row_map[rows[p]] if row_map != NULL else rows[p]
        c = col_map[cols[p]] if col_map != NULL else cols[p]
        q = r >> shift
        pos = offsets[q]
        offsets[q] = pos + 1
        out_rows[pos] = r
        out_cols[pos] = c
        out_vals[pos] = <float>values[p]


cdef void _csr_sort_block(int* rows, int* cols, float* vals, Py_ssize_t m,
                          int lo, Py_ssize_t n_local, int64_t base, int64_t* indptr,
                          int* key_a, int* row_a, float* val_a,
                          int* key_b, int* row_b, float* val_b,
                          int64_t* hist, int n_digits, int digit_bits,
                          int64_t* cursor, int* last, int64_t* popularity,
                          int64_t* n_dup) noexcept nogil:
    """Sort the ``m`` triples of one row block (rows ``lo`` to ``lo + n_local``,
    stored from CSR position ``base``) in place into their CSR rows, columns
    sorted: a stable LSD radix sort by column (``n_digits`` digits of
    ``digit_bits``) through the thread's buffers, then a stable scatter by
    row.  Writes ``indptr[lo + 1 : lo + n_local + 1]``, counts the columns
    into ``popularity`` (when not NULL) and the repeated pairs into ``n_dup``."""
    cdef Py_ssize_t p, d, x, pos, lu, n_buckets = (<Py_ssize_t>1) << digit_bits
    cdef int mask = <int>(n_buckets - 1), k, shift
    cdef int64_t acc, c
    cdef int* tmp_k
    cdef int* tmp_r
    cdef float* tmp_v
    cdef bint skip
    for x in range(n_digits * n_buckets):
        hist[x] = 0
    for lu in range(n_local):
        cursor[lu] = 0
    for p in range(m):
        k = cols[p]
        lu = rows[p] - lo
        key_a[p] = k
        row_a[p] = <int>lu
        val_a[p] = vals[p]
        cursor[lu] += 1
        if popularity != NULL:
            popularity[k] += 1
        for d in range(n_digits):
            hist[d * n_buckets + ((k >> (d * digit_bits)) & mask)] += 1
    acc = 0
    for lu in range(n_local):
        c = cursor[lu]
        cursor[lu] = acc
        acc += c
        indptr[lo + lu + 1] = base + acc
        last[lu] = -1
    if _radix_passes(key_a, row_a, val_a, key_b, row_b, val_b, m, hist, n_digits,
                     digit_bits):
        tmp_k, tmp_r, tmp_v = key_a, row_a, val_a
        key_a, row_a, val_a = key_b, row_b, val_b
        key_b, row_b, val_b = tmp_k, tmp_r, tmp_v
    for p in range(m):
        lu = row_a[p]
        pos = cursor[lu]
        cursor[lu] = pos + 1
        k = key_a[p]
        if k == last[lu]:
            n_dup[0] += 1
        last[lu] = k
        cols[pos] = k
        vals[pos] = val_a[p]


def coo_to_csr(const int[::1] rows, const int[::1] cols, const real[::1] values,
               Py_ssize_t n_rows, Py_ssize_t n_cols, int n_threads,
               const int[::1] row_map=None, const int[::1] col_map=None,
               bint return_col_counts=False):
    """CSR arrays of the triples, column indices sorted and duplicates summed.

    Returns ``(indptr, indices, data)`` as int64, int32 and float32 arrays
    (``values`` is read as float32).  Duplicate (row, column) entries are
    summed in their input order.

    With ``row_map`` (``col_map``) the row of triple ``p`` is
    ``row_map[rows[p]]`` (the same for columns): codes stored in another
    numbering are read without a relabelled copy.  With
    ``return_col_counts`` a fourth array (int64, ``n_cols``) counts the
    triples of each column, duplicates included.

    A most-significant-digit radix sort in parallel: a stable scatter of the
    triples by row block (a power-of-two range of rows holding 16k to 32k
    triples) into the outputs and one int32 array of rows (the only
    temporary of the size of the triples), in chunks dynamically scheduled;
    then, row block by row block (in parallel, each in its own place of the
    outputs), a stable radix sort by column through a buffer per thread that
    stays in cache, and a stable scatter by row.  Small inputs (fewer than
    100,000 triples) and inputs whose largest row block would not stay in
    cache (more than an eighth of the triples) take two counting passes on
    one thread; the arrays are the same.
    """
    cdef Py_ssize_t n = rows.shape[0]
    cdef Py_ssize_t p, c, start, stop, chunk, n_chunks, b, nb, lo, hi, s, longest, widest
    cdef int shift = 0, tid, n_digits = 0, digit_bits = 1, bits = 0
    cdef const int* rmap = &row_map[0] if row_map is not None and row_map.shape[0] > 0 else NULL
    cdef const int* cmap = &col_map[0] if col_map is not None and col_map.shape[0] > 0 else NULL
    if cols.shape[0] != n or values.shape[0] != n:
        raise ValueError("rows, cols and values must have the same length.")
    if n >= 2**31 - 1:
        raise ValueError(f"At most 2**31 - 2 entries, got {n}.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000 or n_rows < 2:
        return _coo_to_csr_serial(rows, cols, values, n_rows, n_cols, n_threads,
                                  row_map, col_map, return_col_counts)
    # rows per block: the smallest power of two giving blocks of about
    # _CSR_BLOCK_TRIPLES triples, and at most _CSR_MAX_BLOCKS blocks
    while ((<int64_t>1 << shift) * n < <int64_t>n_rows * _CSR_BLOCK_TRIPLES
           or ((n_rows - 1) >> shift) + 1 > _CSR_MAX_BLOCKS):
        shift += 1
    nb = ((n_rows - 1) >> shift) + 1
    n_chunks = _n_chunks(n, n_threads)
    chunk = (n + n_chunks - 1) // n_chunks
    offsets_arr = np.zeros((n_chunks, nb), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    block_ptr_arr = np.zeros(nb + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] block_ptr = block_ptr_arr
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            start = c * chunk
            stop = min(start + chunk, n)
            _csr_count_chunk(&rows[0], rmap, start, stop, shift, &offsets[c, 0])
        _exclusive_offsets(offsets, block_ptr)
    longest = 0
    for b in range(nb):
        longest = max(longest, block_ptr[b + 1] - block_ptr[b])
    if longest > max(n // 8, 2 * _CSR_BLOCK_TRIPLES):
        # a few rows hold most triples: per-thread buffers of that size cost
        # more memory than the one-thread passes
        return _coo_to_csr_serial(rows, cols, values, n_rows, n_cols, n_threads,
                                  row_map, col_map, return_col_counts)
    widest = min(<Py_ssize_t>1 << shift, n_rows)
    while n_cols > 1 and (<int64_t>1 << bits) < n_cols:
        bits += 1
    if bits > 0:
        n_digits = (bits + _MAX_DIGIT_BITS - 1) // _MAX_DIGIT_BITS
        digit_bits = (bits + n_digits - 1) // n_digits
    indptr_arr = np.empty(n_rows + 1, dtype=np.int64)
    cdef int64_t[::1] indptr = indptr_arr
    indptr[0] = 0
    indices_arr = np.empty(n, dtype=np.int32)
    data_arr = np.empty(n, dtype=np.float32)
    by_row_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] indices = indices_arr
    cdef float[::1] data = data_arr
    cdef int[::1] by_row = by_row_arr
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            start = c * chunk
            stop = min(start + chunk, n)
            _csr_scatter_chunk(&rows[0], &cols[0], &values[0], rmap, cmap, start, stop, shift,
                               &offsets[c, 0], &by_row[0], &indices[0], &data[0])
    del offsets_arr
    key_arr = np.empty((n_threads, 2, max(longest, 1)), dtype=np.int32)
    row_arr = np.empty((n_threads, 2, max(longest, 1)), dtype=np.int32)
    val_arr = np.empty((n_threads, 2, max(longest, 1)), dtype=np.float32)
    hist_arr = np.empty((n_threads, max(n_digits, 1) << digit_bits), dtype=np.int64)
    cursor_arr = np.empty((n_threads, widest), dtype=np.int64)
    last_arr = np.empty((n_threads, widest), dtype=np.int32)
    pop_arr = np.zeros((n_threads, n_cols if return_col_counts else 1), dtype=np.int64)
    dup_arr = np.zeros(n_threads, dtype=np.int64)
    cdef int[:, :, ::1] key_buf = key_arr
    cdef int[:, :, ::1] row_buf = row_arr
    cdef float[:, :, ::1] val_buf = val_arr
    cdef int64_t[:, ::1] hist = hist_arr
    cdef int64_t[:, ::1] cursor = cursor_arr
    cdef int[:, ::1] last = last_arr
    cdef int64_t[:, ::1] pop = pop_arr
    cdef int64_t[::1] dup = dup_arr
    with nogil:
        for b in prange(nb, num_threads=n_threads, schedule="dynamic", chunksize=1):
            tid = threadid()
            s = block_ptr[b]
            lo = b << shift
            hi = min(lo + (<Py_ssize_t>1 << shift), n_rows)
            _csr_sort_block(&by_row[s], &indices[s], &data[s], block_ptr[b + 1] - s,
                            <int>lo, hi - lo, s, &indptr[0],
                            &key_buf[tid, 0, 0], &row_buf[tid, 0, 0], &val_buf[tid, 0, 0],
                            &key_buf[tid, 1, 0], &row_buf[tid, 1, 0], &val_buf[tid, 1, 0],
                            &hist[tid, 0], n_digits, digit_bits,
                            &cursor[tid, 0], &last[tid, 0],
                            &pop[tid, 0] if return_col_counts else NULL, &dup[tid])
    del by_row_arr, key_arr, row_arr, val_arr
    counts = ()
    if return_col_counts:
        counts = (pop_arr.sum(axis=0) if n_threads > 1 else pop_arr[0],)
    if dup_arr.sum() == 0:
        return (indptr_arr, indices_arr, data_arr) + counts
    write = _sum_duplicates(indptr_arr, indices_arr, data_arr)
    return (indptr_arr, indices_arr[:write].copy(), data_arr[:write].copy()) + counts


cdef int _bits(int64_t n) noexcept:
    """Bits that hold the values ``0 .. n - 1``."""
    cdef int b = 0
    while (<int64_t>1 << b) < n:
        b += 1
    return b


cdef void _group_scatter_chunk(const int* rows, const int* cols, const out_real* values,
                               const out_real* weights, Py_ssize_t start, Py_ssize_t stop,
                               int shift, int col_bits, int64_t* offsets, int* out_cols,
                               out_real* out_v, out_real* out_w) noexcept nogil:
    """Write the entries ``[start, stop)`` where ``offsets`` says for their
    row block (``row >> shift``), stably; the column is stored with the row
    inside the block above its ``col_bits`` bits (no array of rows)."""
    cdef Py_ssize_t p, q, pos
    cdef int r, local_mask = (1 << shift) - 1
    for p in range(start, stop):
        r = rows[p]
        q = r >> shift
        pos = offsets[q]
        offsets[q] = pos + 1
        out_cols[pos] = ((r & local_mask) << col_bits) | cols[p]
        out_v[pos] = values[p]
        if weights != NULL:
            out_w[pos] = weights[p]


cdef void _group_block(int* cols, out_real* vals, out_real* wts,
                       Py_ssize_t m, int lo, Py_ssize_t n_local, Py_ssize_t base,
                       Py_ssize_t* indptr, int* buf_c, out_real* buf_v, out_real* buf_w,
                       int64_t* cursor, int col_bits) noexcept nogil:
    """Group the ``m`` entries of one row block (rows ``lo`` to ``lo +
    n_local``, stored from position ``base``; the row inside the block is
    stored above the ``col_bits`` bits of the column) by row in place,
    stably, through the thread's buffers, leaving the bare columns; writes
    ``indptr[lo + 1 : lo + n_local + 1]``."""
    cdef Py_ssize_t p, lu, pos
    cdef int64_t acc = 0, c
    cdef int col_mask = (1 << col_bits) - 1, x
    for lu in range(n_local):
        cursor[lu] = 0
    for p in range(m):
        cursor[cols[p] >> col_bits] += 1
    for lu in range(n_local):
        c = cursor[lu]
        cursor[lu] = acc
        acc += c
        indptr[lo + lu + 1] = base + acc
    memcpy(buf_c, cols, m * sizeof(int))
    memcpy(buf_v, vals, m * sizeof(out_real))
    if wts != NULL:
        memcpy(buf_w, wts, m * sizeof(out_real))
    for p in range(m):
        x = buf_c[p]
        lu = x >> col_bits
        pos = cursor[lu]
        cursor[lu] = pos + 1
        cols[pos] = x & col_mask
        vals[pos] = buf_v[p]
        if wts != NULL:
            wts[pos] = buf_w[p]


def group_by_row(const int[::1] rows, const int[::1] cols, const out_real[::1] values,
                 const out_real[::1] weights, Py_ssize_t n_rows, int n_threads):
    """Entries ``(rows[j], cols[j], values[j], weights[j])`` grouped by row, stably.

    Returns ``(indptr, indices, values, weights)`` (intp, int32 and the dtype
    of ``values``; ``weights`` empty when given empty): the arrays of
    ``counting_order`` followed by gathers, written directly.

    A two-digit radix sort in parallel, as :func:`coo_to_csr`: a stable
    scatter by row block (a power-of-two range of rows holding 16k to 32k
    entries) into the outputs (the row inside its block stored above the
    bits of the column: no temporary of the size of the entries), in
    dynamically scheduled chunks; then, row block by row block in parallel, a stable
    counting sort by row through a buffer per thread that stays in cache.
    Small inputs and inputs whose largest row block holds more than an
    eighth of the entries take one counting pass by row instead (a histogram
    per thread over its slice, then a scatter); the arrays are the same.
    """
    cdef Py_ssize_t n = rows.shape[0]
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t c, b, nb, start, stop, chunk, n_chunks, s, lo, hi, longest, widest
    cdef int shift = 0, tid, col_bits
    if n >= 2**31 - 1:
        raise ValueError(f"At most 2**31 - 2 entries, got {n}.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000 or n_rows < 2:
        return _group_by_row_one_pass(rows, cols, values, weights, n_rows, n_threads)
    while ((<int64_t>1 << shift) * n < <int64_t>n_rows * _CSR_BLOCK_TRIPLES
           or ((n_rows - 1) >> shift) + 1 > _CSR_MAX_BLOCKS):
        shift += 1
    nb = ((n_rows - 1) >> shift) + 1
    n_chunks = _n_chunks(n, n_threads)
    chunk = (n + n_chunks - 1) // n_chunks
    offsets_arr = np.zeros((n_chunks, nb), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    block_ptr_arr = np.zeros(nb + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] block_ptr = block_ptr_arr
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            start = c * chunk
            stop = min(start + chunk, n)
            _csr_count_chunk(&rows[0], NULL, start, stop, shift, &offsets[c, 0])
        _exclusive_offsets(offsets, block_ptr)
    longest = 0
    for b in range(nb):
        longest = max(longest, block_ptr[b + 1] - block_ptr[b])
    col_bits = _bits(int(np.asarray(cols).max()) + 1)
    if longest > max(n // 8, 2 * _CSR_BLOCK_TRIPLES) or col_bits + shift > 31:
        # a few rows hold most entries, or a column and a row inside a block
        # do not share an int32
        return _group_by_row_one_pass(rows, cols, values, weights, n_rows, n_threads)
    widest = min(<Py_ssize_t>1 << shift, n_rows)
    dtype = np.asarray(values).dtype
    indptr_arr = np.empty(n_rows + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] indptr = indptr_arr
    indptr[0] = 0
    indices_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] indices = indices_arr
    values_arr = np.empty(n, dtype=dtype)
    cdef out_real[::1] out_v = values_arr
    weights_arr = np.empty(n if weighted else 0, dtype=dtype)
    cdef out_real[::1] out_w = weights_arr
    cdef const out_real* w_in = &weights[0] if weighted else NULL
    cdef out_real* w_out = &out_w[0] if weighted else NULL
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            start = c * chunk
            stop = min(start + chunk, n)
            _group_scatter_chunk(&rows[0], &cols[0], &values[0], w_in, start, stop, shift,
                                 col_bits, &offsets[c, 0], &indices[0], &out_v[0], w_out)
    del offsets_arr
    buf_c_arr = np.empty((n_threads, max(longest, 1)), dtype=np.int32)
    buf_v_arr = np.empty((n_threads, max(longest, 1)), dtype=dtype)
    buf_w_arr = np.empty((n_threads, max(longest, 1) if weighted else 1), dtype=dtype)
    cursor_arr = np.empty((n_threads, widest), dtype=np.int64)
    cdef int[:, ::1] buf_c = buf_c_arr
    cdef out_real[:, ::1] buf_v = buf_v_arr
    cdef out_real[:, ::1] buf_w = buf_w_arr
    cdef int64_t[:, ::1] cursor = cursor_arr
    with nogil:
        for b in prange(nb, num_threads=n_threads, schedule="dynamic", chunksize=1):
            tid = threadid()
            s = block_ptr[b]
            lo = b << shift
            hi = min(lo + (<Py_ssize_t>1 << shift), n_rows)
            _group_block(&indices[s], &out_v[s], (w_out + s) if weighted else NULL,
                         block_ptr[b + 1] - s, <int>lo, hi - lo, s, &indptr[0],
                         &buf_c[tid, 0], &buf_v[tid, 0], &buf_w[tid, 0], &cursor[tid, 0],
                         col_bits)
    return indptr_arr, indices_arr, values_arr, weights_arr


def _group_by_row_one_pass(const int[::1] rows, const int[::1] cols, const out_real[::1] values,
                 const out_real[::1] weights, Py_ssize_t n_rows, int n_threads):
    """The one-pass :func:`group_by_row` (a histogram per thread over its
    slice, then a scatter), for small or very skewed inputs; the same arrays."""
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
    of the row-major entries by column), without a permutation.

    A two-digit radix sort in parallel, as :func:`group_by_row`: a stable
    scatter by column block (a power-of-two range of columns holding 16k to
    32k entries) from ranges of rows in dynamically scheduled chunks (the
    column inside its block stored above the bits of the row: no temporary
    of the size of the entries); then, column block by
    column block, a stable counting sort by column in cache.  Small or very
    skewed inputs take one counting pass by column (the same arrays).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, n = indices.shape[0]
    cdef bint weighted = weights.shape[0] > 0
    cdef Py_ssize_t c, b, nb, r, p, q, pos, s, lo, hi, n_chunks, longest, widest
    cdef int shift = 0, tid, key, row_bits, local_mask
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000 or n_cols < 2:
        return _transpose_rows_one_pass(indptr, indices, values, weights, n_cols, n_threads)
    while ((<int64_t>1 << shift) * n < <int64_t>n_cols * _CSR_BLOCK_TRIPLES
           or ((n_cols - 1) >> shift) + 1 > _CSR_MAX_BLOCKS):
        shift += 1
    nb = ((n_cols - 1) >> shift) + 1
    n_chunks = _n_chunks(n, n_threads)
    # chunk c: the rows [bounds[c], bounds[c + 1]) (about n / n_chunks entries)
    bounds_arr = np.searchsorted(np.asarray(indptr), np.arange(n_chunks + 1) * (n / n_chunks))
    bounds_arr[0], bounds_arr[-1] = 0, n_rows
    cdef Py_ssize_t[::1] bounds = bounds_arr.astype(np.intp)
    offsets_arr = np.zeros((n_chunks, nb), dtype=np.int64)
    cdef int64_t[:, ::1] offsets = offsets_arr
    block_ptr_arr = np.zeros(nb + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] block_ptr = block_ptr_arr
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            for p in range(indptr[bounds[c]], indptr[bounds[c + 1]]):
                offsets[c, indices[p] >> shift] += 1
        _exclusive_offsets(offsets, block_ptr)
    longest = 0
    for b in range(nb):
        longest = max(longest, block_ptr[b + 1] - block_ptr[b])
    row_bits = _bits(n_rows)
    if longest > max(n // 8, 2 * _CSR_BLOCK_TRIPLES) or row_bits + shift > 31:
        return _transpose_rows_one_pass(indptr, indices, values, weights, n_cols, n_threads)
    local_mask = (1 << shift) - 1
    widest = min(<Py_ssize_t>1 << shift, n_cols)
    dtype = np.asarray(values).dtype
    out_ptr_arr = np.empty(n_cols + 1, dtype=np.intp)
    cdef Py_ssize_t[::1] out_ptr = out_ptr_arr
    out_ptr[0] = 0
    out_idx_arr = np.empty(n, dtype=np.int32)
    cdef int[::1] out_idx = out_idx_arr
    values_arr = np.empty(n, dtype=dtype)
    cdef out_real[::1] out_v = values_arr
    weights_arr = np.empty(n if weighted else 0, dtype=dtype)
    cdef out_real[::1] out_w = weights_arr
    cdef out_real* w_out = &out_w[0] if weighted else NULL
    with nogil:
        for c in prange(n_chunks, num_threads=n_threads, schedule="dynamic", chunksize=1):
            for r in range(bounds[c], bounds[c + 1]):
                for p in range(indptr[r], indptr[r + 1]):
                    key = indices[p]
                    q = key >> shift
                    pos = offsets[c, q]
                    offsets[c, q] = pos + 1
                    # the column inside the block above the row's bits
                    out_idx[pos] = ((key & local_mask) << row_bits) | <int>r
                    out_v[pos] = values[p]
                    if weighted:
                        out_w[pos] = weights[p]
    del offsets_arr
    buf_c_arr = np.empty((n_threads, max(longest, 1)), dtype=np.int32)
    buf_v_arr = np.empty((n_threads, max(longest, 1)), dtype=dtype)
    buf_w_arr = np.empty((n_threads, max(longest, 1) if weighted else 1), dtype=dtype)
    cursor_arr = np.empty((n_threads, widest), dtype=np.int64)
    cdef int[:, ::1] buf_c = buf_c_arr
    cdef out_real[:, ::1] buf_v = buf_v_arr
    cdef out_real[:, ::1] buf_w = buf_w_arr
    cdef int64_t[:, ::1] cursor = cursor_arr
    with nogil:
        for b in prange(nb, num_threads=n_threads, schedule="dynamic", chunksize=1):
            tid = threadid()
            s = block_ptr[b]
            lo = b << shift
            hi = min(lo + (<Py_ssize_t>1 << shift), n_cols)
            _group_block(&out_idx[s], &out_v[s], (w_out + s) if weighted else NULL,
                         block_ptr[b + 1] - s, <int>lo, hi - lo, s, &out_ptr[0],
                         &buf_c[tid, 0], &buf_v[tid, 0], &buf_w[tid, 0], &cursor[tid, 0],
                         row_bits)
    return out_ptr_arr, out_idx_arr, values_arr, weights_arr


def _transpose_rows_one_pass(const Py_ssize_t[::1] indptr, const int[::1] indices,
                   const out_real[::1] values, const out_real[::1] weights,
                   Py_ssize_t n_cols, int n_threads):
    """The one-pass :func:`transpose_rows` (a histogram per thread over its
    range of rows, then a scatter), for small or very skewed inputs; the same
    arrays."""
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


ctypedef fused id_int:
    int
    int64_t


def id_range(const id_int[::1] values, int n_threads):
    """``(values.min(), values.max())`` of a non-empty array, in one parallel pass.

    Each thread scans its own contiguous slice; the result is exact (integers).
    """
    cdef Py_ssize_t n = values.shape[0], t, p, start, stop, chunk
    cdef id_int lo, hi, v
    if n == 0:
        raise ValueError("id_range of an empty array.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 1_000_000:
        n_threads = 1
    chunk = (n + n_threads - 1) // n_threads
    dtype = np.int32 if id_int is int else np.int64
    lo_arr = np.empty(n_threads, dtype=dtype)
    hi_arr = np.empty(n_threads, dtype=dtype)
    cdef id_int[::1] los = lo_arr
    cdef id_int[::1] his = hi_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            lo = values[start if start < n else n - 1]
            hi = lo
            for p in range(start, stop):
                v = values[p]
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
            los[t] = lo
            his[t] = hi
    return int(lo_arr.min()), int(hi_arr.max())


def id_presence(const id_int[::1] values, int64_t lo, Py_ssize_t span, int n_threads):
    """Which of the ids ``lo .. lo + span - 1`` occur in ``values`` (all in that
    range), and how many distinct ones: ``(present, n_present)`` with
    ``present`` a bool array of length ``span``.

    ``present[values - lo] = True`` in one parallel pass (threads write the
    same value ``True``, so their order does not matter), then a count.
    """
    cdef Py_ssize_t n = values.shape[0], t, p, start, stop, chunk
    cdef int64_t total = 0
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 1_000_000:
        n_threads = 1
    chunk = (n + n_threads - 1) // n_threads
    present_arr = np.zeros(span, dtype=np.uint8)
    cdef unsigned char[::1] present = present_arr
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * chunk
            stop = min(start + chunk, n)
            for p in range(start, stop):
                # written once: afterwards the line is only read, so the two
                # threads' caches share it instead of passing it back and forth
                if present[<Py_ssize_t>(values[p] - lo)] == 0:
                    present[<Py_ssize_t>(values[p] - lo)] = 1
        for p in prange(span, num_threads=n_threads, schedule="static"):
            total += present[p]
    return present_arr.view(bool), int(total)


def split_columns(const id_int[:, ::1] X, int n_threads):
    """Columns 0 and 1 of a C-contiguous ``(n, m)`` table (``m >= 2``) as two
    new contiguous arrays, in one parallel pass (``X[:, 0].copy()``,
    ``X[:, 1].copy()``)."""
    cdef Py_ssize_t n = X.shape[0], p
    if X.shape[1] < 2:
        raise ValueError("split_columns needs at least two columns.")
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 1_000_000:
        n_threads = 1
    dtype = np.int32 if id_int is int else np.int64
    a_arr = np.empty(n, dtype=dtype)
    b_arr = np.empty(n, dtype=dtype)
    cdef id_int[::1] a = a_arr
    cdef id_int[::1] b = b_arr
    with nogil:
        for p in prange(n, num_threads=n_threads, schedule="static"):
            a[p] = X[p, 0]
            b[p] = X[p, 1]
    return a_arr, b_arr


def finite_float64(const real[::1] y, int n_threads):
    """``(y.astype(np.float64), number of NaN or infinite values)`` in one
    parallel pass."""
    cdef Py_ssize_t n = y.shape[0], p
    cdef int64_t n_bad = 0
    cdef double v
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 1_000_000:
        n_threads = 1
    out_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_arr
    with nogil:
        for p in prange(n, num_threads=n_threads, schedule="static"):
            v = <double>y[p]
            out[p] = v
            # v - v is 0 for a finite v, NaN for NaN and inf
            if v - v != 0.0:
                n_bad += 1
    return out_arr, int(n_bad)


cdef extern from *:
    """
    static inline int skmf_flag_set(const volatile unsigned char* p) { return *p != 0; }
    """
    bint skmf_flag_set(const unsigned char* p) noexcept nogil


cdef enum:
    # bytes between two writes of touch_pages (the smallest page); the stop
    # flag is read every _TOUCH_CHECK of them (a 2 MB huge page)
    _PAGE_BYTES = 4096
    _TOUCH_CHECK = 512


def touch_pages(arrays, const unsigned char[::1] stop):
    """Write a zero into every page of each of the C-contiguous ``arrays``,
    in order, until ``stop[0]`` becomes non-zero (set by another thread).

    A new NumPy array of ``n`` bytes is mapped to memory at its first write,
    page by page, at about 1 GB/s per core here (the kernel clears each
    page): ``fit`` touches the arrays it will fill later on a core that
    would otherwise wait (on the factors' draws), so that the kernel that
    fills them runs at memory speed.  The contents are not meaningful
    afterwards (some bytes are zero).  Returns the number of bytes touched
    (from the start of the first array on).
    """
    cdef unsigned char* p
    cdef Py_ssize_t n, off, k, done = 0
    cdef bint stopped = False
    for a in arrays:
        if stopped:
            break
        a = np.asarray(a)
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError("touch_pages needs writeable C-contiguous arrays.")
        n = a.nbytes
        if n == 0:
            continue
        p = <unsigned char*><Py_ssize_t>a.ctypes.data
        with nogil:
            off = 0
            k = 0
            while off < n:
                if k == 0 and skmf_flag_set(&stop[0]):
                    stopped = True
                    break
                p[off] = 0
                off += _PAGE_BYTES
                k += 1
                if k == _TOUCH_CHECK:
                    k = 0
            done += off if off < n else n
    return done


def count_nonfinite(const real[::1] y, int n_threads):
    """The number of NaN or infinite values of ``y``, in one parallel pass
    (:func:`finite_float64` without the float64 copy)."""
    cdef Py_ssize_t n = y.shape[0], p
    cdef int64_t n_bad = 0
    cdef double v
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 1_000_000:
        n_threads = 1
    with nogil:
        for p in prange(n, num_threads=n_threads, schedule="static"):
            v = <double>y[p]
            if v - v != 0.0:
                n_bad += 1
    return int(n_bad)


cdef double _pairwise_sum(const real* a, Py_ssize_t n) noexcept nogil:
    """NumPy's pairwise summation of ``n`` values in float64 (the order of
    ``np.add.reduce`` over a contiguous float64 array: blocks of up to 128
    values in eight accumulators, halves split at a multiple of 8), so that
    the sum of float32 values equals that of their float64 copy bit for bit."""
    cdef Py_ssize_t i, n2
    cdef double res, r0, r1, r2, r3, r4, r5, r6, r7
    if n < 8:
        res = 0.0
        for i in range(n):
            res += <double>a[i]
        return res
    if n <= 128:
        r0 = <double>a[0]
        r1 = <double>a[1]
        r2 = <double>a[2]
        r3 = <double>a[3]
        r4 = <double>a[4]
        r5 = <double>a[5]
        r6 = <double>a[6]
        r7 = <double>a[7]
        i = 8
        while i < n - (n % 8):
            r0 += <double>a[i]
            r1 += <double>a[i + 1]
            r2 += <double>a[i + 2]
            r3 += <double>a[i + 3]
            r4 += <double>a[i + 4]
            r5 += <double>a[i + 5]
            r6 += <double>a[i + 6]
            r7 += <double>a[i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += <double>a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


def float64_sum(const real[::1] y, int n_threads):
    """``float(np.add.reduce(y.astype(np.float64)))`` without the copy: the
    same pairwise order, so the same bits (the two top halves on two
    threads)."""
    cdef Py_ssize_t n = y.shape[0], n2, h
    cdef double[2] halves
    if n == 0:
        return 0.0
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n <= 128 or n < 1_000_000 or n_threads < 2:
        with nogil:
            halves[0] = _pairwise_sum(&y[0], n)
        return halves[0]
    n2 = n // 2
    n2 -= n2 % 8
    with nogil:
        for h in prange(2, num_threads=2, schedule="static", chunksize=1):
            if h == 0:
                halves[0] = _pairwise_sum(&y[0], n2)
            else:
                halves[1] = _pairwise_sum(&y[n2], n - n2)
    return halves[0] + halves[1]


def _row_bytes(a, name):
    a = np.asarray(a)
    if a.ndim != 2 or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous 2-d array.")
    return a, a.shape[1] * a.itemsize


def take_rows(src, const Py_ssize_t[::1] order, int n_threads):
    """``src[order]`` for a C-contiguous 2-d ``src`` (row ``j`` of the result
    is row ``order[j]``), the rows copied in parallel.  Raises if an entry of
    ``order`` is out of range."""
    src, row = _row_bytes(src, "src")
    cdef Py_ssize_t n = order.shape[0], m = src.shape[0], j, rb = row
    cdef int64_t n_bad = 0
    out = np.empty((n, src.shape[1]), dtype=src.dtype)
    if n == 0 or rb == 0:
        return out
    cdef const char* s = <const char*><Py_ssize_t>src.ctypes.data
    cdef char* d = <char*><Py_ssize_t>out.ctypes.data
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    with nogil:
        for j in prange(n, num_threads=n_threads, schedule="static"):
            if order[j] < 0 or order[j] >= m:
                n_bad += 1
            else:
                memcpy(d + j * rb, s + order[j] * rb, rb)
    if n_bad:
        raise IndexError(f"{n_bad} entries of order are outside 0..{m - 1}.")
    return out


def put_rows(dst, const Py_ssize_t[::1] order, src, int n_threads):
    """``dst[order] = src`` for C-contiguous 2-d arrays of one dtype (row
    ``order[j]`` of ``dst`` receives row ``j`` of ``src``; ``order`` without
    repeats), the rows copied in parallel."""
    dst, row = _row_bytes(dst, "dst")
    src, row2 = _row_bytes(src, "src")
    if dst.dtype != src.dtype or row != row2 or src.shape[0] != order.shape[0]:
        raise ValueError("src must have dst's dtype and columns and one row per order entry.")
    if not dst.flags.writeable:
        raise ValueError("dst must be writeable.")
    cdef Py_ssize_t n = order.shape[0], m = dst.shape[0], j, rb = row
    cdef int64_t n_bad = 0
    if n == 0 or rb == 0:
        return
    cdef const char* s = <const char*><Py_ssize_t>src.ctypes.data
    cdef char* d = <char*><Py_ssize_t>dst.ctypes.data
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n < 100_000:
        n_threads = 1
    with nogil:
        for j in prange(n, num_threads=n_threads, schedule="static"):
            if order[j] < 0 or order[j] >= m:
                n_bad += 1
            else:
                memcpy(d + order[j] * rb, s + j * rb, rb)
    if n_bad:
        raise IndexError(f"{n_bad} entries of order are outside 0..{m - 1}.")
