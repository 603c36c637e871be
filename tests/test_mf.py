"""MatrixFactorization (SGD): kernel exactness, learning, API contract, errors."""

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_mf import MatrixFactorization, _sgd_fast
from sklearn_mf._mf import block_schedule
from sklearn_mf.datasets import make_ratings


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def synthetic():
    X, y, truth = make_ratings(
        n_users=300,
        n_items=200,
        n_ratings=20_000,
        n_factors=5,
        noise=0.3,
        round_ratings=False,
        rating_scale=None,
        return_truth=True,
        random_state=0,
    )
    return X, y, truth


# --------------------------------------------------------------------------- kernel
def numpy_sgd_epoch(users, items, ratings, weights, order, P, Q, bu, bi, mu, lr, reg, reg_b):
    """Slow reference: the same updates, in the same order, in plain Python."""
    sse = 0.0
    for n in order:
        u, i = users[n], items[n]
        e = ratings[n] - (mu + bu[u] + bi[i] + P[u] @ Q[i])
        w = 1.0 if weights is None else weights[n]
        sse += w * e * e
        bu[u] += lr * w * (e - reg_b * bu[u])
        bi[i] += lr * w * (e - reg_b * bi[i])
        pu = P[u].copy()
        P[u] += lr * w * (e * Q[i] - reg * P[u])
        Q[i] += lr * w * (e * pu - reg * Q[i])
    return sse


@pytest.mark.parametrize("weighted", [False, True])
def test_sgd_epoch_matches_numpy_reference(weighted):
    rng = np.random.default_rng(0)
    n_users, n_items, k, n = 13, 11, 4, 200
    users = rng.integers(0, n_users, n).astype(np.int32)
    items = rng.integers(0, n_items, n).astype(np.int32)
    ratings = rng.uniform(1, 5, n)
    weights = rng.uniform(0.5, 2, n) if weighted else None
    order = rng.permutation(n).astype(np.int32)
    P, Q = rng.normal(0, 0.1, (n_users, k)), rng.normal(0, 0.1, (n_items, k))
    bu, bi = rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items)
    mu, lr, reg, reg_b = 3.1, 0.03, 0.05, 0.02

    ref = [a.copy() for a in (P, Q, bu, bi)]
    sse_ref = numpy_sgd_epoch(users, items, ratings, weights, order, *ref, mu, lr, reg, reg_b)

    # the kernel visits the ratings in storage order: store them in `order`
    loss = np.zeros(1)
    n_bad = _sgd_fast.sgd_epoch(
        users[order],
        items[order],
        ratings[order],
        np.zeros(0) if weights is None else weights[order],
        np.array([0, n], dtype=np.intp),
        np.zeros((1, 1), dtype=np.intp),
        P,
        Q,
        bu,
        bi,
        mu,
        lr,
        reg,
        reg_b,
        True,
        loss,
        1,
    )
    assert n_bad == 0
    for got, want in zip((P, Q, bu, bi), ref):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert loss[0] == pytest.approx(sse_ref, rel=1e-10)


def test_block_schedule_strata_are_conflict_free():
    rng = np.random.default_rng(1)
    u = rng.integers(0, 50, 5000)
    i = rng.integers(0, 40, 5000)
    y = rng.uniform(1, 5, 5000)
    wu, wi, ry, _, ptr, schedule, user_order, item_order = block_schedule(
        u, i, y, None, 50, 40, 4, rng
    )
    # the same ratings, relabelled by the working codes, block by block
    got = sorted(zip(user_order[wu].tolist(), item_order[wi].tolist(), ry.tolist()))
    assert got == sorted(zip(u.tolist(), i.tolist(), y.tolist()))
    assert ptr[0] == 0 and ptr[-1] == 5000 and np.all(np.diff(ptr) >= 0)
    assert schedule.shape == (4, 4)
    # every block appears exactly once over the strata
    assert sorted(schedule.ravel().tolist()) == list(range(16))
    for stratum in schedule:
        seen_u, seen_i = set(), set()
        for b in stratum:
            bu, bi = set(wu[ptr[b] : ptr[b + 1]].tolist()), set(wi[ptr[b] : ptr[b + 1]].tolist())
            assert not (bu & seen_u) and not (bi & seen_i)
            # a block's rows are one contiguous range of the working factors
            assert max(bu) - min(bu) < 13 and max(bi) - min(bi) < 10
            seen_u |= bu
            seen_i |= bi


def test_parallel_epoch_equals_serial_execution_of_same_schedule(synthetic):
    """Blocks of a stratum are independent: 2 threads give bit-identical factors."""
    X, y, _ = synthetic
    a = MatrixFactorization(
        n_factors=8, n_epochs=3, random_state=0, n_jobs=2, dtype=np.float64
    ).fit(X, y)
    b = MatrixFactorization(
        n_factors=8, n_epochs=3, random_state=0, n_jobs=2, dtype=np.float64
    ).fit(X, y)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


# ------------------------------------------------------------------------- learning
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_recovers_planted_low_rank_structure(synthetic, dtype, n_jobs):
    X, y, truth = synthetic
    Xtr, Xte, ytr, yte, _, clean_te = train_test_split(
        X, y, truth.noise_free, test_size=0.2, random_state=0
    )
    mf = MatrixFactorization(
        n_factors=5,
        n_epochs=60,
        learning_rate=0.01,
        regularization=0.02,
        dtype=dtype,
        random_state=0,
        n_jobs=n_jobs,
    ).fit(Xtr, ytr)
    assert mf.user_factors_.dtype == dtype
    pred = mf.predict(Xte)
    # the noise level is 0.3: test RMSE must approach it, far below the baseline
    assert rmse(pred, yte) < 0.40
    assert rmse(pred, clean_te) < 0.26
    assert rmse(np.full_like(yte, ytr.mean()), yte) > 1.0
    # training loss decreases
    assert mf.loss_curve_[-1] < 0.5 * mf.loss_curve_[0]


def test_unbiased_model_is_plain_dot_product(synthetic):
    X, y, _ = synthetic
    mf = MatrixFactorization(
        n_factors=4, n_epochs=5, biased=False, random_state=0, clip_predictions=False
    ).fit(X[:2000], y[:2000])
    assert mf.global_mean_ == 0
    assert not mf.user_bias_.any() and not mf.item_bias_.any()
    u = mf._user_codes(X[:5, 0])
    i = mf._item_codes(X[:5, 1])
    expected = np.einsum("ij,ij->i", mf.user_factors_[u], mf.item_factors_[i])
    np.testing.assert_allclose(mf.predict(X[:5]), expected, rtol=1e-5)


def test_movielens_100k_default_rmse(ml100k):
    Xtr, Xte, ytr, yte = train_test_split(ml100k.X, ml100k.y, test_size=0.2, random_state=42)
    mf = MatrixFactorization(random_state=0).fit(Xtr, ytr)
    score = rmse(mf.predict(Xte), yte)
    assert score <= 0.95, score


def test_early_stopping_restores_best_epoch(synthetic):
    X, y, _ = synthetic
    # large learning rate and no regularisation: validation error turns up
    mf = MatrixFactorization(
        n_factors=30,
        n_epochs=200,
        learning_rate=0.05,
        regularization=0.0,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        random_state=0,
        n_jobs=1,
    )
    mf.fit(X, y)
    scores = mf.validation_scores_
    assert mf.n_iter_ < 200
    assert len(scores) == mf.n_iter_ == len(mf.loss_curve_)
    assert mf.best_iteration_ == int(np.argmin(scores)) + 1
    assert mf.n_iter_ - mf.best_iteration_ == 3
    # the kept factors are those of the best epoch: recompute the validation RMSE
    rng = np.random.default_rng(np.random.RandomState(0).randint(2**31))  # same derivation as fit
    rng.normal(size=(len(mf.users_), 30)), rng.normal(size=(len(mf.items_), 30))
    shuffled = rng.permutation(len(y))
    val = np.sort(shuffled[: int(round(0.2 * len(y)))])
    got = rmse(mf.predict(X[val]), y[val])
    assert got == pytest.approx(min(scores), rel=1e-5)


def test_verbose_prints_one_line_per_epoch(synthetic, capsys):
    X, y, _ = synthetic
    MatrixFactorization(
        n_factors=2, n_epochs=3, early_stopping=True, verbose=1, random_state=0
    ).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    lines = [ln for ln in lines if not ln.startswith("set-up  ")]  # stages first
    assert len(lines) == 3
    assert all("train MSE" in ln and "validation RMSE" in ln and ln.endswith("s") for ln in lines)


def test_divergence_raises_with_learning_rate_hint(synthetic):
    X, y, _ = synthetic
    with pytest.raises(FloatingPointError, match="smaller learning_rate"):
        MatrixFactorization(learning_rate=50.0, n_epochs=5, random_state=0).fit(X, y)


def test_reproducible_for_random_state_and_n_jobs(synthetic):
    X, y, _ = synthetic
    for n_jobs in (1, 2):
        a = MatrixFactorization(n_factors=4, n_epochs=3, random_state=7, n_jobs=n_jobs).fit(X, y)
        b = MatrixFactorization(n_factors=4, n_epochs=3, random_state=7, n_jobs=n_jobs).fit(X, y)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = MatrixFactorization(n_factors=4, n_epochs=3, random_state=8, n_jobs=1).fit(X, y)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_every_hyperparameter_changes_the_fit(synthetic):
    X, y = synthetic[0][:3000], synthetic[1][:3000]
    base = dict(n_factors=4, n_epochs=4, random_state=0, n_jobs=1)
    ref = MatrixFactorization(**base).fit(X, y).predict(X)
    for change in [
        dict(n_factors=5),
        dict(n_epochs=5),
        dict(learning_rate=0.02),
        dict(regularization=0.2),
        dict(bias_regularization=0.5),
        dict(init_std=0.3),
        dict(biased=False),
        dict(random_state=1),
        dict(early_stopping=True),
    ]:
        other = MatrixFactorization(**{**base, **change}).fit(X, y).predict(X)
        assert not np.allclose(ref, other), change


# ------------------------------------------------------------------- sample weight
def test_integer_weights_equal_repeated_rows():
    """Both describe the same objective: converged predictions agree."""
    X, y = make_ratings(
        n_users=30, n_items=20, n_ratings=300, noise=0.2, round_ratings=False, random_state=3
    )
    w = np.random.default_rng(0).integers(1, 4, len(y))
    params = dict(
        n_factors=2,
        n_epochs=400,
        learning_rate=0.003,
        regularization=0.05,
        random_state=0,
        n_jobs=1,
        dtype=np.float64,
        clip_predictions=False,
    )
    weighted = MatrixFactorization(**params).fit(X, y, sample_weight=w)
    repeated = MatrixFactorization(**params).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.global_mean_ == pytest.approx(repeated.global_mean_)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), atol=0.03)
    unweighted = MatrixFactorization(**params).fit(X, y)
    assert np.abs(unweighted.predict(X) - repeated.predict(X)).max() > 0.05


def test_zero_weight_rows_are_ignored():
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=300, random_state=3)
    w = np.ones(len(y))
    w[:100] = 0
    y_noisy = y.copy()
    y_noisy[:100] = 1000.0  # absurd ratings with zero weight
    params = dict(n_factors=2, n_epochs=5, random_state=0, n_jobs=1, clip_predictions=False)
    a = MatrixFactorization(**params).fit(X, y_noisy, sample_weight=w)
    assert np.isfinite(a.predict(X)).all()
    assert a.predict(X).max() < 10


# -------------------------------------------------------------------- unknown ids
def test_handle_unknown_policies(synthetic):
    X, y, _ = synthetic
    mf = MatrixFactorization(n_factors=3, n_epochs=3, random_state=0, clip_predictions=False)
    mf.fit(X, y)
    known_u, known_i = X[0, 0], X[0, 1]
    rows = np.array([[known_u, known_i, 0], [-5, known_i, 0], [known_u, -7, 0], [-5, -7, 0]])
    pred = mf.predict(rows)
    u, i = mf._user_codes([known_u])[0], mf._item_codes([known_i])[0]
    mu = mf.global_mean_
    assert pred[1] == pytest.approx(mu + mf.item_bias_[i], rel=1e-6)
    assert pred[2] == pytest.approx(mu + mf.user_bias_[u], rel=1e-6)
    assert pred[3] == pytest.approx(mu)
    assert np.isfinite(pred).all()

    mf.set_params(handle_unknown="nan")
    p = mf.predict(rows)
    assert np.isfinite(p[0]) and np.isnan(p[1:]).all()

    mf.set_params(handle_unknown="error")
    with pytest.raises(ValueError, match="not seen in fit"):
        mf.predict(rows)
    mf.predict(rows[:1])


def test_string_ids_and_dataframes_and_lists():
    rows = [
        ("ann", "x", 10),
        ("ann", "y", 11),
        ("bob", "x", 12),
        ("bob", "z", 13),
        ("cat", "y", 14),
        ("cat", "z", 15),
    ]
    y = [5.0, 1.0, 4.0, 2.0, 2.0, 4.0]
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    arr = np.array(rows, dtype=object)
    preds = []
    for X in (rows, df, arr):
        mf = MatrixFactorization(n_factors=2, n_epochs=30, random_state=0, n_jobs=1).fit(X, y)
        assert mf.users_.tolist() == ["ann", "bob", "cat"]
        assert mf.items_.tolist() == ["x", "y", "z"]
        assert mf.n_features_in_ == 3
        preds.append(mf.predict(X))
    np.testing.assert_allclose(preds[0], preds[1])
    np.testing.assert_allclose(preds[0], preds[2])
    assert list(mf.fit(df, y).feature_names_in_) == ["user", "item", "timestamp"]


def test_mixed_type_ids_are_kept_distinct():
    X = [(1, "a"), ("1", "a"), (2, "b"), (1, "b")]
    mf = MatrixFactorization(n_factors=2, n_epochs=2, random_state=0).fit(X, [1, 2, 3, 4])
    assert len(mf.users_) == 3


# ------------------------------------------------------------------ recommend API
@pytest.fixture(scope="module")
def fitted(synthetic):
    X, y, _ = synthetic
    return MatrixFactorization(n_factors=5, n_epochs=20, random_state=0).fit(X, y)


def test_recommend_matches_brute_force(fitted, synthetic):
    X, _, _ = synthetic
    users = fitted.users_[:25]
    items, scores = fitted.recommend(users, n=7)
    assert items.shape == scores.shape == (25, 7)
    u = fitted._user_codes(users)
    full = (
        fitted.global_mean_
        + fitted.user_bias_[u][:, None]
        + fitted.item_bias_[None, :]
        + fitted.user_factors_[u] @ fitted.item_factors_.T
    )
    seen = fitted.user_items_[u].toarray() > 0
    full[seen] = -np.inf
    want = np.argsort(-full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(items, fitted.items_[want])
    np.testing.assert_allclose(scores, np.take_along_axis(full, want, 1), rtol=1e-5)
    # no seen item is ever returned
    seen_pairs = set(map(tuple, X[:, :2].tolist()))
    assert not any((uu, ii) in seen_pairs for uu, row in zip(users, items) for ii in row)
    # scores are sorted best first
    assert (np.diff(scores, axis=1) <= 0).all()


def test_recommend_include_seen_allow_and_deny_lists(fitted):
    user = fitted.users_[0]
    all_items, all_scores = fitted.recommend([user], n=len(fitted.items_), exclude_seen=False)
    assert sorted(all_items[0].tolist()) == sorted(fitted.items_.tolist())
    allow = fitted.items_[10:30]
    items, _ = fitted.recommend(user, n=5, items=allow, exclude_seen=False)
    assert set(items[0]) <= set(allow)
    expected = [i for i in all_items[0] if i in set(allow)][:5]
    assert items[0].tolist() == expected
    deny = all_items[0][:3]
    items, _ = fitted.recommend(user, n=5, exclude_items=deny, exclude_seen=False)
    assert items[0].tolist() == all_items[0][3:8].tolist()
    with pytest.raises(ValueError, match="not seen in fit"):
        fitted.recommend(user, n=2, items=[-123])


def test_recommend_unknown_user_gets_popularity_fallback(fitted):
    rec = fitted.recommend([fitted.users_[0], "nobody"], n=5)
    assert rec.fallback.tolist() == [False, True]
    top_pop = fitted.items_[np.argsort(-fitted.item_popularity_, kind="stable")[:5]]
    assert rec.items[1].tolist() == top_pop.tolist()
    frame = rec.to_frame()
    assert list(frame.columns) == ["user", "rank", "item", "score", "fallback"]
    assert len(frame) == 10 and frame["fallback"].sum() == 5


def test_recommend_pads_when_too_few_candidates():
    X = [(0, 0), (0, 1), (0, 2), (1, 0)]
    mf = MatrixFactorization(n_factors=2, n_epochs=2, random_state=0).fit(X, [1, 2, 3, 4])
    items, scores = mf.recommend([0, 1], n=3)
    assert items[0].tolist() == [None, None, None]
    assert np.isneginf(scores[0]).all()
    assert items[1][2] is None and set(items[1][:2]) == {1, 2}
    assert len(mf.recommend([0, 1], n=3).to_frame()) == 2


def test_recommend_n_errors(fitted):
    with pytest.raises(ValueError, match="larger than the number of candidate items"):
        fitted.recommend(fitted.users_[:2], n=len(fitted.items_) + 1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fitted.recommend(fitted.users_[:2], n=0)
    with pytest.raises(TypeError, match="positive integer"):
        fitted.recommend(fitted.users_[:2], n=2.5)


def test_recommend_chunks_agree(fitted, monkeypatch):
    import sklearn_mf._base as base

    users = fitted.users_
    want = fitted.recommend(users, n=4)
    monkeypatch.setattr(base, "_SCORE_BLOCK_BYTES", 8 * len(fitted.items_) * 7)  # 7 rows/chunk
    got = fitted.recommend(users, n=4)
    np.testing.assert_array_equal(want.items, got.items)


def test_similar_items_cosine(fitted):
    items, scores = fitted.similar_items(fitted.items_[:3], n=4)
    V = fitted.item_factors_ / np.linalg.norm(fitted.item_factors_, axis=1, keepdims=True)
    sims = V[:3] @ V.T
    sims[np.arange(3), np.arange(3)] = -np.inf
    want = np.argsort(-sims, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(items, fitted.items_[want])
    np.testing.assert_allclose(scores, np.take_along_axis(sims, want, 1), rtol=1e-5)
    assert (scores <= 1 + 1e-6).all()
    users, _ = fitted.similar_users(fitted.users_[0], n=3)
    assert fitted.users_[0] not in users[0]
    with pytest.raises(ValueError, match="not seen in fit"):
        fitted.similar_items(["nope"])


# ------------------------------------------------------------------ sklearn tools
def test_clone_get_set_params_and_html_repr():
    mf = MatrixFactorization(n_factors=7, learning_rate=0.01)
    c = clone(mf)
    assert c.get_params() == mf.get_params()
    assert c.set_params(n_factors=3).n_factors == 3
    assert "MatrixFactorization" in mf._repr_html_()


def test_grid_search_cross_validate_pipeline(synthetic):
    X, y, _ = synthetic
    X, y = X[:6000], y[:6000]
    grid = GridSearchCV(
        MatrixFactorization(n_epochs=10, random_state=0, n_jobs=1),
        {"n_factors": [2, 8], "regularization": [0.02, 0.1]},
        scoring="neg_root_mean_squared_error",
        cv=KFold(3, shuffle=True, random_state=0),
        n_jobs=2,
    ).fit(X, y)
    assert grid.best_score_ < 0 and np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_estimator_.n_factors in (2, 8)
    rs = RandomizedSearchCV(
        MatrixFactorization(n_epochs=5, random_state=0, n_jobs=1),
        {"learning_rate": [0.005, 0.01, 0.02]},
        n_iter=2,
        random_state=0,
        scoring="neg_mean_absolute_error",
        cv=2,
    ).fit(X, y)
    assert np.isfinite(rs.best_score_)
    res = cross_validate(
        MatrixFactorization(n_epochs=5, random_state=0),
        X,
        y,
        cv=3,
        scoring=["neg_root_mean_squared_error", "r2"],
    )
    assert len(res["test_r2"]) == 3
    pipe = Pipeline(
        [
            ("ids", FunctionTransformer(lambda a: a[:, :2])),
            ("mf", MatrixFactorization(n_epochs=5, random_state=0)),
        ]
    ).fit(X, y)
    assert pipe.predict(X[:10]).shape == (10,)
    assert pipe[-1].n_features_in_ == 2


def test_joblib_round_trip(fitted, synthetic):
    X, _, _ = synthetic
    buf = io.BytesIO()
    joblib.dump(fitted, buf)
    buf.seek(0)
    loaded = joblib.load(buf)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(
        loaded.recommend(fitted.users_[:5]).items, fitted.recommend(fitted.users_[:5]).items
    )


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[0, 1], [1, 0]]), [1.0, np.nan], "NaN or infinite"),
        (np.array([[0, 1], [1, 0]]), [1.0, np.inf], "NaN or infinite"),
        (np.zeros((0, 2)), [], "0 sample"),
        (np.array([[0], [1]]), [1.0, 2.0], "while a minimum of 2 is required"),
        (np.array([0, 1, 2]), [1.0, 2.0, 3.0], "Expected a 2D array"),
        (np.array([[0, 1], [1, 0]]), [1.0], "inconsistent numbers of samples"),
        (np.array([[0, 1], [np.nan, 0]]), [1.0, 2.0], "missing or infinite user ids"),
        ([("a", None), ("b", "c")], [1.0, 2.0], "missing item ids"),
        (np.array([[0, 1], [1, 0]]), ["a", "b"], "y must be numeric"),
    ],
)
def test_bad_input_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        MatrixFactorization(n_epochs=1).fit(X, y)


def test_y_required_and_sparse_rejected():
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="requires y"):
        MatrixFactorization().fit(np.array([[0, 1]]), None)
    with pytest.raises(TypeError, match="not a sparse matrix"):
        MatrixFactorization().fit(sp.csr_matrix(np.eye(3)), [1, 2, 3])


@pytest.mark.parametrize(
    "params",
    [
        dict(n_factors=0),
        dict(learning_rate=-0.1),
        dict(learning_rate=0.0),
        dict(regularization=-1.0),
        dict(n_epochs=0),
        dict(init_std=-1.0),
        dict(validation_fraction=1.0),
        dict(handle_unknown="ignore"),
        dict(solver="newton"),
        dict(learning_rate=float("nan")),
        dict(n_factors=2.5),
    ],
)
def test_invalid_hyperparameters(params):
    with pytest.raises(ValueError, match="parameter of MatrixFactorization must be"):
        MatrixFactorization(**params).fit(np.array([[0, 1], [1, 0]]), [1.0, 2.0])


def test_invalid_dtype():
    with pytest.raises(ValueError, match="dtype must be np.float32 or np.float64"):
        MatrixFactorization(dtype=np.int32).fit(np.array([[0, 1], [1, 0]]), [1.0, 2.0])


def test_inputs_are_not_modified(synthetic):
    X, y, _ = synthetic
    X0, y0 = X[:500].copy(), y[:500].copy()
    w = np.ones(500)
    df = pd.DataFrame(X0, columns=["user", "item", "timestamp"])
    df0 = df.copy()
    mf = MatrixFactorization(n_epochs=2, random_state=0).fit(X0, y0, sample_weight=w)
    mf.predict(X0)
    mf.fit(df, pd.Series(y0))
    np.testing.assert_array_equal(X0, X[:500])
    np.testing.assert_array_equal(y0, y[:500])
    assert (w == 1).all()
    pd.testing.assert_frame_equal(df, df0)


def test_predict_wrong_number_of_columns(fitted, synthetic):
    # columns after the ids are ignored (conventions.rst): fitted on (user, item,
    # timestamp), the model predicts (user, item) rows; one column is too few
    X, _, _ = synthetic
    np.testing.assert_array_equal(fitted.predict(X[:5, :2]), fitted.predict(X[:5]))
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:5, :1])


def test_unfitted_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MatrixFactorization().predict([[0, 1]])
    with pytest.raises(NotFittedError):
        MatrixFactorization().recommend([0])
