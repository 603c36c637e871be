"""What every recommender shares: ids, the unknown-id policy, ``predict``, ``recommend``.

Three mixins split the recommender interface along what a model has:

:class:`RecommenderMixin` (this module), for every recommender
    The fitted ids, ``predict`` with the unknown-id policy, batched
    ``recommend`` with the popularity fallback, and the one ranking routine
    (``_rank``) that ``recommend``, ``recommend_new`` and ``similar_*`` share.
:class:`~sklearn_mf.LatentFactorMixin` (``_latent.py``), for models with factors
    ``similar_items``, ``similar_users`` and ``build_similarity_index``.
:class:`~sklearn_mf.FoldInMixin` (``_fold_in.py``), for models that fold new users in
    ``fold_in`` and ``recommend_new``.

Every recommender stores, after ``fit``:

``users_``, ``items_``
    The raw ids; position = internal index (like ``classes_``).  After ``fit``
    they are sorted when the ids are mutually comparable; ``partial_fit``
    appends ids it has not seen before.
``user_items_``
    The training interactions as a CSR matrix of shape (n_users, n_items)
    (summed ``y`` per cell): what ``recommend(exclude_seen=True)`` removes.
``item_popularity_``
    Number of training interactions per item: the cold-start fallback.

Hooks a new model implements to plug into :class:`RecommenderMixin`:

``_predict_codes(user_codes, item_codes)``
    Scores of (user, item) code pairs, ``-1`` marking an id unseen in ``fit``
    (``predict`` and the rating models' noise estimate call it).
``_user_embeddings(user_codes)`` and ``_item_embeddings()``
    User vectors, and ``(item vectors, per-item additive score or None)``: a
    ranking score is ``user vector . item vector + item score + user offset``;
    :class:`~sklearn_mf.LatentFactorMixin` gives defaults reading
    ``user_factors_`` / ``item_factors_``.  A model whose scores are not a dot
    product overrides ``_score_candidates(user_codes, cand_vectors,
    cand_offset)`` instead (dense scores of the users against the candidates).
``_user_offsets(user_codes)`` (optional)
    Per-user additive score (does not change the ranking), default None.
``_fallback_item_scores()`` (optional)
    Scores for unknown users, default the item popularity.

Rating models also inherit :class:`RatingRegressorMixin` (R^2 ``score``, the
clipping of predictions to the training range), implicit-feedback models
:class:`ImplicitRecommenderMixin` (NDCG@10 ``score``).
"""

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from sklearn_mf import _topk
from sklearn_mf._ids import _as_id_array, _ids_from_codes, factorize_ids, id_index, lookup_ids
from sklearn_mf._online import grow_ids
from sklearn_mf._training import seen_matrix
from sklearn_mf._utils import effective_n_threads
from sklearn_mf._validation import check_interactions, check_n

# Memory budget for one block of dense scores in recommend / similar_items.
_SCORE_BLOCK_BYTES = 64 * 2**20

# Parameter values whose validity is a function of the value alone (immutable,
# hashable): a combination found valid once is not checked again
_SIMPLE_PARAM_TYPES = (type(None), bool, int, float, str, bytes, np.generic, type)
_VALID_PARAMS_KEPT = 64  # combinations remembered per class


def _params_key(params):
    """A hashable key of ``get_params(deep=False)``, or None when a value is
    not of a simple immutable type (it is then validated every time)."""
    key = []
    for name, value in params.items():
        if not isinstance(value, _SIMPLE_PARAM_TYPES):
            return None
        key.append((name, type(value), value))
    return tuple(key)


class Recommendations:
    """Top-N results for a batch of queries (users, or items for ``similar_items``).

    Unpacks as ``items, scores = model.recommend(...)``.

    Attributes
    ----------
    query : ndarray of shape (n_queries,)
        The user (or item) ids asked for, in order.
    items : ndarray of shape (n_queries, n)
        Returned ids, best first (item ids; user ids for ``similar_users``).
        When fewer than ``n`` candidates remain for a query (for example a user
        who has seen almost the whole catalogue), the trailing slots hold
        ``None`` (the array is then of object dtype) and their score is ``-inf``.
    scores : ndarray of shape (n_queries, n)
        The model's score for each returned id (for an explicit-feedback model
        the predicted rating; cosine similarity for ``similar_*``; the number of
        training interactions for rows served by the popularity fallback).
    fallback : ndarray of bool of shape (n_queries,)
        True for queries the model did not know (served by the popularity
        fallback).
    """

    def __init__(self, query, items, scores, fallback):
        self.query = query
        self.items = items
        self.scores = scores
        self.fallback = fallback

    def __iter__(self):
        yield self.items
        yield self.scores

    def __len__(self):
        return 2

    def __repr__(self):
        return (
            f"Recommendations(n_queries={len(self.query)}, n={self.items.shape[1]}, "
            f"n_fallback={int(self.fallback.sum())})"
        )

    def to_frame(self, query_name="user", item_name="item"):
        """Tidy DataFrame with one row per (query, rank); padded slots dropped.

        Columns: ``query_name``, ``rank`` (1 = best), ``item_name``, ``score``,
        ``fallback``.
        """
        n_q, n = self.scores.shape
        valid = np.isfinite(self.scores).ravel()
        frame = pd.DataFrame(
            {
                query_name: np.repeat(self.query, n),
                "rank": np.tile(np.arange(1, n + 1), n_q),
                item_name: self.items.ravel(),
                "score": self.scores.ravel(),
                "fallback": np.repeat(self.fallback, n),
            }
        )
        return frame[valid].reset_index(drop=True)


def known_codes(index, ids, what, reason):
    """Codes of raw ``ids`` in ``index``; a ``ValueError`` naming unknown ones.

    ``what`` names the ids in the message ("items", "user(s)"), ``reason``
    ends it (why unknown ids are refused).
    """
    query = _as_id_array(ids)
    codes = lookup_ids(index, query)
    unknown = codes < 0
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} {what} not seen in fit, e.g. {list(query[unknown][:5])}{reason}"
        )
    return query, codes


class RecommenderMixin:
    """Id handling, unknown-id policy, ``predict`` and batched ``recommend``.

    Shared by every recommender of sklearn_mf.  See the module docstring of
    ``sklearn_mf._base`` for the hooks a model implements; models with
    factors add :class:`~sklearn_mf.LatentFactorMixin`, models that fold new
    users in :class:`~sklearn_mf.FoldInMixin`.

    Examples
    --------
    >>> from sklearn_mf import PopularityRecommender, RecommenderMixin
    >>> X = [[0, "a"], [0, "b"], [1, "a"], [2, "c"], [2, "a"]]
    >>> model = PopularityRecommender().fit(X)
    >>> isinstance(model, RecommenderMixin)
    True
    >>> items, scores = model.recommend([1, "someone new"], n=2)
    >>> items[1].tolist()
    ['a', 'b']
    """

    # ------------------------------------------------------- parameter checks
    # scikit-learn's ``_fit_context`` validates the parameters on every fit:
    # the constructor's signature by ``inspect`` (50 us) and every constraint
    # object rebuilt (60 us), a twentieth of a 2 ms kNN fit.  The names are
    # looked up once per class (and constructor) and a valid combination of
    # simple values is remembered; any other value is validated as before.
    @classmethod
    def _get_param_names(cls):
        init = cls.__init__
        cached = cls.__dict__.get("_sklearn_mf_param_names")
        if cached is None or cached[0] is not init:
            cached = (init, tuple(super()._get_param_names()))
            type.__setattr__(cls, "_sklearn_mf_param_names", cached)
        return list(cached[1])

    def _validate_params(self):
        cls = type(self)
        constraints = cls._parameter_constraints
        cached = cls.__dict__.get("_sklearn_mf_valid_params")
        if cached is None or cached[0] is not constraints:
            cached = (constraints, set())
            type.__setattr__(cls, "_sklearn_mf_valid_params", cached)
        key = _params_key(self.get_params(deep=False))
        if key is not None and key in cached[1]:
            return
        super()._validate_params()
        if key is not None:
            if len(cached[1]) >= _VALID_PARAMS_KEPT:
                cached[1].clear()
            cached[1].add(key)

    # ------------------------------------------------------------ persistence
    def __getstate__(self):
        # the pandas lookup indexes are rebuilt from users_ / items_ on load:
        # pickles stay smaller and skops, which stores no pandas objects, works
        state = dict(super().__getstate__())
        state.pop("_user_index", None)
        state.pop("_item_index", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "users_" in state:
            self._user_index = id_index(self.users_)
            self._item_index = id_index(self.items_)

    # ------------------------------------------------------------------ ids
    def _fit_ids(self, users, items):
        """Encode raw ids from scratch (``fit``); sets ``users_`` and ``items_``."""
        # the raw id arrays are private copies (check_interactions): the codes
        # may share their memory (ids that are already int32 codes)
        u, users_ = factorize_ids(users, copy=False)
        i, items_ = factorize_ids(items, copy=False)
        self._set_ids(users_, items_)
        return u, i

    def _set_ids(self, users_, items_):
        """Set the fitted raw ids (position = code) and their lookup indexes."""
        self.users_, self.items_ = users_, items_
        self._user_index = id_index(self.users_)
        self._item_index = id_index(self.items_)

    def _grow_ids(self, users, items):
        """Encode with the fitted ids, appending ids never seen before.

        Returns ``(user_codes, item_codes, n_new_users, n_new_items)``.
        """
        u, i, users_, items_, n_u, n_i = grow_ids(self, users, items)
        self._set_ids(users_, items_)
        return u, i, n_u, n_i

    def _user_codes(self, users):
        return lookup_ids(self._user_index, users)

    def _item_codes(self, items):
        return lookup_ids(self._item_index, items)

    def _set_training_interactions(self, user_codes, item_codes, values=None):
        """Store the seen-items CSR and the item popularity counts."""
        self.user_items_, self.item_popularity_ = seen_matrix(
            user_codes, item_codes, values, len(self.users_), len(self.items_)
        )

    def _check_unknown(self, user_codes, item_codes):
        policy = getattr(self, "handle_unknown", "fallback")
        if policy == "error":
            bad_u = user_codes < 0
            bad_i = item_codes < 0
            if bad_u.any() or bad_i.any():
                raise ValueError(
                    f"{int(bad_u.sum())} row(s) have a user and {int(bad_i.sum())} row(s) "
                    "an item not seen in fit (handle_unknown='error'); use "
                    "handle_unknown='fallback' to score them from the global mean "
                    "and known biases."
                )

    # -------------------------------------------------------------- predict
    def predict(self, X):
        """Score each (user, item) row of ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids; other columns are ignored.

        Returns
        -------
        y_pred : ndarray of shape (n_interactions,)
            Predictions.  Rows whose user or item was not seen in ``fit``
            follow ``handle_unknown``: ``"fallback"`` scores them with what is
            known (for explicit models ``global_mean_`` plus the known bias),
            ``"nan"`` returns NaN for them, ``"error"`` raises ``ValueError``.
        """
        check_is_fitted(self)
        users, items, _, _ = check_interactions(self, X, reset=False)
        u, i = self._user_codes(users), self._item_codes(items)
        self._check_unknown(u, i)
        pred = np.asarray(self._predict_codes(u, i), dtype=np.float64)
        if getattr(self, "handle_unknown", "fallback") == "nan":
            pred[(u < 0) | (i < 0)] = np.nan
        return pred

    # ----------------------------------------------------------- ranking
    def _user_offsets(self, user_codes):
        """Per-user additive score (does not change the ranking) or None."""
        return None

    def _score_candidates(self, user_codes, cand_vectors, cand_offset):
        """Dense scores of shape (len(user_codes), n_candidates)."""
        S = self._user_embeddings(user_codes) @ cand_vectors.T
        if cand_offset is not None:
            S += cand_offset
        off = self._user_offsets(user_codes)
        if off is not None:
            S += off[:, None]
        return np.ascontiguousarray(S)

    def _fallback_item_scores(self):
        """Scores used for users the model does not know: item popularity."""
        return self.item_popularity_.astype(np.float64)

    def _candidate_codes(self, items, exclude_items):
        if items is None:
            cand = np.arange(len(self.items_), dtype=np.intp)
        else:
            _, cand = known_codes(self._item_index, items, "id(s) in items were", ".")
            cand = np.unique(cand.astype(np.intp))
        if exclude_items is not None:
            deny = self._item_codes(_as_id_array(exclude_items))
            cand = np.setdiff1d(cand, deny[deny >= 0], assume_unique=False)
        if len(cand) == 0:
            raise ValueError("No candidate items are left after applying items/exclude_items.")
        return cand

    @staticmethod
    def _topk_codes(row_codes, n, cand, n_total, *, exclude, score_rows, n_threads):
        """Top-n candidate positions for rows of scores produced by ``score_rows``.

        ``exclude`` is a CSR matrix whose row ``row_codes[r]`` lists item codes
        to remove from row r (or None).  Returns (item codes, scores); padded
        slots have code -1 and score -inf.
        """
        n_rows = len(row_codes)
        item_to_cand = np.full(n_total, -1, dtype=np.intp)
        item_to_cand[cand] = np.arange(len(cand), dtype=np.intp)
        if exclude is None:
            indptr = np.zeros(1, dtype=np.int32)
            indices = np.zeros(0, dtype=np.int32)
        else:
            indptr, indices = exclude.indptr, exclude.indices
        chunk = max(1, min(n_rows, _SCORE_BLOCK_BYTES // (8 * len(cand))))
        out_codes = np.empty((n_rows, n), dtype=np.intp)
        out_scores = None
        for start in range(0, n_rows, chunk):
            stop = min(start + chunk, n_rows)
            S = score_rows(row_codes[start:stop])
            if out_scores is None:
                out_scores = np.empty((n_rows, n), dtype=S.dtype)
            row_map = (
                np.full(stop - start, -1, dtype=np.intp)
                if exclude is None
                else np.asarray(row_codes[start:stop], dtype=np.intp)
            )
            _topk.topk_rows(
                S,
                indptr,
                indices,
                row_map,
                item_to_cand,
                out_scores[start:stop],
                out_codes[start:stop],
                n_threads,
            )
        valid = out_codes >= 0
        codes = np.where(valid, cand[np.where(valid, out_codes, 0)], -1)
        return codes, out_scores

    def _product_topk(self, cand):
        """The ``topk`` of :meth:`_rank` for fitted users and the factor product."""
        V, b = self._item_embeddings()
        Vc = np.ascontiguousarray(V[cand])
        bc = None if b is None else b[cand]
        return lambda rows, n, exclude, n_threads: self._topk_product_codes(
            rows, n, cand, Vc, bc, exclude, n_threads
        )

    def _topk_product_codes(self, row_codes, n, cand, Vc, bc, exclude, n_threads):
        """``_topk_codes`` of the plain factor product, without materialising the scores.

        The scores ``_score_candidates`` would compute (user embeddings times
        ``Vc``, plus the candidate and user offsets) are produced tile by tile
        inside the top-k kernel; the result is the same.
        """
        from sklearn_mf._als import blas_single_thread

        U = self._user_embeddings(row_codes)
        dtype = np.result_type(U.dtype, Vc.dtype)
        U = np.ascontiguousarray(U, dtype=dtype)
        Vc = np.ascontiguousarray(Vc, dtype=dtype)
        off = self._user_offsets(row_codes)
        none = np.zeros(0, dtype=np.float64)
        col_off = none if bc is None else np.ascontiguousarray(bc, dtype=np.float64)
        row_off = none if off is None else np.ascontiguousarray(off, dtype=np.float64)
        item_to_cand = np.full(len(self.items_), -1, dtype=np.intp)
        item_to_cand[cand] = np.arange(len(cand), dtype=np.intp)
        sorted_exclusions = False
        if exclude is None:
            indptr, indices = np.zeros(1, dtype=np.int32), np.zeros(0, dtype=np.int32)
            row_map = np.full(len(row_codes), -1, dtype=np.intp)
        else:
            indptr = np.ascontiguousarray(exclude.indptr, dtype=np.int32)
            indices = np.ascontiguousarray(exclude.indices, dtype=np.int32)
            row_map = np.asarray(row_codes, dtype=np.intp)
            # rows sorted and candidates in item order: one walk per row (the
            # check of the rows is cached by scipy on the matrix)
            sorted_exclusions = bool(exclude.has_sorted_indices) and bool(
                np.all(cand[1:] > cand[:-1])
            )
        out_codes = np.empty((len(row_codes), n), dtype=np.intp)
        out_scores = np.empty((len(row_codes), n), dtype=dtype)
        with blas_single_thread():
            _topk.topk_product(
                U,
                Vc,
                col_off,
                row_off,
                indptr,
                indices,
                row_map,
                item_to_cand,
                out_scores,
                out_codes,
                n_threads,
                sorted_exclusions,
            )
        valid = out_codes >= 0
        codes = np.where(valid, cand[np.where(valid, out_codes, 0)], -1)
        return codes, out_scores

    def _rank(
        self,
        row_codes,
        n,
        cand,
        raw_ids,
        *,
        score_rows,
        exclude=None,
        popular=None,
        dtype=None,
        topk=None,
    ):
        """The ranking routine of ``recommend``, ``recommend_new`` and ``similar_*``.

        Query ``r`` with ``row_codes[r] >= 0`` gets the top ``n`` of ``cand``
        (codes into ``raw_ids``) under ``score_rows(row_codes)``, minus row
        ``row_codes[r]`` of the CSR ``exclude``; a query flagged in the bool
        mask ``popular`` gets the top ``n`` of the popularity fallback; any
        other query (code -1) gets NaN scores.  ``dtype`` fixes the dtype of the
        scores (default: that of ``score_rows``).  ``topk(rows, n, exclude,
        n_threads) -> (codes, scores)``, when given, replaces the top-k of
        ``score_rows`` for the scored queries (the fused product kernel of
        :meth:`_topk_product_codes`).  Returns ``(ids, scores)``.
        """
        n_threads = effective_n_threads(getattr(self, "n_jobs", None))
        if topk is None:

            def topk(rows, n, exclude, n_threads):
                return self._topk_codes(
                    rows,
                    n,
                    cand,
                    len(raw_ids),
                    exclude=exclude,
                    score_rows=score_rows,
                    n_threads=n_threads,
                )

        scored = np.flatnonzero(row_codes >= 0)
        if len(scored) == len(row_codes):
            out_codes, out_scores = topk(
                np.asarray(row_codes, dtype=np.intp), n, exclude, n_threads
            )
        else:
            out_codes = np.full((len(row_codes), n), -1, dtype=np.intp)
            out_scores = np.full((len(row_codes), n), -np.inf)
            if len(scored):
                out_codes[scored], out_scores[scored] = topk(
                    np.asarray(row_codes[scored], dtype=np.intp), n, exclude, n_threads
                )
            fallback = row_codes < 0
            if popular is not None and popular.any():
                pop = self._fallback_item_scores()[cand][None, :]
                fc, fs = self._topk_codes(
                    np.zeros(1, dtype=np.intp),
                    n,
                    cand,
                    len(raw_ids),
                    exclude=None,
                    score_rows=lambda rows: np.ascontiguousarray(pop, dtype=np.float64),
                    n_threads=1,
                )
                out_codes[popular], out_scores[popular] = fc[0], fs[0]
                fallback &= ~popular
            out_scores[fallback] = np.nan
        if dtype is not None:
            out_scores = out_scores.astype(dtype, copy=False)
        return _ids_from_codes(raw_ids, out_codes), out_scores

    def _score_users(self, cand):
        """``score_rows`` of ``_rank`` for fitted users against candidates ``cand``."""
        V, b = self._item_embeddings()
        Vc = np.ascontiguousarray(V[cand])
        bc = None if b is None else b[cand]
        return lambda rows: self._score_candidates(rows, Vc, bc)

    def recommend(self, users, n=10, *, exclude_seen=True, items=None, exclude_items=None):
        """Top-``n`` items for each of many users, in one batched call.

        Scores are computed block by block (a BLAS matrix product of user and
        item factors, in memory-bounded chunks) and the best ``n`` per user are
        kept by a parallel partial sort; there is no Python loop over users.

        Parameters
        ----------
        users : id or array-like of ids
            Raw user ids.  Users not seen in ``fit`` are served by the
            popularity fallback (most interacted-with items) and flagged in
            ``fallback``, unless ``handle_unknown="error"`` (raise) or ``"nan"``
            (empty rows).
        n : int, default=10
            Number of items per user; at most the number of candidate items.
        exclude_seen : bool, default=True
            Remove the items each user interacted with in ``fit``.
        items : array-like of ids, default=None
            Allow-list: rank only these items (all items if None).
        exclude_items : array-like of ids, default=None
            Deny-list: never return these items.

        Returns
        -------
        recommendations : :class:`Recommendations`
            ``items`` and ``scores`` arrays of shape (n_users, n), best first,
            and the ``fallback`` mask.  Unpacks as ``items, scores``.
        """
        check_is_fitted(self)
        policy = getattr(self, "handle_unknown", "fallback")
        if policy == "error":
            query, codes = known_codes(
                self._user_index, users, "user(s) were", " (handle_unknown='error')."
            )
        else:
            query = _as_id_array(users)
            codes = self._user_codes(query)
        unknown = codes < 0
        cand = self._candidate_codes(items, exclude_items)
        n = check_n(n, len(cand))
        # the plain factor product is scored tile by tile inside the top-k kernel
        plain = type(self)._score_candidates is RecommenderMixin._score_candidates
        ids, scores = self._rank(
            codes,
            n,
            cand,
            self.items_,
            score_rows=self._score_users(cand),
            exclude=self.user_items_ if exclude_seen else None,
            popular=unknown if policy == "fallback" else None,
            dtype=np.float64,
            topk=self._product_topk(cand) if plain else None,
        )
        return Recommendations(query, ids, scores, unknown)


class RatingRegressorMixin(RegressorMixin):
    """``RegressorMixin`` for recommenders that predict ratings.

    ``score`` is the usual R^2.  The tags say that ``y`` (the ratings) is
    required and that a generic regression benchmark scores poorly: ids are
    categorical, so continuous test features (every row a new "user") cannot
    be fitted well.
    """

    def _clip_predictions(self, out):
        """Clip predicted ratings in place to the training range (``clip_predictions``)."""
        if self.clip_predictions:
            np.clip(out, *self.rating_range_, out=out)
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.regressor_tags.poor_score = True
        return tags


class ImplicitRecommenderMixin:
    """``score`` of the implicit-feedback models: NDCG@10 of ``recommend``."""

    def _clip_predictions(self, out):
        """Implicit scores are not ratings: nothing to clip."""
        return out

    def score(self, X, y=None):
        """NDCG@10 of the recommendations against the interactions in ``X``.

        For each user of ``X``, the 10 best items are ranked among the whole
        catalogue minus the items the user had in ``fit``; the relevant items
        are the user's rows of ``X`` (with ``y > 0`` when ``y`` is given).
        Binary relevance, users without a relevant item skipped, unknown users
        served by the popularity fallback: the scorer
        ``sklearn_mf.metrics.make_ranking_scorer("ndcg", k=10)``, so that
        ``GridSearchCV`` ranks hyper-parameters without a ``scoring`` argument.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Held-out interactions (user id, item id, ...).
        y : array-like of shape (n_interactions,), default=None
            Strengths; rows with ``y <= 0`` are not relevant.

        Returns
        -------
        score : float
            Mean NDCG@10 in [0, 1].
        """
        from sklearn_mf.metrics import make_ranking_scorer

        check_is_fitted(self)
        if y is not None:
            _, _, y, _ = check_interactions(self, X, y, None, reset=False)
            X = _safe_indexing(X, np.flatnonzero(y > 0))
        return make_ranking_scorer("ndcg", k=min(10, len(self.items_)))(self, X, None)
