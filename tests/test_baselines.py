"""BaselineRegressor, PopularityRecommender and TruncatedSVDRecommender."""

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.decomposition import TruncatedSVD
from sklearn.model_selection import GridSearchCV, KFold, train_test_split

from sklearn_mf import (
    BaselineRegressor,
    MatrixFactorization,
    PopularityRecommender,
    TruncatedSVDRecommender,
)
from sklearn_mf.datasets import make_ratings


@pytest.fixture(scope="module")
def small():
    X, y = make_ratings(n_users=60, n_items=40, n_ratings=900, random_state=3)
    return X, y


@pytest.fixture(scope="module")
def ml_split(ml100k):
    X, y = ml100k.X.to_numpy(), ml100k.y.to_numpy()
    return train_test_split(X, y, test_size=0.2, random_state=0)


def _rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


def _exact_biases(u, i, y, w, lam, n_users, n_items):
    """Minimiser of sum w e^2 + lam (|bu|^2 + |bi|^2) from the normal equations."""
    mu = np.average(y, weights=w)
    A = np.zeros((len(y), n_users + n_items))
    A[np.arange(len(y)), u] = 1
    A[np.arange(len(y)), n_users + i] = 1
    W = np.ones(len(y)) if w is None else w
    H = A.T @ (W[:, None] * A) + lam * np.eye(n_users + n_items)
    b = np.linalg.solve(H, A.T @ (W * (y - mu)))
    return mu, b[:n_users], b[n_users:]


# ---------------------------------------------------------------- baseline
@pytest.mark.parametrize("weighted", [False, True])
def test_baseline_als_solves_the_objective(small, weighted):
    X, y = small
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y)) if weighted else None
    model = BaselineRegressor(regularization=3.0, max_iter=500, tol=1e-12).fit(
        X, y, sample_weight=w
    )
    u = model._user_codes(X[:, 0])
    i = model._item_codes(X[:, 1])
    mu, bu, bi = _exact_biases(u, i, y, w, 3.0, len(model.users_), len(model.items_))
    assert model.global_mean_ == pytest.approx(mu)
    assert_allclose(model.user_bias_, bu, atol=1e-8)
    assert_allclose(model.item_bias_, bi, atol=1e-8)
    # the objective decreases monotonically (block coordinate descent)
    assert np.all(np.diff(model.loss_curve_) <= 1e-12)


def test_baseline_sgd_reaches_the_als_solution(small):
    X, y = small
    als = BaselineRegressor(regularization=2.0, max_iter=200, tol=1e-10).fit(X, y)
    sgd = BaselineRegressor(
        "sgd", regularization=2.0, n_epochs=300, learning_rate=0.003, random_state=0
    ).fit(X, y)
    assert_allclose(sgd.user_bias_, als.user_bias_, atol=0.03)
    assert_allclose(sgd.item_bias_, als.item_bias_, atol=0.03)
    assert sgd.n_iter_ == 300 and len(sgd.loss_curve_) == 300


def test_baseline_regularization_shrinks(small):
    X, y = small
    loose = BaselineRegressor(regularization=0.1).fit(X, y)
    tight = BaselineRegressor(regularization=100.0).fit(X, y)
    assert np.abs(tight.user_bias_).sum() < 0.5 * np.abs(loose.user_bias_).sum()


def test_baseline_unknown_ids_and_recommend(small):
    X, y = small
    model = BaselineRegressor().fit(X, y)
    known_u, known_i = X[0, 0], X[0, 1]
    pred = model.predict(np.array([[known_u, -5, 0], [-7, known_i, 0], [-7, -5, 0]]))
    cu, ci = model._user_codes([known_u])[0], model._item_codes([known_i])[0]
    assert_allclose(
        pred,
        np.clip(
            [
                model.global_mean_ + model.user_bias_[cu],
                model.global_mean_ + model.item_bias_[ci],
                model.global_mean_,
            ],
            *model.rating_range_,
        ),
    )
    assert np.isnan(
        clone(model)
        .set_params(handle_unknown="nan")
        .fit(X, y)
        .predict(np.array([[-7, known_i, 0]]))
    ).all()
    with pytest.raises(ValueError, match="not seen in fit"):
        clone(model).set_params(handle_unknown="error").fit(X, y).predict(
            np.array([[-7, known_i, 0]])
        )
    # ranking by item bias, seen items excluded
    items, scores = model.recommend([known_u], n=5)
    seen = set(X[X[:, 0] == known_u, 1])
    assert not seen & set(items[0])
    unseen = np.array([c for c in range(len(model.items_)) if model.items_[c] not in seen])
    best = unseen[np.argsort(-model.item_bias_[unseen], kind="stable")[:5]]
    assert_array_equal(
        np.sort(model.item_bias_[best]), np.sort(model.item_bias_[model._item_codes(items[0])])
    )
    # no factors, so no similarity search at all (not a method that raises)
    assert not hasattr(model, "similar_items") and not hasattr(model, "similar_users")
    assert not hasattr(model, "build_similarity_index")
    # fold-in solves only the new user's bias: one ALS step with the item biases fixed
    new = model.fold_in([(-1, X[0, 1]), (-1, X[1, 1])], [5.0, 4.0])
    resid = (
        np.array([5.0, 4.0]) - model.global_mean_ - model.item_bias_[model._item_codes(X[:2, 1])]
    )
    assert_allclose(new.user_bias, [resid.sum() / (2 + model.regularization)])


def test_baseline_ml100k(ml_split):
    Xtr, Xte, ytr, yte = ml_split
    for solver in ("als", "sgd"):
        model = BaselineRegressor(solver, random_state=0).fit(Xtr, ytr)
        assert 0.93 < _rmse(model, Xte, yte) < 0.96  # published baselines: ~0.944


@pytest.mark.parametrize(
    "bad, msg",
    [
        (dict(y=[1.0, np.nan, 3.0]), "NaN or infinite"),
        (dict(y=None), "requires y"),
        (dict(sample_weight=[1.0, -1.0, 1.0]), "non-negative"),
    ],
)
def test_baseline_bad_input(bad, msg):
    X = np.array([[1, 1], [1, 2], [2, 1]])
    args = dict(y=np.array([1.0, 2.0, 3.0]), sample_weight=None) | bad
    args = {k: (None if v is None else np.asarray(v, dtype=float)) for k, v in args.items()}
    before = {k: None if v is None else v.copy() for k, v in args.items()}
    with pytest.raises(ValueError, match=msg):
        BaselineRegressor().fit(X, args["y"], sample_weight=args["sample_weight"])
    for k, v in args.items():  # inputs are never modified
        assert v is None or np.array_equal(v, before[k], equal_nan=True)
    with pytest.raises(ValueError, match="regularization"):
        BaselineRegressor(regularization=-1).fit(X, [1.0, 2.0, 3.0])


def test_baseline_sgd_divergence_is_an_error(small):
    X, y = small
    with pytest.raises(FloatingPointError, match="smaller learning_rate"):
        BaselineRegressor("sgd", learning_rate=1e6, n_epochs=50, random_state=0).fit(X, y * 1e6)


# ---------------------------------------------------------------- popularity
def test_popularity_counts_and_damped_mean():
    X = np.array([[1, "a"], [2, "a"], [3, "a"], [1, "b"], [2, "c"]], dtype=object)
    y = np.array([5.0, 4.0, 3.0, 5.0, 1.0])
    pop = PopularityRecommender().fit(X, y)
    assert_allclose(pop.item_scores_, [3, 1, 1])
    w = np.array([1.0, 1.0, 1.0, 4.0, 0.5])
    assert_allclose(PopularityRecommender().fit(X, sample_weight=w).item_scores_, [3, 4, 0.5])
    mean = PopularityRecommender("rating", damping=2.0).fit(X, y)
    mu = y.mean()
    assert_allclose(mean.item_scores_, [(12 + 2 * mu) / 5, (5 + 2 * mu) / 3, (1 + 2 * mu) / 3])
    # damping=0 is the plain mean: b (one 5) outranks a (mean 4)
    assert_allclose(PopularityRecommender("rating", damping=0).fit(X, y).item_scores_, [4, 5, 1])
    assert_allclose(
        mean.predict(np.array([[9, "a"], [1, "zz"]], dtype=object)), [(12 + 2 * mu) / 5, mu]
    )
    with pytest.raises(ValueError, match="requires y"):
        PopularityRecommender("rating").fit(X)


def test_popularity_recommend_contract():
    X = np.array([[1, "a"], [2, "a"], [3, "a"], [1, "b"], [2, "b"], [3, "c"]], dtype=object)
    pop = PopularityRecommender().fit(X)
    rec = pop.recommend([1, 2, "new"], n=1)
    assert rec.items.tolist() == [["c"], ["c"], ["a"]]
    assert rec.fallback.tolist() == [False, False, True]
    items, scores = pop.recommend([3], n=1, exclude_seen=False, exclude_items=["a"])
    assert items.tolist() == [["b"]] and scores.tolist() == [[2.0]]
    # a user who has seen everything but c gets padded slots
    padded = pop.recommend([1], n=2)
    assert padded.items[0, 0] == "c" and padded.items[0, 1] is None
    with pytest.raises(ValueError, match="larger than the number"):
        pop.recommend([1], n=4)
    frame = pop.recommend([1, 2], n=1).to_frame()
    assert list(frame["item"]) == ["c", "c"]


def test_popularity_is_the_fallback_of_mf(small):
    X, y = small
    mf = MatrixFactorization(n_factors=4, n_epochs=3, random_state=0, n_jobs=1).fit(X, y)
    pop = PopularityRecommender().fit(X, y)
    a = mf.recommend(["nobody"], n=10, exclude_seen=False)
    b = pop.recommend(["nobody"], n=10)
    assert_array_equal(a.items, b.items)
    assert_allclose(pop.item_scores_, mf.item_popularity_)


def test_popularity_ml100k_precision(ml100k):
    r = ml100k.ratings.sort_values("timestamp")
    last = r.groupby("user").tail(5)
    train = r.drop(last.index)
    pop = PopularityRecommender().fit(train[["user", "item"]])
    items, _ = pop.recommend(last["user"].unique(), n=10)
    truth = last.groupby("user")["item"].apply(set)
    hits = np.mean([len(set(row) & truth[u]) / 10 for u, row in zip(last["user"].unique(), items)])
    assert 0.02 < hits < 0.2  # far better than random (10 / 1682 ~ 0.006 per slot)


# ---------------------------------------------------------------- truncated SVD
def _dense_filled(model, X, y):
    u = model._user_codes(X[:, 0])
    i = model._item_codes(X[:, 1])
    A = model.global_mean_ + model.user_offset_[:, None] + model.item_offset_[None, :]
    A = A - model.global_mean_
    A[u, i] = y - model.global_mean_
    return A


@pytest.mark.parametrize("path", ["lapack", "operator"])
@pytest.mark.parametrize("impute", ["zero", "user_mean", "item_mean"])
def test_truncated_svd_matches_dense_svd(small, impute, path, monkeypatch):
    X, y = small
    if path == "operator":  # force svds on the implicit LinearOperator
        monkeypatch.setattr(TruncatedSVDRecommender, "_dense_max_cells", 0)
    model = TruncatedSVDRecommender(5, impute=impute, random_state=0, clip_predictions=False).fit(
        X, y
    )
    A = _dense_filled(model, X, y)
    U, s, Vt = np.linalg.svd(A)
    assert_allclose(model.singular_values_, s[:5], rtol=1e-8)
    low_rank = (U[:, :5] * s[:5]) @ Vt[:5]
    assert_allclose(model.user_factors_ @ model.item_factors_.T, low_rank, atol=1e-8)
    ref = TruncatedSVD(5, algorithm="arpack", random_state=0).fit(A)
    assert_allclose(model.explained_variance_, ref.explained_variance_, rtol=1e-6)
    assert_allclose(model.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-6)
    # predictions on every cell are mu + low rank
    uu, ii = np.meshgrid(np.arange(len(model.users_)), np.arange(len(model.items_)), indexing="ij")
    Xall = np.column_stack([model.users_[uu.ravel()], model.items_[ii.ravel()], np.zeros(uu.size)])
    assert_allclose(model.predict(Xall), model.global_mean_ + low_rank.ravel(), atol=1e-8)


def test_truncated_svd_offsets_and_fallback(small):
    X, y = small
    model = TruncatedSVDRecommender(3, impute="user_mean", random_state=0).fit(X, y)
    user = X[0, 0]
    assert model.user_offset_[model._user_codes([user])[0]] == pytest.approx(
        y[X[:, 0] == user].mean() - y.mean()
    )
    assert_allclose(model.item_offset_, 0)
    pred = model.predict(np.array([[user, -1, 0], [-1, -1, 0]]))
    assert pred[0] == pytest.approx(np.clip(y[X[:, 0] == user].mean(), *model.rating_range_))
    assert pred[1] == pytest.approx(y.mean())


def test_truncated_svd_bad_input(small):
    X, y = small
    with pytest.raises(ValueError, match="smaller than both"):
        TruncatedSVDRecommender(1000).fit(X, y)
    with pytest.raises(TypeError, match="sample_weight"):
        TruncatedSVDRecommender(3).fit(X, y, sample_weight=np.ones(len(y)))
    with pytest.raises(ValueError, match="impute"):
        TruncatedSVDRecommender(3, impute="median").fit(X, y)


def test_truncated_svd_ml100k_imputation_distorts(ml_split):
    """Imputation costs accuracy: worse than MF and than the bias baseline."""
    Xtr, Xte, ytr, yte = ml_split
    svd = TruncatedSVDRecommender(10, impute="item_mean", random_state=0).fit(Xtr, ytr)
    base = BaselineRegressor().fit(Xtr, ytr)
    mf = MatrixFactorization(n_factors=50, random_state=0).fit(Xtr, ytr)
    r_svd, r_base, r_mf = _rmse(svd, Xte, yte), _rmse(base, Xte, yte), _rmse(mf, Xte, yte)
    assert 0.96 < r_svd < 1.01  # measured 0.984
    assert r_svd > r_base > r_mf
    assert np.all(np.diff(svd.singular_values_) <= 0)
    assert 0 < svd.explained_variance_ratio_.sum() < 1


# ---------------------------------------------------------------- common
@pytest.mark.parametrize(
    "model",
    [
        BaselineRegressor(),
        BaselineRegressor("sgd", random_state=0),
        PopularityRecommender("rating"),
        TruncatedSVDRecommender(3, random_state=0),
    ],
    ids=lambda m: type(m).__name__,
)
def test_joblib_round_trip(model, small, tmp_path):
    X, y = small
    model = clone(model).fit(X, y)
    path = tmp_path / "m.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    assert_array_equal(loaded.predict(X[:50]), model.predict(X[:50]))
    assert_array_equal(loaded.recommend(X[:3, 0], n=3).items, model.recommend(X[:3, 0], n=3).items)


def test_grid_search(small):
    X, y = small
    cv = KFold(3, shuffle=True, random_state=0)
    gs = GridSearchCV(
        BaselineRegressor(),
        {"regularization": [0.1, 5.0, 1e4]},
        scoring="neg_root_mean_squared_error",
        cv=cv,
    ).fit(X, y)
    assert gs.best_params_["regularization"] != 1e4  # 1e4 forces every bias to ~0
    gs = GridSearchCV(
        TruncatedSVDRecommender(random_state=0),
        {"n_factors": [1, 3]},
        scoring="neg_root_mean_squared_error",
        cv=cv,
    ).fit(X, y)
    assert np.isfinite(gs.cv_results_["mean_test_score"]).all()
    gs = GridSearchCV(
        PopularityRecommender("rating"),
        {"damping": [0.0, 5.0]},
        scoring="neg_mean_absolute_error",
        cv=cv,
    ).fit(X, y)
    assert np.isfinite(gs.best_score_)
