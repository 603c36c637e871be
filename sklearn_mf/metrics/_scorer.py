"""Ranking scorers: ``scorer(estimator, X, y)`` objects for ``scoring=``.

:func:`sklearn.metrics.make_scorer` only hands ``(y_true, y_pred)`` to a
metric, but a ranking metric needs the user ids and the model's top-K lists,
so the scorers here are callable objects that talk to the recommender
through its public ``recommend`` method.

How a scorer ranks
------------------
For the test interactions ``X`` (and ratings ``y``) of one fold:

1. The test users are the distinct user ids of ``X`` (column 0).  The truth
   of a user is the set of its test items (column 1) whose ``y`` is at or
   above ``relevance_threshold`` (every test item when it is None).
2. The fitted model ranks the **whole catalogue** it knows for every test
   user (``recommend(users, n=k, exclude_seen=True)``): items the user had in
   training are removed, the truth items are *not* given any special place
   (no sampled negatives, no ranking restricted to the held-out items).
3. The top ``k`` lists are scored against the truths with the functions of
   :mod:`sklearn_mf.metrics` and averaged over users.

Users whose test part has no relevant item are left out of the average
(``no_relevant="skip"``) or count as 0 (``"zero"``).  Test users unknown to
the model are ranked by its popularity fallback and counted
(``unknown_users="keep"``) or left out (``"skip"``).  Relevant test items the
model never saw in training can never be recommended; they stay in the
truth and count as misses (``unknown_items="keep"``) or are removed from it
(``"skip"``).  A relevant test item the user already had in training is kept
in the truth; with ``exclude_seen=True`` it cannot be recommended, so split
the data so that (user, item) pairs are not repeated across train and test.

Pipelines
---------
When the estimator is a :class:`~sklearn.pipeline.Pipeline`, the scorer does
what ``Pipeline.predict`` does: ``X`` goes through ``transform`` of every
step but the last, and the user and item ids are read from columns 0 and 1
of the result, which is the data the final recommender was fitted on; then
``recommend`` is called on the final step.  Ids a preprocessing step rewrites
are therefore compared in the rewritten space consistently; the steps must
keep the row order and the id columns in front (``y`` is never transformed).
"""

import numbers

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from sklearn_mf._ids import factorize_ids
from sklearn_mf._validation import check_columns, split_interactions
from sklearn_mf.metrics._beyond_accuracy import (
    coverage,
    intra_list_diversity,
    novelty,
    serendipity,
)
from sklearn_mf.metrics._ranking import (
    _CORES,
    _auc,
    _check_no_relevant,
    _concat_ids,
    _dedupe_max,
    _finish,
    _ndcg,
    _prepare,
    auc,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

ACCURACY_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
    "auc": auc,
}
BEYOND_ACCURACY_METRICS = {
    "coverage": coverage,
    "novelty": novelty,
    "serendipity": serendipity,
    "intra_list_diversity": intra_list_diversity,
}
_ALL = {**ACCURACY_METRICS, **BEYOND_ACCURACY_METRICS}
_FUNC_NAMES = {f: name for name, f in _ALL.items()}


def _metric_name(metric):
    if callable(metric) and metric in _FUNC_NAMES:
        return _FUNC_NAMES[metric]
    if isinstance(metric, str):
        name = metric.lower().replace("-", "_")
        for suffix in ("_at_k",):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        if name in _ALL:
            return name
    raise ValueError(
        f"Unknown ranking metric {metric!r}; use one of {sorted(_ALL)} or the "
        "corresponding function of sklearn_mf.metrics."
    )


def _resolve(estimator, X):
    """(recommender, X as the recommender sees it): see 'Pipelines' above."""
    if isinstance(estimator, Pipeline):
        final = estimator.steps[-1][1]
        if final is None or final == "passthrough" or not hasattr(final, "recommend"):
            raise TypeError(
                "A ranking scorer needs a recommender (an estimator with a "
                f"'recommend' method) as the last step of the pipeline; got {final!r}."
            )
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        return final, X
    if not hasattr(estimator, "recommend"):
        raise TypeError(
            f"A ranking scorer needs a recommender with a 'recommend' method; "
            f"{type(estimator).__name__} has none."
        )
    return estimator, X


class _TestRanking:
    """Top-k lists of one fitted model for the users of a test set, and truths.

    Everything is in one positional item space (``item_ids``): ``truth`` is a
    CSR of relevance grades (n_users, n_codes), ``codes`` the recommended
    item codes (n_users, k) with -1 padding.
    """

    def __init__(
        self,
        estimator,
        X,
        y,
        *,
        k,
        relevance_threshold,
        exclude_seen,
        gain,
        unknown_users,
        unknown_items,
        only_relevant_users,
    ):
        if unknown_users not in ("keep", "skip"):
            raise ValueError(f"unknown_users must be 'keep' or 'skip', got {unknown_users!r}.")
        if unknown_items not in ("keep", "skip"):
            raise ValueError(f"unknown_items must be 'keep' or 'skip', got {unknown_items!r}.")
        if gain not in ("binary", "rating"):
            raise ValueError(f"gain must be 'binary' or 'rating', got {gain!r}.")
        model, Xt = _resolve(estimator, X)
        self.model = model
        users, items = split_interactions(Xt)
        check_columns(model, Xt, reset=False)
        n = len(users)
        if y is not None:
            y = np.asarray(y, dtype=np.float64).ravel()
            if len(y) != n:
                raise ValueError(f"X has {n} interaction(s) but y has {len(y)} value(s).")
            if not np.isfinite(y).all():
                raise ValueError(
                    f"y contains {int((~np.isfinite(y)).sum())} NaN or infinite test "
                    "rating(s); drop those rows or fill them before scoring (a missing "
                    "rating is neither relevant nor irrelevant)."
                )
        if relevance_threshold is None:
            relevant = np.ones(n, dtype=bool)
        else:
            if y is None:
                raise ValueError(
                    f"relevance_threshold={relevance_threshold} needs y (the test "
                    "ratings), but y is None."
                )
            relevant = y >= relevance_threshold
        if gain == "rating":
            if y is None:
                raise ValueError("gain='rating' needs y (the test ratings), but y is None.")
            grades = y
            if (grades[relevant] <= 0).any():
                raise ValueError(
                    f"gain='rating' needs positive ratings for relevant items; "
                    f"{int((grades[relevant] <= 0).sum())} relevant row(s) have y <= 0."
                )
        else:
            grades = np.ones(n)

        known_items = getattr(model, "items_", None)
        item_index = pd.Index(known_items) if known_items is not None else None
        self.n_unknown_items = 0
        if item_index is not None:
            unknown_item = item_index.get_indexer(items) < 0
            self.n_unknown_items = int((unknown_item & relevant).sum())
            if unknown_items == "skip":
                relevant &= ~unknown_item
        elif unknown_items == "skip":
            raise ValueError(
                "unknown_items='skip' needs the model's items_ attribute to know which "
                f"items it saw in fit; {type(model).__name__} has none."
            )

        u_codes, test_users = factorize_ids(users)
        self.n_test_users = len(test_users)
        keep_user = np.ones(len(test_users), dtype=bool)
        if only_relevant_users:
            keep_user &= np.bincount(u_codes[relevant], minlength=len(test_users)) > 0
        known_users = getattr(model, "users_", None)
        if known_users is not None:
            user_known = pd.Index(known_users).get_indexer(test_users) >= 0
            if unknown_users == "skip":
                keep_user &= user_known
        elif unknown_users == "skip":
            raise ValueError(
                "unknown_users='skip' needs the model's users_ attribute; "
                f"{type(model).__name__} has none."
            )
        new_pos = np.full(len(test_users), -1, dtype=np.intp)
        new_pos[keep_user] = np.arange(int(keep_user.sum()))
        self.users = test_users[keep_user]
        n_users = len(self.users)
        if n_users == 0:
            raise ValueError(
                f"None of the {len(test_users)} test user(s) can be scored "
                f"(only_relevant_users={only_relevant_users}, unknown_users="
                f"{unknown_users!r}, relevance_threshold={relevance_threshold})."
            )

        n_req = k if item_index is None else min(k, len(item_index))
        recs = model.recommend(self.users, n=n_req, exclude_seen=exclude_seen)
        rec = np.asarray(recs.items)
        if n_req < k:
            pad = np.empty((n_users, k), dtype=object)
            pad[:, :n_req] = rec
            pad[:, n_req:] = None
            rec = pad
        scores = np.asarray(recs.scores, dtype=np.float64)
        valid = np.zeros((n_users, k), dtype=bool)
        valid[:, :n_req] = np.isfinite(scores)
        self.fallback = np.asarray(recs.fallback, dtype=bool)

        rows = new_pos[u_codes]
        sel = relevant & (rows >= 0)
        t_items = items[sel]
        all_codes, self.item_ids = pd.factorize(_concat_ids([t_items, rec[valid]]))
        n_codes = max(len(self.item_ids), 1)
        self.truth = _dedupe_max(
            rows[sel],
            all_codes[: len(t_items)].astype(np.intp),
            grades[sel].astype(np.float64),
            n_users,
            n_codes,
        )
        self.codes = np.full((n_users, k), -1, dtype=np.intp)
        self.codes[valid] = all_codes[len(t_items) :]
        self.k = k
        self._ranked = None
        self.exclude_seen = exclude_seen
        self._item_index = item_index

    # ---- side information in the positional item space
    def n_candidates(self):
        """Candidates per user: the catalogue minus the items seen in training."""
        model = self.model
        if self._item_index is None:
            raise ValueError("auc needs the catalogue size, but the model has no items_ attribute.")
        n = np.full(len(self.users), float(len(self._item_index)))
        seen = getattr(model, "user_items_", None)
        users_ = getattr(model, "users_", None)
        if self.exclude_seen and seen is not None and users_ is not None:
            pos = pd.Index(users_).get_indexer(self.users)
            counts = np.diff(seen.indptr)
            n -= np.where(pos >= 0, counts[np.maximum(pos, 0)], 0)
        return n

    def popularity(self):
        """Training interactions per item code (0 for items the model lacks)."""
        pop = getattr(self.model, "item_popularity_", None)
        if pop is None or self._item_index is None:
            raise ValueError(
                "novelty and serendipity need the training popularity "
                f"(item_popularity_ and items_), which {type(self.model).__name__} lacks."
            )
        return (
            pd.Series(np.asarray(pop, dtype=np.float64), index=self._item_index)
            .reindex(self.item_ids)
            .fillna(0.0)
            .to_numpy()
        )

    def n_train_users(self):
        users_ = getattr(self.model, "users_", None)
        return None if users_ is None else len(users_)

    def most_popular(self, k):
        """Codes of the ``k`` most popular training items (-1 if never recommended)."""
        pop = np.asarray(self.model.item_popularity_, dtype=np.float64)
        top = np.argsort(-pop, kind="stable")[:k]
        return pd.Index(self.item_ids).get_indexer(np.asarray(self.model.items_)[top])

    def features(self, item_features):
        """Item features aligned with the item codes (missing items: zeros)."""
        if isinstance(item_features, str) and item_features == "factors":
            V = getattr(self.model, "item_factors_", None)
            if V is None:
                raise ValueError(
                    f"item_features='factors' needs item_factors_, which "
                    f"{type(self.model).__name__} lacks."
                )
            item_features = pd.DataFrame(np.asarray(V, dtype=np.float64), index=self._item_index)
        if not isinstance(item_features, pd.DataFrame):
            raise TypeError(
                "item_features must be a DataFrame indexed by item id (numeric "
                "columns, e.g. one-hot genres) or 'factors'."
            )
        return item_features.reindex(self.item_ids).fillna(0.0).to_numpy(dtype=np.float64)

    def score(self, name, k, *, no_relevant="skip", average=True, item_features=None, **kwargs):
        """Value of metric ``name`` at cut-off ``k`` (<= self.k)."""
        codes = self.codes[:, :k]
        if name in ACCURACY_METRICS:
            if self._ranked is None:  # match the lists against the truth once
                self._ranked = _prepare(self.truth, self.codes, self.k)
            r = self._ranked.prefix(k)
            if name == "auc":
                n_items = kwargs.pop("n_items", None)
                core = _auc(r, self.n_candidates() if n_items is None else n_items)
            elif name == "ndcg":
                core = _ndcg(r, kwargs.pop("gains", "linear"))
            else:
                core = _CORES[name](r)
            if kwargs:
                raise TypeError(f"Unexpected parameter(s) for {name}: {sorted(kwargs)}.")
            return _finish(*core, average, no_relevant, ACCURACY_METRICS[name].__name__)
        if name == "coverage":
            if self._item_index is None:
                raise ValueError("coverage needs the model's items_ (the catalogue).")
            # recommended items are all in the catalogue
            return coverage(codes, len(self._item_index), k=k)
        if name == "novelty":
            return novelty(
                codes, self.popularity(), k=k, n_users=self.n_train_users(), average=average
            )
        if name == "serendipity":
            self.popularity()  # raise early if unavailable
            return serendipity(
                self.truth,
                codes,
                self.most_popular(k),
                k=k,
                average=average,
                no_relevant=no_relevant,
            )
        if name == "intra_list_diversity":
            if item_features is None:
                raise ValueError(
                    "intra_list_diversity needs item_features (a DataFrame indexed by "
                    "item id, or 'factors')."
                )
            return intra_list_diversity(codes, self.features(item_features), k=k, average=average)
        raise ValueError(f"Unknown metric {name!r}.")  # pragma: no cover


class RankingScorer:
    """Callable ``scorer(estimator, X, y)`` scoring top-``k`` recommendations.

    Build it with :func:`make_ranking_scorer`, which documents the
    parameters.  Greater is better for every metric.
    """

    def __init__(
        self,
        metric,
        *,
        k=10,
        relevance_threshold=None,
        exclude_seen=True,
        gain="binary",
        no_relevant="skip",
        unknown_users="keep",
        unknown_items="keep",
        item_features=None,
        metric_params=None,
    ):
        self.metric = metric
        self.k = k
        self.relevance_threshold = relevance_threshold
        self.exclude_seen = exclude_seen
        self.gain = gain
        self.no_relevant = no_relevant
        self.unknown_users = unknown_users
        self.unknown_items = unknown_items
        self.item_features = item_features
        self.metric_params = metric_params

    def __repr__(self):
        extra = ""
        if self.relevance_threshold is not None:
            extra += f", relevance_threshold={self.relevance_threshold!r}"
        if self.gain != "binary":
            extra += f", gain={self.gain!r}"
        return f"make_ranking_scorer({_metric_name(self.metric)!r}, k={self.k}{extra})"

    def __call__(self, estimator, X, y_true=None, sample_weight=None):
        """Score a fitted recommender on test interactions.

        Parameters
        ----------
        estimator : fitted recommender or Pipeline ending in one
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Test interactions (column 0 user ids, column 1 item ids).
        y_true : array-like of shape (n_interactions,), default=None
            Test ratings or strengths; needed with ``relevance_threshold``.
        sample_weight : None
            Not supported (ranking metrics average over users); must be None.

        Returns
        -------
        score : float
            The metric averaged over the scored users (greater is better).
        """
        if sample_weight is not None:
            raise ValueError("Ranking scorers do not support sample_weight.")
        name = _metric_name(self.metric)
        k = self.k
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        _check_no_relevant(self.no_relevant)
        # users without a relevant item cannot change a skipped average
        only_rel = self.no_relevant == "skip" and (
            name in ACCURACY_METRICS or name == "serendipity"
        )
        ranking = _TestRanking(
            estimator,
            X,
            y_true,
            k=int(k),
            relevance_threshold=self.relevance_threshold,
            exclude_seen=self.exclude_seen,
            gain=self.gain,
            unknown_users=self.unknown_users,
            unknown_items=self.unknown_items,
            only_relevant_users=only_rel,
        )
        return ranking.score(
            name,
            int(k),
            no_relevant=self.no_relevant,
            item_features=self.item_features,
            **(self.metric_params or {}),
        )


def make_ranking_scorer(
    metric,
    *,
    k=10,
    relevance_threshold=None,
    exclude_seen=True,
    gain="binary",
    no_relevant="skip",
    unknown_users="keep",
    unknown_items="keep",
    item_features=None,
    metric_params=None,
):
    """Make a scorer that ranks the catalogue for each test user and scores the top ``k``.

    The scorer is a callable object ``scorer(estimator, X, y)`` accepted as
    ``scoring=`` by :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_validate`, ... alone or as a value
    of a multi-metric dict (with ``refit=`` naming the key to optimise).  It
    uses only the public ``recommend`` method of the model (and the fitted
    ``items_`` / ``users_`` / ``item_popularity_`` attributes for counts and
    popularity).  See the module docstring of ``sklearn_mf.metrics._scorer``
    for exactly how users, truths and pipelines are handled.

    Parameters
    ----------
    metric : str or callable
        ``"precision"``, ``"recall"``, ``"ndcg"``, ``"map"``, ``"mrr"``,
        ``"hit_rate"``, ``"auc"``, ``"coverage"``, ``"novelty"``,
        ``"serendipity"`` or ``"intra_list_diversity"`` (an ``_at_k`` suffix
        is allowed), or the function of :mod:`sklearn_mf.metrics` itself.
    k : int, default=10
        Length of the recommended lists.
    relevance_threshold : float, default=None
        A test interaction is relevant when ``y >= relevance_threshold``;
        None makes every test interaction relevant (implicit feedback).
    exclude_seen : bool, default=True
        Remove items the user had in training from the ranking (standard).
    gain : {"binary", "rating"}, default="binary"
        Relevance grade of a relevant item: 1, or its rating ``y`` (graded
        NDCG).
    no_relevant : {"skip", "zero"}, default="skip"
        Test users without a relevant item: left out of the average, or
        counted with a score of 0.
    unknown_users : {"keep", "skip"}, default="keep"
        Test users the model did not see in ``fit``: ranked by the model's
        fallback and counted, or left out.
    unknown_items : {"keep", "skip"}, default="keep"
        Relevant test items the model did not see in ``fit``: kept as
        (unreachable) relevant items, or removed from the truth.
    item_features : DataFrame or "factors", default=None
        For ``"intra_list_diversity"``: item features indexed by item id, or
        the model's ``item_factors_``.
    metric_params : dict, default=None
        Extra keyword arguments of the metric (e.g. ``{"gains":
        "exponential"}`` for NDCG).

    Returns
    -------
    scorer : RankingScorer
        Callable ``scorer(estimator, X, y=None) -> float``, greater is better.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_mf import MatrixFactorization
    >>> from sklearn_mf.datasets import make_ratings
    >>> from sklearn_mf.metrics import make_ranking_scorer
    >>> from sklearn_mf.model_selection import TemporalSplit
    >>> X, y = make_ratings(n_users=60, n_items=40, n_ratings=900, random_state=0)
    >>> scoring = {"ndcg@5": make_ranking_scorer("ndcg", k=5, relevance_threshold=4),
    ...            "rmse": "neg_root_mean_squared_error"}
    >>> search = GridSearchCV(
    ...     MatrixFactorization(n_epochs=5, n_jobs=1, random_state=0),
    ...     {"n_factors": [2, 8]}, cv=TemporalSplit(n_splits=2), scoring=scoring,
    ...     refit="ndcg@5").fit(X, y)
    >>> sorted(search.cv_results_)[:2]
    ['mean_fit_time', 'mean_score_time']
    """
    _metric_name(metric)
    return RankingScorer(
        metric,
        k=k,
        relevance_threshold=relevance_threshold,
        exclude_seen=exclude_seen,
        gain=gain,
        no_relevant=no_relevant,
        unknown_users=unknown_users,
        unknown_items=unknown_items,
        item_features=item_features,
        metric_params=metric_params,
    )


def ranking_score(model, X, y=None):
    """``score`` of the implicit-feedback recommenders: NDCG@10 of the model's
    lists against the held-out interactions ``X``.

    The relevant items of a user are her rows of ``X`` (with ``y > 0`` when
    ``y`` is given); the catalogue minus her training items is ranked; binary
    relevance, users without a relevant item skipped: the scorer
    ``make_ranking_scorer("ndcg", k=10)`` (``k`` capped at the catalogue).
    """
    from sklearn.utils import _safe_indexing
    from sklearn.utils.validation import check_is_fitted

    from sklearn_mf._validation import check_interactions

    check_is_fitted(model)
    if y is not None:
        _, _, y, _ = check_interactions(model, X, y, None, reset=False)
        X = _safe_indexing(X, np.flatnonzero(y > 0))
    return make_ranking_scorer("ndcg", k=min(10, len(model.items_)))(model, X, None)
