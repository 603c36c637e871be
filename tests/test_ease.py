"""EASE: the closed form against NumPy, the memory check, exact partial_fit,
planted structure and the recommender contract."""

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV

from sklearn_mf import EASE, ItemKNN, PopularityRecommender, _ease
from sklearn_mf._ease import ease_memory, ease_weights
from sklearn_mf.metrics import make_ranking_scorer
from sklearn_mf.model_selection import PerUserTemporalSplit, TemporalSplit


def _binary(n_users, n_items, density, seed):
    """Random 0/1 matrix in which every user and every item has an interaction."""
    rng = np.random.default_rng(seed)
    M = (rng.random((n_users, n_items)) < density).astype(float)
    M[np.arange(n_users), np.arange(n_users) % n_items] = 1
    return M


def _reference(M, lam):
    """Steck's closed form, in float64 NumPy."""
    P = np.linalg.inv(M.T @ M + lam * np.eye(M.shape[1]))
    B = np.eye(M.shape[1]) - P / np.diag(P)[None, :]
    return B


def _rows(M):
    u, i = np.nonzero(M)
    return np.column_stack([u, i]), M[u, i]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("parallel_from_0", [False, True])
def test_closed_form_matches_numpy(n_threads, parallel_from_0, monkeypatch):
    if parallel_from_0:  # every stage on n_threads even for this small case
        for name in ("_PARALLEL_GRAM_WORK", "_PARALLEL_PASS_ITEMS", "_PARALLEL_SOLVE_ITEMS"):
            monkeypatch.setattr(_ease, name, 0)
    M = _binary(60, 25, 0.2, 0)
    B, d = ease_weights(sp.csr_matrix(M), 5.0, dtype=np.float64, n_threads=n_threads)
    ref = _reference(M, 5.0)
    np.testing.assert_allclose(B, ref, atol=1e-12)
    assert np.all(np.diag(B) == 0)
    np.testing.assert_allclose(d, np.diag(np.linalg.inv(M.T @ M + 5 * np.eye(25))))
    B32, _ = ease_weights(sp.csr_matrix(M), 5.0, dtype=np.float32, n_threads=n_threads)
    assert B32.dtype == np.float32
    np.testing.assert_allclose(B32, ref, atol=2e-5)


def test_closed_form_is_the_constrained_least_squares_optimum():
    # B minimises ||X - XB||^2 + lam ||B||^2 with diag(B) = 0: the gradient
    # 2 (G + lam I) B - 2 G is zero off the diagonal
    M = _binary(40, 12, 0.3, 1)
    lam = 2.0
    B, _ = ease_weights(sp.csr_matrix(M), lam, dtype=np.float64)
    G = M.T @ M
    grad = (G + lam * np.eye(12)) @ B - G
    off = ~np.eye(12, dtype=bool)
    np.testing.assert_allclose(grad[off], 0, atol=1e-10)


def test_hand_computed_two_items():
    # two items always together (3 users): G = [[3, 3], [3, 3]]
    X = [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "a"), (2, "b")]
    lam = 1.0
    model = EASE(regularization=lam, dtype=np.float64).fit(X)
    # P = inv([[4, 3], [3, 4]]) = [[4, -3], [-3, 4]] / 7; B_ab = 3 / 4
    np.testing.assert_allclose(model.coef_, [[0, 0.75], [0.75, 0]])
    assert model.predict([(0, "b")])[0] == pytest.approx(0.75)


def test_model_scores_are_history_times_weights():
    M = _binary(50, 20, 0.25, 2)
    X, y = _rows(M)
    model = EASE(regularization=3.0, dtype=np.float64, n_jobs=2).fit(X, y)
    S = M @ model.coef_
    np.testing.assert_allclose(
        model.predict(np.column_stack([np.repeat(np.arange(50), 20), np.tile(np.arange(20), 50)])),
        S.ravel(),
        atol=1e-10,
    )
    _, scores = model.recommend(np.arange(50), n=3, exclude_seen=False)
    np.testing.assert_allclose(scores, -np.sort(-S, axis=1)[:, :3], atol=1e-10)
    sub = [3, 7, 11]
    _, scores = model.recommend([5], n=2, items=sub, exclude_seen=False)
    np.testing.assert_allclose(scores[0], np.sort(S[5, sub])[::-1][:2], atol=1e-10)
    # a new user with user 5's history gets user 5's recommendations
    hist = X[X[:, 0] == 5]
    new = np.column_stack([np.full(len(hist), -1), hist[:, 1]])
    a, b = model.recommend([5], n=4), model.recommend_new(new, n=4)
    assert a.items.tolist() == b.items.tolist()
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-10)


def test_planted_communities_and_similar_items():
    # two communities; within one, each item is taken independently (a fixed
    # number per user would make the items of a community compete)
    rng = np.random.default_rng(3)
    group = np.arange(40) >= 20
    M = (rng.random((40, 30)) < 0.4) & ((np.arange(30) >= 15)[None, :] == group[:, None])
    M[np.arange(40), np.where(group, 15, 0)] = True
    X = np.argwhere(M)
    model = EASE(regularization=1.0).fit(X)
    assert np.all(model.coef_[:15, 15:] == 0) and np.all(model.coef_[15:, :15] == 0)
    items, _ = model.recommend(np.arange(40), n=3)  # every user has >= 4 unseen in-group
    assert ((np.asarray(items, dtype=int) >= 15) == group[:, None]).all()
    nb = model.similar_items([0, 29], n=3)
    assert (np.asarray(nb.items[0], dtype=int) < 15).all()
    assert (np.asarray(nb.items[1], dtype=int) >= 15).all()
    np.testing.assert_allclose(nb.scores[0], np.sort(model.coef_[0])[::-1][:3], rtol=1e-6)
    assert not hasattr(model, "similar_users")  # no user-user weights (see UserKNN)


def test_memory_estimate_raises_before_allocating():
    X = [(u, i) for u in range(5) for i in range(100)]
    assert ease_memory(100, np.float32) == 100 * 100 * 4
    with pytest.raises(MemoryError, match=r"100 x 100 float32 matrix \(0\.00 GiB\).*ItemKNN"):
        EASE(max_memory=1000).fit(X)
    EASE(max_memory=40_000).fit(X)
    with pytest.raises(MemoryError, match="float64"):
        EASE(max_memory=40_000, dtype=np.float64).fit(X)


def test_not_positive_definite_error_names_the_fix():
    X = [(0, 0), (1, 1)]
    with pytest.raises(ValueError, match="regularization"):
        EASE(regularization=0.0).fit(X)


@pytest.mark.parametrize("case", ["known users", "new users", "new items"])
def test_partial_fit_is_exact(case):
    M = _binary(50, 18, 0.25, 4)
    X, y = _rows(M)
    rng = np.random.default_rng(5)
    if case == "known users":
        extra = np.column_stack([rng.choice(50, 4), rng.choice(18, 4)])
    elif case == "new users":
        extra = np.column_stack([50 + rng.choice(3, 6), rng.choice(18, 6)])
    else:
        extra = np.array([(0, 18), (1, 18), (2, 19)])
    model = EASE(regularization=2.0, dtype=np.float64).fit(X, y)
    model.partial_fit(extra)
    full = EASE(regularization=2.0, dtype=np.float64).fit(
        np.vstack([X, extra]), np.concatenate([y, np.ones(len(extra))])
    )
    assert model.items_.tolist() == full.items_.tolist()
    np.testing.assert_allclose(model.coef_, full.coef_, atol=1e-9)
    order = np.argsort(model.users_)  # partial_fit appends new users unsorted
    np.testing.assert_allclose(model.user_items_.toarray()[order], full.user_items_.toarray())


def test_contract_fallback_joblib_and_inputs(tmp_path):
    M = _binary(30, 15, 0.3, 6)
    X, y = _rows(M)
    X0 = X.copy()
    model = EASE(regularization=2.0).fit(X, y)
    np.testing.assert_array_equal(X, X0)
    rec = model.recommend([0, "stranger"], n=3)
    assert rec.fallback.tolist() == [False, True]
    pop = PopularityRecommender().fit(X).recommend([9], n=3, exclude_seen=False)
    assert rec.items[1].tolist() == pop.items[0].tolist()
    assert not set(np.flatnonzero(M[0])) & set(rec.items[0].tolist())
    path = tmp_path / "ease.joblib"
    joblib.dump(model, path)
    np.testing.assert_array_equal(joblib.load(path).coef_, model.coef_)
    assert model.predict([("stranger", 1)])[0] == 0
    with pytest.raises(ValueError, match="negative"):
        EASE().fit(X, -y)
    assert not hasattr(model, "fold_in")  # no user factors: recommend_new scores the history


def test_gridsearch_over_regularization_with_temporal_split():
    rng = np.random.default_rng(7)
    rows = [
        (u, i)
        for u in range(60)
        for i in rng.choice(np.arange(20) + (20 if u >= 30 else 0), 10, replace=False)
    ]
    X = np.column_stack([np.array(rows), rng.permutation(len(rows))])
    grid = GridSearchCV(
        EASE(),
        {"regularization": [0.5, 50.0, 1e6]},
        cv=TemporalSplit(n_splits=2, test_size=0.2, time_col=2),
    )
    grid.fit(X)
    scores = grid.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and grid.best_params_["regularization"] < 1e6


def test_ease_on_movielens_beats_itemknn(ml100k):
    r = ml100k.ratings
    r = r[r["rating"] >= 4][["user", "item", "timestamp"]]
    train, test = next(
        PerUserTemporalSplit(test_size=0.2, min_train=4, time_col="timestamp").split(r)
    )
    scorer = make_ranking_scorer("ndcg", k=10)
    ease = scorer(EASE().fit(r.iloc[train]), r.iloc[test], None)
    knn = scorer(ItemKNN().fit(r.iloc[train]), r.iloc[test], None)
    assert ease > knn > 0.1


def _old_weights_from_inverse(P, dtype):
    """The NumPy post-processing ``ease_weights`` had before the tiled kernel
    (blocked symmetrisation from the lower triangle, division by the negated
    diagonal, zero diagonal), kept as the bit-for-bit reference."""
    P = P.copy()
    n = P.shape[0]
    block = 1024
    for start in range(0, n, block):
        stop = min(start + block, n)
        blk = P[start:stop, start:stop]
        blk[...] = np.tril(blk) + np.tril(blk, -1).T
        P[start:stop, stop:] = P[stop:, start:stop].T
    d = np.diag(P).astype(np.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        P[start:stop] /= -d.astype(dtype)[None, :]
    P.flat[:: n + 1] = 0
    return P


def _same_bits(a, b):
    """Equal bit for bit, NaN included (the sign of exact zeros included)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    u = np.uint32 if a.dtype == np.float32 else np.uint64
    return np.array_equal(a.view(u), b.view(u))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 63, 64, 130, 1100])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_weights_kernel_is_the_old_numpy_pass_bit_for_bit(dtype, n, n_threads):
    from sklearn_mf import _neighbors_fast

    rng = np.random.default_rng(n)
    L = rng.standard_normal((n, n)).astype(dtype)
    L.flat[:: n + 1] = rng.random(n).astype(dtype) + dtype(0.5)
    P = L.copy()
    P[np.triu_indices(n, 1)] = np.nan  # the strict upper triangle is never read
    ref = _old_weights_from_inverse(np.tril(L), dtype)
    d = np.diag(P).astype(np.float64)
    _neighbors_fast.ease_from_inverse(P, -d.astype(dtype), n_threads)
    assert _same_bits(P, ref)
    assert np.all(np.diag(P) == 0)


def test_weights_kernel_zeros_keep_their_sign():
    # the one difference from the old pass: an exact -0.0 of the inverse
    # inside one of its 1024-row diagonal blocks came out of the
    # symmetrisation as +0.0 (tril + 0); the kernel divides the value itself
    from sklearn_mf import _neighbors_fast

    n = 70
    rng = np.random.default_rng(0)
    L = np.tril(rng.standard_normal((n, n))).astype(np.float32)
    L.flat[:: n + 1] = 1.0 + rng.random(n).astype(np.float32)
    L[5, 2], L[65, 3] = -0.0, 0.0
    P = L.copy()
    d = np.diag(P).astype(np.float64)
    _neighbors_fast.ease_from_inverse(P, -d.astype(np.float32), 1)
    ref = _old_weights_from_inverse(L, np.float32)
    np.testing.assert_array_equal(P, ref)  # equal values (-0.0 == 0.0)
    diff = P.view(np.uint32) != ref.view(np.uint32)
    assert set(zip(*np.nonzero(diff))) == {(5, 2), (2, 5)}
    assert np.signbit(P[5, 2]) == np.signbit(-0.0 / -d[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gram_lower_is_the_lower_triangle_of_the_full_kernel(dtype, n_threads):
    from sklearn_mf import _neighbors_fast
    from sklearn_mf._neighbors import csr_parts

    rng = np.random.default_rng(3)
    X = sp.random(200, 90, density=0.1, format="csr", random_state=4, dtype=np.float64)
    X.data = rng.integers(1, 5, X.nnz).astype(np.float64)
    X = X.astype(dtype)
    full = np.empty((90, 90), dtype=dtype)
    _neighbors_fast.sparse_rows_dot(
        *csr_parts(X.T.tocsr(), dtype),
        np.arange(90, dtype=np.intp),
        *csr_parts(X, dtype),
        0,
        full,
        np.empty((0, 0), dtype=dtype),
        n_threads,
    )
    G = np.full((90, 90), np.nan, dtype=dtype)
    _neighbors_fast.gram_lower(*csr_parts(X.T.tocsr(), dtype), *csr_parts(X, dtype), G, n_threads)
    low = np.tril_indices(90)
    assert _same_bits(G[low], full[low])
    assert np.isnan(G[np.triu_indices(90, 1)]).all()  # the upper triangle is not written
    np.testing.assert_allclose(full, (X.T @ X).toarray(), rtol=1e-6)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_tiled_weights_match_numpy_in_float32(n_threads):
    # several 64-item tiles, a ragged last one
    M = _binary(400, 150, 0.08, 5)
    B, d = ease_weights(sp.csr_matrix(M), 10.0, dtype=np.float32, n_threads=n_threads)
    assert B.dtype == np.float32 and B.flags.c_contiguous
    np.testing.assert_allclose(B, _reference(M, 10.0), atol=2e-5)
    np.testing.assert_allclose(d, np.diag(np.linalg.inv(M.T @ M + 10 * np.eye(150))), rtol=1e-4)
    assert np.all(np.diag(B) == 0)


def test_fit_holds_one_dense_matrix():
    # potrf / potri and the weights work in the memory of the Gram matrix:
    # no second n x n array at any point (what ease_memory promises)
    import tracemalloc

    M = _binary(300, 400, 0.05, 6)
    X = sp.csr_matrix(M)
    ease_weights(X, 5.0, dtype=np.float64)  # warm up (LAPACK lookup, imports)
    tracemalloc.start()
    try:
        B, _ = ease_weights(X, 5.0, dtype=np.float64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert B.nbytes == ease_memory(400, np.float64)
    assert peak < 1.25 * ease_memory(400, np.float64)


def test_editing_user_items_after_fit_changes_neither_scores_nor_partial_fit():
    M = _binary(40, 15, 0.3, 8)
    X, y = _rows(M)
    extra = np.array([(0, 3), (1, 4), (2, 5), (40, 6)])
    params = dict(regularization=2.0, dtype=np.float64, n_jobs=1)
    model = EASE(**params).fit(X, y)
    clean = EASE(**params).fit(X, y)
    users = np.arange(40)
    before = model.recommend(users, n=5, exclude_seen=False)
    pred = model.predict(X[:50])
    model.user_items_.data[:] = 7.0  # in place: the model has arrays of its own
    model.user_items_.indices[:] = 0
    after = model.recommend(users, n=5, exclude_seen=False)
    np.testing.assert_array_equal(before.items, after.items)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(pred, model.predict(X[:50]))
    # partial_fit updates the model's copy, not the edited matrix
    model.partial_fit(extra)
    clean.partial_fit(extra)
    np.testing.assert_array_equal(model.coef_, clean.coef_)
    np.testing.assert_array_equal(model.user_items_.toarray(), clean.user_items_.toarray())
    got = model.recommend(users, n=5, exclude_seen=False).scores
    np.testing.assert_array_equal(got, clean.recommend(users, n=5, exclude_seen=False).scores)
    # and the matrix it returns is again not the one it scores from
    model.user_items_.data[:] = 0.0
    np.testing.assert_array_equal(got, model.recommend(users, n=5, exclude_seen=False).scores)


def test_small_fits_keep_every_stage_on_one_thread(monkeypatch):
    """n_jobs=2 uses a second thread only where one thread takes milliseconds."""
    calls = []
    real_gram, real_pass = _ease._neighbors_fast.gram_lower, _ease._neighbors_fast.ease_from_inverse
    real_limit = _ease._blas_threads

    def gram(*args):
        calls.append(("gram", args[-1]))
        return real_gram(*args)

    def weights_pass(*args):
        calls.append(("pass", args[-1]))
        return real_pass(*args)

    def limit(n):
        calls.append(("blas", n))
        return real_limit(n)

    monkeypatch.setattr(_ease._neighbors_fast, "gram_lower", gram)
    monkeypatch.setattr(_ease._neighbors_fast, "ease_from_inverse", weights_pass)
    monkeypatch.setattr(_ease, "_blas_threads", limit)
    M = _binary(60, 25, 0.2, 0)
    B2, _ = ease_weights(sp.csr_matrix(M), 5.0, dtype=np.float64, n_threads=2)
    assert calls == [("gram", 1), ("blas", 1), ("pass", 1)]
    calls.clear()
    for name in ("_PARALLEL_GRAM_WORK", "_PARALLEL_PASS_ITEMS", "_PARALLEL_SOLVE_ITEMS"):
        monkeypatch.setattr(_ease, name, 0)
    B2p, _ = ease_weights(sp.csr_matrix(M), 5.0, dtype=np.float64, n_threads=2)
    assert calls == [("gram", 2), ("blas", 2), ("pass", 2)]
    # the Gram matrix and the pass are exact whatever the threads; LAPACK may round
    np.testing.assert_allclose(B2, B2p, rtol=1e-12, atol=1e-14)
