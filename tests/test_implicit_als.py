"""ImplicitALS: kernels against NumPy, objective, planted clusters, ml-100k, API."""

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mf import ImplicitALS, _als, _als_fast


# ------------------------------------------------------------------ helpers
def ndcg_at_k(recs, truth, k=10):
    """Mean binary NDCG@k; ``recs[q]`` a ranked list, ``truth[q]`` a set."""
    out = []
    for rec, rel in zip(recs, truth):
        dcg = sum(1 / np.log2(r + 2) for r, item in enumerate(rec[:k]) if item in rel)
        ideal = sum(1 / np.log2(r + 2) for r in range(min(k, len(rel))))
        out.append(dcg / ideal)
    return float(np.mean(out))


def truth_sets(test):
    users = np.unique(test[:, 0])
    return users, [set(test[test[:, 0] == u, 1]) for u in users]


def random_counts(n_rows, n_cols, density, seed):
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, random_state=seed, format="csr")
    m.data = rng.integers(1, 5, m.nnz).astype(np.float64)
    return m


def numpy_implicit_row(Y, idx, cw, reg):
    """Hu-Koren-Volinsky normal equations of one row, dense, with numpy."""
    k = Y.shape[1]
    A = Y.T @ Y + reg * np.eye(k) + Y[idx].T @ (cw[:, None] * Y[idx])
    b = Y[idx].T @ ((1 + cw) * (cw > 0))
    return np.linalg.solve(A, b)


def dense_objective(model):
    """The objective of the docstring computed from dense matrices."""
    D = model.user_items_.toarray().astype(np.float64)
    P = (D > 0).astype(float)
    C = 1 + model.alpha * D
    U = model.user_factors_.astype(np.float64)
    V = model.item_factors_.astype(np.float64)
    S = U @ V.T
    return np.sum(C * (P - S) ** 2) + model.regularization * (np.sum(U**2) + np.sum(V**2))


def make_clusters(n_clusters=5, users_per=60, items_per=24, per_user=10, n_test=3, noise=2, seed=0):
    """Users of cluster c interact with items of block c (plus a little noise).

    Returns train and test interactions as (user, item) arrays.
    """
    rng = np.random.default_rng(seed)
    n_items = n_clusters * items_per
    train, test = [], []
    for c in range(n_clusters):
        block = np.arange(c * items_per, (c + 1) * items_per)
        for j in range(users_per):
            u = c * users_per + j
            chosen = rng.choice(block, per_user + n_test, replace=False)
            others = rng.choice(np.setdiff1d(np.arange(n_items), block), noise, replace=False)
            train += [(u, i) for i in np.r_[chosen[:per_user], others]]
            test += [(u, i) for i in chosen[per_user:]]
    return np.array(train), np.array(test)


@pytest.fixture(scope="module")
def clusters():
    return make_clusters()


@pytest.fixture(scope="module")
def small():
    train, test = make_clusters(
        n_clusters=3, users_per=20, items_per=15, per_user=8, n_test=2, seed=1
    )
    y = np.random.default_rng(0).integers(1, 4, len(train)).astype(float)
    return train, y, test


def popularity_ndcg(train, test, n_items, k=10):
    """NDCG@k of the most-popular ranking (training items excluded)."""
    users, truth = truth_sets(test)
    pop = np.bincount(train[:, 1], minlength=n_items).astype(float)
    seen = (
        sp.csr_matrix(
            (np.ones(len(train)), (train[:, 0], train[:, 1])),
            shape=(train[:, 0].max() + 1, n_items),
        ).toarray()
        > 0
    )
    scores = np.where(seen[users], -np.inf, pop[None, :])
    recs = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return ndcg_at_k(recs, truth, k)


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("n_threads", [1, 2])
def test_cholesky_half_step_matches_numpy(n_threads):
    rng = np.random.default_rng(0)
    m = random_counts(40, 300, 0.5, 1)  # rows longer than one syrk chunk
    m.data[:5] = 0.0  # zero strength: confidence 1, preference 0
    cw = 3.0 * m.data
    Y = rng.normal(size=(300, 7))
    G = Y.T @ Y
    X = np.full((40, 7), 5.0)
    n_bad = _als_fast.implicit_solve(
        m.indptr.astype(np.intp), m.indices.astype(np.int32), cw, Y, G, X, 0.2, False, 0, n_threads
    )
    assert n_bad == 0
    for r in range(40):
        s = slice(m.indptr[r], m.indptr[r + 1])
        np.testing.assert_allclose(
            X[r], numpy_implicit_row(Y, m.indices[s], cw[s], 0.2), rtol=1e-8, atol=1e-10
        )


def test_cg_half_step_converges_to_cholesky_and_decreases_quadratic():
    rng = np.random.default_rng(2)
    k = 6
    m = random_counts(30, 50, 0.3, 3)
    cw = 2.0 * m.data
    Y = rng.normal(size=(50, k))
    G = Y.T @ Y
    args = (m.indptr.astype(np.intp), m.indices.astype(np.int32), cw, Y, G)
    exact = np.zeros((30, k))
    _als_fast.implicit_solve(*args, exact, 0.1, False, 0, 2)
    # k CG steps solve a k-dimensional system exactly (up to rounding)
    full = rng.normal(size=(30, k))
    _als_fast.implicit_solve(*args, full, 0.1, True, k, 2)
    np.testing.assert_allclose(full, exact, rtol=1e-6, atol=1e-8)
    # fewer steps from a warm start never increase each row's quadratic
    start = exact + 0.3 * rng.normal(size=exact.shape)
    two = start.copy()
    _als_fast.implicit_solve(*args, two, 0.1, True, 2, 2)
    for r in range(30):
        s = slice(m.indptr[r], m.indptr[r + 1])
        idx, c = m.indices[s], cw[s]
        A = G + 0.1 * np.eye(k) + Y[idx].T @ (c[:, None] * Y[idx])
        b = Y[idx].T @ (1 + c)

        def f(x, A=A, b=b):
            return 0.5 * x @ A @ x - b @ x

        assert f(exact[r]) - 1e-9 <= f(two[r]) <= f(start[r]) + 1e-12
        assert np.linalg.norm(two[r] - exact[r]) < np.linalg.norm(start[r] - exact[r])


def test_cg_with_long_rows_and_uneven_blocks():
    # rows longer than the CG gather buffer (2048 entries) and blocks of
    # mixed sizes take the chunked path; k steps still solve exactly
    rng = np.random.default_rng(7)
    k = 5
    dense = rng.random((70, 6000)) < np.r_[[0.9] * 3, [0.01] * 67][:, None]
    m = sp.csr_matrix(dense.astype(np.float64))
    m.data = rng.integers(1, 4, m.nnz).astype(np.float64)
    assert np.diff(m.indptr).max() > 2 * 2048
    cw = 1.5 * m.data
    Y = 0.1 * rng.normal(size=(6000, k))
    G = Y.T @ Y
    args = (m.indptr.astype(np.intp), m.indices.astype(np.int32), cw, Y, G)
    exact = np.zeros((70, k))
    _als_fast.implicit_solve(*args, exact, 0.1, False, 0, 2)
    cg = rng.normal(size=(70, k))
    _als_fast.implicit_solve(*args, cg, 0.1, True, 3 * k, 2)
    np.testing.assert_allclose(cg, exact, rtol=1e-7, atol=1e-9)
    for r in (0, 1, 2, 40):
        s = slice(m.indptr[r], m.indptr[r + 1])
        np.testing.assert_allclose(
            exact[r], numpy_implicit_row(Y, m.indices[s], cw[s], 0.1), rtol=1e-8
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("use_cg", [True, False])
def test_half_step_row_loss_is_the_observed_objective_at_the_new_factors(use_cg, dtype):
    # long rows (chunked gathers), short rows gathered per CG block, an
    # empty row and zero strengths (preference 0): the row_loss written by
    # the solve equals the observed cells' part of the objective at the
    # factors it wrote, computed with NumPy
    rng = np.random.default_rng(11)
    k = 6
    dense = rng.random((60, 5000)) < np.r_[[0.6] * 2, [0.0], [0.02] * 57][:, None]
    m = sp.csr_matrix(dense.astype(np.float64))
    m.data = rng.integers(0, 4, m.nnz).astype(np.float64)
    assert np.diff(m.indptr).max() > 2048
    cw = (2.0 * m.data).astype(dtype)
    Y = (0.1 * rng.normal(size=(5000, k))).astype(dtype)
    X = (0.1 * rng.normal(size=(60, k))).astype(dtype)
    row_loss = np.full(60, np.nan)

    def solve(out):
        _als_fast.implicit_solve(
            m.indptr.astype(np.intp),
            m.indices.astype(np.int32),
            cw,
            Y,
            Y.T @ Y,
            X,
            0.1,
            use_cg,
            3,
            2,
            out,
        )

    solve(row_loss)
    for r in range(60):
        s = slice(m.indptr[r], m.indptr[r + 1])
        pred = Y[m.indices[s]].astype(np.float64) @ X[r].astype(np.float64)
        pref = (cw[s] > 0).astype(np.float64)
        want = np.sum((1 + cw[s].astype(np.float64)) * (pref - pred) ** 2 - pred**2)
        tol = 1e-10 if dtype == np.float64 else 1e-4
        assert row_loss[r] == pytest.approx(want, rel=tol, abs=tol)
    with pytest.raises(ValueError, match="row_loss"):
        solve(np.zeros(3))


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_fused_objective_equals_the_separate_pass(small, solver):
    # the objective computed with the item half-step (row_loss and the two
    # Grams) is the one implicit_objective computes from the fitted factors
    train, y, _ = small
    model = ImplicitALS(
        n_factors=5, max_iter=3, solver=solver, dtype=np.float64, random_state=0, n_jobs=2
    ).fit(train, y)
    R_u, _ = _als.implicit_confidences(model.user_items_, model.alpha, np.float64)
    want = _als.implicit_objective(
        R_u, model.user_factors_, model.item_factors_, model.regularization, 2
    )
    assert model.loss_curve_[-1] == pytest.approx(want, rel=1e-12)


def test_float32_kernel_close_to_float64():
    rng = np.random.default_rng(5)
    m = random_counts(20, 40, 0.3, 6)
    Y = rng.normal(size=(40, 5))
    out = {}
    for dt in (np.float32, np.float64):
        X = np.zeros((20, 5), dtype=dt)
        Yd = Y.astype(dt)
        _als_fast.implicit_solve(
            m.indptr.astype(np.intp),
            m.indices.astype(np.int32),
            (2 * m.data).astype(dt),
            Yd,
            Yd.T @ Yd,
            X,
            0.1,
            False,
            0,
            1,
        )
        out[dt] = X
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=1e-3, atol=1e-4)


def test_loss_kernel_matches_dense_computation(small):
    train, y, _ = small
    model = ImplicitALS(n_factors=4, alpha=3.0, max_iter=2, dtype=np.float64, random_state=0).fit(
        train, y
    )
    assert model.loss_curve_[-1] == pytest.approx(dense_objective(model), rel=1e-10)


# ---------------------------------------------------------------- objective
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_objective_never_increases(small, solver):
    train, y, _ = small
    model = ImplicitALS(
        n_factors=5,
        alpha=4.0,
        max_iter=15,
        solver=solver,
        cg_steps=2,
        regularization=0.1,
        dtype=np.float64,
        random_state=0,
        n_jobs=2,
    ).fit(train, y)
    curve = np.array(model.loss_curve_)
    assert len(curve) == model.n_iter_ == 15
    assert np.all(np.diff(curve) <= 1e-10 * curve[:-1])
    assert curve[-1] < 0.7 * curve[0]


def test_cg_agrees_with_cholesky(clusters):
    train, test = clusters
    kw = dict(n_factors=8, alpha=5.0, max_iter=15, dtype=np.float64, random_state=0)
    chol = ImplicitALS(solver="cholesky", **kw).fit(train)
    cg = ImplicitALS(solver="cg", cg_steps=3, **kw).fit(train)
    assert cg.loss_curve_[-1] == pytest.approx(chol.loss_curve_[-1], rel=0.01)
    assert cg.score(test) == pytest.approx(chol.score(test), abs=0.03)
    # predictions on observed pairs agree closely
    np.testing.assert_allclose(cg.predict(train), chol.predict(train), atol=0.05)


def test_tol_stops_early(clusters):
    train, _ = clusters
    model = ImplicitALS(n_factors=4, max_iter=200, tol=1e-3, random_state=0).fit(train)
    assert 2 <= model.n_iter_ < 200
    c = model.loss_curve_
    assert c[-2] - c[-1] <= 1e-3 * c[-2]


def test_threads_give_identical_results(clusters, monkeypatch):
    monkeypatch.setattr(_als, "_MIN_PARALLEL_WORK", 0)  # parallel even on small data
    train, _ = clusters
    kw = dict(n_factors=6, max_iter=4, random_state=0)
    a = ImplicitALS(n_jobs=1, **kw).fit(train)
    b = ImplicitALS(n_jobs=2, **kw).fit(train)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)


# --------------------------------------------------------------- accuracy
def test_recovers_planted_clusters(clusters):
    train, test = clusters
    model = ImplicitALS(n_factors=8, alpha=5.0, max_iter=10, random_state=0).fit(train)
    ndcg = model.score(test)
    pop = popularity_ndcg(train, test, 120)
    # 3 held-out items among the 14 unseen items of the user's block
    assert ndcg > 0.4
    assert ndcg > 4 * pop
    # recommendations stay in the user's cluster; similar items too
    items, _ = model.recommend(np.arange(0, 300, 60), n=5)
    assert np.all(items // 24 == np.arange(5)[:, None])
    sim = model.similar_items([0, 30, 119], n=5)
    assert np.mean(sim.items // 24 == np.array([0, 1, 4])[:, None]) >= 0.7
    simu = model.similar_users([0, 61], n=5)
    assert np.all(simu.items // 60 == np.array([0, 1])[:, None])


def test_movielens_100k_temporal_split(ml100k):
    # positives = rating >= 4; each user's latest 20% held out; users with
    # fewer than 5 positives are not evaluated
    pos = ml100k.ratings[ml100k.ratings["rating"] >= 4]
    pos = pos.sort_values(["user", "timestamp"], kind="stable")
    n = pos.groupby("user")["item"].transform("size").to_numpy()
    rank = pos.groupby("user").cumcount().to_numpy()
    test_mask = (n >= 5) & (rank >= n - np.floor(0.2 * n))
    train = pos[~test_mask][["user", "item"]].to_numpy()
    test = pos[test_mask][["user", "item"]].to_numpy()

    model = ImplicitALS(
        n_factors=64, alpha=2.0, regularization=0.05, max_iter=15, random_state=0
    ).fit(train)
    ndcg = model.score(test)

    users, truth = truth_sets(test)
    recs = model.recommend(users, n=10).items
    precision = np.mean([len(set(r) & t) / 10 for r, t in zip(recs, truth)])

    # popularity ranking with each user's training items removed
    pop = pd.Series(train[:, 1]).value_counts(sort=False)
    order = pop.index.to_numpy()[np.argsort(-pop.to_numpy(), kind="stable")]
    seen = pd.DataFrame(train).groupby(0)[1].agg(set)
    pop_recs = [[i for i in order if i not in seen.get(u, ())][:10] for u in users]
    pop_ndcg = ndcg_at_k(pop_recs, truth)
    pop_precision = np.mean([len(set(r) & t) / 10 for r, t in zip(pop_recs, truth)])
    # measured: ALS 0.135 / 0.092, popularity 0.080 / 0.061
    assert ndcg > 0.12 and ndcg > 1.4 * pop_ndcg
    assert precision > 0.08 and precision > 1.3 * pop_precision
    # score() follows the same protocol
    assert ndcg == pytest.approx(ndcg_at_k(recs, truth))


def test_score_is_ndcg_at_10_hand_computed(clusters):
    train, _ = clusters
    model = ImplicitALS(n_factors=4, max_iter=3, random_state=0).fit(train)
    recs = model.recommend([0, 1], n=10).items
    # user 0: relevant = its 1st and 3rd recommendations; user 1: its 10th
    test = np.array([[0, recs[0, 0]], [0, recs[0, 2]], [1, recs[1, 9]]])
    want = ((1 + 0.5) / (1 + 1 / np.log2(3)) + (1 / np.log2(11))) / 2
    assert model.score(test) == pytest.approx(want)
    # rows with zero strength are not relevant
    assert model.score(test, [1.0, 0.0, 0.0]) == pytest.approx(1.0)


# --------------------------------------------------------------- sklearn API
def test_grid_search_without_scoring(small):
    train, y, _ = small
    grid = GridSearchCV(
        ImplicitALS(max_iter=3, random_state=0, n_jobs=1),
        {"alpha": [1.0, 10.0], "regularization": [0.01, 1.0], "n_factors": [2, 4]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(train, y)
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 8 and np.all((scores >= 0) & (scores <= 1))
    assert len(np.unique(np.round(scores, 10))) > 1


def test_joblib_round_trip_and_clone(small, tmp_path):
    train, y, _ = small
    model = ImplicitALS(n_factors=3, max_iter=3, random_state=0).fit(train, y)
    path = tmp_path / "als.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(train), model.predict(train))
    np.testing.assert_array_equal(loaded.recommend([0, 1]).items, model.recommend([0, 1]).items)
    c = clone(model)
    assert c.get_params() == model.get_params() and not hasattr(c, "user_factors_")


def test_predict_is_dot_product_and_unknown_policies(small):
    train, y, _ = small
    model = ImplicitALS(n_factors=3, max_iter=3, random_state=0).fit(train, y)
    u, i = model._user_codes(train[:5, 0]), model._item_codes(train[:5, 1])
    want = np.einsum(
        "ij,ij->i", model.user_factors_[u].astype(float), model.item_factors_[i].astype(float)
    )
    np.testing.assert_allclose(model.predict(train[:5]), want, rtol=1e-6)
    X_unknown = np.array([[999, train[0, 1]], [train[0, 0], 999]])
    np.testing.assert_array_equal(model.predict(X_unknown), [0.0, 0.0])
    assert np.isnan(model.set_params(handle_unknown="nan").predict(X_unknown)).all()
    with pytest.raises(ValueError, match="not seen in fit"):
        model.set_params(handle_unknown="error").predict(X_unknown)
    model.set_params(handle_unknown="fallback")
    rec = model.recommend([train[0, 0], "stranger"], n=3)
    np.testing.assert_array_equal(rec.fallback, [False, True])


def test_strengths_add_up_and_alpha_is_used(small):
    train, y, _ = small
    doubled = ImplicitALS(n_factors=3, max_iter=3, alpha=2.0, random_state=0, dtype=np.float64).fit(
        np.r_[train, train], np.r_[y, y]
    )
    once = ImplicitALS(n_factors=3, max_iter=3, alpha=4.0, random_state=0, dtype=np.float64).fit(
        train, y
    )
    # strength 2y with alpha=2 is confidence 1 + 4y: the same model
    np.testing.assert_allclose(doubled.user_factors_, once.user_factors_, rtol=1e-8)
    other = ImplicitALS(n_factors=3, max_iter=3, alpha=2.0, random_state=0, dtype=np.float64).fit(
        train, y
    )
    assert not np.allclose(other.user_factors_, once.user_factors_)


def test_every_parameter_changes_the_fit(small):
    train, y, _ = small
    base = dict(n_factors=3, max_iter=3, random_state=0)
    ref = ImplicitALS(**base).fit(train, y).user_factors_
    for change in [
        dict(alpha=3.0),
        dict(regularization=1.0),
        dict(max_iter=4),
        dict(solver="cholesky"),
        dict(cg_steps=1),
        dict(init_std=0.1),
        dict(random_state=1),
    ]:
        got = ImplicitALS(**{**base, **change}).fit(train, y).user_factors_
        assert not np.allclose(got, ref), change
    assert ImplicitALS(n_factors=5, max_iter=1).fit(train).user_factors_.shape[1] == 5
    assert ImplicitALS(max_iter=1, dtype=np.float64).fit(train).item_factors_.dtype == np.float64


def test_verbose(small, capsys):
    train, y, _ = small
    ImplicitALS(n_factors=2, max_iter=2, verbose=1).fit(train, y)
    out = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("  ")[1] for ln in out[:4]] == [
        "validate",
        "encode ids",
        "user-item matrix",
        "confidence matrices",
    ]
    out = out[4:]
    assert len(out) == 2 and out[1].startswith("iteration   2  objective")


def test_string_ids_and_dataframe():
    df = pd.DataFrame(
        {
            "user": ["a", "a", "b", "b", "c"],
            "item": ["x", "y", "y", "z", "x"],
            "plays": [3, 1, 2, 5, 1],
        }
    )
    model = ImplicitALS(n_factors=2, max_iter=2, random_state=0)
    model.fit(df[["user", "item"]], df["plays"])
    assert list(model.users_) == ["a", "b", "c"]
    assert model.user_items_[0, 0] == 3
    assert model.recommend("a", n=1).items.tolist() == [["z"]]


# ------------------------------------------------------------------ fold-in
def test_fold_in_reproduces_converged_factors_and_leaves_model(small):
    train, y, _ = small
    model = ImplicitALS(
        n_factors=4,
        alpha=2.0,
        regularization=1.0,
        solver="cholesky",
        max_iter=150,
        dtype=np.float64,
        random_state=0,
    ).fit(train, y)
    before = {
        k: getattr(model, k).copy()
        for k in ("user_factors_", "item_factors_", "users_", "items_", "item_popularity_")
    }
    seen_before = model.user_items_.copy()
    users = model.users_[:10]
    rows = np.isin(train[:, 0], users)
    folded = model.fold_in(train[rows], y[rows])
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(model, k), v)
    assert (model.user_items_ != seen_before).nnz == 0
    assert folded.user_bias is None
    np.testing.assert_array_equal(folded.users, users)
    # at a fixed point of ALS, one more user half-step returns the fitted factors
    np.testing.assert_allclose(folded.user_factors, model.user_factors_[:10], atol=1e-5)


def test_fold_in_equals_one_user_half_step(small):
    train, y, _ = small
    model = ImplicitALS(n_factors=3, alpha=2.0, max_iter=3, dtype=np.float64, random_state=0).fit(
        train, y
    )
    ui = model.user_items_
    step = np.zeros_like(model.user_factors_)
    Y = model.item_factors_
    _als_fast.implicit_solve(
        ui.indptr.astype(np.intp),
        ui.indices,
        model.alpha * ui.data.astype(float),
        Y,
        Y.T @ Y,
        step,
        model.regularization,
        False,
        0,
        1,
    )
    folded = model.fold_in(train, y)
    order = model._user_codes(folded.users)
    np.testing.assert_allclose(folded.user_factors, step[order], rtol=1e-10, atol=1e-12)


def test_fold_in_is_the_numpy_confidence_weighted_solve(small):
    train, y, _ = small
    model = ImplicitALS(n_factors=3, alpha=2.0, max_iter=3, random_state=0, dtype=np.float64).fit(
        train, y
    )
    items = model.items_[[0, 3, 3, 7]]
    Xn = np.empty((4, 2), dtype=object)
    Xn[:, 0], Xn[:, 1] = "new", items
    folded = model.fold_in(Xn, [1.0, 2.0, 1.0, 4.0])  # item 3 sums to 3
    idx = np.array([0, 3, 7])
    want = numpy_implicit_row(
        model.item_factors_, idx, 2.0 * np.array([1.0, 3.0, 4.0]), model.regularization
    )
    np.testing.assert_allclose(folded.user_factors[0], want, rtol=1e-8)


def test_recommend_new_for_a_cluster_member(clusters):
    train, test = clusters
    model = ImplicitALS(n_factors=8, alpha=5.0, max_iter=10, random_state=0).fit(train)
    given = np.array([[-1, 24 + j] for j in (1, 5, 9, 13, 17)] + [[-2, 10**6]])
    rec = model.recommend_new(given, n=10)
    np.testing.assert_array_equal(rec.query, [-2, -1])
    np.testing.assert_array_equal(rec.fallback, [True, False])
    assert np.all(rec.items[1] // 24 == 1)
    assert not np.isin(rec.items[1], given[:, 1]).any()
    assert "items" in repr(rec) or rec.items.shape == (2, 10)


def test_partial_fit_grows_and_updates(clusters):
    train, _ = clusters
    model = ImplicitALS(n_factors=8, alpha=5.0, max_iter=10, random_state=0).fit(train)
    n_u, n_i = len(model.users_), len(model.items_)
    old_items = model.item_factors_.copy()
    old_users = model.user_factors_.copy()
    # a new user who likes cluster 2, a new item liked by cluster-3 users
    new = np.r_[[[1000, 48 + j] for j in range(8)], [[u, 5000] for u in range(180, 190)]]
    model.partial_fit(new)
    assert len(model.users_) == n_u + 1 and len(model.items_) == n_i + 1
    assert model.user_factors_.shape == (n_u + 1, 8)
    assert model.user_items_.shape == (n_u + 1, n_i + 1)
    assert model.item_popularity_[-1] == 10
    # untouched rows unchanged; touched users re-solved
    np.testing.assert_array_equal(model.item_factors_[:n_i], old_items)
    untouched = np.setdiff1d(np.arange(n_u), model._user_codes(np.arange(180, 190)))
    np.testing.assert_array_equal(model.user_factors_[untouched], old_users[untouched])
    assert np.all(model.recommend(1000, n=5).items // 24 == 2)
    # the new item is similar to the items of cluster 3 (users 180-239)
    sims = model.similar_items(5000, n=5).items[0]
    assert np.all(sims // 24 == 3)
    # strengths of a repeated pair add up
    model.partial_fit(np.array([[1000, 48]]), [2.0])
    assert model.user_items_[model._user_codes([1000])[0], model._item_codes([48])[0]] == 3


def test_partial_fit_on_unfitted_model_fits(small):
    train, y, _ = small
    a = ImplicitALS(n_factors=2, max_iter=2, random_state=0)
    b = clone(a)
    np.testing.assert_array_equal(
        a.partial_fit(train, y).user_factors_, b.fit(train, y).user_factors_
    )


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "y, match",
    [
        ([1.0, -1.0, 2.0], "negative"),
        ([1.0, np.nan, 2.0], "NaN"),
        ([0.0, 0.0, 0.0], "no positive"),
        ([1.0, 2.0], "inconsistent numbers of samples"),
    ],
)
def test_bad_strengths(y, match):
    X = np.array([[0, 0], [0, 1], [1, 1]])
    y_arr = np.array(y)
    y_copy = y_arr.copy()
    with pytest.raises(ValueError, match=match):
        ImplicitALS(n_factors=2).fit(X, y_arr)
    np.testing.assert_array_equal(y_arr, y_copy)


@pytest.mark.parametrize(
    "params",
    [
        dict(alpha=0.0),
        dict(alpha=-1.0),
        dict(solver="lu"),
        dict(cg_steps=0),
        dict(max_iter=0),
        dict(regularization=-0.1),
        dict(n_factors=0),
    ],
)
def test_invalid_hyperparameters(params):
    with pytest.raises(InvalidParameterError):
        ImplicitALS(**params).fit(np.array([[0, 0], [1, 1]]))


def test_other_bad_input(small):
    train, y, test = small
    with pytest.raises(ValueError, match="dtype"):
        ImplicitALS(dtype=np.int32).fit(train)
    with pytest.raises(ValueError, match="0 sample"):
        ImplicitALS().fit(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="2"):
        ImplicitALS().fit(np.zeros((3, 1)))
    model = ImplicitALS(n_factors=2, max_iter=1).fit(train)
    with pytest.raises(ValueError, match="negative"):
        model.partial_fit(train[:2], [1.0, -2.0])
    with pytest.raises(ValueError, match="negative"):
        model.fold_in(train[:2], [1.0, -2.0])
    assert model.score(train[:5]) == 0.0  # seen items cannot be recommended
    # columns after the ids are ignored; one column is too few
    np.testing.assert_array_equal(model.predict(np.c_[train, train]), model.predict(train))
    with pytest.raises(ValueError, match="features"):
        model.predict(train[:, :1])
