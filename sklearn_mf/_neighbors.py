"""Neighbourhood recommenders: ``ItemKNN`` and ``UserKNN``.

Both keep a sparse matrix of the ``n_neighbors`` most similar items (users) of
every item (user), computed by :func:`knn_similarities` over the kernel
``_neighbors_fast.topk_similarities`` (which never forms the dense
items x items matrix), and score a user from their history.  The shared
recommend hooks for history-scored models (these two and :class:`EASE`) are in
``_HistoryScoringMixin``.
"""

import copy
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sklearn_mf import _neighbors_fast, _setup_fast
from sklearn_mf._base import ImplicitRecommenderMixin, Recommendations, RecommenderMixin
from sklearn_mf._baselines import BaselineRegressor
from sklearn_mf._convert import csr_from_arrays
from sklearn_mf._fold_in import RecommendNewMixin
from sklearn_mf._ids import _ids_from_codes
from sklearn_mf._progress import EpochProgress
from sklearn_mf._training import encode_strengths, undo_validation_on_error
from sklearn_mf._utils import check_dtype, effective_n_threads
from sklearn_mf._validation import check_n

# Query rows per call of the similarity kernel (one progress step per block).
_SIMILARITY_BLOCKS = 20
# Multiply-adds below which the similarity kernel runs on one thread (about
# 2 ms; ML-100K's 3.9M item-item multiply-adds ran faster on 2 threads than
# on one even at load 6 on 2 cores).
_PARALLEL_WORK = 2_000_000
# _SORT_MAX of _neighbors_fast: longer similarity rows are sorted here
_KERNEL_SORT_MAX = 256
# bytes of the similarity kernel's dense buffers per block of users scored by
# a lazy UserKNN (n_neighbors=None with n_history_neighbors)
_LAZY_BLOCK_BYTES = 2**26


# ------------------------------------------------------------------ drivers
def _as_csr(m):
    """``m`` itself when it is a ``csr_matrix`` (no new object, no checks)."""
    return m if isinstance(m, sp.csr_matrix) else sp.csr_matrix(m)


def csr_parts(m, dtype):
    """(indptr as intp, indices as int32, data as ``dtype``) of a CSR matrix with
    sorted indices: the layout every kernel of ``_neighbors_fast`` takes."""
    m = _as_csr(m)
    if not m.has_sorted_indices:
        m = m.copy()
        m.sort_indices()
    return (
        np.ascontiguousarray(m.indptr, dtype=np.intp),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=dtype),
    )


def _transpose(m, n_threads=1):
    """The transpose of a CSR matrix as CSR with sorted indices (a counting
    sort by column, ``_setup_fast.transpose_rows``: the arrays of scipy's
    ``m.T.tocsr()``, without its constructors and checks)."""
    m = _as_csr(m)
    data = m.data
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    data = np.ascontiguousarray(data)
    indptr, indices, values, _ = _setup_fast.transpose_rows(
        np.ascontiguousarray(m.indptr, dtype=np.intp),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        data,
        data[:0],
        m.shape[1],
        n_threads,
    )
    t = csr_from_arrays(indptr, indices, values, m.shape[1], m.shape[0])
    # inside a column the entries keep their row order: sorted, and canonical
    # when m is (no duplicates)
    t.has_canonical_format = m.has_canonical_format
    t.has_sorted_indices = True
    return t


def knn_similarities(
    Q,
    C,
    n_neighbors,
    *,
    shrinkage=0.0,
    cosine=True,
    exclude_self=False,
    dtype=np.float64,
    n_threads=1,
    progress=None,
    C_t=None,
    pearson=False,
    q_norms=None,
    c_norms=None,
):
    """The ``n_neighbors`` most similar rows of ``C`` to every row of ``Q``.

    Similarity of rows q and c: the dot product :math:`q \\cdot c` divided by
    :math:`\\lVert q\\rVert \\lVert c\\rVert + h` (``shrinkage`` h) when
    ``cosine``; with ``pearson`` Surprise's shrunk Pearson-baseline
    correlation of the rows (residuals) over their common features
    (``_neighbors_fast.topk_pearson_baseline``).  Only positive similarities
    are kept.

    Parameters
    ----------
    Q : sparse matrix of shape (n_queries, n_features)
    C : sparse matrix of shape (n_candidates, n_features)
    n_neighbors : int or None
        None keeps every positive similarity.
    shrinkage : float, default=0.0
    cosine : bool, default=True
    exclude_self : bool, default=False
        Row q is not its own neighbour (Q and C are the same matrix).
    dtype : {np.float32, np.float64}, default=np.float64
    n_threads : int, default=1
    progress : EpochProgress, default=None
        Updated after each block of query rows.
    C_t : sparse matrix of shape (n_features, n_candidates), default=None
        ``C`` transposed, when the caller has it (saves one transposition).
    pearson : bool, default=False
        Surprise's ``pearson_baseline`` similarity (``cosine`` is ignored).
    q_norms, c_norms : ndarray of shape (n_queries,), (n_candidates,), default=None
        The row norms of ``Q`` and ``C`` (``_row_norms``), when the caller has them.

    Returns
    -------
    S : scipy.sparse.csr_matrix of shape (n_queries, n_candidates)
        Sorted indices; at most ``n_neighbors`` entries per row.
    """
    Q, C = _as_csr(Q), _as_csr(C)
    if q_norms is None:
        q_norms = _row_norms(Q)
    if c_norms is None:
        c_norms = q_norms if C is Q else _row_norms(C)
    t_indptr, t_indices, t_data = csr_parts(_transpose(C) if C_t is None else C_t, dtype)
    q_indptr, q_indices, q_data = csr_parts(Q, dtype)
    n_cand = C.shape[0]
    n_q = Q.shape[0]
    k = int(min(n_cand if n_neighbors is None else n_neighbors, max(n_cand, 1)))
    if n_threads > 1:
        # the kernel's multiply-adds: per feature, its queries times its candidates
        work = np.dot(
            np.bincount(q_indices, minlength=Q.shape[1]).astype(np.float64),
            np.diff(t_indptr).astype(np.float64),
        )
        if work < _PARALLEL_WORK:
            n_threads = 1
    out_idx = np.empty((n_q, k), dtype=np.int32)  # the kernel writes what is read
    out_val = np.empty((n_q, k), dtype=dtype)
    out_cnt = np.empty(n_q, dtype=np.intp)
    # one parallel region unless progress is reported (each region has a start-up
    # cost that a loaded machine makes large)
    n_blocks = 1 if progress is None or progress.mode == "silent" else _SIMILARITY_BLOCKS
    if n_blocks == 1:
        bounds = (0, n_q)
    else:
        bounds = np.linspace(0, n_q, min(n_blocks, max(n_q, 1)) + 1).astype(np.intp).tolist()
    for step, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]), 1):
        if pearson:
            n_bad = _neighbors_fast.topk_pearson_baseline(
                q_indptr[start : stop + 1],
                q_indices,
                q_data,
                t_indptr,
                t_indices,
                t_data,
                n_cand,
                start if exclude_self else -1,
                float(shrinkage),
                out_idx[start:stop],
                out_val[start:stop],
                out_cnt[start:stop],
                n_threads,
            )
        else:
            n_bad = _neighbors_fast.topk_similarities(
                q_indptr[start : stop + 1],
                q_indices,
                q_data,
                q_norms[start:stop],
                t_indptr,
                t_indices,
                t_data,
                c_norms,
                start if exclude_self else -1,
                float(shrinkage),
                bool(cosine),
                out_idx[start:stop],
                out_val[start:stop],
                out_cnt[start:stop],
                n_threads,
            )
        if n_bad:
            raise MemoryError(
                f"Could not allocate the similarity kernel's scratch buffers "
                f"({C.shape[0]} candidates per thread) in {n_bad} thread(s)."
            )
        if progress is not None:
            progress.update(step, {"rows": int(stop)})
    indptr = np.zeros(n_q + 1, dtype=np.int64)
    np.cumsum(out_cnt, out=indptr[1:])
    if indptr[-1] == n_q * k:  # every row full: the buffers are the CSR arrays
        data, indices = out_val.reshape(-1), out_idx.reshape(-1)
    else:
        keep = np.arange(k)[None, :] < out_cnt[:, None]
        data, indices = out_val[keep], out_idx[keep]
    # the kernel's arrays are canonical (no duplicates, indices in range):
    # no constructor checks
    S = csr_from_arrays(indptr, indices, data, n_q, n_cand)
    if _KERNEL_SORT_MAX < k < n_cand:
        # the kernel leaves rows longer than _KERNEL_SORT_MAX unsorted unless
        # it keeps every similarity
        S.has_sorted_indices = False
        S.sort_indices()
        S.has_canonical_format = True
    return S


def available_memory():
    """Bytes available to a new allocation, or None (see ``_ease``; imported
    here at call time: ``_ease`` imports this module)."""
    from sklearn_mf._ease import available_memory as available

    return available()


def _own_copy(m, dtype):
    """``m`` (CSR with sorted indices) as ``dtype`` in arrays of its own."""
    out = csr_from_arrays(m.indptr.copy(), m.indices.copy(), m.data.astype(dtype), *m.shape)
    out.has_sorted_indices = m.has_sorted_indices
    out.has_canonical_format = m.has_canonical_format
    return out


# kernel buffers below which an integer n_neighbors skips the memory look-up
_CHECKED_BYTES = 2**26


def all_pairs_memory(n_rows, n_cand, dtype):
    """Peak bytes of :func:`knn_similarities` keeping every similarity
    (``n_neighbors=None``): its dense (n_rows, n_cand) index and value
    buffers, and the sparse result of at most as many entries."""
    return 2 * int(n_rows) * int(n_cand) * (4 + np.dtype(dtype).itemsize)


# pairs buffered per target by the history-side kernel (times k; a full
# buffer is cut to the k best), and per kernel call: its per-thread scratch
# is 16 bytes x targets x buffer (at most about 32 MB)
_HISTORY_BUFFER = 4
_HISTORY_PAIRS = 2**21


def history_scores(A, rows, B, cand, k, *, key_is_a, with_den, n_threads=1):
    """Dense history-side kNN scores of the rows ``A[rows]`` for the targets
    ``cand`` (columns of ``B``), see ``_neighbors_fast.history_topk_rows``.

    Returns ``(num, den)`` of shape (len(rows), len(cand)): the sums of
    key * value and of the keys over the ``k`` references with the largest
    keys (``den`` is empty unless ``with_den``).
    """
    dtype = B.dtype.type
    cand = np.asarray(cand, dtype=np.intp)
    uniq, inverse = np.unique(cand, return_inverse=True)
    if len(uniq) < len(cand):
        num, den = history_scores(
            A, rows, B, uniq, k, key_is_a=key_is_a, with_den=with_den, n_threads=n_threads
        )
        return num[:, inverse], (den[:, inverse] if with_den else den)
    a = csr_parts(A, dtype)
    b = csr_parts(B, dtype)
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    k = int(max(1, k))
    n_rows, n_cand = len(rows), len(cand)
    num = np.empty((n_rows, n_cand), dtype=dtype)
    den = np.empty((n_rows, n_cand) if with_den else (0, 0), dtype=dtype)
    cap = _HISTORY_BUFFER * k
    block = max(1, _HISTORY_PAIRS // cap)
    tpos = np.full(B.shape[1], -1, dtype=np.intp)
    for start in range(0, max(n_cand, 1), block):
        stop = min(start + block, n_cand)
        whole = start == 0 and stop == n_cand
        tpos[cand[start:stop]] = np.arange(stop - start)
        o = num if whole else np.empty((n_rows, stop - start), dtype=dtype)
        d = den if whole or not with_den else np.empty((n_rows, stop - start), dtype=dtype)
        n_bad = _neighbors_fast.history_topk_rows(
            *a, rows, *b, bool(key_is_a), k, cap, tpos, bool(with_den), o, d, n_threads
        )
        tpos[cand[start:stop]] = -1
        if n_bad:
            raise MemoryError(
                f"Could not allocate the history-side kernel's scratch buffers "
                f"({stop - start} targets x {cap} pairs per thread) in {n_bad} thread(s)."
            )
        if not whole:
            num[:, start:stop] = o
            if with_den:
                den[:, start:stop] = d
    return num, den


def history_pair_scores(A, a_rows, B, b_rows, k, *, key_is_a, n_threads=1):
    """:func:`history_scores` of single pairs: row ``a_rows[p]`` of ``A`` and
    target ``b_rows[p]``, a row of ``B`` (the targets as rows)."""
    dtype = np.float64
    out = np.empty(len(a_rows), dtype=np.float64)
    den = np.empty(len(a_rows), dtype=np.float64)
    n_bad = _neighbors_fast.history_topk_pairs(
        *csr_parts(A, dtype),
        np.ascontiguousarray(a_rows, dtype=np.intp),
        *csr_parts(B, dtype),
        np.ascontiguousarray(b_rows, dtype=np.intp),
        bool(key_is_a),
        int(max(1, k)),
        out,
        den,
        n_threads,
    )
    if n_bad:
        raise MemoryError(f"Could not allocate {k} heap entries in {n_bad} thread(s).")
    return out, den


def _drop_self(S, rows):
    """``S`` without the entries ``S[r, rows[r]]`` (sorted rows stay sorted)."""
    row = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
    keep = S.indices != np.asarray(rows)[row]
    indptr = np.zeros(S.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row[keep], minlength=S.shape[0]), out=indptr[1:])
    out = sp.csr_matrix((S.data[keep], S.indices[keep], indptr), shape=S.shape)
    out.has_sorted_indices = S.has_sorted_indices
    return out


def _row_norms(M):
    sq = np.asarray(M.data, dtype=np.float64) ** 2
    indptr = M.indptr
    if sq.size and (indptr[1:] > indptr[:-1]).all():
        # no empty row (users of the history always; the same sums)
        return np.sqrt(np.add.reduceat(sq, indptr[:-1]))
    sums = np.zeros(M.shape[0])
    nonempty = np.diff(M.indptr) > 0
    if sq.size:
        sums[nonempty] = np.add.reduceat(sq, M.indptr[:-1][nonempty])
    return np.sqrt(sums)


def score_rows(A, rows, B, *, den_mode=0, n_threads=1):
    """Dense rows ``A[rows] @ B`` (and the kNN denominators, see the kernel)."""
    dtype = B.dtype.type
    a = csr_parts(A, dtype)
    b = csr_parts(B, dtype)
    rows = np.ascontiguousarray(rows, dtype=np.intp)
    out = np.empty((len(rows), B.shape[1]), dtype=dtype)
    den = np.empty((len(rows), B.shape[1]) if den_mode else (0, 0), dtype=dtype)
    _neighbors_fast.sparse_rows_dot(*a, rows, *b, int(den_mode), out, den, n_threads)
    return out, den


def pair_scores(A, a_rows, B, b_rows, *, den_mode=0, n_threads=1):
    """``A[a_rows[p]] . B[b_rows[p]]`` for every p (and denominators)."""
    dtype = np.float64
    out = np.empty(len(a_rows), dtype=np.float64)
    den = np.empty(len(a_rows), dtype=np.float64)
    _neighbors_fast.pair_dots(
        *csr_parts(A, dtype),
        np.ascontiguousarray(a_rows, dtype=np.intp),
        *csr_parts(B, dtype),
        np.ascontiguousarray(b_rows, dtype=np.intp),
        int(den_mode),
        out,
        den,
        n_threads,
    )
    return out, den


def _with_data(m, data):
    """A CSR matrix of the structure of ``m`` (shared arrays) with ``data``."""
    out = copy.copy(_as_csr(m))  # no constructor: the attributes, shallow
    out.data = data
    return out


def _weight_entries(weighting, data, doc, feat, idf, norm=None, k1=None):
    """TF-IDF / BM25 weights of stored entries: ``data`` of documents ``doc``
    (``norm`` their BM25 length normalisation) and terms ``feat``, in any
    layout (elementwise: a matrix and its transpose get the same values)."""
    if weighting == "tfidf":
        return np.sqrt(data) * idf[feat]
    return data * (k1 + 1.0) / (k1 * norm[doc] + data) * idf[feat]


def _bm25_norm(M, avg_len, b):
    r"""BM25's :math:`(1 - b) + b\,\ell / \bar\ell` of the rows of ``M``."""
    length = np.asarray(M.sum(axis=1), dtype=np.float64).ravel()
    return (1.0 - b) + b * length / max(avg_len, 1e-300)


def _row_of_entries(M):
    return np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))


def tfidf_weight(M, idf):
    r"""TF-IDF weights of the rows of ``M``: :math:`\sqrt{x}\,\mathrm{idf}_f`."""
    M = _as_csr(M)
    return _with_data(M, _weight_entries("tfidf", M.data, None, M.indices, idf))


def bm25_weight(M, idf, avg_len, k1, b):
    r"""Okapi BM25 weights of the rows of ``M`` (rows are the documents).

    :math:`x (k_1 + 1) / (k_1 ((1 - b) + b\,\ell / \bar\ell) + x)\,
    \mathrm{idf}_f` with :math:`\ell` the row's total.
    """
    M = _as_csr(M)
    norm = _bm25_norm(M, avg_len, b)
    data = _weight_entries("bm25", M.data, _row_of_entries(M), M.indices, idf, norm, k1)
    return _with_data(M, data)


def feature_idf(M):
    """Inverse document frequency of the columns of ``M`` (rows = documents):
    :math:`\\log N - \\log(1 + n_f)`, with :math:`n_f` the rows holding f."""
    df = np.bincount(_as_csr(M).indices, minlength=M.shape[1])
    return np.log(max(M.shape[0], 1)) - np.log1p(df)


# -------------------------------------------------------------- the mixin
class _HistoryScoringMixin:
    """Recommend hooks for models that score a user from their history.

    The model implements ``_known_scores(user_codes, cand)`` and
    ``_new_scores(csr, cand)`` (dense scores of shape (n_rows, len(cand))).
    Its "item embedding" for :class:`RecommenderMixin` is the item's own
    position, so that ``_score_candidates`` knows which candidates to score.
    """

    _fold_in_requires_y = False
    _fold_in_priors = ("model",)

    def _item_embeddings(self):
        return np.arange(len(self.items_), dtype=np.float64)[:, None], None

    def _score_candidates(self, user_codes, cand_vectors, cand_offset):
        cand = cand_vectors[:, 0].astype(np.intp)
        return np.ascontiguousarray(self._known_scores(np.asarray(user_codes), cand))

    @staticmethod
    def _take(S, cand):
        if len(cand) == S.shape[1] and (cand == np.arange(S.shape[1])).all():
            return S
        return S[:, cand]

    def _new_user_scorer(self, m, cand, prior):
        """Scores of new users straight from their history ``m`` (no factors)."""
        m = m.copy()
        m.sum_duplicates()
        return lambda rows: np.ascontiguousarray(self._new_scores(m[rows], cand))

    def _neighbour_search(self, ids, n, S, index, raw_ids, what):
        """Positive entries of the rows of ``S`` (sparse or dense) for ``ids``, best first."""
        check_is_fitted(self)
        from sklearn_mf._ids import _as_id_array, lookup_ids

        query = _as_id_array(ids)
        codes = lookup_ids(index, query)
        if (codes < 0).any():
            raise ValueError(
                f"{int((codes < 0).sum())} {what} not seen in fit, e.g. "
                f"{list(query[codes < 0][:5])}."
            )
        m = len(raw_ids)
        n = check_n(n, m - 1, what)

        def rows(r):
            Sr = S(r) if callable(S) else S[r]
            D = np.array(Sr.toarray() if sp.issparse(Sr) else Sr, dtype=np.float64)
            D[D <= 0] = -np.inf
            D[np.arange(len(r)), r] = -np.inf
            return D

        out_codes, out_scores = self._topk_codes(
            codes.astype(np.intp),
            n,
            np.arange(m, dtype=np.intp),
            m,
            exclude=None,
            score_rows=rows,
            n_threads=effective_n_threads(getattr(self, "n_jobs", None)),
        )
        return Recommendations(
            query, _ids_from_codes(raw_ids, out_codes), out_scores, np.zeros(len(query), dtype=bool)
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags


# ------------------------------------------------------- the two kNN models
_KNN_DOC_ATTRS = """    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_{row}s, n_{row}s)
        Row :math:`a` holds the similarities :math:`s_{{ab}}` to its neighbours.
    global_mean_, user_bias_, item_bias_ : float, ndarray
        The baseline (``feedback="explicit"`` only).
    users_, items_ : ndarray
        Raw ids; position = internal index.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training interactions (summed ``y``); the scores use a copy of their
        own, so editing this matrix does not change them.
    item_popularity_ : ndarray of shape (n_items,)
        Training interactions per item (the popularity fallback).
    n_features_in_ : int

"""

_KNN_DOC_PARAMS = """
    n_neighbors : int or None, default={n_neighbors}
        Neighbours stored per {row} (the top of its similarity list); None
        stores every positive similarity (memory :math:`O(n_\\text{{{row}s}}^2)`,
        checked against the available memory before fitting), except
        :class:`UserKNN` with ``n_history_neighbors``, which then stores none
        and computes the similarities of the users it scores.  Without
        ``n_history_neighbors`` a score sums over all stored neighbours that
        apply (implicit's ``K``); with it, this is only the pool the
        history-side selection draws from (LensKit's ``save_nbrs``).
    n_history_neighbors : int or None, default=None
        None: score from the stored neighbours as above.  An int k: the
        history-side neighbourhood of LensKit's ``max_nbrs`` and Surprise's
        ``k``: {history}
    similarity : {{"cosine", "dot", "pearson_baseline"}}, default="cosine"
        ``"cosine"``: :math:`s = a\\cdot b / (\\lVert a\\rVert \\lVert b\\rVert + h)`;
        ``"dot"``: the plain dot product of the (weighted) vectors, as
        implicit's TF-IDF and BM25 recommenders; ``"pearson_baseline"``
        (``feedback="explicit"`` only): Surprise's shrunk Pearson-baseline
        correlation of the baseline residuals over the common {feature}s
        :math:`C` only, :math:`s = \\frac{{\\sum_C x_a x_b}}{{\\sqrt{{\\sum_C x_a^2
        \\sum_C x_b^2}}}} \\frac{{|C| - 1}}{{|C| - 1 + h}}` (0 below 2 common
        {feature}s); Surprise's default ``h`` is 100.
    shrinkage : float, default={shrinkage}
        :math:`h` above: pulls the similarity of {row}s with little support
        towards 0 (``similarity="cosine"`` and ``"pearson_baseline"``).
    weighting : {{"auto", None, "tfidf", "bm25"}}, default="auto"
        Weight the interactions before comparing {row}s (implicit feedback
        only): TF-IDF :math:`\\sqrt{{x}}\\,\\mathrm{{idf}}` or Okapi BM25 with
        ``bm25_k1`` and ``bm25_b``, the {feature}s as terms.  ``"auto"``:
        {auto}
    bm25_k1 : float, default=100.0
        BM25 saturation :math:`k_1`.
    bm25_b : float, default=0.8
        BM25 length normalisation :math:`b`.
    feedback : {{"implicit", "explicit"}}, default="implicit"
        ``"implicit"``: ``y`` are non-negative strengths (None means 1) and a
        score is the similarity-weighted sum over the history.
        ``"explicit"``: ``y`` are ratings; the model predicts ratings like
        Surprise's KNNBaseline (see above) and similarities compare the
        residuals of the baseline.
    baseline_regularization : float, default=10.0
        Penalty :math:`\\lambda` of the baseline :math:`\\mu + b_u + b_i`
        (``feedback="explicit"``), as in :class:`BaselineRegressor`.
    handle_unknown : {{"fallback", "nan", "error"}}, default="fallback"
        ``predict`` for a user or item not seen in ``fit``: ``"fallback"``
        scores 0 (implicit) or the baseline with the known biases (explicit),
        ``"nan"`` returns NaN, ``"error"`` raises.  ``recommend`` serves
        unknown users from item popularity.
    dtype : {{np.float32, np.float64}}, default=np.float32
        Floating type of the similarities and scores.
    n_jobs : int or None, default=None
        OpenMP threads; None uses every available core.
    verbose : int, default=0
        0: silent; 1: one line per block of {row}s of the similarity
        computation; 2 or more: a progress bar (tqdm).
"""


class _KNNBase(
    _HistoryScoringMixin,
    RecommendNewMixin,
    ImplicitRecommenderMixin,
    RecommenderMixin,
    BaseEstimator,
):
    _parameter_constraints: dict = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_history_neighbors": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "similarity": [StrOptions({"cosine", "dot", "pearson_baseline"})],
        "shrinkage": [Interval(numbers.Real, 0, None, closed="left")],
        "weighting": [StrOptions({"auto", "tfidf", "bm25"}), None],
        "bm25_k1": [Interval(numbers.Real, 0, None, closed="left")],
        "bm25_b": [Interval(numbers.Real, 0, 1, closed="both")],
        "feedback": [StrOptions({"implicit", "explicit"})],
        "baseline_regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "dtype": "no_validation",  # checked by check_dtype
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_neighbors=100,
        *,
        n_history_neighbors=None,
        similarity="cosine",
        shrinkage=10.0,
        weighting="auto",
        bm25_k1=100.0,
        bm25_b=0.8,
        feedback="implicit",
        baseline_regularization=10.0,
        handle_unknown="fallback",
        dtype=np.float32,
        n_jobs=None,
        verbose=0,
    ):
        self.n_neighbors = n_neighbors
        self.n_history_neighbors = n_history_neighbors
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.weighting = weighting
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.feedback = feedback
        self.baseline_regularization = baseline_regularization
        self.handle_unknown = handle_unknown
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y=None):
        """Compute the neighbourhoods from the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
            Repeated (user, item) rows add up.
        y : array-like of shape (n_interactions,), default=None
            Non-negative strengths (None means 1), or the ratings (required)
            for ``feedback="explicit"``.

        Returns
        -------
        self : estimator
            The fitted estimator.
        """
        dtype = check_dtype(self.dtype)
        explicit = self.feedback == "explicit"
        self._weighting = self._auto_weighting() if self.weighting == "auto" else self.weighting
        if explicit and self._weighting is not None:
            raise ValueError(
                f"weighting={self.weighting!r} weighs implicit interactions; with "
                "feedback='explicit' the similarities compare baseline residuals. "
                "Use weighting=None."
            )
        if self.similarity == "pearson_baseline" and not explicit:
            raise ValueError(
                "similarity='pearson_baseline' correlates baseline residuals of "
                "ratings; use it with feedback='explicit'."
            )
        u, i, y, users_, items_ = encode_strengths(self, X, y, ratings=explicit)
        self._set_ids(users_, items_)
        self._set_training_interactions(u, i, y)
        n_threads = effective_n_threads(self.n_jobs)
        if not explicit:
            # the model's own arrays: editing ``user_items_`` after fit does not
            # change the scores (the residuals below are a new matrix anyway)
            H = _own_copy(self.user_items_, dtype)
        else:
            H = self.user_items_.astype(dtype, copy=False)
        if explicit:
            base = BaselineRegressor(
                regularization=self.baseline_regularization, clip_predictions=False
            )
            base.fit(np.column_stack([u, i]), y)
            self.global_mean_ = base.global_mean_
            self.user_bias_ = base.user_bias_
            self.item_bias_ = base.item_bias_
            H = self._residuals(H, self.user_bias_)
        self._history = H
        V, V_t = self._vectors(H, fit=True)
        self._lazy = self._lazy_similarities()
        if self._lazy:
            # only the (weighted) vectors, their transpose and norms: the
            # similarities of the users being scored are computed then
            self._lazy_operands = (V, _transpose(V) if V_t is None else V_t, _row_norms(V))
            self.similarity_ = None
            self._similarity_t = None
            return self
        self._lazy_operands = None
        self._check_all_pairs_memory(V.shape[0], dtype, self.n_neighbors)
        with EpochProgress(
            self.verbose, _SIMILARITY_BLOCKS, unit="block", desc=type(self).__name__
        ) as progress:
            self.similarity_ = knn_similarities(
                V,
                V,
                self.n_neighbors,
                shrinkage=self.shrinkage,
                cosine=self.similarity == "cosine",
                exclude_self=True,
                dtype=dtype,
                n_threads=n_threads,
                progress=progress,
                C_t=V_t,
                pearson=self.similarity == "pearson_baseline",
            )
        # the transposed neighbour lists serve the explicit estimate (i's own
        # neighbours); implicit ``predict`` transposes on demand
        self._similarity_t = _transpose(self.similarity_) if explicit else None
        return self

    def _lazy_similarities(self):
        """True if ``fit`` stores no similarities (see :class:`UserKNN`)."""
        return False

    @staticmethod
    def _check_all_pairs_memory(n, dtype, n_neighbors=None):
        """Raise ``MemoryError`` when the similarity kernel's buffers for ``n``
        rows of ``min(n_neighbors, n)`` neighbours (all n x n for None) would
        not fit in the available memory; return the estimate (bytes).

        Checked for None, for an integer that keeps every similarity (at least
        ``n - 1``: a row is not its own neighbour) and for any estimate above
        ``_CHECKED_BYTES``; smaller fits skip the look-up."""
        k = n if n_neighbors is None else min(int(n_neighbors), n)
        need = all_pairs_memory(n, k, dtype)
        if n_neighbors is not None and k < n - 1 and need <= _CHECKED_BYTES:
            return need
        avail = available_memory()
        if avail is not None and need > avail:
            if k >= n - 1:
                what = f"n_neighbors={n_neighbors} keeps all {n} x {n} similarities"
            else:
                what = f"n_neighbors={n_neighbors} keeps {n} x {k} similarities"
            raise MemoryError(
                f"{what}: the fit needs about {need / 2**30:.2f} GiB but "
                f"{avail / 2**30:.2f} GiB is available. Store fewer neighbours "
                "(a smaller n_neighbors, e.g. 10 x n_history_neighbors)."
            )
        return need

    def _residuals(self, R, user_bias):
        """``R`` with each stored rating minus the baseline (rows = users)."""
        R = sp.csr_matrix(R, copy=True)
        row = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
        base = self.global_mean_ + user_bias[row] + self.item_bias_[R.indices]
        R.data = (R.data - base).astype(R.dtype)
        return R

    def _weighted(self, M, fit):
        """The rows of ``M`` weighted as the ``weighting`` parameter says."""
        if self._weighting is None:
            return M
        if fit:
            self._set_weighting_stats(M)
        return self._weighted_pair(M, None)[0]

    def _set_weighting_stats(self, M):
        """The IDF of the terms and the mean document length of ``M``."""
        self._idf = feature_idf(M)
        self._avg_len = float(np.asarray(M.sum(axis=1)).mean())

    def _weighted_pair(self, M, M_t):
        """``_weighted(M)`` and, when ``M_t`` (M transposed) is given, the same
        weights on its layout (the transpose of the result, elementwise,
        without a transposition); ``_idf`` and ``_avg_len`` are set."""
        norm = None
        if self._weighting == "bm25":
            norm = _bm25_norm(M, self._avg_len, self.bm25_b)
        k1 = self.bm25_k1
        doc = _row_of_entries(M) if norm is not None else None
        W = _with_data(
            M,
            _weight_entries(self._weighting, M.data, doc, M.indices, self._idf, norm, k1).astype(
                M.dtype, copy=False
            ),
        )
        if M_t is None:
            return W, None
        # in M_t the documents are the columns, the terms the rows
        data_t = _weight_entries(
            self._weighting, M_t.data, M_t.indices, _row_of_entries(M_t), self._idf, norm, k1
        )
        return W, _with_data(M_t, data_t.astype(M_t.dtype, copy=False))

    def _new_history(self, m):
        """History of new users (CSR over fitted items, ``y`` summed) in the
        model's dtype; residuals of a one-sweep bias fit for explicit models."""
        H = sp.csr_matrix(m, dtype=self._history.dtype)
        if self.feedback != "explicit":
            return H, None
        row = np.repeat(np.arange(H.shape[0]), np.diff(H.indptr))
        num = np.bincount(
            row, H.data - self.global_mean_ - self.item_bias_[H.indices], minlength=H.shape[0]
        )
        b_u = num / (self.baseline_regularization + np.diff(H.indptr))
        return self._residuals(H, b_u), b_u

    def _predict_codes(self, user_codes, item_codes):
        known = (user_codes >= 0) & (item_codes >= 0)
        A, B, den_mode = self._pair_operands()
        if self.n_history_neighbors is None:
            num, den = pair_scores(
                A,
                np.where(known, user_codes, -1),
                B,
                np.where(known, item_codes, -1),
                den_mode=den_mode,
                n_threads=effective_n_threads(self.n_jobs),
            )
        else:
            # the key (similarity) is A's entry for user kNN (den_mode 1);
            # A is None when the similarities are computed here (lazy)
            pair_sums = self._lazy_pair_scores if A is None else history_pair_scores
            num, den = pair_sums(
                A,
                np.where(known, user_codes, -1),
                B,
                np.where(known, item_codes, -1),
                self.n_history_neighbors,
                key_is_a=den_mode == 1,
                n_threads=effective_n_threads(self.n_jobs),
            )
        if self.feedback != "explicit":
            return num
        out = np.full(len(user_codes), self.global_mean_)
        ku, ki = user_codes >= 0, item_codes >= 0
        out[ku] += self.user_bias_[user_codes[ku]]
        out[ki] += self.item_bias_[item_codes[ki]]
        with np.errstate(invalid="ignore", divide="ignore"):
            out += np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        return out

    def _rating_scores(self, num, den, user_bias, cand):
        """KNNBaseline estimate from the neighbour sums."""
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        return (
            self.global_mean_ + user_bias[:, None] + self.item_bias_[cand][None, :] + dev
        ).astype(num.dtype, copy=False)


class ItemKNN(_KNNBase):
    r"""Item-based nearest neighbours, for implicit feedback and for ratings.

        Every item :math:`i` keeps its ``n_neighbors`` most similar items
        :math:`N(i)`, with the cosine similarity with shrinkage :math:`h`

        .. math::

            s_{ij} = \frac{x_i \cdot x_j}{\lVert x_i\rVert \lVert x_j\rVert + h},

        where :math:`x_i` is item :math:`i`'s column of the user-item matrix
        (optionally TF-IDF or BM25 weighted, or with ``similarity="dot"`` the
        plain dot product, as implicit's item-item recommenders); only positive
        similarities are kept.  They are computed by a parallel kernel that
        accumulates one item's dot products at a time (cost
        :math:`O(\sum_u n_u^2)`, memory :math:`O(n_\text{items}\,k)`); the dense
        items x items matrix is never formed.

        **Implicit feedback** (``feedback="implicit"``): the score of item
        :math:`i` for user :math:`u` sums the similarities of the items the user
        has to :math:`i`, each seen item voting for its neighbours (implicit's
        formula), :math:`\hat y_{ui} = \sum_{j:\, i \in N(j)} y_{uj}\, s_{ji}`.

        **Ratings** (``feedback="explicit"``, like Surprise's KNNBaseline): with
        the baseline :math:`b_{ui} = \mu + b_u + b_i` (regularised least squares,
        :class:`BaselineRegressor`) and the similarities computed on the
        residuals :math:`r_{uj} - b_{uj}`,

        .. math::

            \hat r_{ui} = b_{ui} + \frac{\sum_{j \in N(i) \cap I(u)} s_{ij}\,
                (r_{uj} - b_{uj})}{\sum_{j \in N(i) \cap I(u)} s_{ij}},

        and :math:`\hat r_{ui} = b_{ui}` when no neighbour of :math:`i` was rated
        by :math:`u`.  ``recommend`` then ranks by predicted rating.

        **History-side neighbourhoods** (``n_history_neighbors`` = k, the
        semantics of LensKit's ItemKNN ``max_nbrs`` and Surprise's ``k``): the
        sums above run only over :math:`N^k_u(i)`, the k items of the user's
        history with the largest stored similarity to :math:`i`, so that every
        item is scored from up to k of the user's items however few stored
        lists reach them; :math:`\hat y_{ui} = \sum_{j \in N^k_u(i)} y_{uj}\,
        s_{ji}` (with unit strengths LensKit's implicit sum of similarities)
        and, for ratings, the weighted residual average over
        :math:`N^k_u(i)` (Surprise's KNNBaseline with ``min_k=1``).  Then
        ``n_neighbors`` only bounds what is stored (None: everything, as
        Surprise and LensKit's default ``save_nbrs``).  A parallel kernel keeps
        a bounded heap per candidate item, filled from the user's items' lists.

        A new user is served from their history without refitting
        (:meth:`recommend_new`); unknown users get the popularity fallback.
        There is no ``partial_fit``: new interactions change the norms and
        neighbour lists of many items, so an exact update is not cheap (refit).

        Parameters
        ----------
        {params}
    {attributes}
        See Also
        --------
        UserKNN : The same over users.
        EASE : Dense closed-form item-item weights, often more accurate.

        Examples
        --------
        >>> from sklearn_mf import ItemKNN
        >>> X = [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "c"), (4, "c")]
        >>> knn = ItemKNN(n_neighbors=2, shrinkage=0.0, weighting=None).fit(X)
        >>> round(float(knn.similarity_[0, 1]), 4)  # cos(a, b) = 2 / sqrt(3 * 2)
        0.8165
        >>> items, scores = knn.recommend([4], n=1)
        >>> items.tolist()
        [['a']]
        >>> knn.similar_items(["b"], n=1).items.tolist()
        [['a']]
    """

    def _auto_weighting(self):
        return "bm25" if self.feedback == "implicit" else None

    def _vectors(self, H, fit):
        """Item vectors (items x users) and their transpose."""
        # the transposition runs in parallel from 100k entries (one pass below)
        n_threads = effective_n_threads(self.n_jobs) if H.nnz >= 100_000 else 1
        V = _transpose(H, n_threads)
        if self._weighting is None:
            return V, H
        if fit:
            self._set_weighting_stats(V)
        # the weighted vectors and their transpose (H's layout, weighted alike)
        return self._weighted_pair(V, H)

    def _scores_from(self, H, rows, user_bias, cand):
        n_threads = effective_n_threads(self.n_jobs)
        if self.n_history_neighbors is not None:
            # the references are the user's items; row j of the similarity
            # operand lists the targets j votes for (implicit: j's neighbours,
            # explicit: the items having j as a neighbour, as below)
            explicit = self.feedback == "explicit"
            num, den = history_scores(
                H,
                rows,
                self._similarity_t if explicit else self.similarity_,
                cand,
                self.n_history_neighbors,
                key_is_a=False,
                with_den=explicit,
                n_threads=n_threads,
            )
            return self._rating_scores(num, den, user_bias, cand) if explicit else num
        if self.feedback == "explicit":
            num, den = score_rows(H, rows, self._similarity_t, den_mode=2, n_threads=n_threads)
            return self._rating_scores(
                self._take(num, cand), self._take(den, cand), user_bias, cand
            )
        out, _ = score_rows(H, rows, self.similarity_, n_threads=n_threads)
        return self._take(out, cand)

    def _known_scores(self, user_codes, cand):
        bias = self.user_bias_[user_codes] if self.feedback == "explicit" else None
        return self._scores_from(self._history, user_codes, bias, cand)

    def _new_scores(self, m, cand):
        H, b_u = self._new_history(m)
        return self._scores_from(H, np.arange(H.shape[0]), b_u, cand)

    def _pair_operands(self):
        """(A, B, den_mode): the score of (u, i) is ``A[u] . B[i]``."""
        if self.feedback == "explicit":
            return self._history, self.similarity_, 2
        return self._history, _transpose(self.similarity_), 0

    def similar_items(self, items, n=10):
        """The ``n`` most similar stored neighbours of each item.

        Parameters
        ----------
        items : id or array-like of ids
            Raw item ids seen in ``fit``.
        n : int, default=10
            Neighbours per item (the item itself is excluded); fewer than
            ``n`` stored neighbours leave trailing ``None`` / ``-inf`` slots.

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` and ``scores`` (the similarities :math:`s_{ij}`).
        """
        check_is_fitted(self)
        return self._neighbour_search(
            items, n, self.similarity_, self._item_index, self.items_, "items"
        )


class UserKNN(_KNNBase):
    r"""User-based nearest neighbours, for implicit feedback and for ratings.

        Every user :math:`u` keeps the ``n_neighbors`` most similar users
        :math:`N(u)`, by the cosine similarity with shrinkage :math:`h` of their
        rows of the user-item matrix,
        :math:`s_{uv} = x_u \cdot x_v / (\lVert x_u\rVert \lVert x_v\rVert + h)`
        (optionally TF-IDF or BM25 weighted, or the plain dot product); only
        positive similarities are kept, computed by the same parallel sparse
        kernel as :class:`ItemKNN` (never the dense users x users matrix).

        **Implicit feedback**: :math:`\hat y_{ui} = \sum_{v \in N(u)} s_{uv}\,
        y_{vi}`.  **Ratings** (``feedback="explicit"``, like Surprise's
        user-based KNNBaseline): with the baseline
        :math:`b_{ui} = \mu + b_u + b_i` and similarities of the residuals,

        .. math::

            \hat r_{ui} = b_{ui} + \frac{\sum_{v \in N(u) \cap U(i)} s_{uv}\,
                (r_{vi} - b_{vi})}{\sum_{v \in N(u) \cap U(i)} s_{uv}}.

        **History-side neighbourhoods** (``n_history_neighbors`` = k, LensKit's
        UserKNN ``max_nbrs`` and Surprise's user-based ``k``): the sums run
        only over the k users of :math:`N(u) \cap U(i)` most similar to
        :math:`u`, a different set for every item; store all neighbours
        (``n_neighbors=None``) for the peers' formula.  That setting is
        *lazy*, as LensKit's UserKNN: ``fit`` keeps only the (weighted) user
        vectors, their transpose and norms (memory :math:`O(\text{nnz})`, no
        users x users matrix and no memory check), and ``recommend``,
        ``predict``, :meth:`recommend_new` and :meth:`similar_users` compute
        the similarities of the users being scored, in blocks of users whose
        kernel buffers stay under 64 MB; the results are bit-identical to
        storing them (``n_neighbors`` >= the number of users), and
        ``similarity_`` is computed (whole, memory checked) when it is read.

        A new user (:meth:`recommend_new`) gets their neighbours among the
        trained users from the given history, then the same scores; the model is
        not changed.  No ``partial_fit`` (new interactions change the
        neighbourhoods of many users; refit).

        Parameters
        ----------
        {params}
    {attributes}
        See Also
        --------
        ItemKNN : The same over items (usually better when items are fewer).

        Examples
        --------
        >>> from sklearn_mf import UserKNN
        >>> X = [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (2, "c"), (3, "d")]
        >>> knn = UserKNN(n_neighbors=2, shrinkage=0.0).fit(X)
        >>> items, scores = knn.recommend([1], n=1)
        >>> items.tolist()
        [['c']]
        >>> knn.similar_users([1], n=1).items.tolist()
        [[2]]
    """

    def __init__(
        self,
        n_neighbors=50,
        *,
        n_history_neighbors=None,
        similarity="cosine",
        shrinkage=10.0,
        weighting="auto",
        bm25_k1=100.0,
        bm25_b=0.8,
        feedback="implicit",
        baseline_regularization=10.0,
        handle_unknown="fallback",
        dtype=np.float32,
        n_jobs=None,
        verbose=0,
    ):
        super().__init__(
            n_neighbors,
            n_history_neighbors=n_history_neighbors,
            similarity=similarity,
            shrinkage=shrinkage,
            weighting=weighting,
            bm25_k1=bm25_k1,
            bm25_b=bm25_b,
            feedback=feedback,
            baseline_regularization=baseline_regularization,
            handle_unknown=handle_unknown,
            dtype=dtype,
            n_jobs=n_jobs,
            verbose=verbose,
        )

    def _auto_weighting(self):
        return None

    def _vectors(self, H, fit):
        """User vectors (users x items) and their transpose (None: not at hand)."""
        return self._weighted(H, fit), None

    def _lazy_similarities(self):
        return self.n_neighbors is None and self.n_history_neighbors is not None

    @property
    def similarity_(self):
        d = self.__dict__
        if "similarity_" in d:  # unpickled from a version without the property
            return d["similarity_"]
        if "_similarity" not in d:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute 'similarity_'")
        if d["_similarity"] is None:
            # not stored (lazy): the whole matrix, computed now
            n = len(self.users_)
            self._check_all_pairs_memory(n, self._history.dtype)
            return self._similarity_rows(np.arange(n))
        return d["_similarity"]

    @similarity_.setter
    def similarity_(self, S):
        self.__dict__.pop("similarity_", None)
        self.__dict__["_similarity"] = S

    def _similarity_blocks(self, codes=None, Q=None):
        """Yield ``(slice, S)``: the similarity rows (all positive ones, as
        ``fit`` stores with ``n_neighbors=None``) of blocks of the fitted users
        ``codes`` (themselves excluded), or of the rows of the weighted new
        user vectors ``Q``, from the vectors kept by a lazy ``fit``; the
        kernel's dense buffers stay under ``_LAZY_BLOCK_BYTES``."""
        V, V_t, norms = self._lazy_operands
        dtype = self._history.dtype.type
        n_q = len(codes) if Q is None else Q.shape[0]
        q_norms = norms if Q is None else _row_norms(sp.csr_matrix(Q))
        per_row = max(V.shape[0], 1) * (4 + np.dtype(dtype).itemsize)
        block = max(1, _LAZY_BLOCK_BYTES // per_row)
        n_threads = effective_n_threads(self.n_jobs)
        for start in range(0, max(n_q, 1), block):
            stop = min(start + block, n_q)
            if Q is None:
                rows = np.asarray(codes[start:stop], dtype=np.intp)
                q, qn = V[rows], q_norms[rows]
            else:
                q, qn = Q[start:stop], q_norms[start:stop]
            S = knn_similarities(
                q,
                V,
                None,
                shrinkage=self.shrinkage,
                cosine=self.similarity == "cosine",
                dtype=dtype,
                n_threads=n_threads,
                C_t=V_t,
                pearson=self.similarity == "pearson_baseline",
                q_norms=qn,
                c_norms=norms,
            )
            yield slice(start, stop), (_drop_self(S, rows) if Q is None else S)

    def _similarity_rows(self, codes):
        """Rows ``codes`` of the users x users similarities (CSR)."""
        if not getattr(self, "_lazy", False):
            return self.similarity_[codes]
        blocks = [S for _, S in self._similarity_blocks(np.asarray(codes, dtype=np.intp))]
        return blocks[0] if len(blocks) == 1 else sp.vstack(blocks, format="csr")

    def _lazy_pair_scores(self, A, a_rows, B, b_rows, k, *, key_is_a, n_threads=1):
        """:func:`history_pair_scores` with A the similarities of the users
        ``a_rows``, computed block by block of distinct users (A is None)."""
        num = np.zeros(len(a_rows))
        den = np.zeros(len(a_rows))
        uniq, pos = np.unique(np.asarray(a_rows, dtype=np.intp), return_inverse=True)
        pos = pos.ravel()
        if len(uniq) and uniq[0] < 0:  # the unknown pairs stay 0
            uniq, pos = uniq[1:], pos - 1
        if len(uniq) == 0:
            return num, den
        for block, S in self._similarity_blocks(uniq):
            sel = np.flatnonzero((pos >= block.start) & (pos < block.stop))
            num[sel], den[sel] = history_pair_scores(
                S,
                pos[sel] - block.start,
                B,
                b_rows[sel],
                k,
                key_is_a=key_is_a,
                n_threads=n_threads,
            )
        return num, den

    def _scores_from(self, S, user_bias, cand):
        """Scores of users whose neighbour rows (over trained users) are ``S``."""
        n_threads = effective_n_threads(self.n_jobs)
        rows = np.arange(S.shape[0])
        if self.n_history_neighbors is not None:
            # the references are the neighbour users, the targets their items
            explicit = self.feedback == "explicit"
            num, den = history_scores(
                S,
                rows,
                self._history,
                cand,
                self.n_history_neighbors,
                key_is_a=True,
                with_den=explicit,
                n_threads=n_threads,
            )
            return self._rating_scores(num, den, user_bias, cand) if explicit else num
        if self.feedback == "explicit":
            num, den = score_rows(S, rows, self._history, den_mode=1, n_threads=n_threads)
            return self._rating_scores(
                self._take(num, cand), self._take(den, cand), user_bias, cand
            )
        out, _ = score_rows(S, rows, self._history, n_threads=n_threads)
        return self._take(out, cand)

    def _known_scores(self, user_codes, cand):
        bias = self.user_bias_[user_codes] if self.feedback == "explicit" else None
        if getattr(self, "_lazy", False):
            return self._lazy_scores(self._similarity_blocks(user_codes), bias, cand)
        return self._scores_from(self.similarity_[user_codes], bias, cand)

    def _lazy_scores(self, blocks, user_bias, cand):
        """:meth:`_scores_from` of the similarity blocks of a lazy model."""
        out = [
            self._scores_from(S, None if user_bias is None else user_bias[sl], cand)
            for sl, S in blocks
        ]
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _new_scores(self, m, cand):
        H, b_u = self._new_history(m)
        if getattr(self, "_lazy", False):
            Q = self._vectors(H, fit=False)[0]
            return self._lazy_scores(self._similarity_blocks(Q=Q), b_u, cand)
        V, _ = self._vectors(self._history, fit=False)
        S = knn_similarities(
            self._vectors(H, fit=False)[0],
            V,
            self.n_neighbors,
            shrinkage=self.shrinkage,
            cosine=self.similarity == "cosine",
            dtype=self._history.dtype.type,
            n_threads=effective_n_threads(self.n_jobs),
            pearson=self.similarity == "pearson_baseline",
        )
        return self._scores_from(S, b_u, cand)

    def _pair_operands(self):
        """(A, B, den_mode): the score of (u, i) is ``A[u] . B[i]``."""
        S = None if getattr(self, "_lazy", False) else self.similarity_
        return S, _transpose(self._history), 1

    def similar_users(self, users, n=10):
        """The ``n`` most similar stored neighbours of each user.

        Parameters
        ----------
        users : id or array-like of ids
            Raw user ids seen in ``fit``.
        n : int, default=10
            Neighbours per user (the user itself is excluded); fewer stored
            neighbours leave trailing ``None`` / ``-inf`` slots.

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` holds the neighbouring *user* ids, ``scores`` the
            similarities :math:`s_{uv}`.
        """
        check_is_fitted(self)
        S = self._similarity_rows if getattr(self, "_lazy", False) else self.similarity_
        return self._neighbour_search(users, n, S, self._user_index, self.users_, "users")


for _cls, _row in ((ItemKNN, "item"), (UserKNN, "user")):
    _cls.__doc__ = _cls.__doc__.replace("{attributes}\n", _KNN_DOC_ATTRS.format(row=_row))
ItemKNN.__doc__ = ItemKNN.__doc__.replace(
    "{params}",
    _KNN_DOC_PARAMS.format(
        n_neighbors=100,
        shrinkage=10.0,
        row="item",
        feature="user",
        auto='"bm25" for implicit feedback (the best of the three on MovieLens '
        "100K and Amazon, see :ref:`models`), None for ratings.",
        history="the score of item :math:`i` for user :math:`u` uses only the "
        "k items of the user's history most similar to :math:`i` (among the "
        "stored similarities), instead of every history item that has "
        ":math:`i` among its stored neighbours.  Better on sparse data, where "
        "few stored lists reach a user's items; see above.",
    )
    .strip("\n")
    .lstrip(),
)
UserKNN.__doc__ = UserKNN.__doc__.replace(
    "{params}",
    _KNN_DOC_PARAMS.format(
        n_neighbors=50,
        shrinkage=10.0,
        row="user",
        feature="item",
        auto="None (weighting did not help user neighbourhoods in our measurements).",
        history="the score of item :math:`i` for user :math:`u` uses only the "
        "k users most similar to :math:`u` among those who have :math:`i` "
        "(within :math:`u`'s stored neighbours), instead of every stored "
        "neighbour who has :math:`i`.  See above.",
    )
    .strip("\n")
    .lstrip(),
)
