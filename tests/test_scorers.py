"""Ranking scorers and ``evaluate``: hand-checked with a tiny recommender, end to end
with MatrixFactorization in GridSearchCV (TemporalSplit, multi-metric, refit)."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_mf import MatrixFactorization, Recommendations
from sklearn_mf.datasets import make_ratings
from sklearn_mf.metrics import (
    evaluate,
    make_ranking_scorer,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from sklearn_mf.model_selection import TemporalSplit


class CountingRecommender(BaseEstimator):
    """Test double: ranks items by training popularity (ties: smaller id first).

    Implements only the public recommender contract the scorers rely on.
    """

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=object)
        self.users_ = np.array(sorted(set(X[:, 0])), dtype=object)
        self.items_ = np.array(sorted(set(X[:, 1])), dtype=object)
        counts = pd.Series(X[:, 1]).value_counts()
        self.item_popularity_ = counts.reindex(self.items_).to_numpy()
        self.seen_ = pd.Series(X[:, 1]).groupby(X[:, 0]).agg(set).to_dict()
        return self

    def recommend(self, users, n=10, *, exclude_seen=True):
        order = sorted(
            self.items_, key=lambda i: (-self.item_popularity_[list(self.items_).index(i)], i)
        )
        pop = dict(zip(self.items_, self.item_popularity_))
        users = np.asarray(users, dtype=object)
        items = np.full((len(users), n), None, dtype=object)
        scores = np.full((len(users), n), -np.inf)
        fallback = np.array([u not in self.seen_ for u in users])
        for r, u in enumerate(users):
            seen = self.seen_.get(u, set()) if exclude_seen else set()
            ranked = [i for i in order if i not in seen][:n]
            items[r, : len(ranked)] = ranked
            scores[r, : len(ranked)] = [pop[i] for i in ranked]
        return Recommendations(users, items, scores, fallback)


# Popularity in train: a=3, b=2, c=1, d=1 -> ranking a, b, c, d.
TRAIN = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "a"), ("u3", "b"), ("u3", "d")]
# u4 is unknown (popularity fallback); e is an item unseen in training.
TEST = [("u1", "c"), ("u1", "d"), ("u2", "b"), ("u4", "a"), ("u3", "e")]
Y_TEST = [5.0, 2.0, 4.0, 5.0, 5.0]
# top-2 with training items removed:
#   u1 [c, d]   u2 [b, d]   u3 [c, <pad>]   u4 (fallback) [a, b]


@pytest.fixture
def toy():
    return CountingRecommender().fit(TRAIN)


def test_scorer_hand_computed(toy):
    p2 = make_ranking_scorer("precision", k=2, relevance_threshold=4)
    # relevant: u1 {c}, u2 {b}, u3 {e}, u4 {a} -> 1/2, 1/2, 0, 1/2
    assert p2(toy, TEST, Y_TEST) == pytest.approx((0.5 + 0.5 + 0 + 0.5) / 4)
    # every test row relevant: u1 {c, d} -> 1
    assert make_ranking_scorer("precision", k=2)(toy, TEST, Y_TEST) == pytest.approx(
        (1 + 0.5 + 0 + 0.5) / 4
    )
    # threshold 5: u2 has no relevant item -> skipped, or 0 with no_relevant="zero"
    assert make_ranking_scorer("precision", k=2, relevance_threshold=5)(
        toy, TEST, Y_TEST
    ) == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert make_ranking_scorer("precision", k=2, relevance_threshold=5, no_relevant="zero")(
        toy, TEST, Y_TEST
    ) == pytest.approx((0.5 + 0 + 0 + 0.5) / 4)
    # MRR and recall
    assert make_ranking_scorer("mrr", k=2, relevance_threshold=4)(
        toy, TEST, Y_TEST
    ) == pytest.approx(3 / 4)
    assert make_ranking_scorer(recall_at_k, k=1, relevance_threshold=4)(
        toy, TEST, Y_TEST
    ) == pytest.approx(3 / 4)
    # graded NDCG with the ratings as gains: u1 gets c (5) then d (2) -> ideal
    nd = make_ranking_scorer("ndcg", k=2, gain="rating")
    assert nd(toy, [("u1", "c"), ("u1", "d")], [5.0, 2.0]) == pytest.approx(1.0)
    assert nd(toy, [("u1", "c"), ("u1", "d")], [2.0, 5.0]) == pytest.approx(
        (2 + 5 / np.log2(3)) / (5 + 2 / np.log2(3))
    )
    # metric_params reach the metric: exponential gains 2^5-1 and 2^2-1
    nde = make_ranking_scorer("ndcg", k=2, gain="rating", metric_params={"gains": "exponential"})
    assert nde(toy, [("u1", "c"), ("u1", "d")], [2.0, 5.0]) == pytest.approx(
        (3 + 31 / np.log2(3)) / (31 + 3 / np.log2(3))
    )
    # AUC: u1 has 2 candidates (4 items - 2 seen), c relevant and ranked first
    assert make_ranking_scorer("auc", k=2, relevance_threshold=4)(
        toy, [("u1", "c"), ("u1", "d")], [5.0, 2.0]
    ) == pytest.approx(1.0)


def test_unknown_users_and_items_options(toy):
    kw = dict(k=2, relevance_threshold=4)
    # skip the unknown user u4
    assert make_ranking_scorer("precision", unknown_users="skip", **kw)(
        toy, TEST, Y_TEST
    ) == pytest.approx((0.5 + 0.5 + 0) / 3)
    # drop the unseen item e: u3 has no relevant item left
    assert make_ranking_scorer("precision", unknown_items="skip", **kw)(
        toy, TEST, Y_TEST
    ) == pytest.approx(0.5)
    table = evaluate(toy, TEST, Y_TEST, k=2, relevance_threshold=4)
    assert table.attrs == {
        "n_test_users": 4,
        "n_scored_users": 4,
        "n_fallback_users": 1,
        "n_unknown_items": 1,
    }


def test_padding_when_k_exceeds_catalogue(toy):
    # 4 items in the catalogue, k=6: lists padded, denominator stays k
    p6 = make_ranking_scorer("precision", k=6)
    assert p6(toy, [("u1", "c"), ("u1", "d")]) == pytest.approx(2 / 6)


def test_beyond_accuracy_through_scorer_and_evaluate(toy):
    cov = make_ranking_scorer("coverage", k=2)
    # lists: [c,d] [b,d] [c] [a,b] -> {a,b,c,d} = 4 of 4
    assert cov(toy, TEST, Y_TEST) == 1.0
    assert make_ranking_scorer("coverage", k=1)(toy, TEST, Y_TEST) == pytest.approx(3 / 4)
    # novelty at k=1: items c, b, c, a; p = pop / 3 training users
    nov = make_ranking_scorer("novelty", k=1)(toy, TEST, Y_TEST)
    info = -np.log2(np.array([1, 2, 1, 3]) / 3)
    assert nov == pytest.approx(info.mean())
    # serendipity vs the 2 most popular items {a, b}: only u1's hit c is unexpected
    ser = make_ranking_scorer("serendipity", k=2, relevance_threshold=4)(toy, TEST, Y_TEST)
    assert ser == pytest.approx((0.5 + 0 + 0 + 0) / 4)
    genres = pd.DataFrame({"x": [1, 1, 0, 0], "y": [0, 0, 1, 1]}, index=list("abcd"))
    ild = make_ranking_scorer("intra_list_diversity", k=2, item_features=genres)
    # [c,d] same genre: 0; [b,d]: 1; [c]: undefined; [a,b]: 0
    assert ild(toy, TEST, Y_TEST) == pytest.approx(1 / 3)


def test_scorer_errors(toy):
    with pytest.raises(ValueError, match="Unknown ranking metric 'f1'"):
        make_ranking_scorer("f1")
    with pytest.raises(ValueError, match="relevance_threshold=4 needs y"):
        make_ranking_scorer("ndcg", relevance_threshold=4)(toy, TEST)
    with pytest.raises(TypeError, match="LinearRegression has none"):
        make_ranking_scorer("ndcg")(LinearRegression(), TEST)
    with pytest.raises(ValueError, match="do not support sample_weight"):
        make_ranking_scorer("ndcg")(toy, TEST, Y_TEST, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="X has 5 interaction.* y has 2"):
        make_ranking_scorer("ndcg")(toy, TEST, [1.0, 2.0])
    with pytest.raises(ValueError, match="intra_list_diversity needs item_features"):
        make_ranking_scorer("intra_list_diversity")(toy, TEST)
    with pytest.raises(ValueError, match="unknown_users must be"):
        make_ranking_scorer("ndcg", unknown_users="drop")(toy, TEST)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        make_ranking_scorer("ndcg", k=0)(toy, TEST)
    assert repr(make_ranking_scorer(ndcg_at_k, k=5, relevance_threshold=4)) == (
        "make_ranking_scorer('ndcg', k=5, relevance_threshold=4)"
    )


# ------------------------------------------------------ MatrixFactorization
@pytest.fixture(scope="module")
def mf_split():
    X, y = make_ratings(n_users=150, n_items=100, n_ratings=4000, random_state=0)
    train, test = next(TemporalSplit(test_size=0.25).split(X))
    mf = MatrixFactorization(n_factors=8, n_epochs=10, random_state=0, n_jobs=1)
    mf.fit(X[train], y[train])
    return mf, X[test], y[test]


def test_scorer_equals_metric_on_public_recommend(mf_split):
    mf, Xt, yt = mf_split
    rel = yt >= 4
    users = np.unique(Xt[rel, 0])
    truth = [Xt[rel & (Xt[:, 0] == u), 1] for u in users]
    recs = mf.recommend(users, n=10, exclude_seen=True)
    for name, func in (("precision", precision_at_k), ("ndcg", ndcg_at_k)):
        scorer = make_ranking_scorer(name, k=10, relevance_threshold=4)
        assert scorer(mf, Xt, yt) == pytest.approx(func(truth, recs.items, k=10), rel=1e-12)
    # exclude_seen=False ranks training items too, which can only displace test items
    s_all = make_ranking_scorer("recall", k=10, relevance_threshold=4, exclude_seen=False)
    s_new = make_ranking_scorer("recall", k=10, relevance_threshold=4)
    assert s_all(mf, Xt, yt) <= s_new(mf, Xt, yt)


def test_evaluate_agrees_with_scorers_and_prefix_k(mf_split):
    mf, Xt, yt = mf_split
    table = evaluate(mf, Xt, yt, k=[3, 10], relevance_threshold=4, item_features="factors")
    assert set(table["metric"]) == {
        "precision",
        "recall",
        "ndcg",
        "map",
        "mrr",
        "hit_rate",
        "auc",
        "coverage",
        "novelty",
        "serendipity",
        "intra_list_diversity",
    }
    assert list(table.columns) == ["metric", "k", "value", "n_users"]
    for _, row in table.iterrows():
        scorer = make_ranking_scorer(
            row["metric"], k=int(row["k"]), relevance_threshold=4, item_features="factors"
        )
        assert scorer(mf, Xt, yt) == pytest.approx(row["value"], rel=1e-12), row["metric"]
    acc = table.set_index(["metric", "k"])["value"]
    assert acc["recall", 3] <= acc["recall", 10]
    assert acc["hit_rate", 3] <= acc["hit_rate", 10]


def test_scorer_with_pipeline_uses_transformed_ids(mf_split):
    # The pipeline rewrites item ids; the scorer must compare in that space.
    mf, Xt, yt = mf_split
    X, y = make_ratings(n_users=150, n_items=100, n_ratings=4000, random_state=0)
    train, _ = next(TemporalSplit(test_size=0.25).split(X))

    def shift(A):
        A = np.array(A, copy=True)
        A[:, 1] += 1000
        return A

    pipe = make_pipeline(
        FunctionTransformer(shift),
        MatrixFactorization(n_factors=8, n_epochs=10, random_state=0, n_jobs=1),
    )
    pipe.fit(X[train], y[train])
    assert pipe[-1].items_.min() >= 1000
    scorer = make_ranking_scorer("ndcg", k=10, relevance_threshold=4)
    direct = MatrixFactorization(n_factors=8, n_epochs=10, random_state=0, n_jobs=1)
    direct.fit(shift(X[train]), y[train])
    got = scorer(pipe, Xt, yt)
    assert got == pytest.approx(scorer(direct, shift(Xt), yt), rel=1e-12)
    assert got == pytest.approx(scorer(mf, Xt, yt), rel=1e-12)  # same model, shifted ids
    assert got > 0
    with pytest.raises(TypeError, match="last step of the pipeline"):
        scorer(
            make_pipeline(FunctionTransformer(shift), LinearRegression()).fit(X[train], y[train]),
            Xt,
            yt,
        )


def test_scorer_pickles(mf_split):
    mf, Xt, yt = mf_split
    scorer = make_ranking_scorer("map", k=5, relevance_threshold=4)
    again = pickle.loads(pickle.dumps(scorer))
    assert again(mf, Xt, yt) == scorer(mf, Xt, yt)


def test_grid_search_temporal_multimetric_refit_on_movielens(ml100k):
    ratings = ml100k.ratings
    sub = ratings[ratings["user"] <= 250]
    X, y = sub[["user", "item", "timestamp"]], sub["rating"].astype(float)
    scoring = {
        "ndcg@10": make_ranking_scorer("ndcg", k=10, relevance_threshold=4),
        "p@10": make_ranking_scorer("precision", k=10, relevance_threshold=4),
        "rmse": "neg_root_mean_squared_error",
    }
    search = GridSearchCV(
        MatrixFactorization(n_epochs=8, random_state=0, n_jobs=1),
        {"n_factors": [4, 16], "regularization": [0.02, 0.1]},
        cv=TemporalSplit(n_splits=2, test_size=0.15),
        scoring=scoring,
        refit="ndcg@10",
        n_jobs=2,
    )
    search.fit(X, y)
    res = search.cv_results_
    nd = res["mean_test_ndcg@10"]
    assert search.best_index_ == int(np.argmax(nd))
    assert np.all((nd >= 0) & (nd <= 1)) and np.all(res["mean_test_p@10"] <= 1)
    assert np.all(res["mean_test_rmse"] < 0) and np.all(res["mean_test_rmse"] > -2)
    # the refitted model is usable and scores like any other
    assert 0 <= scoring["ndcg@10"](search.best_estimator_, X, y) <= 1
    # single-metric scoring with cross_validate
    cv_res = cross_validate(
        MatrixFactorization(n_factors=8, n_epochs=5, n_jobs=1, random_state=0),
        X,
        y,
        cv=TemporalSplit(n_splits=2, test_size=0.15),
        scoring=scoring["p@10"],
    )
    assert np.all((cv_res["test_score"] >= 0) & (cv_res["test_score"] <= 1))
