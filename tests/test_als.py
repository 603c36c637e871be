"""Explicit ALS (MatrixFactorization(solver="als")), fold-in and ALS partial_fit."""

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_mf import MatrixFactorization, _als, _als_fast
from sklearn_mf._als import RowMatrix, explicit_objective
from sklearn_mf.datasets import make_ratings


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def synthetic():
    X, y = make_ratings(
        n_users=200, n_items=120, n_ratings=6000, n_factors=4, noise=0.3, random_state=0
    )
    return X, y


def with_time(pairs):
    """Interaction rows (user, item, timestamp) from (user, item) pairs."""
    pairs = np.asarray(pairs, dtype=object)
    return np.c_[pairs, np.zeros(len(pairs), dtype=np.int64)].astype(pairs.dtype)


def random_csr(n_rows, n_cols, density, seed, empty_row=None):
    m = sp.random(n_rows, n_cols, density=density, random_state=seed, format="csr")
    if empty_row is not None:
        m = m.tolil()
        m[empty_row, :] = 0
        m = m.tocsr()
        m.eliminate_zeros()
    return m


def numpy_explicit_row(Y, by, idx, t, w, reg, reg_b, scale, biased):
    """Normal equations of one row, solved with numpy."""
    k = Y.shape[1]
    n = w.sum()
    if n == 0:
        return np.zeros(k), 0.0
    Z = np.c_[Y[idx], np.ones(len(idx))] if biased else Y[idx]
    target = t - by[idx] if biased else t
    lam = reg * n if scale else reg
    lam_b = reg_b * n if scale else reg_b
    diag = [lam] * k + ([lam_b] if biased else [])
    A = Z.T @ (w[:, None] * Z) + np.diag(diag)
    x = np.linalg.solve(A, Z.T @ (w * target))
    return x[:k], (x[k] if biased else 0.0)


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("biased", [True, False])
@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_explicit_half_step_matches_numpy_normal_equations(biased, scale, weighted, n_threads):
    rng = np.random.default_rng(0)
    n_rows, n_cols, k = 40, 300, 6
    # dense enough that a row spans several syrk chunks (> 128 entries)
    m = random_csr(n_rows, n_cols, 0.5, 1, empty_row=3)
    m.data = rng.integers(1, 6, m.nnz).astype(np.float64)
    t = m.data - 3.2
    w = rng.uniform(0.2, 3.0, m.nnz) if weighted else np.ones(m.nnz)
    Y = rng.normal(size=(n_cols, k))
    by = rng.normal(size=n_cols)
    X = np.full((n_rows, k), 7.0)
    bx = np.full(n_rows, 7.0) if biased else np.zeros(0)
    n_bad = _als_fast.explicit_solve(
        m.indptr.astype(np.intp),
        m.indices.astype(np.int32),
        t,
        w if weighted else np.zeros(0),
        Y,
        by if biased else np.zeros(0),
        X,
        bx,
        0.1,
        0.3,
        scale,
        n_threads,
    )
    assert n_bad == 0
    assert np.diff(m.indptr).max() > 128
    for r in range(n_rows):
        s = slice(m.indptr[r], m.indptr[r + 1])
        x, b = numpy_explicit_row(Y, by, m.indices[s], t[s], w[s], 0.1, 0.3, scale, biased)
        np.testing.assert_allclose(X[r], x, rtol=1e-8, atol=1e-10)
        if biased:
            assert bx[r] == pytest.approx(b, rel=1e-8, abs=1e-10)
    # an empty row gets zero factors and bias
    assert not X[3].any() and (not biased or bx[3] == 0)


@pytest.mark.parametrize("biased", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_explicit_half_step_short_rows_dual_solve(biased, weighted):
    # rows with fewer ratings than unknowns go through the n x n dual system;
    # the answer must be the same normal-equation solution
    rng = np.random.default_rng(3)
    n_rows, n_cols, k = 60, 200, 12
    m = random_csr(n_rows, n_cols, 0.04, 4, empty_row=5)
    lengths = np.diff(m.indptr)
    assert (lengths[lengths > 0] < k).sum() > 40 and (lengths >= k + 1).any()
    t = rng.normal(size=m.nnz)
    w = rng.uniform(0.0, 3.0, m.nnz) if weighted else np.ones(m.nnz)
    Y, by = rng.normal(size=(n_cols, k)), rng.normal(size=n_cols)
    for scale in (True, False):
        X = np.zeros((n_rows, k))
        bx = np.zeros(n_rows) if biased else np.zeros(0)
        assert (
            _als_fast.explicit_solve(
                m.indptr.astype(np.intp),
                m.indices.astype(np.int32),
                t,
                w if weighted else np.zeros(0),
                Y,
                by if biased else np.zeros(0),
                X,
                bx,
                0.3,
                0.2,
                scale,
                2,
            )
            == 0
        )
        for r in range(n_rows):
            s = slice(m.indptr[r], m.indptr[r + 1])
            x, b = numpy_explicit_row(Y, by, m.indices[s], t[s], w[s], 0.3, 0.2, scale, biased)
            np.testing.assert_allclose(X[r], x, rtol=1e-8, atol=1e-10)
            if biased:
                assert bx[r] == pytest.approx(b, rel=1e-8, abs=1e-10)


def test_explicit_half_step_float32_close_to_float64():
    rng = np.random.default_rng(1)
    m = random_csr(30, 50, 0.3, 2)
    t = rng.normal(size=m.nnz)
    Y = rng.normal(size=(50, 5))
    by = rng.normal(size=50)
    out = {}
    for dt in (np.float32, np.float64):
        X = np.zeros((30, 5), dtype=dt)
        b = np.zeros(30, dtype=dt)
        _als_fast.explicit_solve(
            m.indptr.astype(np.intp),
            m.indices.astype(np.int32),
            t.astype(dt),
            np.zeros(0, dt),
            Y.astype(dt),
            by.astype(dt),
            X,
            b,
            0.05,
            0.05,
            True,
            2,
        )
        out[dt] = X
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=1e-3, atol=1e-4)


def test_singular_system_is_reported():
    # no penalty and fewer ratings than unknowns: not positive definite
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 1]])
    y = np.array([5.0, 3.0, 4.0, 2.0, 1.0])
    mf = MatrixFactorization(n_factors=4, solver="als", regularization=0.0, random_state=0)
    with pytest.raises(ValueError, match="needs regularization > 0"):
        mf.fit(X, y)  # refused before any work
    # the kernel still counts a singular system (a penalty removed after fit)
    mf.set_params(regularization=0.1).fit(X, y)
    mf.set_params(regularization=0.0)
    with pytest.raises(np.linalg.LinAlgError, match="larger regularization"):
        mf.partial_fit(X, y)


# -------------------------------------------------------------- estimator
def numpy_objective(mf, X, y, w=None):
    u = mf._user_codes(X[:, 0])
    i = mf._item_codes(X[:, 1])
    w = np.ones(len(y)) if w is None else w
    P, Q = mf.user_factors_.astype(float), mf.item_factors_.astype(float)
    bu, bi = mf.user_bias_.astype(float), mf.item_bias_.astype(float)
    e = y - mf.global_mean_ - bu[u] - bi[i] - np.einsum("ij,ij->i", P[u], Q[i])
    nu = np.bincount(u, weights=w, minlength=len(P))
    ni = np.bincount(i, weights=w, minlength=len(Q))
    lam = mf.regularization
    pen = lam * (nu @ (P**2).sum(1) + ni @ (Q**2).sum(1) + nu @ bu**2 + ni @ bi**2)
    return (np.sum(w * e**2) + pen) / w.sum()


@pytest.mark.parametrize("regularization_scaling", ["occurrence", "none"])
@pytest.mark.parametrize("biased", [True, False])
def test_objective_never_increases(synthetic, regularization_scaling, biased):
    X, y = synthetic
    mf = MatrixFactorization(
        n_factors=6,
        solver="als",
        max_iter=12,
        tol=0,
        biased=biased,
        regularization_scaling=regularization_scaling,
        dtype=np.float64,
        random_state=0,
        n_jobs=2,
    ).fit(X, y)
    curve = np.array(mf.loss_curve_)
    assert mf.n_iter_ == 12 and len(curve) == 12
    assert np.all(np.diff(curve) <= 1e-12 * curve[:-1])
    assert curve[-1] < 0.8 * curve[0]
    if biased and regularization_scaling == "occurrence":
        # the reported value is the regularised objective per rating
        assert curve[-1] == pytest.approx(numpy_objective(mf, X, y), rel=1e-9)
    if not biased:
        assert not mf.user_bias_.any() and mf.global_mean_ == 0


def test_weighted_objective_matches_numpy_with_sample_weight(synthetic):
    X, y = synthetic
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    mf = MatrixFactorization(
        n_factors=5, solver="als", max_iter=5, tol=0, dtype=np.float64, random_state=0
    ).fit(X, y, sample_weight=w)
    assert mf.loss_curve_[-1] == pytest.approx(numpy_objective(mf, X, y, w), rel=1e-9)
    assert np.all(np.diff(mf.loss_curve_) <= 0)


def test_tol_stops_iterations(synthetic):
    X, y = synthetic
    loose = MatrixFactorization(
        n_factors=5, solver="als", max_iter=100, tol=1e-2, random_state=0
    ).fit(X, y)
    tight = MatrixFactorization(
        n_factors=5, solver="als", max_iter=100, tol=1e-6, random_state=0
    ).fit(X, y)
    assert loose.n_iter_ < tight.n_iter_ <= 100
    c = loose.loss_curve_
    assert c[-2] - c[-1] <= 1e-2 * c[-2]


def test_recovers_planted_structure_and_biases():
    X, y, truth = make_ratings(
        n_users=300,
        n_items=150,
        n_ratings=12000,
        n_factors=3,
        noise=0.2,
        round_ratings=False,
        return_truth=True,
        random_state=3,
    )
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    mf = MatrixFactorization(
        n_factors=3, solver="als", regularization=0.02, max_iter=30, random_state=0
    ).fit(Xtr, ytr)
    baseline = rmse(np.full(len(yte), ytr.mean()), yte)
    assert rmse(mf.predict(Xte), yte) < 0.5 * baseline
    items = mf.items_
    true_bi = (
        np.asarray(truth.item_bias)[items]
        if not hasattr(truth.item_bias, "loc")
        else truth.item_bias.loc[items].to_numpy()
    )
    assert np.corrcoef(mf.item_bias_, true_bi)[0, 1] > 0.8


def test_movielens_100k_rmse(ml100k):
    X = ml100k.ratings[["user", "item"]].to_numpy()
    y = ml100k.ratings["rating"].to_numpy().astype(float)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    mf = MatrixFactorization(
        n_factors=20, solver="als", regularization=0.1, max_iter=10, random_state=0
    ).fit(Xtr, ytr)
    score = rmse(mf.predict(Xte), yte)
    # global mean ~1.13, item mean ~1.03 on this split; ALS-WR reaches ~0.92
    assert score < 0.94


def test_every_als_parameter_changes_the_fit(synthetic):
    X, y = synthetic
    base = dict(n_factors=4, solver="als", max_iter=3, tol=0, random_state=0)
    ref = MatrixFactorization(**base).fit(X, y).predict(X[:50])
    for change in [
        dict(max_iter=5),
        dict(regularization_scaling="none"),
        dict(regularization=0.2),
        dict(bias_regularization=1.0),
        dict(n_factors=5),
        dict(random_state=1),
        dict(biased=False),
    ]:
        pred = MatrixFactorization(**{**base, **change}).fit(X, y).predict(X[:50])
        assert not np.allclose(pred, ref), change


def test_threads_and_dtype_agree(synthetic, monkeypatch):
    monkeypatch.setattr(_als, "_MIN_PARALLEL_WORK", 0)  # parallel even on small data
    X, y = synthetic
    kw = dict(n_factors=5, solver="als", max_iter=4, tol=0, random_state=0)
    p1 = MatrixFactorization(n_jobs=1, dtype=np.float64, **kw).fit(X, y).predict(X)
    p2 = MatrixFactorization(n_jobs=2, dtype=np.float64, **kw).fit(X, y).predict(X)
    p32 = MatrixFactorization(n_jobs=2, **kw).fit(X, y).predict(X)
    np.testing.assert_allclose(p1, p2, rtol=1e-12)
    np.testing.assert_allclose(p32, p1, atol=1e-3)


def test_early_stopping_with_als(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(
        n_factors=8,
        solver="als",
        max_iter=30,
        regularization=0.0005,
        early_stopping=True,
        n_iter_no_change=2,
        tol=0,
        random_state=0,
    ).fit(X, y)
    assert len(mf.validation_scores_) == mf.n_iter_
    assert mf.validation_scores_[mf.best_iteration_ - 1] == min(mf.validation_scores_)


def test_verbose(synthetic, capsys):
    X, y = synthetic
    MatrixFactorization(
        n_factors=3, solver="als", max_iter=3, tol=0, verbose=1, random_state=0
    ).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    lines = [ln for ln in lines if not ln.startswith("set-up  ")]  # stages first
    assert len(lines) == 3 and lines[0].startswith("iteration   1  objective")


def test_grid_search_over_solver(synthetic):
    X, y = synthetic
    grid = GridSearchCV(
        MatrixFactorization(n_factors=4, max_iter=5, n_epochs=5, random_state=0, n_jobs=1),
        {"solver": ["sgd", "als"], "regularization": [0.05, 0.1]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(X, y)
    assert set(grid.cv_results_["param_solver"]) == {"sgd", "als"}
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_estimator_.solver in ("sgd", "als")


def test_joblib_round_trip_and_clone(synthetic, tmp_path):
    X, y = synthetic
    mf = MatrixFactorization(n_factors=4, solver="als", max_iter=4, random_state=0).fit(X, y)
    path = tmp_path / "mf.joblib"
    joblib.dump(mf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(X), mf.predict(X))
    np.testing.assert_array_equal(loaded.recommend(X[:5, 0]).items, mf.recommend(X[:5, 0]).items)
    loaded.partial_fit(np.array([[10**6, X[0, 1], 0]]), [5.0])
    mf.partial_fit(np.array([[10**6, X[0, 1], 0]]), [5.0])
    np.testing.assert_array_equal(loaded.user_factors_, mf.user_factors_)
    c = clone(mf)
    assert c.get_params() == mf.get_params() and not hasattr(c, "user_factors_")


# ------------------------------------------------------------------ fold-in
def snapshot(model):
    return {
        k: (v.copy() if isinstance(v, np.ndarray) else v.copy())
        for k, v in vars(model).items()
        if isinstance(v, np.ndarray) or sp.issparse(v)
    }


def assert_unchanged(model, snap):
    for k, v in snap.items():
        now = getattr(model, k)
        if sp.issparse(v):
            assert (now != v).nnz == 0, k
        else:
            np.testing.assert_array_equal(now, v, err_msg=k)


def test_fold_in_reproduces_converged_als_factors(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(
        n_factors=4, solver="als", max_iter=400, tol=1e-13, dtype=np.float64, random_state=0
    ).fit(X, y)
    assert mf.n_iter_ < 400
    snap = snapshot(mf)
    users = mf.users_[:25]
    rows = np.isin(X[:, 0], users)
    folded = mf.fold_in(X[rows], y[rows])
    assert_unchanged(mf, snap)
    np.testing.assert_array_equal(folded.users, users)
    # folding in a user's own ratings is one more user half-step: at a fixed
    # point of ALS it returns the fitted factors
    np.testing.assert_allclose(folded.user_factors, mf.user_factors_[:25], atol=2e-5)
    np.testing.assert_allclose(folded.user_bias, mf.user_bias_[:25], atol=2e-5)


def test_fold_in_matches_numpy_ridge_for_sgd_model(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(n_factors=4, n_epochs=10, random_state=0, n_jobs=1).fit(X, y)
    Xn = with_time([["new", X[0, 1]], ["new", X[1, 1]], ["new", X[2, 1]], ["new", 10**9]])
    yn = np.array([5.0, 1.0, 4.0, 2.0])
    folded = mf.fold_in(Xn, yn)
    i = mf._item_codes(Xn[:3, 1])
    Q, bi = mf.item_factors_.astype(float), mf.item_bias_.astype(float)
    # the unknown item (10**9) is ignored: 3 ratings, penalties scaled by 3
    x, b = numpy_explicit_row(
        Q,
        bi,
        i,
        yn[:3] - mf.global_mean_,
        np.ones(3),
        mf.regularization,
        mf.regularization,
        True,
        True,
    )
    np.testing.assert_allclose(folded.user_factors[0], x, rtol=1e-4, atol=1e-5)
    assert folded.user_bias[0] == pytest.approx(b, rel=1e-4, abs=1e-5)


def test_recommend_new(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(
        n_factors=4, solver="als", max_iter=300, tol=1e-13, dtype=np.float64, random_state=0
    ).fit(X, y)
    snap = snapshot(mf)
    u0 = mf.users_[0]
    rows = X[:, 0] == u0
    Xn = np.r_[np.c_[np.full(rows.sum(), 777), X[rows, 1:]], [[888, -12345, 0]]]
    yn = np.r_[y[rows], 3.0]
    rec = mf.recommend_new(Xn, yn, n=5)
    assert_unchanged(mf, snap)
    np.testing.assert_array_equal(rec.query, [777, 888])
    np.testing.assert_array_equal(rec.fallback, [False, True])
    # given items are excluded; a user described by u0's ratings gets u0's list
    assert not np.isin(rec.items[0], X[rows, 1]).any()
    np.testing.assert_array_equal(rec.items[0], mf.recommend(u0, n=5).items[0])
    # the scores are predicted ratings of the folded user
    folded = mf.fold_in(Xn[:-1], yn[:-1])
    q = mf._item_codes(rec.items[0])
    expected = (
        mf.global_mean_
        + folded.user_bias[0]
        + mf.item_bias_[q]
        + mf.item_factors_[q] @ folded.user_factors[0]
    )
    np.testing.assert_allclose(rec.scores[0], expected, rtol=1e-5)
    # the unknown-only user is served by popularity
    top = mf.items_[np.argsort(-mf.item_popularity_, kind="stable")[:5]]
    assert set(rec.items[1]) == set(top)
    # include the given items again
    rec_all = mf.recommend_new(Xn[:-1], yn[:-1], n=5, exclude_seen=False)
    assert rec_all.scores[0, 0] >= rec.scores[0, 0]


def test_fold_in_requires_ratings(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(n_factors=3, solver="als", max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="requires y"):
        mf.fold_in(X[:3])
    with pytest.raises(ValueError, match="NaN"):
        mf.fold_in(X[:3], [1.0, np.nan, 2.0])


# --------------------------------------------------------------- partial_fit
def test_partial_fit_grows_and_updates_touched_rows(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(
        n_factors=4, solver="als", max_iter=10, random_state=0, dtype=np.float64
    ).fit(X, y)
    n_u, n_i = len(mf.users_), len(mf.items_)
    before = snapshot(mf)
    touched_old = mf.users_[5]
    new_items = [10**6, 10**6 + 1]
    Xn = with_time(
        [[touched_old, new_items[0]], [10**7, X[0, 1]], [10**7, X[1, 1]], [10**7, new_items[1]]]
    ).astype(np.int64)
    yn = np.array([5.0, 4.0, 1.0, 2.0])
    Xn_copy, yn_copy = Xn.copy(), yn.copy()
    assert mf.partial_fit(Xn, yn) is mf
    np.testing.assert_array_equal(Xn, Xn_copy)
    np.testing.assert_array_equal(yn, yn_copy)
    assert len(mf.users_) == n_u + 1 and len(mf.items_) == n_i + 2
    assert mf.user_factors_.shape == (n_u + 1, 4) and mf.item_bias_.shape == (n_i + 2,)
    assert mf.user_items_.shape == (n_u + 1, n_i + 2)
    assert mf.user_items_[mf._user_codes([10**7])[0], mf._item_codes([X[0, 1]])[0]] == 4.0
    assert mf.item_popularity_[-2:].tolist() == [1, 1]
    # untouched users and old items keep their factors
    untouched = np.setdiff1d(np.arange(n_u), mf._user_codes([touched_old]))
    np.testing.assert_array_equal(mf.user_factors_[untouched], before["user_factors_"][untouched])
    np.testing.assert_array_equal(mf.item_factors_[:n_i], before["item_factors_"])
    # the touched user was re-solved with its new rating: close to the fold-in
    # of all its ratings (not equal: the new item was re-solved afterwards)
    t = mf._user_codes([touched_old])[0]
    assert not np.allclose(mf.user_factors_[t], before["user_factors_"][t])
    rows = X[:, 0] == touched_old
    folded = mf.fold_in(np.r_[X[rows], Xn[:1]], np.r_[y[rows], 5.0])
    np.testing.assert_allclose(folded.user_factors[0], mf.user_factors_[t], atol=5e-3)
    assert (
        np.abs(folded.user_factors[0] - mf.user_factors_[t]).max()
        < 0.1 * np.abs(mf.user_factors_[t] - before["user_factors_"][t]).max()
    )
    # the new user's prediction follows its ratings
    p = mf.predict(Xn[1:3])
    assert p[0] > p[1]
    assert np.isfinite(mf.predict(Xn)).all()


def test_partial_fit_on_unfitted_model_fits(synthetic):
    X, y = synthetic
    a = MatrixFactorization(n_factors=3, solver="als", max_iter=3, random_state=0)
    b = clone(a)
    np.testing.assert_array_equal(a.partial_fit(X, y).predict(X), b.fit(X, y).predict(X))


def test_partial_fit_rerating_replaces_and_bad_input_leaves_model(synthetic):
    X, y = synthetic
    mf = MatrixFactorization(n_factors=3, solver="als", max_iter=3, random_state=0).fit(X, y)
    n_ratings = mf._als_ratings.indptr[-1]
    mf.partial_fit(X[:1], [1.0])
    assert mf._als_ratings.indptr[-1] == n_ratings
    u, i = mf._user_codes(X[:1, 0])[0], mf._item_codes(X[:1, 1])[0]
    assert mf.user_items_[u, i] == 1.0
    snap = snapshot(mf)
    with pytest.raises(ValueError, match="NaN"):
        mf.partial_fit(X[:2], [1.0, np.nan])
    assert_unchanged(mf, snap)


@pytest.mark.parametrize(
    "params", [dict(solver="adam"), dict(max_iter=0), dict(regularization_scaling="l1")]
)
def test_invalid_als_parameters(synthetic, params):
    X, y = synthetic
    with pytest.raises(InvalidParameterError):
        MatrixFactorization(**params).fit(X, y)


def test_objective_helper_matches_kernel_sse():
    rng = np.random.default_rng(4)
    m = random_csr(20, 15, 0.4, 5)
    R = RowMatrix(
        m.indptr.astype(np.intp), m.indices.astype(np.int32), {"t": rng.normal(size=m.nnz)}, 15
    )
    P, Q = rng.normal(size=(20, 3)), rng.normal(size=(15, 3))
    bu, bi = rng.normal(size=20), rng.normal(size=15)
    rows = np.repeat(np.arange(20), np.diff(m.indptr))
    e = R.data["t"] - bu[rows] - bi[m.indices] - np.einsum("ij,ij->i", P[rows], Q[m.indices])
    wu, wi = R.row_sums(), R.transpose().row_sums()
    got = explicit_objective(R, P, bu, Q, bi, 0.1, 0.2, True, 2, wu, wi)
    pen = 0.1 * (wu @ (P**2).sum(1) + wi @ (Q**2).sum(1)) + 0.2 * (wu @ bu**2 + wi @ bi**2)
    assert got == pytest.approx(np.sum(e**2) + pen, rel=1e-12)


# ALS minimises a weighted objective exactly, so sample weights and repeated
# rows give the same model once converged (rows of weight 0 may remove a user
# or item, which changes the random start): float64 (the check compares to
# 1e-7) and enough iterations to converge on its tiny data.
@parametrize_with_checks(
    [
        MatrixFactorization(
            n_factors=3,
            solver="als",
            max_iter=500,
            tol=0,
            dtype=np.float64,
            random_state=0,
            n_jobs=1,
        )
    ],
)
def test_sklearn_checks_with_als_solver(estimator, check):
    check(estimator)
