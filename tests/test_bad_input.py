"""Bad input, per family: every misuse gets an early error of the right type whose
message names the problem (DESIGN.md section 6), and edge inputs give the
documented answer instead of a crash or a silent NaN."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import UndefinedMetricWarning

from sklearn_mf import PopularityRecommender
from sklearn_mf.datasets import make_ratings
from sklearn_mf.metrics import (
    coverage,
    evaluate,
    intra_list_diversity,
    make_ranking_scorer,
    ndcg_at_k,
    novelty,
    precision_at_k,
    serendipity,
)
from sklearn_mf.model_selection import (
    PerUserRandomSplit,
    PerUserTemporalSplit,
    TemporalSplit,
    UserDisjointKFold,
)


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=40, n_items=30, n_ratings=600, random_state=0)


# ---------------------------------------------------------------- metrics
EMPTY_LISTS = [np.empty((0, 3), dtype=np.int64), np.empty((0, 3), dtype=object)]


@pytest.mark.parametrize("rec", EMPTY_LISTS, ids=["int", "object"])
@pytest.mark.parametrize(
    "metric",
    [
        lambda rec: precision_at_k([], rec),
        lambda rec: ndcg_at_k([], rec),
        lambda rec: novelty(rec, np.array([1.0, 2.0, 3.0])),
        lambda rec: intra_list_diversity(rec, np.eye(3)),
        lambda rec: serendipity([], rec, [0, 1]),
    ],
    ids=["precision", "ndcg", "novelty", "ild", "serendipity"],
)
def test_metrics_on_empty_test_set_warn_and_return_nan(metric, rec):
    with pytest.warns(UndefinedMetricWarning, match="is undefined: none of the 0"):
        value = metric(rec)
    assert np.isnan(value)


def test_beyond_accuracy_metrics_warn_when_no_list_defines_them():
    # every slot padded: novelty has no item, ILD no pair
    with pytest.warns(UndefinedMetricWarning, match="novelty is undefined"):
        assert np.isnan(novelty([[-1, -1]], np.array([1.0, 2.0])))
    with pytest.warns(UndefinedMetricWarning, match="intra_list_diversity is undefined"):
        assert np.isnan(intra_list_diversity([[0, -1]], np.eye(2)))
    # per-user output keeps its NaN without a warning: nothing is averaged
    assert np.isnan(novelty([[-1, -1]], np.array([1.0, 2.0]), average=False)).all()


@pytest.mark.parametrize(
    "metric",
    [
        lambda rec: precision_at_k([["a"], ["b"]], rec),
        lambda rec: serendipity([["a"], ["b"]], rec, ["a"]),
        lambda rec: novelty(rec, pd.Series({"a": 1.0, "b": 2.0})),
        lambda rec: intra_list_diversity(rec, pd.DataFrame(np.eye(2), index=["a", "b"])),
        lambda rec: coverage(rec, ["a", "b"]),
    ],
    ids=["precision", "serendipity", "novelty", "ild", "coverage"],
)
def test_every_metric_rejects_a_list_with_a_repeated_item(metric):
    rec = np.array([["a", "b"], ["b", "b"]], dtype=object)
    with pytest.raises(
        ValueError,
        match=r"1 recommended list\(s\) contain the same item "
        r"twice, e.g. row 1",
    ):
        metric(rec)


def test_intra_list_diversity_repeated_positional_item():
    with pytest.raises(ValueError, match="same item twice"):
        intra_list_diversity([[0, 2, 0]], np.eye(3))
    # padding may repeat
    assert intra_list_diversity([[0, -1, -1, 2]], np.eye(3)) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_scorers_and_evaluate_reject_non_finite_test_ratings(ratings, bad):
    X, y = ratings
    model = PopularityRecommender().fit(X, y)
    y_bad = y.astype(np.float64).copy()
    y_bad[[3, 7]] = bad
    scorer = make_ranking_scorer("ndcg", k=5, relevance_threshold=4)
    with pytest.raises(ValueError, match=r"y contains 2 NaN or infinite test rating"):
        scorer(model, X, y_bad)
    with pytest.raises(ValueError, match=r"y contains 2 NaN or infinite test rating"):
        evaluate(model, X, y_bad, k=5, relevance_threshold=4)
    # without a threshold, y is still checked: a NaN is never silently "relevant"
    with pytest.raises(ValueError, match="NaN or infinite test rating"):
        make_ranking_scorer("precision", k=5)(model, X, y_bad)


# ---------------------------------------------------------------- splitters
SPLITTERS = [
    TemporalSplit(),
    PerUserTemporalSplit(),
    PerUserRandomSplit(random_state=0),
    UserDisjointKFold(n_splits=2),
]


@pytest.mark.parametrize("splitter", SPLITTERS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize(
    "X",
    [
        np.empty((0, 3)),
        pd.DataFrame(columns=["user", "item", "timestamp"]),
        [],
    ],
    ids=["array", "frame", "list"],
)
def test_splitters_reject_empty_X(splitter, X):
    with pytest.raises(ValueError, match=f"{type(splitter).__name__} cannot split an empty X"):
        next(splitter.split(X))


@pytest.mark.parametrize(
    "splitter, what",
    [
        (TemporalSplit(n_splits=5000), "n_splits=5000"),
        (TemporalSplit(n_splits=5000, test_size=1e-5), "n_splits=5000"),
        (TemporalSplit(quantiles=np.linspace(0.01, 0.99, 2000)), "2000 quantiles"),
    ],
)
def test_temporal_split_too_many_splits_names_the_parameter(ratings, splitter, what):
    X, _ = ratings
    n_distinct = len(np.unique(X[:, 2]))
    with pytest.raises(ValueError) as info:
        list(splitter.split(X))
    msg = str(info.value)
    assert msg.startswith(
        f"{what} is too many for {len(X)} interaction(s) with {n_distinct} distinct timestamp(s)"
    )
    assert len(msg) < 400  # the cutoffs are not listed


def test_temporal_split_unsorted_cutoffs_short_message(ratings):
    X, _ = ratings
    t = np.sort(X[:, 2])
    cut = list(t[[100, 300, 200]]) + list(t[400:900])
    with pytest.raises(
        ValueError, match="cutoffs must be strictly increasing; cutoffs 1 and 2 are"
    ) as info:
        list(TemporalSplit(cutoffs=cut).split(X))
    assert len(str(info.value)) < 200


def test_user_disjoint_kfold_too_many_splits(ratings):
    X, _ = ratings
    with pytest.raises(ValueError, match=r"Cannot split 40 user\(s\) into n_splits=500"):
        next(UserDisjointKFold(n_splits=500).split(X))


# ---------------------------------------------------------------- recommenders
from _models import estimators, is_rating_model  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402

RECOMMENDERS = estimators()
REC_IDS = [n for n, _ in RECOMMENDERS]


def _bad_fit_inputs(X, y):
    obj = X[:, :2].astype(object)
    obj[3, 0] = [1, 2]
    nan_ids = X[:, :2].astype(float)
    nan_ids[2, 1] = np.nan
    y_nan, y_inf = y.copy(), y.copy()
    y_nan[0], y_inf[5] = np.nan, np.inf
    return [
        # (X, y, exception, message naming the problem)
        (None, y, ValueError, "requires interaction data X, got None"),
        ("abc", y, ValueError, "expects a table of interactions, got a string"),
        (np.empty((0, 2)), np.empty(0), ValueError, r"0 sample\(s\).*X holds no interactions"),
        (X[:, :1], y, ValueError, "X needs a user id column and an item id column"),
        (X[:, :, None], y, ValueError, "Expected a 2D array of \\(user, item, ...\\)"),
        (sp.csr_matrix(X), y, TypeError, "not a sparse matrix.*matrix_to_interactions"),
        (X + 1j, y, ValueError, "Complex data not supported"),
        (nan_ids, y, ValueError, "missing or infinite item ids"),
        (obj, y, TypeError, "user ids must be hashable values.*not 'list'"),
        (X, y_nan, ValueError, r"y contains 1 NaN or infinite value\(s\)"),
        (X, y_inf, ValueError, r"y contains 1 NaN or infinite value\(s\)"),
        (X, y[:-1], ValueError, r"inconsistent numbers of samples: \[600, 599\]"),
        (X, np.array(["a"] * len(y)), ValueError, "y must be numeric"),
        (X, np.c_[y, y], ValueError, "y should be a 1d array"),
    ]


@pytest.mark.parametrize("name, est", RECOMMENDERS, ids=REC_IDS)
def test_recommender_fit_rejects_bad_input(ratings, name, est):
    X, y = ratings
    y = y.astype(np.float64)
    X_before, y_before = X.copy(), y.copy()
    for Xb, yb, exc, msg in _bad_fit_inputs(X, y):
        with pytest.raises(exc, match=msg):
            clone(est).fit(Xb, yb)
    if is_rating_model(est):
        with pytest.raises(ValueError, match="requires y to be passed"):
            clone(est).fit(X, None)
    elif not name.startswith("Popularity"):  # it may average any ratings
        with pytest.raises(ValueError, match=r"negative value\(s\); implicit feedback"):
            clone(est).fit(X, -y)
    np.testing.assert_array_equal(X, X_before)  # inputs never modified
    np.testing.assert_array_equal(y, y_before)


@pytest.mark.parametrize("name, est", RECOMMENDERS, ids=REC_IDS)
def test_recommender_rejects_bad_hyperparameters(ratings, name, est):
    X, y = ratings
    params = est.get_params()
    for p in (
        "n_factors",
        "learning_rate",
        "regularization",
        "alpha",
        "init_std",
        "n_epochs",
        "max_iter",
        "damping",
    ):
        if p not in params:
            continue
        for value in (np.inf, np.nan, -1):
            if p in ("n_factors", "n_epochs", "max_iter") and value == np.inf:
                continue
            with pytest.raises(InvalidParameterError, match=f"'{p}' parameter"):
                clone(est).set_params(**{p: value}).fit(X, y)


@pytest.mark.parametrize("name, est", RECOMMENDERS, ids=REC_IDS)
def test_recommender_serving_rejects_bad_requests(ratings, name, est):
    X, y = ratings
    with pytest.raises(NotFittedError):
        clone(est).recommend([X[0, 0]], n=2)
    model = clone(est).fit(X, y)
    user = X[0, 0]
    n_items = len(model.items_)
    with pytest.raises(
        ValueError, match=f"n=1000000 is larger than the number of candidate items \\({n_items}\\)"
    ):
        model.recommend([user], n=10**6)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        model.recommend([user], n=0)
    with pytest.raises(TypeError, match="n must be a positive integer, got 2.5"):
        model.recommend([user], n=2.5)
    with pytest.raises(ValueError, match=r"ids must be a 1-d sequence, got shape \(2, 2\)"):
        model.recommend(np.zeros((2, 2)))
    if hasattr(model, "similar_items"):  # models without factors have none
        with pytest.raises(ValueError, match="items not seen in fit, e.g. \\['nope'\\]"):
            model.similar_items(["nope"], n=2)
    if "handle_unknown" in model.get_params() and hasattr(model, "predict"):
        model.set_params(handle_unknown="error")
        with pytest.raises(ValueError, match="unknown|not seen|unseen"):
            model.predict([[10**9, X[0, 1]]])


# ---------------------------------------------------------------- factorization machines
@pytest.mark.parametrize(
    "cls_name", ["FactorizationMachineRegressor", "FactorizationMachineClassifier"]
)
def test_factorization_machines_reject_bad_input(cls_name):
    import sklearn_mf

    cls = getattr(sklearn_mf, cls_name)
    rng = np.random.default_rng(0)
    F = rng.random((40, 5))
    t = (rng.random(40) > 0.5).astype(int)
    est = cls(n_factors=2, max_iter=3, random_state=0)
    F_nan = F.copy()
    F_nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clone(est).fit(F_nan, t)
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        clone(est).fit(np.empty((0, 5)), np.empty(0))
    t_nan = t.astype(float)
    t_nan[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(est).fit(F, t_nan)
    model = clone(est).fit(F, t)
    with pytest.raises(ValueError, match="X has 4 features, but .* is expecting 5"):
        model.predict(F[:, :4])
    if cls_name.endswith("Classifier"):
        with pytest.raises(ValueError, match="Only binary classification is supported"):
            clone(est).fit(F, np.arange(40) % 3)
