"""One-call evaluation of a fitted recommender: a tidy table of metrics at several K."""

import numbers

import numpy as np
import pandas as pd

from sklearn_mf.metrics._ranking import _check_no_relevant
from sklearn_mf.metrics._scorer import (
    ACCURACY_METRICS,
    _metric_name,
    _TestRanking,
)


def evaluate(
    estimator,
    X,
    y=None,
    *,
    k=(5, 10, 20),
    metrics=None,
    relevance_threshold=None,
    exclude_seen=True,
    gain="binary",
    no_relevant="skip",
    unknown_users="keep",
    unknown_items="keep",
    item_features=None,
):
    """Evaluate one fitted recommender on a test set: every metric at several K.

    The model is asked once for its top ``max(k)`` items per test user
    (whole-catalogue ranking, training items excluded); the list for a smaller
    K is the prefix of that list.  Users, truths, pipelines and unknown ids
    are handled exactly as by :func:`make_ranking_scorer`, so the numbers
    agree with the scorers used in a grid search.

    Parameters
    ----------
    estimator : fitted recommender or Pipeline ending in one
    X : array-like or DataFrame of shape (n_interactions, n_columns)
        Test interactions (column 0 user ids, column 1 item ids).
    y : array-like of shape (n_interactions,), default=None
        Test ratings or strengths; needed with ``relevance_threshold`` or
        ``gain="rating"``.
    k : int or sequence of int, default=(5, 10, 20)
        Cut-offs.
    metrics : sequence of str, default=None
        Metric names (see :func:`make_ranking_scorer`).  None means every
        accuracy metric, plus coverage, novelty and serendipity when the
        model exposes ``items_`` and ``item_popularity_``, plus
        intra-list diversity when ``item_features`` is given.
    relevance_threshold, exclude_seen, gain, no_relevant, unknown_users, unknown_items
        As in :func:`make_ranking_scorer`.
    item_features : DataFrame or "factors", default=None
        Item features for intra-list diversity (indexed by item id), or the
        model's ``item_factors_``.

    Returns
    -------
    table : DataFrame
        One row per (metric, k) with columns ``metric``, ``k``, ``value`` and
        ``n_users`` (users the value averages over).  ``table.attrs`` holds
        ``n_test_users``, ``n_scored_users``, ``n_fallback_users`` (test users
        unknown to the model, served by its fallback) and
        ``n_unknown_items`` (relevant test interactions with an item unseen
        in training).

    Examples
    --------
    >>> from sklearn_mf import MatrixFactorization
    >>> from sklearn_mf.datasets import make_ratings
    >>> from sklearn_mf.metrics import evaluate
    >>> from sklearn_mf.model_selection import TemporalSplit
    >>> X, y = make_ratings(n_users=80, n_items=50, n_ratings=1500, random_state=0)
    >>> train, test = next(TemporalSplit().split(X))
    >>> mf = MatrixFactorization(n_factors=4, n_epochs=10, random_state=0).fit(X[train], y[train])
    >>> table = evaluate(mf, X[test], y[test], k=[5, 10], relevance_threshold=4)
    >>> table.pivot(index="metric", columns="k", values="value").shape
    (10, 2)
    """
    ks = [k] if isinstance(k, numbers.Integral) else list(k)
    if not ks or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in ks
    ):
        raise ValueError(f"k must be a positive integer or a list of them, got {k!r}.")
    ks = sorted(set(int(v) for v in ks))
    _check_no_relevant(no_relevant)
    ranking = _TestRanking(
        estimator,
        X,
        y,
        k=ks[-1],
        relevance_threshold=relevance_threshold,
        exclude_seen=exclude_seen,
        gain=gain,
        unknown_users=unknown_users,
        unknown_items=unknown_items,
        only_relevant_users=False,
    )
    model = ranking.model
    if metrics is None:
        names = list(ACCURACY_METRICS)
        if getattr(model, "items_", None) is not None:
            names.append("coverage")
            if getattr(model, "item_popularity_", None) is not None:
                names += ["novelty", "serendipity"]
        if item_features is not None:
            names.append("intra_list_diversity")
    else:
        names = [_metric_name(m) for m in metrics]

    n_rel = ranking.truth.getnnz(axis=1) > 0
    rows = []
    for name in names:
        for kk in ks:
            value = ranking.score(name, kk, no_relevant=no_relevant, item_features=item_features)
            if name in ACCURACY_METRICS or name == "serendipity":
                n_users = int(n_rel.sum()) if no_relevant == "skip" else len(n_rel)
            else:
                n_users = len(n_rel)
            rows.append({"metric": name, "k": kk, "value": value, "n_users": n_users})
    table = pd.DataFrame(rows, columns=["metric", "k", "value", "n_users"])
    table.attrs.update(
        n_test_users=ranking.n_test_users,
        n_scored_users=len(ranking.users),
        n_fallback_users=int(np.sum(ranking.fallback)),
        n_unknown_items=ranking.n_unknown_items,
    )
    return table
