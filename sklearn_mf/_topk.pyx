"""Batched top-k selection with per-row exclusion lists.

The caller computes a dense block of scores (rows = users or query items,
columns = candidate items) with a BLAS matrix product; this kernel masks each
row's excluded items (given as CSR rows in *item* space, mapped to candidate
columns through ``item_to_cand``) and keeps the ``k`` best columns of every row
with a min-heap, in parallel over rows.  Ties are broken towards the lower
column index, so results are deterministic.
"""

from cython.parallel cimport prange
from libc.math cimport INFINITY

from sklearn_mf._openmp cimport omp_get_max_threads

ctypedef fused floating:
    float
    double


cdef inline bint _worse(floating s1, Py_ssize_t c1, floating s2, Py_ssize_t c2) noexcept nogil:
    """True if (s1, c1) ranks below (s2, c2)."""
    return s1 < s2 or (s1 == s2 and c1 > c2)


cdef inline void _sift_down(floating* hs, Py_ssize_t* hi, Py_ssize_t size,
                            Py_ssize_t pos) noexcept nogil:
    # min-heap on rank: the root is the worst of the kept entries
    cdef Py_ssize_t child
    cdef floating ts = hs[pos]
    cdef Py_ssize_t ti = hi[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _worse(hs[child + 1], hi[child + 1], hs[child], hi[child]):
            child += 1
        if _worse(hs[child], hi[child], ts, ti):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = ts
    hi[pos] = ti


cdef void _topk_row(floating* row, Py_ssize_t n_cols, Py_ssize_t k,
                    floating* out_s, Py_ssize_t* out_i) noexcept nogil:
    cdef Py_ssize_t c, size = 0, j, end
    cdef floating s, ts
    cdef Py_ssize_t ti
    for c in range(n_cols):
        s = row[c]
        if s == -INFINITY or s != s:
            continue
        if size < k:
            # insert and sift up
            j = size
            size += 1
            while j > 0 and _worse(s, c, out_s[(j - 1) // 2], out_i[(j - 1) // 2]):
                out_s[j] = out_s[(j - 1) // 2]
                out_i[j] = out_i[(j - 1) // 2]
                j = (j - 1) // 2
            out_s[j] = s
            out_i[j] = c
        elif _worse(out_s[0], out_i[0], s, c):
            out_s[0] = s
            out_i[0] = c
            _sift_down(out_s, out_i, size, 0)
    # heap sort in place: repeatedly move the worst kept entry to the end
    end = size
    while end > 1:
        end -= 1
        ts = out_s[0]
        ti = out_i[0]
        out_s[0] = out_s[end]
        out_i[0] = out_i[end]
        out_s[end] = ts
        out_i[end] = ti
        _sift_down(out_s, out_i, end, 0)
    for c in range(size, k):
        out_s[c] = -INFINITY
        out_i[c] = -1


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
