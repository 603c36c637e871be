# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kernels of the neighbourhood models (ItemKNN, UserKNN) and EASE.

All matrices are CSR triplets (``indptr``, ``indices``, ``data``) with sorted
column indices; the Python side builds them, these loops only compute, without
the GIL and in parallel over rows (OpenMP).

``topk_similarities``
    For each query row q, the dot products with every candidate, accumulated
    sparsely through the transposed candidate matrix (a dense accumulator of
    one row per thread, never the dense candidates x candidates matrix), turned
    into cosine similarities with shrinkage and pruned to the best ``k``
    positive ones: rows reaching many candidates with a min-heap (seeded with
    a lower bound of the k-th best from block maxima), rows reaching few by a
    quickselect of the same k (``_heap.pxd``'s ``heap_select``).
``sparse_rows_dot``
    Dense rows of ``A[rows] @ B`` for sparse A and B (scores of users from
    their history and a sparse similarity matrix; EASE's Gram matrix), with
    the optional sum of absolute weights of the neighbours that contributed
    (the denominator of the kNN rating estimate).
``sparse_rows_dense``
    Dense rows of ``A[rows] @ B`` for sparse A and dense B (EASE's scores).
``gram_lower`` / ``ease_from_inverse``
    EASE's fit around LAPACK: the lower triangle of the Gram matrix
    ``X^T X``, then the weights ``-P / diag(P)`` (symmetrised, zero diagonal)
    in one tiled in-place pass over the lower triangle of the inverse ``P``.
``pair_dots``
    ``A[a] . B[b]`` for a list of row pairs by merging two sorted index lists
    (``predict`` for given (user, item) rows).
``history_topk_rows`` / ``history_topk_pairs``
    The history-side neighbourhood (``n_history_neighbors``, the LensKit /
    Surprise semantics): a target's score sums only over the ``k`` references
    of the user (items of the history, or neighbour users who have the item)
    most similar to it; a bounded min-heap per target, filled reference by
    reference, in per-thread buffers.
``topk_pearson_baseline``
    Top-k of Surprise's shrunk Pearson-baseline similarity (norms over the
    common features, shrinkage ``(n - 1) / (n - 1 + h)``).
"""

from cython.parallel cimport parallel, prange
from libc.math cimport fabs, sqrt
from libc.stdlib cimport free, malloc

from sklearn_mf._heap cimport heap_push, heap_select, kv_heap_push, select_top
# the macros of its C block (SKMF_CLONES, SKMF_PRAGMA) are used below
from sklearn_mf._kernel_helpers cimport skmf_mix64  # noqa: F401

cdef extern from *:
    """
    #include <float.h>
    /* True if acc[c] > a * norms[c] + b for some c < n: the branch-free screen
       of the similarity scan, compiled for AVX2 and baseline x86-64. */
    SKMF_CLONES static int skmf_any_above(const double *acc, const double *norms,
                                          Py_ssize_t n, double a, double b) {
        long hit = 0;
        SKMF_PRAGMA(omp simd reduction(|:hit))
        for (Py_ssize_t c = 0; c < n; c++)
            hit |= acc[c] > a * norms[c] + b;
        return hit != 0;
    }

    /* sim[c] = candidate c's similarity, acc[c] / (q_norm * norms[c] + h)
       when cosine, else acc[c], or 0 when not positive, for c < n (up to a
       few ulps: FMA may contract it, so only for bounds); bm[j] = the largest
       of block j (candidates j*B .. j*B+B-1) of the n // B whole blocks. */
    SKMF_CLONES static void skmf_sims(const double *acc, const double *norms,
                                      Py_ssize_t n, Py_ssize_t B, int cosine,
                                      double q_norm, double h, double *sim,
                                      double *bm) {
        if (cosine) {
            SKMF_PRAGMA(omp simd)
            for (Py_ssize_t c = 0; c < n; c++) {
                /* unconditional: vectorises; den >= 0, and a zero den
                   (never a candidate) gives NaN or inf, mapped to 0 */
                double v = acc[c] / (q_norm * norms[c] + h);
                sim[c] = (v > 0 && v <= DBL_MAX) ? v : 0.0;
            }
        } else {
            SKMF_PRAGMA(omp simd)
            for (Py_ssize_t c = 0; c < n; c++)
                sim[c] = acc[c] > 0 ? acc[c] : 0.0;
        }
        for (Py_ssize_t j = 0; j < n / B; j++) {
            const double *x = sim + j * B;
            double m = 0;
            SKMF_PRAGMA(omp simd reduction(max:m))
            for (Py_ssize_t c = 0; c < B; c++)
                m = x[c] > m ? x[c] : m;
            bm[j] = m;
        }
    }

    /* True if x[c] > t for some c < n. */
    SKMF_CLONES static int skmf_any_gt(const double *x, Py_ssize_t n, double t) {
        long hit = 0;
        SKMF_PRAGMA(omp simd reduction(|:hit))
        for (Py_ssize_t c = 0; c < n; c++)
            hit |= x[c] > t;
        return hit != 0;
    }
    """
    bint skmf_any_above(const double* acc, const double* norms, Py_ssize_t n,
                        double a, double b) noexcept nogil
    void skmf_sims(const double* acc, const double* norms, Py_ssize_t n,
                   Py_ssize_t B, int cosine, double q_norm, double h,
                   double* sim, double* bm) noexcept nogil
    bint skmf_any_gt(const double* x, Py_ssize_t n, double t) noexcept nogil

ctypedef fused floating:
    float
    double

# candidates screened at once by the vectorised bound test of the dense scan
cdef enum:
    _SCREEN = 32
    # output rows longer than this are left unsorted (the caller sorts them)
    _SORT_MAX = 256
# a candidate within this relative margin of the heap's worst gets the exact test
cdef double _MARGIN = 1 - 1e-12


cdef inline void _append(double* hs, Py_ssize_t* hi, Py_ssize_t* size, double s,
                         Py_ssize_t c) noexcept nogil:
    """Append (s, c) to the kept list (every positive similarity kept: no heap)."""
    hs[size[0]] = s
    hi[size[0]] = c
    size[0] += 1


cdef inline void _write_row(const double* hs, const Py_ssize_t* hi, Py_ssize_t size,
                            int* oi, floating* ov) noexcept nogil:
    """Write the ``size`` kept (similarity, candidate) pairs to an output row
    by increasing candidate (insertion sort of at most ``_SORT_MAX``); longer
    rows are written as they are: sorted already when every similarity is
    kept (appended by increasing index), else sorted by the caller."""
    cdef Py_ssize_t t, j
    if size > _SORT_MAX:
        for t in range(size):
            oi[t] = <int>hi[t]
            ov[t] = <floating>hs[t]
        return
    for t in range(size):
        j = t
        while j > 0 and oi[j - 1] > hi[t]:
            oi[j] = oi[j - 1]
            ov[j] = ov[j - 1]
            j = j - 1
        oi[j] = <int>hi[t]
        ov[j] = <floating>hs[t]


cdef inline void _offer(const double* acc, Py_ssize_t c, Py_ssize_t skip, bint cosine,
                        double q_norm, const double* c_norms, double shrinkage,
                        double* hs, Py_ssize_t* hi, Py_ssize_t* size,
                        Py_ssize_t k) noexcept nogil:
    """Push candidate c's similarity (from its dot product ``acc[c]``) to the
    heap when positive and c is not ``skip``."""
    cdef double den, s = acc[c]
    if s <= 0 or c == skip:
        return
    if cosine:
        den = q_norm * c_norms[c] + shrinkage
        if den <= 0:
            return
        # most candidates lose to the heap's worst: skip the division
        if size[0] == k and s < hs[0] * den * _MARGIN:
            return
        s = s / den
    heap_push(hs, hi, size, k, s, c)


cdef inline void _keep(const double* acc, Py_ssize_t c, Py_ssize_t skip, bint cosine,
                       double q_norm, const double* c_norms, double shrinkage,
                       double* hs, Py_ssize_t* hi, Py_ssize_t* size) noexcept nogil:
    """``_offer`` when every positive similarity is kept (k >= candidates):
    the same value, appended (no heap)."""
    cdef double den, s = acc[c]
    if s <= 0 or c == skip:
        return
    if cosine:
        den = q_norm * c_norms[c] + shrinkage
        if den <= 0:
            return
        s = s / den
    _append(hs, hi, size, s, c)


cdef inline double _sims_bound(const double* acc, const double* norms, Py_ssize_t n,
                              Py_ssize_t k, bint cosine, double q_norm, double h,
                              double* sim, double* bm) noexcept nogil:
    """Fill ``sim`` (see ``skmf_sims``) and return a lower bound of the k-th
    largest similarity of the dense row (0 if none found): the k-th largest
    of the maxima of disjoint blocks of candidates (k distinct candidates
    reach it), blocks of 4 to 64 candidates, at least 2k of them; ``bm``
    holds ``n // 4`` doubles."""
    cdef Py_ssize_t B = 64
    while B > 4 and n // B < 4 * k:
        B = B // 2
    skmf_sims(acc, norms, n, B, cosine, q_norm, h, sim, bm)
    if n // B < 2 * k:
        return 0.0
    return select_top(bm, NULL, n // B, k)


def topk_similarities(const Py_ssize_t[::1] q_indptr, const int[::1] q_indices,
                      const floating[::1] q_data, const double[::1] q_norms,
                      const Py_ssize_t[::1] t_indptr, const int[::1] t_indices,
                      const floating[::1] t_data, const double[::1] c_norms,
                      Py_ssize_t self_offset, double shrinkage, bint cosine,
                      int[:, ::1] out_idx, floating[:, ::1] out_val,
                      Py_ssize_t[::1] out_cnt, int n_threads):
    """Top-k positive similarities of every query row to the candidates.

    The query rows are ``Q`` (features as columns); ``T`` is the transposed
    candidate matrix (row f lists the candidates holding feature f).  The
    similarity of query q and candidate c is ``dot / (|q| |c| + shrinkage)``
    when ``cosine`` else the plain ``dot``; candidate ``q + self_offset`` is
    skipped when ``self_offset >= 0`` (a row is not its own neighbour).  Row q
    of ``out_idx`` / ``out_val`` receives its ``out_cnt[q] <= k`` best
    neighbours with a positive similarity, in no particular order.  Returns the
    number of threads whose scratch allocation failed (0 on success).
    """
    cdef Py_ssize_t n_q = q_indptr.shape[0] - 1, n_cand = c_norms.shape[0]
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t q, p, pp, c, ci, j, m, t, f, size, work, skip, c0, c1
    cdef bint dense, keep_all = k >= n_cand
    cdef Py_ssize_t n_keep = k if k > n_cand else n_cand
    cdef double w, thr, a, b, tau
    cdef double* acc
    cdef double* bm
    cdef double* sim
    cdef double* hs
    cdef Py_ssize_t* hi
    cdef Py_ssize_t* mark
    cdef Py_ssize_t* touched
    cdef int n_bad = 0
    with nogil, parallel(num_threads=n_threads):
        acc = <double*>malloc(n_cand * sizeof(double))
        mark = <Py_ssize_t*>malloc(n_cand * sizeof(Py_ssize_t))
        touched = <Py_ssize_t*>malloc(n_cand * sizeof(Py_ssize_t))
        # the kept pairs: the heap (k), or every candidate of a sparse row
        hs = <double*>malloc((n_keep + 1) * sizeof(double))
        hi = <Py_ssize_t*>malloc((n_keep + 1) * sizeof(Py_ssize_t))
        bm = <double*>malloc((n_cand // 4 + 1) * sizeof(double))
        sim = <double*>malloc((n_cand + 1) * sizeof(double))
        try:
            if mark != NULL:
                for ci in range(n_cand):
                    mark[ci] = -1
            for q in prange(n_q, schedule="dynamic", chunksize=8):
                if (acc == NULL or mark == NULL or touched == NULL or hs == NULL or hi == NULL
                        or bm == NULL or sim == NULL):
                    n_bad += 1
                    out_cnt[q] = 0
                    continue
                # the candidates reached: many (dense accumulator, scanned
                # whole) or few (a list of the touched ones)
                work = 0
                for p in range(q_indptr[q], q_indptr[q + 1]):
                    f = q_indices[p]
                    work = work + t_indptr[f + 1] - t_indptr[f]
                dense = 2 * work >= n_cand
                m = 0
                if dense:
                    for t in range(n_cand):
                        acc[t] = 0
                    for p in range(q_indptr[q], q_indptr[q + 1]):
                        f = q_indices[p]
                        w = q_data[p]
                        for pp in range(t_indptr[f], t_indptr[f + 1]):
                            acc[t_indices[pp]] += w * t_data[pp]
                    m = n_cand
                else:
                    for p in range(q_indptr[q], q_indptr[q + 1]):
                        f = q_indices[p]
                        w = q_data[p]
                        for pp in range(t_indptr[f], t_indptr[f + 1]):
                            c = t_indices[pp]
                            if mark[c] != q:
                                mark[c] = q
                                acc[c] = 0
                                touched[m] = c
                                m = m + 1
                            acc[c] += w * t_data[pp]
                size = 0
                skip = q + self_offset if self_offset >= 0 else -1
                if keep_all:
                    # every positive similarity is kept: no heap, no screen
                    # (the dense scan appends by increasing index)
                    if dense:
                        for c in range(n_cand):
                            _keep(acc, c, skip, cosine, q_norms[q], &c_norms[0],
                                  shrinkage, hs, hi, &size)
                    elif m > _SORT_MAX:
                        # by increasing index, so that the row needs no sort
                        for c in range(n_cand):
                            if mark[c] == q:
                                _keep(acc, c, skip, cosine, q_norms[q], &c_norms[0],
                                      shrinkage, hs, hi, &size)
                    else:
                        for t in range(m):
                            _keep(acc, touched[t], skip, cosine, q_norms[q], &c_norms[0],
                                  shrinkage, hs, hi, &size)
                elif dense:
                    if 0 <= skip < n_cand:
                        acc[skip] = 0  # never offered: out of the bound below
                    tau = _sims_bound(acc, &c_norms[0], n_cand, k, cosine, q_norms[q],
                                      shrinkage, sim, bm)
                    # blocks of candidates of which none can enter the heap
                    # (similarity below the heap's worst or, while it fills,
                    # below the bound tau; a relative margin covers the ulps
                    # of ``sim``) are skipped by one branch-free pass; the
                    # others get the exact test
                    c0 = 0
                    while c0 < n_cand:
                        c1 = c0 + _SCREEN if c0 + _SCREEN < n_cand else n_cand
                        thr = (hs[0] if size == k else tau) * _MARGIN
                        if skmf_any_gt(sim + c0, c1 - c0, thr):
                            for c in range(c0, c1):
                                # the same bound (the heap's worst only rises)
                                if sim[c] > thr:
                                    _offer(acc, c, skip, cosine, q_norms[q], &c_norms[0],
                                           shrinkage, hs, hi, &size, k)
                        c0 = c1
                else:
                    # few candidates reached: all kept, then the best k selected
                    # (the heap's set: the same pairs and order, in O(m))
                    for t in range(m):
                        _keep(acc, touched[t], skip, cosine, q_norms[q], &c_norms[0],
                              shrinkage, hs, hi, &size)
                    if size > k:
                        heap_select(hs, hi, size, k)
                        size = k
                out_cnt[q] = size
                _write_row(hs, hi, size, &out_idx[q, 0], &out_val[q, 0])
        finally:
            free(acc)
            free(mark)
            free(touched)
            free(hs)
            free(hi)
            free(bm)
            free(sim)
    return n_bad


def sparse_rows_dot(const Py_ssize_t[::1] a_indptr, const int[::1] a_indices,
                    const floating[::1] a_data, const Py_ssize_t[::1] rows,
                    const Py_ssize_t[::1] b_indptr, const int[::1] b_indices,
                    const floating[::1] b_data, int den_mode,
                    floating[:, ::1] out, floating[:, ::1] den, int n_threads):
    """``out[r] = A[rows[r]] @ B`` as dense rows (sparse A and B).

    ``den_mode`` 1 also sets ``den[r, c]`` to the sum of ``|A[rows[r], j]|``
    over the j with ``B[j, c]`` stored, 2 to the sum of ``|B[j, c]|`` over the
    j stored in ``A[rows[r]]``; 0 leaves ``den`` alone (it may be empty).
    """
    cdef Py_ssize_t n_rows = rows.shape[0], n_cols = out.shape[1]
    cdef Py_ssize_t r, row, p, pp, j, c
    cdef floating a
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic", chunksize=8):
            for c in range(n_cols):
                out[r, c] = 0
            if den_mode:
                for c in range(n_cols):
                    den[r, c] = 0
            row = rows[r]
            for p in range(a_indptr[row], a_indptr[row + 1]):
                j = a_indices[p]
                a = a_data[p]
                for pp in range(b_indptr[j], b_indptr[j + 1]):
                    c = b_indices[pp]
                    out[r, c] += a * b_data[pp]
                    if den_mode == 1:
                        den[r, c] += fabs(a)
                    elif den_mode == 2:
                        den[r, c] += fabs(b_data[pp])


def sparse_rows_dense(const Py_ssize_t[::1] a_indptr, const int[::1] a_indices,
                      const floating[::1] a_data, const Py_ssize_t[::1] rows,
                      const floating[:, ::1] B, const Py_ssize_t[::1] cols,
                      floating[:, ::1] out, int n_threads):
    """``out[r] = A[rows[r]] @ B[:, cols]`` as dense rows (sparse A, dense B).

    An empty ``cols`` means every column of B.
    """
    cdef bint every = cols.shape[0] == 0
    cdef Py_ssize_t n_rows = rows.shape[0], n_cols = B.shape[1] if every else cols.shape[0]
    cdef Py_ssize_t r, row, p, j, c
    cdef floating a
    cdef const floating* b
    with nogil:
        for r in prange(n_rows, num_threads=n_threads, schedule="dynamic", chunksize=8):
            for c in range(n_cols):
                out[r, c] = 0
            row = rows[r]
            for p in range(a_indptr[row], a_indptr[row + 1]):
                j = a_indices[p]
                a = a_data[p]
                b = &B[j, 0]
                if every:
                    for c in range(n_cols):
                        out[r, c] += a * b[c]
                else:
                    for c in range(n_cols):
                        out[r, c] += a * b[cols[c]]


def gram_lower(const Py_ssize_t[::1] t_indptr, const int[::1] t_indices,
               const floating[::1] t_data, const Py_ssize_t[::1] x_indptr,
               const int[::1] x_indices, const floating[::1] x_data,
               floating[:, ::1] out, int n_threads):
    """The lower triangle (``c <= r``) of ``out = X^T X`` from X and T = X^T.

    Row ``r`` is ``T[r] @ X`` as in :func:`sparse_rows_dot` (the same sums in
    the same order, so the same bits), cut at the diagonal: X's indices are
    sorted, so each row of X stops at its first column past ``r``.  The strict
    upper triangle is left alone (LAPACK's ``potrf`` does not read it).
    """
    cdef Py_ssize_t n = out.shape[0], r, p, pp, pe, j, c
    cdef floating a
    with nogil:
        for r in prange(n, num_threads=n_threads, schedule="dynamic", chunksize=8):
            for c in range(r + 1):
                out[r, c] = 0
            for p in range(t_indptr[r], t_indptr[r + 1]):
                j = t_indices[p]
                a = t_data[p]
                pp = x_indptr[j]
                pe = x_indptr[j + 1]
                while pp < pe and x_indices[pp] <= r:
                    out[r, x_indices[pp]] += a * x_data[pp]
                    pp = pp + 1


cdef enum:
    # side of the square tiles of ease_from_inverse (two float64 tiles: 64 KiB)
    EASE_TILE = 64


def ease_from_inverse(floating[:, ::1] P, const floating[::1] neg_d, int n_threads):
    """EASE's weights in place from the lower triangle of the inverse ``P``.

    For ``i > j``, with ``v = P[i, j]`` (the strict upper triangle is not
    read): ``P[i, j] = v / neg_d[j]`` and ``P[j, i] = v / neg_d[i]``, i.e.
    ``B = -P diag(1 / diag P)`` of the symmetric ``P`` when ``neg_d`` is
    ``-diag(P)``; the diagonal becomes 0.  One pass over square tiles (the
    lower tile ``(I, J)`` read by rows, its mirror ``(J, I)`` written by
    columns, both in cache), in parallel over tile rows, longest first.
    """
    cdef Py_ssize_t n = P.shape[0], n_tiles = (n + EASE_TILE - 1) // EASE_TILE
    cdef Py_ssize_t t, ti, tj, i, j, i0, i1, j0, j1
    cdef floating v, di
    with nogil:
        for t in prange(n_tiles, num_threads=n_threads, schedule="dynamic", chunksize=1):
            ti = n_tiles - 1 - t
            i0 = ti * EASE_TILE
            i1 = min(i0 + EASE_TILE, n)
            for tj in range(ti + 1):
                j0 = tj * EASE_TILE
                j1 = min(j0 + EASE_TILE, n)
                for i in range(i0, i1):
                    di = neg_d[i]
                    # below the diagonal of the tile row: columns j0 .. min(j1, i)
                    for j in range(j0, min(j1, i)):
                        v = P[i, j]
                        P[j, i] = v / di
                        P[i, j] = v / neg_d[j]
            for i in range(i0, i1):
                P[i, i] = 0


def pair_dots(const Py_ssize_t[::1] a_indptr, const int[::1] a_indices,
              const floating[::1] a_data, const Py_ssize_t[::1] a_rows,
              const Py_ssize_t[::1] b_indptr, const int[::1] b_indices,
              const floating[::1] b_data, const Py_ssize_t[::1] b_rows,
              int den_mode, double[::1] out, double[::1] den, int n_threads):
    """``out[p] = A[a_rows[p]] . B[b_rows[p]]`` over the common stored columns.

    Both rows must have sorted indices; a negative row index gives 0.
    ``den_mode`` as in :func:`sparse_rows_dot` (sum of ``|a|`` or ``|b|`` over
    the common columns).
    """
    cdef Py_ssize_t n = a_rows.shape[0], p, x, y, xe, ye
    cdef double s, d
    with nogil:
        for p in prange(n, num_threads=n_threads, schedule="static"):
            s = 0
            d = 0
            if a_rows[p] >= 0 and b_rows[p] >= 0:
                x = a_indptr[a_rows[p]]
                xe = a_indptr[a_rows[p] + 1]
                y = b_indptr[b_rows[p]]
                ye = b_indptr[b_rows[p] + 1]
                while x < xe and y < ye:
                    if a_indices[x] < b_indices[y]:
                        x = x + 1
                    elif a_indices[x] > b_indices[y]:
                        y = y + 1
                    else:
                        s = s + a_data[x] * b_data[y]
                        if den_mode == 1:
                            d = d + fabs(a_data[x])
                        elif den_mode == 2:
                            d = d + fabs(b_data[y])
                        x = x + 1
                        y = y + 1
            out[p] = s
            den[p] = d


# ------------------------------------------------ history-side selection
def history_topk_rows(const Py_ssize_t[::1] a_indptr, const int[::1] a_indices,
                      const floating[::1] a_data, const Py_ssize_t[::1] rows,
                      const Py_ssize_t[::1] b_indptr, const int[::1] b_indices,
                      const floating[::1] b_data, bint key_is_a, Py_ssize_t k,
                      Py_ssize_t cap, const Py_ssize_t[::1] tpos, bint with_den,
                      floating[:, ::1] out, floating[:, ::1] den, int n_threads):
    """Scores from the ``k`` best references of each target (history-side kNN).

    For row ``r``, every stored ``A[rows[r], j]`` (the references j) and every
    stored ``B[j, t]`` with ``tpos[t] >= 0`` form a pair (key, value): the key
    is ``A[rows[r], j]`` when ``key_is_a`` else ``B[j, t]``, the value the
    other one.  Of the pairs of target t with a positive key, the ``k``
    largest keys are kept and ``out[r, tpos[t]]`` is the sum of key * value
    over them, ``den[r, tpos[t]]`` the sum of their keys (when ``with_den``).
    Item kNN: A = the user's history, B = the similarities (row j: the items
    j votes for), key = the similarity; user kNN: A = the user's neighbour
    similarities, B = the history of the neighbours, key = the similarity.

    The pairs are filled reference by reference (no per-target scan of the
    references) into a buffer of ``cap > k`` pairs per target; a full buffer
    is cut to its ``k`` best by quickselect, whose smallest key then rejects
    every later pair not above it with one comparison (amortised O(1) per
    pair, against O(log k) for a heap).  Ties at the k-th key: the first
    kept.  Returns the number of threads whose scratch allocation
    (``out.shape[1] * cap`` pairs) failed.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], n_out = out.shape[1]
    cdef Py_ssize_t r, row, p, pp, j, t, x, o, n
    cdef double a, key, val, s, d
    cdef double* hk
    cdef double* hv
    cdef double* thr
    cdef Py_ssize_t* cnt
    cdef int n_bad = 0
    with nogil, parallel(num_threads=n_threads):
        hk = <double*>malloc((n_out * cap + 1) * sizeof(double))
        hv = <double*>malloc((n_out * cap + 1) * sizeof(double))
        thr = <double*>malloc((n_out + 1) * sizeof(double))
        cnt = <Py_ssize_t*>malloc((n_out + 1) * sizeof(Py_ssize_t))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=4):
                if hk == NULL or hv == NULL or thr == NULL or cnt == NULL:
                    n_bad += 1
                    continue
                for t in range(n_out):
                    cnt[t] = 0
                    thr[t] = 0  # keys must be positive
                row = rows[r]
                for p in range(a_indptr[row], a_indptr[row + 1]):
                    j = a_indices[p]
                    a = a_data[p]
                    for pp in range(b_indptr[j], b_indptr[j + 1]):
                        t = tpos[b_indices[pp]]
                        if t < 0:
                            continue
                        if key_is_a:
                            key = a
                            val = b_data[pp]
                        else:
                            key = b_data[pp]
                            val = a
                        if key > thr[t]:
                            o = t * cap
                            x = o + cnt[t]
                            hk[x] = key
                            hv[x] = val
                            cnt[t] = cnt[t] + 1
                            if cnt[t] == cap:
                                thr[t] = select_top(hk + o, hv + o, cap, k)
                                cnt[t] = k
                for t in range(n_out):
                    o = t * cap
                    n = cnt[t]
                    if n > k:
                        select_top(hk + o, hv + o, n, k)
                        n = k
                    s = 0
                    d = 0
                    for x in range(o, o + n):
                        s = s + hk[x] * hv[x]
                        d = d + hk[x]
                    out[r, t] = <floating>s
                    if with_den:
                        den[r, t] = <floating>d
        finally:
            free(hk)
            free(hv)
            free(thr)
            free(cnt)
    return n_bad


def history_topk_pairs(const Py_ssize_t[::1] a_indptr, const int[::1] a_indices,
                       const floating[::1] a_data, const Py_ssize_t[::1] a_rows,
                       const Py_ssize_t[::1] b_indptr, const int[::1] b_indices,
                       const floating[::1] b_data, const Py_ssize_t[::1] b_rows,
                       bint key_is_a, Py_ssize_t k, double[::1] out, double[::1] den,
                       int n_threads):
    """``history_topk_rows`` for single (row, target) pairs.

    The pairs of ``(A[a_rows[p]], B[b_rows[p]])`` are their common stored
    columns (a merge of the two sorted index lists; B here holds the targets
    as rows); ``out[p]`` / ``den[p]`` are the sums of key * value / of the
    keys over the ``k`` pairs with the largest positive keys.  A negative row
    index gives 0.  Returns the number of threads whose allocation failed.
    """
    cdef Py_ssize_t n = a_rows.shape[0], p, x, y, xe, ye, size, c
    cdef double s, d, key, val
    cdef double* hk
    cdef double* hv
    cdef int n_bad = 0
    with nogil, parallel(num_threads=n_threads):
        hk = <double*>malloc((k + 1) * sizeof(double))
        hv = <double*>malloc((k + 1) * sizeof(double))
        try:
            for p in prange(n, schedule="dynamic", chunksize=64):
                s = 0
                d = 0
                if hk == NULL or hv == NULL:
                    n_bad += 1
                elif a_rows[p] >= 0 and b_rows[p] >= 0:
                    size = 0
                    x = a_indptr[a_rows[p]]
                    xe = a_indptr[a_rows[p] + 1]
                    y = b_indptr[b_rows[p]]
                    ye = b_indptr[b_rows[p] + 1]
                    while x < xe and y < ye:
                        if a_indices[x] < b_indices[y]:
                            x = x + 1
                        elif a_indices[x] > b_indices[y]:
                            y = y + 1
                        else:
                            if key_is_a:
                                key = a_data[x]
                                val = b_data[y]
                            else:
                                key = b_data[y]
                                val = a_data[x]
                            if key > 0:
                                kv_heap_push(hk, hv, &size, k, key, val)
                            x = x + 1
                            y = y + 1
                    for c in range(size):
                        s = s + hk[c] * hv[c]
                        d = d + hk[c]
                out[p] = s
                den[p] = d
        finally:
            free(hk)
            free(hv)
    return n_bad


def topk_pearson_baseline(const Py_ssize_t[::1] q_indptr, const int[::1] q_indices,
                          const floating[::1] q_data, const Py_ssize_t[::1] t_indptr,
                          const int[::1] t_indices, const floating[::1] t_data,
                          Py_ssize_t n_cand, Py_ssize_t self_offset, double shrinkage,
                          int[:, ::1] out_idx, floating[:, ::1] out_val,
                          Py_ssize_t[::1] out_cnt, int n_threads):
    """Top-k positive shrunk Pearson-baseline similarities (Surprise's formula).

    The rows hold baseline residuals :math:`x = r - b`.  For query q and
    candidate c with the common features U (at least 2),
    :math:`\\sum_U x_q x_c / \\sqrt{\\sum_U x_q^2 \\sum_U x_c^2} \\cdot
    (|U| - 1) / (|U| - 1 + h)`: the norms are over the common features only
    (not the whole rows, as ``topk_similarities``).  ``T`` is the transposed
    candidate matrix; ``self_offset``, outputs and return as
    ``topk_similarities``.
    """
    cdef Py_ssize_t n_q = q_indptr.shape[0] - 1
    cdef Py_ssize_t k = out_idx.shape[1]
    cdef Py_ssize_t q, p, pp, c, ci, m, t, f, j, size, skip, nc
    cdef bint keep_all = k >= n_cand
    cdef double w, v, s, den
    cdef double* dot
    cdef double* sqq
    cdef double* sqc
    cdef Py_ssize_t* freq
    cdef Py_ssize_t* mark
    cdef Py_ssize_t* touched
    cdef double* hs
    cdef Py_ssize_t* hi
    cdef int n_bad = 0
    with nogil, parallel(num_threads=n_threads):
        dot = <double*>malloc((n_cand + 1) * sizeof(double))
        sqq = <double*>malloc((n_cand + 1) * sizeof(double))
        sqc = <double*>malloc((n_cand + 1) * sizeof(double))
        freq = <Py_ssize_t*>malloc((n_cand + 1) * sizeof(Py_ssize_t))
        mark = <Py_ssize_t*>malloc((n_cand + 1) * sizeof(Py_ssize_t))
        touched = <Py_ssize_t*>malloc((n_cand + 1) * sizeof(Py_ssize_t))
        hs = <double*>malloc((k + 1) * sizeof(double))
        hi = <Py_ssize_t*>malloc((k + 1) * sizeof(Py_ssize_t))
        try:
            if mark != NULL:
                for ci in range(n_cand):
                    mark[ci] = -1
            for q in prange(n_q, schedule="dynamic", chunksize=8):
                if (dot == NULL or sqq == NULL or sqc == NULL or freq == NULL
                        or mark == NULL or touched == NULL or hs == NULL or hi == NULL):
                    n_bad += 1
                    out_cnt[q] = 0
                    continue
                m = 0
                for p in range(q_indptr[q], q_indptr[q + 1]):
                    f = q_indices[p]
                    w = q_data[p]
                    for pp in range(t_indptr[f], t_indptr[f + 1]):
                        c = t_indices[pp]
                        v = t_data[pp]
                        if mark[c] != q:
                            mark[c] = q
                            dot[c] = 0
                            sqq[c] = 0
                            sqc[c] = 0
                            freq[c] = 0
                            touched[m] = c
                            m = m + 1
                        dot[c] += w * v
                        sqq[c] += w * w
                        sqc[c] += v * v
                        freq[c] += 1
                size = 0
                skip = q + self_offset if self_offset >= 0 else -1
                for t in range(n_cand if keep_all and m > _SORT_MAX else m):
                    # every one kept and many: by increasing index (no sort)
                    if keep_all and m > _SORT_MAX:
                        c = t
                        if mark[c] != q:
                            continue
                    else:
                        c = touched[t]
                    nc = freq[c]
                    if c == skip or nc < 2 or dot[c] <= 0:
                        continue
                    den = sqq[c] * sqc[c]
                    if den <= 0:
                        continue
                    s = dot[c] / sqrt(den) * (nc - 1) / (nc - 1 + shrinkage)
                    if s > 0:
                        if keep_all:  # no heap
                            _append(hs, hi, &size, s, c)
                        else:
                            heap_push(hs, hi, &size, k, s, c)
                out_cnt[q] = size
                _write_row(hs, hi, size, &out_idx[q, 0], &out_val[q, 0])
        finally:
            free(dot)
            free(sqq)
            free(sqc)
            free(freq)
            free(mark)
            free(touched)
            free(hs)
            free(hi)
    return n_bad
