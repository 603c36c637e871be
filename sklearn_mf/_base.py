"""Behaviour shared by every recommender: id encoding, unknown ids, top-N.

Every latent-factor model stores, after ``fit``:

``users_``, ``items_``
    The raw ids; position = internal index (like ``classes_``).  After ``fit``
    they are sorted when the ids are mutually comparable; ``partial_fit``
    appends ids it has not seen before.
``user_items_``
    The training interactions as a CSR matrix of shape (n_users, n_items)
    (summed ``y`` per cell): what ``recommend(exclude_seen=True)`` removes.
``item_popularity_``
    Number of training interactions per item: the cold-start fallback.

A model plugs into :class:`RecommenderMixin` by implementing
``_predict_codes(user_codes, item_codes)`` (``-1`` marks an unknown id) and, for
ranking, either the factor hooks ``_user_embeddings`` / ``_item_embeddings`` /
``_user_offsets`` or ``_score_candidates`` directly.  ``fold_in`` and
``recommend_new`` (new users from a few interactions, model unchanged) call
``_fold_in_rows(indptr, indices, values)``; the default is the explicit ridge
solve (one ALS user half-step), implicit models override it.
"""

from typing import NamedTuple, Optional

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted

from sklearn_mf import _topk
from sklearn_mf._ids import _as_id_array, _ids_from_codes, factorize_ids, lookup_ids
from sklearn_mf._convert import interactions_csr
from sklearn_mf._utils import effective_n_threads
from sklearn_mf._validation import check_interactions, check_n

# Memory budget for one block of dense scores in recommend / similar_items.
_SCORE_BLOCK_BYTES = 64 * 2**20


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


def empirical_prior(factors, biases, noise_var):
    """The empirical-Bayes prior of ``fold_in(prior="empirical")``.

    The trained users' ``factors`` (and ``biases``, or None) give the prior
    means and variances; against ``noise_var`` they make the ridge penalties
    noise / variance.  Returns ``(mean factors, factor penalty, mean bias,
    bias penalty)`` (the bias terms 0 without biases).
    """
    P = np.asarray(factors, dtype=np.float64)
    p_mean = P.mean(axis=0)
    reg_p = noise_var / max(float(((P - p_mean) ** 2).mean()), 1e-12)
    if biases is None:
        return p_mean, reg_p, 0.0, 0.0
    bias = np.asarray(biases, dtype=np.float64)
    return p_mean, reg_p, float(bias.mean()), noise_var / max(float(bias.var()), 1e-12)


def add_prior_mean(P, b, indptr, p_mean, b_mean):
    """Move fold-in solutions found around the prior mean back to absolute
    values, in place; users without a known item keep zeros."""
    has_items = np.diff(np.asarray(indptr)) > 0
    P[has_items] += p_mean.astype(P.dtype)
    if b is not None:
        b[has_items] += b.dtype.type(b_mean)


class FoldIn(NamedTuple):
    """Result of :meth:`RecommenderMixin.fold_in`: factors of new users."""

    users: np.ndarray
    user_factors: np.ndarray
    user_bias: Optional[np.ndarray]


def _cosine_normalise(V):
    norms = np.linalg.norm(V, axis=1)
    norms[norms == 0] = 1
    return V / norms[:, None]


class RecommenderMixin:
    """Id handling, unknown-id policy, batched ``recommend`` and similarity search.

    Shared by every latent-factor model of sklearn_mf.  See the module
    docstring for the hooks a model implements.
    """

    # ------------------------------------------------------------------ ids
    def _fit_ids(self, users, items):
        """Encode raw ids from scratch (``fit``); sets ``users_`` and ``items_``."""
        # the raw id arrays are private copies (check_interactions): the codes
        # may share their memory (ids that are already int32 codes)
        u, self.users_ = factorize_ids(users, copy=False)
        i, self.items_ = factorize_ids(items, copy=False)
        self._user_index = pd.Index(self.users_)
        self._item_index = pd.Index(self.items_)
        return u, i

    def _grow_ids(self, users, items):
        """Encode with the fitted ids, appending ids never seen before.

        Returns ``(user_codes, item_codes, n_new_users, n_new_items)``.
        """
        u = lookup_ids(self._user_index, users)
        i = lookup_ids(self._item_index, items)
        n_new = []
        for codes, raw, attr in ((u, users, "users_"), (i, items, "items_")):
            unknown = codes < 0
            old = getattr(self, attr)
            if unknown.any():
                new_codes, new_ids = pd.factorize(raw[unknown], sort=False)
                codes[unknown] = new_codes + len(old)
                merged = np.concatenate([old.astype(object), np.asarray(new_ids, dtype=object)])
                try:
                    merged = merged.astype(np.result_type(old.dtype, np.asarray(new_ids).dtype))
                except TypeError:
                    pass
                setattr(self, attr, merged)
                n_new.append(len(new_ids))
            else:
                n_new.append(0)
        self._user_index = pd.Index(self.users_)
        self._item_index = pd.Index(self.items_)
        return u, i, n_new[0], n_new[1]

    def _user_codes(self, users):
        return lookup_ids(self._user_index, users)

    def _item_codes(self, items):
        return lookup_ids(self._item_index, items)

    def _set_training_interactions(self, user_codes, item_codes, values=None):
        """Store the seen-items CSR and the item popularity counts."""
        n_users, n_items = len(self.users_), len(self.items_)
        self.user_items_ = interactions_csr(user_codes, item_codes, values, n_users, n_items,
                                            getattr(self, "n_jobs", None))
        self.item_popularity_ = np.bincount(item_codes, minlength=n_items).astype(np.int64)

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
    def _user_embeddings(self, user_codes):
        return self.user_factors_[user_codes]

    def _item_embeddings(self):
        """(item vectors, per-item additive score or None)."""
        return self.item_factors_, None

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
        n_items = len(self.items_)
        if items is None:
            cand = np.arange(n_items, dtype=np.intp)
        else:
            ids = _as_id_array(items)
            cand = self._item_codes(ids).astype(np.intp)
            if (cand < 0).any():
                unknown = ids[cand < 0][:5]
                raise ValueError(
                    f"items contains {int((cand < 0).sum())} id(s) not seen in fit, "
                    f"e.g. {list(unknown)}."
                )
            cand = np.unique(cand)
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
                S, indptr, indices, row_map, item_to_cand,
                out_scores[start:stop], out_codes[start:stop], n_threads,
            )
        valid = out_codes >= 0
        codes = np.where(valid, cand[np.where(valid, out_codes, 0)], -1)
        return codes, out_scores

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
        if exclude is None:
            indptr, indices = np.zeros(1, dtype=np.int32), np.zeros(0, dtype=np.int32)
            row_map = np.full(len(row_codes), -1, dtype=np.intp)
        else:
            indptr = np.ascontiguousarray(exclude.indptr, dtype=np.int32)
            indices = np.ascontiguousarray(exclude.indices, dtype=np.int32)
            row_map = np.asarray(row_codes, dtype=np.intp)
        out_codes = np.empty((len(row_codes), n), dtype=np.intp)
        out_scores = np.empty((len(row_codes), n), dtype=dtype)
        with blas_single_thread():
            _topk.topk_product(U, Vc, col_off, row_off, indptr, indices, row_map,
                               item_to_cand, out_scores, out_codes, n_threads)
        valid = out_codes >= 0
        codes = np.where(valid, cand[np.where(valid, out_codes, 0)], -1)
        return codes, out_scores

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
        query = _as_id_array(users)
        codes = self._user_codes(query)
        unknown = codes < 0
        policy = getattr(self, "handle_unknown", "fallback")
        if unknown.any() and policy == "error":
            raise ValueError(
                f"{int(unknown.sum())} user(s) were not seen in fit, e.g. "
                f"{list(query[unknown][:5])} (handle_unknown='error')."
            )
        cand = self._candidate_codes(items, exclude_items)
        n = check_n(n, len(cand))
        n_threads = effective_n_threads(getattr(self, "n_jobs", None))
        out_codes = np.full((len(codes), n), -1, dtype=np.intp)
        out_scores = np.full((len(codes), n), -np.inf)

        known = np.flatnonzero(~unknown)
        if len(known):
            V, b = self._item_embeddings()
            Vc = np.ascontiguousarray(V[cand])
            bc = None if b is None else b[cand]
            exclude = self.user_items_ if exclude_seen else None
            if type(self)._score_candidates is RecommenderMixin._score_candidates:
                kc, ks = self._topk_product_codes(codes[known], n, cand, Vc, bc, exclude,
                                                  n_threads)
            else:
                kc, ks = self._topk_codes(
                    codes[known], n, cand, len(self.items_), exclude=exclude,
                    score_rows=lambda rows: self._score_candidates(rows, Vc, bc),
                    n_threads=n_threads,
                )
            out_codes[known], out_scores[known] = kc, ks
        if unknown.any() and policy == "fallback":
            pop = self._fallback_item_scores()[cand][None, :]
            fc, fs = self._topk_codes(
                np.zeros(1, dtype=np.intp), n, cand, len(self.items_), exclude=None,
                score_rows=lambda rows: np.ascontiguousarray(pop, dtype=np.float64),
                n_threads=1,
            )
            out_codes[unknown], out_scores[unknown] = fc[0], fs[0]
        elif unknown.any():
            out_scores[unknown] = np.nan
        return Recommendations(
            query, _ids_from_codes(self.items_, out_codes), out_scores, unknown
        )

    def _similar(self, ids, n, vectors, index, raw_ids, what):
        check_is_fitted(self)
        query = _as_id_array(ids)
        codes = lookup_ids(index, query)
        if (codes < 0).any():
            raise ValueError(
                f"{int((codes < 0).sum())} {what} not seen in fit, e.g. "
                f"{list(query[codes < 0][:5])}; similarity needs fitted factors."
            )
        m = len(raw_ids)
        n = check_n(n, m - 1, what)
        Vn = _cosine_normalise(np.asarray(vectors))
        self_excl = sp.csr_matrix(
            (np.ones(m, dtype=np.float32), np.arange(m, dtype=np.int32),
             np.arange(m + 1, dtype=np.int32)), shape=(m, m),
        )
        out_codes, out_scores = self._topk_codes(
            codes.astype(np.intp), n, np.arange(m, dtype=np.intp), m, exclude=self_excl,
            score_rows=lambda rows: np.ascontiguousarray(Vn[rows] @ Vn.T),
            n_threads=effective_n_threads(getattr(self, "n_jobs", None)),
        )
        return Recommendations(
            query, _ids_from_codes(raw_ids, out_codes), out_scores,
            np.zeros(len(query), dtype=bool),
        )

    def similar_items(self, items, n=10, *, exact=None):
        """The ``n`` items closest to each given item (cosine similarity of factors).

        Parameters
        ----------
        items : id or array-like of ids
            Raw item ids seen in ``fit``.
        n : int, default=10
            Neighbours per item (the item itself is excluded).
        exact : bool, default=None
            None: use the approximate index when one was built with
            :meth:`build_similarity_index`, exact search otherwise.  True:
            always exact.  False: require the index.

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` and ``scores`` (cosine similarity) of shape (n_items, n).
        """
        V, _ = self._item_embeddings()
        index = getattr(self, "similarity_index_", None)
        if exact is False and index is None:
            raise ValueError("exact=False needs an index: call build_similarity_index first.")
        if exact or index is None:
            return self._similar(items, n, V, self._item_index, self.items_, "items")
        from sklearn_mf._ann import fingerprint

        if index.fingerprint != fingerprint(V):
            raise ValueError(
                "The item factors changed since build_similarity_index (refit or "
                "partial_fit); rebuild the index or pass exact=True."
            )
        query = _as_id_array(items)
        codes = self._item_codes(query)
        if (codes < 0).any():
            raise ValueError(
                f"{int((codes < 0).sum())} items not seen in fit, e.g. "
                f"{list(query[codes < 0][:5])}; similarity needs fitted factors."
            )
        n = check_n(n, len(self.items_) - 1, "items")
        out_codes, out_scores = index.query(np.asarray(V)[codes], codes, n)
        return Recommendations(query, _ids_from_codes(self.items_, out_codes), out_scores,
                               np.zeros(len(query), dtype=bool))

    def build_similarity_index(self, method="hnsw", *, M=16, ef_construction=200,
                               ef_search=100, random_state=0):
        """Build an approximate nearest-neighbour index for :meth:`similar_items`.

        Exact search (the default until this is called) scores every item for
        each query; for catalogues of millions of items an HNSW graph (from
        the optional dependency ``hnswlib``) answers far faster, at the cost
        of occasionally missing a true neighbour.  Once built, ``similar_items``
        uses the index unless called with ``exact=True``.  The index is a
        snapshot: after ``fit`` or ``partial_fit`` ``similar_items`` raises
        until the index is rebuilt.

        Parameters
        ----------
        method : {"hnsw"}, default="hnsw"
            Index type (hnswlib, cosine space).
        M : int, default=16
            Links per node of the graph.
        ef_construction : int, default=200
            Candidate list size while building.
        ef_search : int, default=100
            Candidate list size while querying (raised to ``n + 1`` when
            smaller); larger is slower and more accurate.
        random_state : int, default=0
            Seed of the graph's level generator.

        Returns
        -------
        self : estimator
            With ``similarity_index_`` set.

        Examples
        --------
        >>> from sklearn_mf import ImplicitALS
        >>> from sklearn_mf.datasets import make_ratings
        >>> X, _ = make_ratings(n_users=200, n_items=300, n_ratings=5000, random_state=0)
        >>> model = ImplicitALS(n_factors=8, random_state=0, n_jobs=1).fit(X)
        >>> model = model.build_similarity_index(M=16, ef_search=50)  # doctest: +SKIP
        >>> items, scores = model.similar_items(model.items_[:2], n=5)
        >>> items.shape
        (2, 5)
        """
        from sklearn_mf._ann import SimilarityIndex

        check_is_fitted(self)
        if method != "hnsw":
            raise ValueError(f"method must be 'hnsw', got {method!r}.")
        for name, value in (("M", M), ("ef_construction", ef_construction),
                            ("ef_search", ef_search)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        V, _ = self._item_embeddings()
        self.similarity_index_ = SimilarityIndex(
            V, M=int(M), ef_construction=int(ef_construction), ef_search=int(ef_search),
            random_state=int(random_state),
            n_threads=effective_n_threads(getattr(self, "n_jobs", None)),
        )
        return self

    def similar_users(self, users, n=10):
        """The ``n`` users closest to each given user (cosine similarity of factors).

        Parameters
        ----------
        users : id or array-like of ids
            Raw user ids seen in ``fit``.
        n : int, default=10
            Neighbours per user (the user itself is excluded).

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` holds the neighbouring *user* ids, ``scores`` the cosine
            similarities.
        """
        U = self._user_embeddings(np.arange(len(self.users_)))
        return self._similar(users, n, U, self._user_index, self.users_, "users")

    # -------------------------------------------------------------- fold-in
    # A model plugs in by implementing ``_fold_in_rows(indptr, indices, values)``
    # -> (factors of shape (n_rows, k), biases of shape (n_rows,) or None) for a
    # CSR matrix of new users' interactions with fitted items (duplicates
    # allowed).  The default below is the ridge solve of explicit models.
    _fold_in_requires_y = True
    # The ``prior`` values of ``fold_in`` a model supports (see ``fold_in``).
    _fold_in_priors = ("model", "empirical")

    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """Explicit-feedback fold-in: one ALS user half-step with items fixed.

        ``prior="model"``: solves, for each new user, :math:`\\min_{p, b}
        \\sum_i (r_{ui} - \\mu - b - b_i - p^\\top q_i)^2 + \\lambda_u
        \\lVert p\\rVert^2 + \\lambda_{b,u} b^2` (the bias only for ``biased``
        models) with the model's regularization, scaled by the user's number
        of ratings as in the SGD objective and weighted-lambda ALS
        (``als_regularization="plain"`` does not scale).

        ``prior="empirical"``: the same least squares shrunk towards the
        average trained user instead of zero, with fixed penalties
        :math:`\\sigma^2/\\sigma_p^2` and :math:`\\sigma^2/\\sigma_b^2`
        (the residual variance of the training ratings over the variance of
        the trained users' factors and biases): the posterior mean under the
        trained users' empirical distribution as the prior.
        """
        from sklearn_mf._als import RowMatrix, explicit_half_step

        if not hasattr(self, "item_factors_") or not hasattr(self, "regularization"):
            raise NotImplementedError(
                f"{type(self).__name__} has no item factors to fold new users into."
            )
        Q = self.item_factors_
        dtype = Q.dtype
        biased = bool(getattr(self, "biased", False))
        mu = float(getattr(self, "global_mean_", 0.0)) if biased else 0.0
        item_offset = self.item_bias_.astype(np.float64) if biased else None
        if prior == "empirical":
            p_mean, reg, b_mean, reg_b = empirical_prior(
                self.user_factors_, self.user_bias_ if biased else None,
                self._training_noise_variance())
            shift = Q.astype(np.float64) @ p_mean + b_mean
            item_offset = shift if item_offset is None else item_offset + shift
            scale = False
        else:
            reg = float(self.regularization)
            reg_b = getattr(self, "bias_regularization", None)
            reg_b = reg if reg_b is None else float(reg_b)
            scale = getattr(self, "als_regularization", "weighted") != "plain"
        R = RowMatrix(
            np.asarray(indptr, dtype=np.intp), np.asarray(indices, dtype=np.int32),
            {"t": np.asarray(values, dtype=dtype) - dtype.type(mu)}, Q.shape[0],
        )
        P = np.zeros((R.n_rows, Q.shape[1]), dtype=dtype)
        b = np.zeros(R.n_rows, dtype=dtype) if biased else None
        explicit_half_step(
            R, Q, None if item_offset is None else item_offset.astype(dtype), P, b, reg,
            reg_b, scale, effective_n_threads(getattr(self, "n_jobs", None)),
        )
        if prior == "empirical":
            add_prior_mean(P, b, indptr, p_mean, b_mean)
        return P, b

    def _training_noise_variance(self):
        """Mean squared residual of the training ratings (``user_items_``)."""
        R = self.user_items_.tocoo()
        if not len(R.data):
            return 1.0
        resid = R.data - self._predict_codes(R.row.astype(np.intp), R.col.astype(np.intp))
        return float(np.mean(resid**2))

    def _new_user_offsets(self, biases):
        """Per-user additive score of folded-in users (explicit: mu + b_u)."""
        if biases is None:
            return None
        return float(getattr(self, "global_mean_", 0.0)) + biases.astype(np.float64)

    def _fold_in_csr(self, X, y):
        """Validate new users' interactions; CSR (new users x fitted items)."""
        check_is_fitted(self)
        requires_y = self._fold_in_requires_y
        users, items, y, _ = check_interactions(
            self, X, y, reset=False, y_required=requires_y,
            y_nonnegative=not requires_y,
        )
        if y is None:
            y = np.ones(len(users), dtype=np.float64)
        u, query = factorize_ids(users)
        i = self._item_codes(items)
        known = i >= 0
        u, i, y = u[known], i[known], y[known]
        order = np.argsort(u, kind="stable")
        indptr = np.zeros(len(query) + 1, dtype=np.int32)
        np.cumsum(np.bincount(u, minlength=len(query)), out=indptr[1:])
        m = sp.csr_matrix(
            (y[order].astype(np.float32), i[order].astype(np.int32), indptr),
            shape=(len(query), len(self.items_)),
        )
        return query, m

    def fold_in(self, X, y=None, *, prior="model"):
        """Factors of new users from their interactions, without changing the model.

        The item factors (and biases) stay fixed and each user's factors are
        solved in closed form: the same solve as one ALS user half-step
        (explicit models: a ridge regression of :math:`r_{ui} - \\mu - b_i` on
        the item factors, with a user bias when the model is biased; implicit
        ALS: the confidence-weighted solve).  Nothing fitted is modified.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Interactions of the users to fold in (user id, item id, ...).  The
            user ids are treated as new users whatever their value; items
            unknown to the model are ignored.
        y : array-like of shape (n_interactions,), default=None
            Ratings (required by explicit models) or non-negative strengths
            (implicit models; None means 1).
        prior : {"model", "empirical"}, default="model"
            ``"model"``: the penalty the model was trained with (per rating,
            so a user with one or two ratings is barely shrunk and may be
            predicted worse than by the fallback).  ``"empirical"`` (rating
            models: :class:`MatrixFactorization`, :class:`SVDpp`,
            :class:`FMRecommender`): shrink towards the average trained user,
            with the trained users' spread of factors and biases as the prior
            and the training residual variance as the noise (empirical
            Bayes), which stays better than the fallback from the first
            rating.  See :ref:`cold_start`.

        Returns
        -------
        folded : FoldIn
            Named tuple ``(users, user_factors, user_bias)``: the distinct user
            ids of ``X`` (sorted when comparable), their factors of shape
            (n_users, n_factors) and biases of shape (n_users,) (None for
            unbiased and implicit models).  A user without any known item gets
            zero factors.
        """
        self._check_fold_in_prior(prior)
        query, m = self._fold_in_csr(X, y)
        factors, biases = self._fold_in_rows(m.indptr, m.indices, m.data, prior=prior)
        return FoldIn(query, factors, biases)

    def _check_fold_in_prior(self, prior):
        if prior not in ("model", "empirical"):
            raise ValueError(f"prior must be 'model' or 'empirical', got {prior!r}.")
        if prior not in self._fold_in_priors:
            raise ValueError(
                f"{type(self).__name__}.fold_in supports prior in "
                f"{list(self._fold_in_priors)}; 'empirical' is for rating models."
            )

    def recommend_new(self, X, y=None, n=10, *, exclude_seen=True, items=None,
                      exclude_items=None, prior="model"):
        """Top-``n`` items for users described only by the interactions ``X``.

        The users are folded in (see :meth:`fold_in`; the model is not
        changed) and ranked like :meth:`recommend`.  A user none of whose items
        is known to the model gets the popularity fallback, flagged in
        ``fallback``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Interactions (user id, item id, ...) of the users to serve; their
            ids are arbitrary and treated as new users.
        y : array-like of shape (n_interactions,), default=None
            Ratings (explicit models) or strengths (implicit models).
        n : int, default=10
            Number of items per user.
        exclude_seen : bool, default=True
            Remove the items given for each user in ``X``.
        items : array-like of ids, default=None
            Allow-list of candidate items.
        exclude_items : array-like of ids, default=None
            Deny-list of items.
        prior : {"model", "empirical"}, default="model"
            How the users are folded in; see :meth:`fold_in`.

        Returns
        -------
        recommendations : :class:`Recommendations`
            For the distinct users of ``X`` (in the order of
            :meth:`fold_in`).
        """
        self._check_fold_in_prior(prior)
        query, m = self._fold_in_csr(X, y)
        U, b = self._fold_in_rows(m.indptr, m.indices, m.data, prior=prior)
        cand = self._candidate_codes(items, exclude_items)
        n = check_n(n, len(cand))
        n_threads = effective_n_threads(getattr(self, "n_jobs", None))
        V, item_off = self._item_embeddings()
        Vc = np.ascontiguousarray(V[cand])
        bc = None if item_off is None else item_off[cand]
        user_off = self._new_user_offsets(b)

        def score_rows(rows):
            S = U[rows] @ Vc.T
            if bc is not None:
                S += bc
            if user_off is not None:
                S += user_off[rows][:, None]
            return np.ascontiguousarray(S)

        empty = np.diff(m.indptr) == 0
        out_codes = np.full((len(query), n), -1, dtype=np.intp)
        out_scores = np.full((len(query), n), -np.inf)
        rows = np.flatnonzero(~empty)
        if len(rows):
            kc, ks = self._topk_codes(
                rows, n, cand, len(self.items_), exclude=m if exclude_seen else None,
                score_rows=score_rows, n_threads=n_threads,
            )
            out_codes[rows], out_scores[rows] = kc, ks
        if empty.any():
            pop = self._fallback_item_scores()[cand][None, :]
            fc, fs = self._topk_codes(
                np.zeros(1, dtype=np.intp), n, cand, len(self.items_), exclude=None,
                score_rows=lambda r: np.ascontiguousarray(pop, dtype=np.float64),
                n_threads=1,
            )
            out_codes[empty], out_scores[empty] = fc[0], fs[0]
        return Recommendations(query, _ids_from_codes(self.items_, out_codes), out_scores,
                               empty)


class RatingRegressorMixin(RegressorMixin):
    """``RegressorMixin`` for recommenders that predict ratings.

    ``score`` is the usual R^2.  The tags say that ``y`` (the ratings) is
    required and that a generic regression benchmark scores poorly: ids are
    categorical, so continuous test features (every row a new "user") cannot
    be fitted well.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.regressor_tags.poor_score = True
        return tags
