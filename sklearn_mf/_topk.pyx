"""Batched top-k selection with per-row exclusion lists.

The caller computes a dense block of scores (rows = users or query items,
columns = candidate items) with a BLAS matrix product; this kernel masks each
row's excluded items (given as CSR rows in *item* space, mapped to candidate
columns through ``item_to_cand``) and keeps the ``k`` best columns of every row
with a min-heap, in parallel over rows.  Ties are broken towards the lower
column index, so results are deterministic.

:func:`topk_product` fuses the product with the selection for large
catalogues: each thread computes a tile of scores (a few dozen rows by a few
thousand candidates, sized to stay in its L2 cache) with one single-threaded
BLAS ``gemm`` and feeds it to the rows' heaps at once, so the dense score
matrix is never written to memory.  It returns exactly what the product
followed by :func:`topk_rows` returns.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm, sgemm

from sklearn_mf._heap cimport heap_finish, heap_push
from sklearn_mf._openmp cimport omp_get_max_threads

ctypedef fused floating:
    float
    double


cdef inline void _heap_feed(floating* row, Py_ssize_t n_cols, Py_ssize_t col0, Py_ssize_t k,
                            floating* out_s, Py_ssize_t* out_i, Py_ssize_t* size_p) noexcept nogil:
    """Offer columns ``col0 .. col0 + n_cols - 1`` (values ``row``) to a heap of ``*size_p``."""
    cdef Py_ssize_t c, size = size_p[0]
    cdef floating s
    for c in range(col0, col0 + n_cols):
        s = row[c - col0]
        if s == -INFINITY or s != s:
            continue
        heap_push(out_s, out_i, &size, k, s, c)
    size_p[0] = size


cdef void _topk_row(floating* row, Py_ssize_t n_cols, Py_ssize_t k,
                    floating* out_s, Py_ssize_t* out_i) noexcept nogil:
    cdef Py_ssize_t size = 0
    _heap_feed(row, n_cols, 0, k, out_s, out_i, &size)
    heap_finish(size, k, out_s, out_i)


def topk_rows(floating[:, ::1] scores,
              const int[::1] excl_indptr,
              const int[::1] excl_indices,
              const Py_ssize_t[::1] row_map,
              const Py_ssize_t[::1] item_to_cand,
              floating[:, ::1] out_scores,
              Py_ssize_t[:, ::1] out_idx,
              int n_threads):
    """Top-k columns of every row of ``scores``, best first.

    ``scores`` is overwritten (excluded entries set to -inf).  Row ``r`` excludes
    the items ``excl_indices[excl_indptr[row_map[r]]:excl_indptr[row_map[r]+1]]``
    (nothing when ``row_map[r] < 0``); an item maps to candidate column
    ``item_to_cand[item]`` (-1 when it is not a candidate).  Entries that are
    -inf or NaN are never returned; rows with fewer than k valid columns are
    padded with index -1 and score -inf.
    """
    cdef Py_ssize_t n_rows = scores.shape[0], n_cols = scores.shape[1]
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t r, p, c, u
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic", chunksize=16):
            u = row_map[r]
            if u >= 0:
                for p in range(excl_indptr[u], excl_indptr[u + 1]):
                    c = item_to_cand[excl_indices[p]]
                    if c >= 0:
                        scores[r, c] = -INFINITY
            _topk_row(&scores[r, 0], n_cols, k, &out_scores[r, 0], &out_idx[r, 0])


# score tiles of _TILE_ROWS x _TILE_COLS: 512 KiB of float32 per thread
cdef enum:
    _TILE_ROWS = 64
    _TILE_COLS = 2048
    # columns screened at once against a full heap's worst kept score
    _SCREEN = 32


cdef inline void _feed_screened(floating* row, Py_ssize_t n_cols, Py_ssize_t col0,
                                Py_ssize_t k, floating* out_s, Py_ssize_t* out_i,
                                Py_ssize_t* size_p) noexcept nogil:
    """:func:`_heap_feed`, skipping runs of ``_SCREEN`` columns that cannot enter.

    Once the heap is full, a column enters only if its score is at least the
    worst kept one (``out_s[0]``); a run where none is (a vectorised compare,
    false for NaN) is skipped, so most of a large catalogue costs one compare
    per score.  The heap sees the same columns in the same order otherwise.
    """
    cdef Py_ssize_t c0 = 0, m, c
    cdef floating thr
    cdef int hit
    while c0 < n_cols:
        m = n_cols - c0
        if m > _SCREEN:
            m = _SCREEN
        if size_p[0] >= k and k > 0:
            thr = out_s[0]
            hit = 0
            for c in range(c0, c0 + m):
                hit = hit | (row[c] >= thr)
            if not hit:
                c0 = c0 + m
                continue
        _heap_feed(row + c0, m, col0 + c0, k, out_s, out_i, size_p)
        c0 = c0 + m


cdef inline void _gemm_tile(const floating* V, const floating* U, int n_cols, int n_rows,
                            int k, floating* C) noexcept nogil:
    """Row-major C (n_rows, n_cols) = U (n_rows, k) @ V (n_cols, k).T, by one BLAS call."""
    cdef char transa = b"T"
    cdef char transb = b"N"
    cdef floating one = 1.0, zero = 0.0
    # column-major view: C^T (n_cols x n_rows) = V (k x n_cols)^T @ U^T (k x n_rows)
    if floating is float:
        sgemm(&transa, &transb, &n_cols, &n_rows, &k, &one, <float*>V, &k,
              <float*>U, &k, &zero, <float*>C, &n_cols)
    else:
        dgemm(&transa, &transb, &n_cols, &n_rows, &k, &one, <double*>V, &k,
              <double*>U, &k, &zero, <double*>C, &n_cols)


def topk_product(const floating[:, ::1] U, const floating[:, ::1] V,
                 const double[::1] col_offset, const double[::1] row_offset,
                 const int[::1] excl_indptr,
                 const int[::1] excl_indices,
                 const Py_ssize_t[::1] row_map,
                 const Py_ssize_t[::1] item_to_cand,
                 floating[:, ::1] out_scores,
                 Py_ssize_t[:, ::1] out_idx,
                 int n_threads, bint sorted_exclusions=False):
    """Top-k columns of every row of ``U @ V.T + col_offset + row_offset[:, None]``.

    The same result as computing the scores (in ``floating``; each offset is
    added in double precision and rounded back, as NumPy does for an offset of
    a wider type) and calling :func:`topk_rows` on them with the same
    exclusion lists, without materialising the scores.  An empty
    ``col_offset`` / ``row_offset`` means no offset.  Call it with BLAS limited
    to one thread (every OpenMP thread runs its own ``gemm``).

    ``sorted_exclusions`` promises that every exclusion row is sorted and
    that ``item_to_cand`` increases over the items it maps (candidates in item
    order): each row then walks its exclusions once across the column tiles
    (O(nnz + tiles)) instead of scanning them all for every tile.
    """
    cdef Py_ssize_t n_rows = U.shape[0], n_cols = V.shape[0]
    cdef int kdim = <int>U.shape[1]
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t n_tiles = (n_rows + _TILE_ROWS - 1) // _TILE_ROWS
    cdef bint has_col = col_offset.shape[0] > 0, has_row = row_offset.shape[0] > 0
    cdef Py_ssize_t n_col_tiles = (n_cols + _TILE_COLS - 1) // _TILE_COLS
    cdef Py_ssize_t tile, r0, rt, j, c0, ct, r, c, p, u
    cdef floating* buf
    cdef floating* row
    cdef Py_ssize_t* sizes
    cdef Py_ssize_t* cursor
    cdef Py_ssize_t end
    cdef double ro
    if n_threads < 1:
        n_threads = omp_get_max_threads()
    if n_rows == 0:
        return
    with nogil, parallel(num_threads=n_threads):
        buf = <floating*>malloc(_TILE_ROWS * _TILE_COLS * sizeof(floating))
        sizes = <Py_ssize_t*>malloc(2 * _TILE_ROWS * sizeof(Py_ssize_t))
        cursor = sizes + _TILE_ROWS
        try:
            for tile in prange(n_tiles, schedule="dynamic", chunksize=1):
                r0 = tile * _TILE_ROWS
                rt = min(<Py_ssize_t>_TILE_ROWS, n_rows - r0)
                for r in range(rt):
                    sizes[r] = 0
                    u = row_map[r0 + r]
                    cursor[r] = excl_indptr[u] if u >= 0 else 0
                for j in range(n_col_tiles):
                    c0 = j * _TILE_COLS
                    ct = min(<Py_ssize_t>_TILE_COLS, n_cols - c0)
                    _gemm_tile(&V[c0, 0], &U[r0, 0], <int>ct, <int>rt, kdim, buf)
                    for r in range(rt):
                        row = buf + r * ct
                        if has_col:
                            for c in range(ct):
                                row[c] = <floating>(<double>row[c] + col_offset[c0 + c])
                        if has_row:
                            ro = row_offset[r0 + r]
                            for c in range(ct):
                                row[c] = <floating>(<double>row[c] + ro)
                        u = row_map[r0 + r]
                        if u >= 0 and sorted_exclusions:
                            # this tile's exclusions follow the previous tiles'
                            p = cursor[r]
                            end = excl_indptr[u + 1]
                            while p < end:
                                c = item_to_cand[excl_indices[p]]
                                if c >= c0 + ct:
                                    break
                                if c >= c0:
                                    row[c - c0] = -INFINITY
                                p = p + 1
                            cursor[r] = p
                        elif u >= 0:
                            for p in range(excl_indptr[u], excl_indptr[u + 1]):
                                c = item_to_cand[excl_indices[p]]
                                if c0 <= c < c0 + ct:
                                    row[c - c0] = -INFINITY
                        _feed_screened(row, ct, c0, k, &out_scores[r0 + r, 0],
                                       &out_idx[r0 + r, 0], &sizes[r])
                for r in range(rt):
                    heap_finish(sizes[r], k, &out_scores[r0 + r, 0], &out_idx[r0 + r, 0])
        finally:
            free(buf)
            free(sizes)
