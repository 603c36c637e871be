"""ItemKNN and UserKNN: kernels against NumPy, hand-computed cases, planted
structure, the recommender contract and the KNNBaseline rating estimate."""

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV

from sklearn_mf import BaselineRegressor, ItemKNN, PopularityRecommender, UserKNN, _neighbors
from sklearn_mf._neighbors import (
    bm25_weight,
    feature_idf,
    knn_similarities,
    pair_scores,
    score_rows,
    tfidf_weight,
)
from sklearn_mf.metrics import make_ranking_scorer
from sklearn_mf.model_selection import PerUserTemporalSplit, TemporalSplit


def _random_csr(n_rows, n_cols, density, seed):
    rng = np.random.default_rng(seed)
    return sp.random(
        n_rows,
        n_cols,
        density=density,
        format="csr",
        random_state=seed,
        data_rvs=lambda m: rng.uniform(0.5, 3.0, m),
    )


def _dense_topk(Q, C, k, shrinkage, cosine, exclude_self):
    """NumPy reference: dense similarities, self removed, best k positive kept."""
    Qd, Cd = Q.toarray(), C.toarray()
    D = Qd @ Cd.T
    if cosine:
        with np.errstate(invalid="ignore"):  # empty rows: 0 / 0, no neighbour
            D = np.nan_to_num(
                D
                / (
                    np.linalg.norm(Qd, axis=1)[:, None] * np.linalg.norm(Cd, axis=1)[None, :]
                    + shrinkage
                )
            )
    if exclude_self:
        np.fill_diagonal(D, 0)
    D[D <= 0] = 0
    out = np.zeros_like(D)
    for r in range(D.shape[0]):
        top = np.argsort(-D[r], kind="stable")[:k]
        out[r, top] = D[r, top]
    return out


def _triples(M):
    c = sp.coo_matrix(M)
    return np.column_stack([c.row, c.col]), c.data.astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("cosine,shrinkage", [(True, 0.0), (True, 3.0), (False, 0.0)])
@pytest.mark.parametrize(
    "shape,density",
    [((60, 40), 0.15), ((300, 200), 0.01)],
    ids=["dense-accumulator", "touched-list"],
)
def test_similarity_kernel_matches_numpy(
    dtype, n_threads, cosine, shrinkage, shape, density, monkeypatch
):
    # the kernel scans a dense accumulator when a row reaches many candidates
    # and keeps a list of the touched ones otherwise: both paths are checked
    # (and the parallel one: small inputs would otherwise run on one thread)
    monkeypatch.setattr(_neighbors, "_PARALLEL_WORK", 0)
    A = _random_csr(*shape, density, 0)
    got = knn_similarities(
        A,
        A,
        7,
        shrinkage=shrinkage,
        cosine=cosine,
        exclude_self=True,
        dtype=dtype,
        n_threads=n_threads,
    )
    ref = _dense_topk(A, A, 7, shrinkage, cosine, True)
    if dtype == np.float64:
        np.testing.assert_allclose(got.toarray(), ref, rtol=1e-11, atol=1e-12)
    else:  # float32 rounding may break a tie at the k-th place the other way
        np.testing.assert_allclose(
            np.sort(got.toarray(), axis=1), np.sort(ref, axis=1), rtol=1e-4, atol=1e-5
        )
    assert got.has_sorted_indices and (np.diff(got.indptr) <= 7).all()
    # the kernel itself writes each row by increasing index (the flag is not a claim)
    resorted = got.copy()
    resorted.has_sorted_indices = False
    resorted.sort_indices()
    np.testing.assert_array_equal(resorted.indices, got.indices)
    assert got.dtype == dtype


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("cosine,shrinkage", [(True, 0.0), (True, 2.5), (False, 0.0)])
def test_similarity_screen_keeps_exact_topk_with_ties(n_threads, cosine, shrinkage, monkeypatch):
    # binary vectors: integer dot products, many exact ties at the k-th place;
    # 700 candidates are screened in blocks against the heap's worst (first
    # against the bound from the maxima of blocks of 8), and the
    # result must be the reference's (ties to the lower index), not merely close
    monkeypatch.setattr(_neighbors, "_PARALLEL_WORK", 0)
    rng = np.random.default_rng(3)
    A = sp.csr_matrix((rng.random((700, 40)) < 0.3).astype(np.float64))
    got = knn_similarities(
        A,
        A,
        12,
        shrinkage=shrinkage,
        cosine=cosine,
        exclude_self=True,
        dtype=np.float64,
        n_threads=n_threads,
    )
    ref = _dense_topk(A, A, 12, shrinkage, cosine, True)
    np.testing.assert_array_equal(got.toarray() != 0, ref != 0)
    np.testing.assert_allclose(got.toarray(), ref, rtol=1e-13)
    assert (np.diff(got.indptr) == 12).all()
    # float32 data (the default dtype): the same neighbours, exact on integers
    got32 = knn_similarities(
        A, A, 12, shrinkage=shrinkage, cosine=cosine, exclude_self=True, dtype=np.float32
    )
    np.testing.assert_array_equal(got32.indices, got.indices)


def test_similarity_kernel_queries_other_matrix():
    Q, C = _random_csr(9, 30, 0.3, 1), _random_csr(50, 30, 0.2, 2)
    got = knn_similarities(Q, C, 5, shrinkage=1.0, n_threads=2)
    np.testing.assert_allclose(got.toarray(), _dense_topk(Q, C, 5, 1.0, True, False), atol=1e-12)


def test_similarity_hand_computed():
    # items a: users 1,2,3; b: users 1,2; c: users 3,4 (binary)
    X = [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "c"), (4, "c")]
    S = ItemKNN(n_neighbors=2, shrinkage=0.0, weighting=None).fit(X).similarity_.toarray()
    expected = np.array(
        [[0, 2 / np.sqrt(6), 1 / np.sqrt(6)], [2 / np.sqrt(6), 0, 0], [1 / np.sqrt(6), 0, 0]]
    )
    np.testing.assert_allclose(S, expected, rtol=1e-6)
    # shrinkage h: 2 / (sqrt(3 * 2) + h)
    S = ItemKNN(n_neighbors=2, shrinkage=2.0, weighting=None, dtype=np.float64).fit(X)
    assert S.similarity_[0, 1] == pytest.approx(2 / (np.sqrt(6) + 2))
    # n_neighbors=1 keeps only a's best neighbour b
    S = ItemKNN(n_neighbors=1, shrinkage=0.0, weighting=None).fit(X).similarity_
    assert S[0].indices.tolist() == [1]


def test_weightings_match_formulas():
    M = _random_csr(12, 20, 0.3, 3)
    D = M.toarray()
    df = (D > 0).sum(axis=0)
    idf = np.log(12) - np.log1p(df)
    np.testing.assert_allclose(feature_idf(M), idf)
    np.testing.assert_allclose(tfidf_weight(M, idf).toarray(), np.sqrt(D) * idf * (D > 0))
    k1, b = 1.5, 0.6
    length = D.sum(axis=1, keepdims=True)
    norm = (1 - b) + b * length / length.mean()
    with np.errstate(invalid="ignore"):
        ref = np.where(D > 0, D * (k1 + 1) / (k1 * norm + D) * idf, 0)
    np.testing.assert_allclose(bm25_weight(M, idf, length.mean(), k1, b).toarray(), ref)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_score_and_pair_kernels_match_numpy(n_threads):
    A, B = _random_csr(15, 25, 0.2, 4), _random_csr(25, 30, 0.2, 5)
    rows = np.array([3, 0, 14, 7])
    out, den = score_rows(A, rows, B, den_mode=2, n_threads=n_threads)
    np.testing.assert_allclose(out, (A @ B).toarray()[rows], rtol=1e-12)
    mask_a = (A.toarray() != 0).astype(float)
    np.testing.assert_allclose(den, (mask_a @ np.abs(B.toarray()))[rows], rtol=1e-12)
    out, den = score_rows(A, rows, B, den_mode=1, n_threads=n_threads)
    np.testing.assert_allclose(den, (np.abs(A.toarray()) @ (B.toarray() != 0))[rows])
    Bt = B.T.tocsr()  # rows of B^T are the columns of B
    a_rows, b_rows = np.array([0, 3, 5, -1]), np.array([2, 29, 0, 4])
    got, d = pair_scores(A, a_rows, Bt, b_rows, den_mode=2, n_threads=n_threads)
    full = (A @ B).toarray()
    np.testing.assert_allclose(got[:3], full[a_rows[:3], b_rows[:3]], rtol=1e-12)
    assert got[3] == 0 and d[3] == 0


def _blocks(seed=0, n_users=40, n_items=30, per_user=8):
    """Two communities: users 0..19 use items 0..14, the others 15..29."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        lo = 0 if u < n_users // 2 else n_items // 2
        for i in rng.choice(np.arange(lo, lo + n_items // 2), per_user, replace=False):
            rows.append((u, i))
    return np.array(rows)


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_planted_communities_are_recovered(cls):
    X = _blocks()
    model = cls(n_neighbors=10, n_jobs=1).fit(X)
    items, _ = model.recommend(np.arange(40), n=5)
    group_user = np.arange(40) >= 20
    group_item = np.asarray(items, dtype=int) >= 15
    assert (group_item == group_user[:, None]).all()


def test_itemknn_scores_are_history_times_similarity():
    A = _random_csr(30, 25, 0.2, 6)
    X, y = _triples(A)
    model = ItemKNN(n_neighbors=6, shrinkage=1.0, weighting=None, dtype=np.float64, n_jobs=2).fit(
        X, y
    )
    H = model.user_items_.toarray().astype(np.float64)  # strengths are stored in float32
    ref = H @ model.similarity_.toarray()  # each seen item votes
    np.testing.assert_allclose(
        model.predict(np.column_stack([np.repeat(np.arange(30), 25), np.tile(np.arange(25), 30)])),
        ref.ravel(),
        rtol=1e-10,
        atol=1e-12,
    )
    items, scores = model.recommend(np.arange(30), n=3, exclude_seen=False)
    np.testing.assert_allclose(scores, -np.sort(-ref, axis=1)[:, :3], rtol=1e-10)


def test_userknn_scores_are_similarity_times_history():
    A = _random_csr(30, 25, 0.2, 7)
    X, y = _triples(A)
    model = UserKNN(n_neighbors=5, shrinkage=0.5, dtype=np.float64, n_jobs=1).fit(X, y)
    S = model.similarity_.toarray()
    np.testing.assert_allclose(S, _dense_topk(A, A, 5, 0.5, True, True), atol=1e-12)
    ref = S @ model.user_items_.toarray().astype(np.float64)
    items, scores = model.recommend(np.arange(30), n=2, exclude_seen=False)
    np.testing.assert_allclose(scores, -np.sort(-ref, axis=1)[:, :2], rtol=1e-10)


def test_recommend_new_scores_the_given_history():
    X = _blocks(1)
    item = ItemKNN(n_neighbors=10, n_jobs=1).fit(X)
    hist = X[X[:, 0] == 3]
    new = np.column_stack([np.full(len(hist), 999), hist[:, 1]])
    a = item.recommend([3], n=5)
    b = item.recommend_new(new, n=5)
    assert a.items.tolist() == b.items.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    # UserKNN: a new user's neighbours are found among the trained users
    user = UserKNN(n_neighbors=3, shrinkage=0.0, n_jobs=1, dtype=np.float64).fit(X)
    rec = user.recommend_new(new, n=4, exclude_seen=False)
    Xd = user.user_items_.toarray().astype(np.float64)
    x = np.zeros(Xd.shape[1])
    x[hist[:, 1]] = 1
    sims = Xd @ x / (np.linalg.norm(Xd, axis=1) * np.linalg.norm(x))
    top = np.argsort(-sims, kind="stable")[:3]
    ref = sims[top] @ Xd[top]
    np.testing.assert_allclose(rec.scores[0], np.sort(ref)[::-1][:4], rtol=1e-10)
    # a history of unknown items only: popularity fallback
    fb = item.recommend_new([(5, "never-seen")], n=2)
    assert fb.fallback.tolist() == [True]


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_contract_fallback_exclude_items_and_joblib(cls, tmp_path):
    X = _blocks(2)
    model = cls(n_neighbors=8, n_jobs=1).fit(X)
    rec = model.recommend([0, "stranger"], n=3)
    assert rec.fallback.tolist() == [False, True]
    pop = PopularityRecommender().fit(X).recommend(["stranger"], n=3)
    assert rec.items[1].tolist() == pop.items[0].tolist()
    seen = set(X[X[:, 0] == 0, 1])
    assert not seen & set(rec.items[0].tolist())
    allowed = [1, 2, 3, 20, 21]
    got = model.recommend([0], n=2, items=allowed, exclude_seen=False).items[0]
    assert set(got.tolist()) <= set(allowed)
    path = tmp_path / "m.joblib"
    joblib.dump(model, path)
    again = joblib.load(path)
    np.testing.assert_array_equal(
        again.recommend([0, 5], n=4).items, model.recommend([0, 5], n=4).items
    )
    assert model.predict([(0, 1), ("stranger", 1)])[1] == 0


def test_similar_items_and_users():
    X = _blocks(3)
    item = ItemKNN(n_neighbors=4, n_jobs=1).fit(X)
    nb = item.similar_items([0, 20], n=4)
    S = item.similarity_.toarray()
    for q, row, sc in zip((0, 20), nb.items, nb.scores):
        assert q not in row.tolist()
        np.testing.assert_allclose(sc, np.sort(S[q])[::-1][:4], rtol=1e-6)
    assert (np.asarray(nb.items[1], dtype=int) >= 15).all()
    assert not hasattr(item, "similar_users")  # item neighbours only (see UserKNN)
    user = UserKNN(n_neighbors=4, n_jobs=1).fit(X)
    assert (np.asarray(user.similar_users([25], n=3).items, dtype=int) >= 20).all()
    assert not hasattr(user, "similar_items")
    assert not hasattr(item, "fold_in")  # no user factors: recommend_new scores the history


@pytest.mark.parametrize(
    "param,values",
    [
        ("n_neighbors", (2, 20)),
        ("shrinkage", (0.0, 50.0)),
        ("similarity", ("cosine", "dot")),
        ("weighting", (None, "bm25")),
        ("bm25_k1", (0.5, 100.0)),
    ],
)
def test_every_parameter_is_used(param, values):
    A = _random_csr(40, 30, 0.15, 8)
    X, y = _triples(A)
    base = dict(n_neighbors=5, weighting="bm25" if param.startswith("bm25") else None, n_jobs=1)
    S = [ItemKNN(**{**base, param: v}).fit(X, y).similarity_.toarray() for v in values]
    assert not np.allclose(S[0], S[1])


def _ratings_reference(model, R, u, i):
    """Surprise-style KNNBaseline estimate, from dense matrices."""
    mu, bu, bi = model.global_mean_, model.user_bias_, model.item_bias_
    S = model.similarity_.toarray()
    rated = R[u] != 0
    resid = R[u] - (mu + bu[u] + bi)
    nb = (S[i] != 0) & rated
    den = S[i, nb].sum()
    return mu + bu[u] + bi[i] + (S[i, nb] @ resid[nb] / den if den > 0 else 0.0)


def test_knnbaseline_rating_estimate():
    rng = np.random.default_rng(9)
    A = _random_csr(50, 40, 0.25, 9)
    A.data = rng.integers(1, 6, A.nnz).astype(float)
    X, y = _triples(A)
    model = ItemKNN(
        n_neighbors=8, shrinkage=2.0, feedback="explicit", dtype=np.float64, n_jobs=2
    ).fit(X, y)
    base = BaselineRegressor(regularization=10.0, clip_predictions=False).fit(X, y)
    np.testing.assert_allclose(model.item_bias_, base.item_bias_)
    # similarities are the cosines of the baseline residuals
    Rres = model._history.toarray()
    ref_S = _dense_topk(sp.csr_matrix(Rres.T), sp.csr_matrix(Rres.T), 8, 2.0, True, True)
    np.testing.assert_allclose(model.similarity_.toarray(), ref_S, atol=1e-10)
    pairs = np.array([(0, 3), (7, 11), (49, 39), (20, 0)])
    ref = [_ratings_reference(model, A.toarray(), u, i) for u, i in pairs]
    np.testing.assert_allclose(model.predict(pairs), ref, rtol=1e-10)
    # recommend ranks by the same estimate
    _, scores = model.recommend([7], n=1, items=[11], exclude_seen=False)
    assert scores[0, 0] == pytest.approx(model.predict([(7, 11)])[0])
    # unknown item: the baseline with the user's bias
    assert model.predict([(7, "new")])[0] == pytest.approx(model.global_mean_ + model.user_bias_[7])


def test_explicit_userknn_rating_estimate():
    rng = np.random.default_rng(10)
    A = _random_csr(40, 30, 0.3, 10)
    A.data = rng.integers(1, 6, A.nnz).astype(float)
    X, y = _triples(A)
    model = UserKNN(n_neighbors=6, feedback="explicit", dtype=np.float64, n_jobs=1).fit(X, y)
    S, R = model.similarity_.toarray(), A.toarray()
    mu, bu, bi = model.global_mean_, model.user_bias_, model.item_bias_
    u, i = 4, 9
    nb = (S[u] != 0) & (R[:, i] != 0)
    resid = R[nb, i] - (mu + bu[nb] + bi[i])
    ref = mu + bu[u] + bi[i] + (S[u, nb] @ resid / S[u, nb].sum() if nb.any() else 0)
    assert model.predict([(u, i)])[0] == pytest.approx(ref)


def test_explicit_on_movielens_beats_baseline(ml100k):
    r = ml100k.ratings
    X, y = r[["user", "item"]].to_numpy(), r["rating"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    test = rng.random(len(y)) < 0.2
    base = BaselineRegressor().fit(X[~test], y[~test])
    rmse = lambda m: np.sqrt(np.mean((m.predict(X[test]) - y[test]) ** 2))  # noqa: E731
    # only the neighbours the user rated count: keep many (0.912 measured at 300,
    # 0.938 at 40 with shrinkage 100, baseline 0.941)
    knn = ItemKNN(n_neighbors=300, feedback="explicit").fit(X[~test], y[~test])
    assert rmse(knn) < rmse(base) - 0.02
    assert rmse(knn) < 0.92


def test_implicit_on_movielens_beats_popularity(ml100k):
    r = ml100k.ratings
    r = r[r["rating"] >= 4]
    split = PerUserTemporalSplit(test_size=0.2, min_train=4, time_col="timestamp")
    X = r[["user", "item", "timestamp"]]
    train, test = next(split.split(X))
    scorer = make_ranking_scorer("ndcg", k=10)
    pop = scorer(PopularityRecommender().fit(X.iloc[train]), X.iloc[test], None)
    knn = scorer(ItemKNN().fit(X.iloc[train]), X.iloc[test], None)
    user = scorer(UserKNN().fit(X.iloc[train]), X.iloc[test], None)
    assert knn > 1.2 * pop and user > 1.2 * pop


def test_gridsearch_with_ranking_score_and_temporal_split():
    rng = np.random.default_rng(11)
    X = _blocks(4, per_user=10)
    X = np.column_stack([X, rng.permutation(len(X))])  # timestamps
    grid = GridSearchCV(
        ItemKNN(n_jobs=1),
        {"n_neighbors": [1, 10], "shrinkage": [0.0, 5.0]},
        cv=TemporalSplit(n_splits=2, test_size=0.2, time_col=2),
    )
    grid.fit(X)
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_params_["n_neighbors"] == 10
    explicit = GridSearchCV(
        UserKNN(n_jobs=1),
        {"n_neighbors": [2, 10]},
        scoring=make_ranking_scorer("precision", k=5),
        cv=TemporalSplit(test_size=0.3, time_col=2),
    )
    assert explicit.fit(X).best_score_ > 0


def test_bad_input_and_inputs_not_modified():
    X = np.array([(0, 0), (0, 1), (1, 1)])
    X0 = X.copy()
    with pytest.raises(ValueError, match="weighting"):
        ItemKNN(feedback="explicit", weighting="bm25").fit(X, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="requires y"):
        ItemKNN(feedback="explicit").fit(X)
    with pytest.raises(ValueError, match="negative"):
        ItemKNN().fit(X, [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="no positive"):
        UserKNN().fit(X, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="n_neighbors"):
        ItemKNN(n_neighbors=0).fit(X)
    y = np.array([1.0, 2.0, 3.0])
    ItemKNN().fit(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, [1.0, 2.0, 3.0])


# ------------------------------------------- history-side neighbourhoods
def _ref_history(keys, vals, k):
    """Sum of key * value and of the keys over the k largest positive keys."""
    keys, vals = np.asarray(keys, dtype=float), np.asarray(vals, dtype=float)
    pos = keys > 0
    keys, vals = keys[pos], vals[pos]
    top = np.argsort(-keys, kind="stable")[:k]
    return float(keys[top] @ vals[top]), float(keys[top].sum())


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("key_is_a", [False, True])
@pytest.mark.parametrize("k", [1, 3, 50])
def test_history_kernel_matches_numpy(n_threads, key_is_a, k, monkeypatch):
    A, B = _random_csr(20, 25, 0.3, 11), _random_csr(25, 30, 0.3, 12)
    Ad, Bd = A.toarray(), B.toarray()
    rows = np.array([4, 0, 19, 7, 4])
    cand = np.array([5, 0, 29, 12, 5, 3])  # unordered, with a repeat
    # small target blocks: the blocked path and its copy-back are exercised
    monkeypatch.setattr(_neighbors, "_HISTORY_PAIRS", 8 * k)
    num, den = _neighbors.history_scores(
        A, rows, B, cand, k, key_is_a=key_is_a, with_den=True, n_threads=n_threads
    )
    ref_num, ref_den = np.zeros(num.shape), np.zeros(num.shape)
    for r, row in enumerate(rows):
        for t, c in enumerate(cand):
            refs = np.flatnonzero((Ad[row] != 0) & (Bd[:, c] != 0))
            a, b = Ad[row, refs], Bd[refs, c]
            ref_num[r, t], ref_den[r, t] = _ref_history(
                a if key_is_a else b, b if key_is_a else a, k
            )
    np.testing.assert_allclose(num, ref_num, rtol=1e-12)
    np.testing.assert_allclose(den, ref_den, rtol=1e-12)
    # the pair kernel (targets as rows of B^T), a negative index giving 0
    a_rows = np.r_[rows, -1]
    b_rows = np.r_[cand[:5], 2]
    got, d = _neighbors.history_pair_scores(
        A, a_rows, B.T.tocsr(), b_rows, k, key_is_a=key_is_a, n_threads=n_threads
    )
    np.testing.assert_allclose(got[:5], ref_num[np.arange(5), np.arange(5)], rtol=1e-12)
    np.testing.assert_allclose(d[:5], ref_den[np.arange(5), np.arange(5)], rtol=1e-12)
    assert got[5] == 0 and d[5] == 0


def _binary(seed, n_users=40, n_items=30, density=0.15):
    rng = np.random.default_rng(seed)
    D = rng.random((n_users, n_items)) < density
    D[np.arange(n_users), rng.integers(0, n_items, n_users)] = True  # nobody empty
    return D.astype(np.float64)


def _cosine(M):
    """Dense cosine similarities of the rows of M, diagonal 0."""
    n = np.linalg.norm(M, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.nan_to_num(M @ M.T / np.outer(n, n))
    np.fill_diagonal(S, 0)
    return S


def _pearson_baseline(R, mask, base, h):
    """Surprise's shrunk pearson_baseline of the rows of R (n_rows x n_features)."""
    X = np.where(mask, R - base, 0.0)
    m = mask.astype(float)
    dot, freq = X @ X.T, m @ m.T
    sqi, sqj = (X**2) @ m.T, m @ (X**2).T
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.nan_to_num(dot / np.sqrt(sqi * sqj)) * (freq - 1) / (freq - 1 + h)
    S[freq < 2] = 0
    np.fill_diagonal(S, 0)
    return S


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("k", [1, 4])
def test_history_neighbors_implicit_is_lenskit_formula(cls, k):
    # LensKit ItemKNN / UserKNN implicit (max_nbrs=k, all neighbours saved):
    # the sum of the k largest similarities of the user's items to the target
    # (of the users who have the target to the user)
    D = _binary(13)
    X = np.argwhere(D)
    model = cls(
        n_neighbors=None, n_history_neighbors=k, shrinkage=0.0, weighting=None, dtype=np.float64
    ).fit(X)
    n_users, n_items = D.shape
    ref = np.zeros(D.shape)
    if cls is ItemKNN:
        S = _cosine(D.T)
        for u in range(n_users):
            for i in range(n_items):
                ref[u, i] = _ref_history(S[D[u] != 0, i], np.ones(int(D[u].sum())), k)[0]
    else:
        S = _cosine(D)
        for u in range(n_users):
            for i in range(n_items):
                who = np.flatnonzero(D[:, i])
                ref[u, i] = _ref_history(S[u, who], np.ones(len(who)), k)[0]
    np.testing.assert_allclose(model.similarity_.toarray(), S, atol=1e-12)
    pairs = np.column_stack(
        [np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users)]
    )
    np.testing.assert_allclose(model.predict(pairs), ref.ravel(), rtol=1e-10, atol=1e-12)
    # recommend (batched, every item) ranks by the same scores
    _, scores = model.recommend(np.arange(n_users), n=5, exclude_seen=False)
    np.testing.assert_allclose(scores, -np.sort(-ref, axis=1)[:, :5], rtol=1e-10)
    # items= restricts to the given candidates, with the same scores
    allowed = np.array([3, 17, 8, 25])
    rec = model.recommend(np.arange(n_users), n=2, items=allowed, exclude_seen=False)
    np.testing.assert_allclose(rec.scores, -np.sort(-ref[:, allowed], axis=1)[:, :2], rtol=1e-10)
    # exclude_seen: no seen item is recommended
    rec = model.recommend(np.arange(n_users), n=3)
    for u in range(n_users):
        assert not set(np.asarray(rec.items[u][rec.scores[u] > -np.inf], dtype=int)) & set(
            np.flatnonzero(D[u])
        )


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("similarity,h", [("pearson_baseline", 2.0), ("cosine", 1.0)])
def test_history_neighbors_explicit_is_surprise_formula(cls, similarity, h):
    # Surprise KNNBaseline (min_k=1): baseline + the similarity-weighted
    # residuals of the k most similar neighbours (positive similarities only)
    rng = np.random.default_rng(14)
    mask = _binary(15) != 0
    R = np.where(mask, rng.integers(1, 6, mask.shape), 0).astype(float)
    X = np.argwhere(mask)
    y = R[mask]
    k = 3
    model = cls(
        n_neighbors=None,
        n_history_neighbors=k,
        similarity=similarity,
        shrinkage=h,
        feedback="explicit",
        dtype=np.float64,
    ).fit(X, y)
    mu, bu, bi = model.global_mean_, model.user_bias_, model.item_bias_
    base = mu + bu[:, None] + bi[None, :]
    resid = np.where(mask, R - base, 0.0)
    if similarity == "pearson_baseline":
        S = (
            _pearson_baseline(R.T, mask.T, base.T, h)
            if cls is ItemKNN
            else _pearson_baseline(R, mask, base, h)
        )
    else:
        M = resid.T if cls is ItemKNN else resid
        n = np.linalg.norm(M, axis=1)
        S = M @ M.T / (np.outer(n, n) + h)
        np.fill_diagonal(S, 0)
    S[S < 0] = 0
    np.testing.assert_allclose(model.similarity_.toarray(), S, rtol=1e-9, atol=1e-12)
    ref = base.copy()
    for u in range(mask.shape[0]):
        for i in range(mask.shape[1]):
            if cls is ItemKNN:
                refs = np.flatnonzero(mask[u])
                num, den = _ref_history(S[i, refs], resid[u, refs], k)
            else:
                refs = np.flatnonzero(mask[:, i])
                num, den = _ref_history(S[u, refs], resid[refs, i], k)
            if den > 0:
                ref[u, i] += num / den
    n_users, n_items = mask.shape
    pairs = np.column_stack(
        [np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users)]
    )
    np.testing.assert_allclose(model.predict(pairs), ref.ravel(), rtol=1e-10)
    _, scores = model.recommend(np.arange(n_users), n=4, exclude_seen=False)
    np.testing.assert_allclose(scores, -np.sort(-ref, axis=1)[:, :4], rtol=1e-10)


def test_history_neighbors_hand_computed():
    # items a: users 1,2,3; b: users 1,2; c: users 3,4; d: users 2,3 (binary)
    # cos(a,b) = 2/sqrt(6), cos(a,c) = 1/sqrt(6), cos(a,d) = 2/sqrt(6),
    # cos(b,d) = 1/2, cos(c,d) = 1/2, cos(b,c) = 0
    X = [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (2, "d"), (3, "a"), (3, "c"), (3, "d"), (4, "c")]
    # user 4 has only c: its score of a is cos(a,c) for any k
    # user 1 has a, b: the score of d with k=1 is max(cos(a,d), cos(b,d)) = 2/sqrt(6),
    # with k=2 the sum 2/sqrt(6) + 1/2
    kw = dict(n_neighbors=None, shrinkage=0.0, weighting=None, dtype=np.float64)
    one = ItemKNN(n_history_neighbors=1, **kw).fit(X)
    two = ItemKNN(n_history_neighbors=2, **kw).fit(X)
    assert one.predict([(4, "a")])[0] == pytest.approx(1 / np.sqrt(6))
    assert one.predict([(1, "d")])[0] == pytest.approx(2 / np.sqrt(6))
    assert two.predict([(1, "d")])[0] == pytest.approx(2 / np.sqrt(6) + 0.5)
    # stored-side scoring with one stored neighbour per item: d's best neighbour
    # is a (2/sqrt(6)) and b's is a, so nothing of user 1 votes for d
    stored = ItemKNN(n_neighbors=1, **{k: v for k, v in kw.items() if k != "n_neighbors"}).fit(X)
    assert stored.predict([(1, "d")])[0] == 0
    # recommend (seen a, b excluded): d = 2/sqrt(6) + 1/2, c = cos(a,c) (b, c: 0)
    rec = two.recommend([1], n=2)
    assert rec.items[0].tolist() == ["d", "c"]
    np.testing.assert_allclose(rec.scores[0], [2 / np.sqrt(6) + 0.5, 1 / np.sqrt(6)])


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_history_neighbors_large_k_equals_stored_all(cls, feedback):
    # with k at least the number of references, the history-side selection
    # keeps everything: the stored-side scores of all stored neighbours
    rng = np.random.default_rng(16)
    mask = _binary(17) != 0
    X = np.argwhere(mask)
    y = rng.integers(1, 6, len(X)).astype(float) if feedback == "explicit" else None
    kw = dict(n_neighbors=None, feedback=feedback, dtype=np.float64, weighting=None)
    a = cls(**kw).fit(X, y)
    b = cls(n_history_neighbors=1000, **kw).fit(X, y)
    pairs = np.argwhere(np.ones(mask.shape))
    np.testing.assert_allclose(b.predict(pairs), a.predict(pairs), rtol=1e-10, atol=1e-12)
    ra = a.recommend(np.arange(mask.shape[0]), n=5)
    rb = b.recommend(np.arange(mask.shape[0]), n=5)
    np.testing.assert_allclose(rb.scores, ra.scores, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
def test_history_neighbors_none_is_unchanged(cls):
    # the default (None) is the stored-side scoring, and a smaller k changes it
    A = _random_csr(40, 30, 0.15, 18)
    X, y = _triples(A)
    pairs = np.argwhere(np.ones((40, 30)))
    a = cls(n_neighbors=5, n_jobs=1).fit(X, y)
    b = cls(n_neighbors=5, n_history_neighbors=None, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(a.predict(pairs), b.predict(pairs))
    np.testing.assert_array_equal(
        a.recommend(np.arange(40), n=5).items, b.recommend(np.arange(40), n=5).items
    )
    c = cls(n_neighbors=5, n_history_neighbors=2, n_jobs=1).fit(X, y)
    assert not np.allclose(a.predict(pairs), c.predict(pairs))


@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_history_neighbors_recommend_new(feedback):
    X = _blocks(4)
    rng = np.random.default_rng(19)
    y = rng.integers(1, 6, len(X)).astype(float) if feedback == "explicit" else None
    item = ItemKNN(n_neighbors=None, n_history_neighbors=3, feedback=feedback, n_jobs=2)
    item.fit(X, y)
    hist = X[:, 0] == 3
    new = np.column_stack([np.full(hist.sum(), 999), X[hist, 1]])
    a = item.recommend([3], n=5)
    b = item.recommend_new(new, None if y is None else y[hist], n=5)
    if feedback == "implicit":  # the same history, the same scores
        assert a.items.tolist() == b.items.tolist()
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    else:  # the new user's bias is refitted by one sweep: not the same scores
        assert np.isfinite(b.scores).all() and not set(b.items[0].tolist()) & set(X[hist, 1])
    # UserKNN: the new user's neighbours among the trained users, then the
    # k most similar of those who have each item
    user = UserKNN(n_neighbors=None, n_history_neighbors=2, shrinkage=0.0, dtype=np.float64)
    user.fit(X)
    rec = user.recommend_new(new, n=4, exclude_seen=False)
    Xd = user.user_items_.toarray().astype(np.float64)
    x = np.zeros(Xd.shape[1])
    x[X[hist, 1]] = 1
    sims = Xd @ x / (np.linalg.norm(Xd, axis=1) * np.linalg.norm(x))
    ref = np.array(
        [
            _ref_history(sims[Xd[:, i] != 0], np.ones(int((Xd[:, i] != 0).sum())), 2)[0]
            for i in range(Xd.shape[1])
        ]
    )
    np.testing.assert_allclose(rec.scores[0], np.sort(ref)[::-1][:4], rtol=1e-10)


def test_history_neighbors_validation_and_memory_guard(monkeypatch):
    X = _blocks(5)
    with pytest.raises(ValueError, match="n_history_neighbors"):
        ItemKNN(n_history_neighbors=0).fit(X)
    with pytest.raises(ValueError, match="pearson_baseline"):
        ItemKNN(similarity="pearson_baseline").fit(X)
    monkeypatch.setattr(_neighbors, "available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match="n_neighbors=None"):
        UserKNN(n_neighbors=None).fit(X)
    UserKNN(n_neighbors=5).fit(X)  # stored top-k: no all-pairs check


def test_all_neighbours_rows_are_sorted():
    # rows longer than the kernel's insertion-sort limit are sorted here
    A = _random_csr(400, 60, 0.2, 20)
    got = knn_similarities(A, A, None, exclude_self=True, dtype=np.float64)
    ref = _dense_topk(A, A, 400, 0.0, True, True)
    assert np.diff(got.indptr).max() > _neighbors._KERNEL_SORT_MAX
    np.testing.assert_allclose(got.toarray(), ref, rtol=1e-11, atol=1e-12)
    resorted = got.copy()
    resorted.has_sorted_indices = False
    resorted.sort_indices()
    np.testing.assert_array_equal(resorted.indices, got.indices)
    got_p = knn_similarities(A, A, None, exclude_self=True, dtype=np.float64, pearson=True)
    assert got_p.has_sorted_indices


@pytest.mark.parametrize("pearson", [False, True])
@pytest.mark.parametrize(
    "shape,density", [((60, 40), 0.15), ((300, 200), 0.01)], ids=["dense", "touched"]
)
def test_keep_all_path_equals_heap_path(pearson, shape, density):
    # k >= candidates appends every positive similarity without the heap:
    # bit-equal to the heap path keeping all but (at most) one
    A = _random_csr(*shape, density, 21)
    if pearson:
        A.data -= 1.7  # residual-like values of both signs
    kw = dict(exclude_self=True, dtype=np.float64, pearson=pearson, shrinkage=1.0)
    every = knn_similarities(A, A, None, **kw)
    heap = knn_similarities(A, A, shape[0] - 1, **kw)
    assert np.diff(heap.indptr).max() <= shape[0] - 1
    np.testing.assert_array_equal(every.indptr, heap.indptr)
    np.testing.assert_array_equal(every.indices, heap.indices)
    np.testing.assert_array_equal(every.data, heap.data)


@pytest.mark.parametrize("pearson", [False, True])
def test_keep_all_long_touched_rows_are_sorted(pearson):
    # rows reaching more than _KERNEL_SORT_MAX candidates through the touched
    # list: written by increasing index when every similarity is kept
    rng = np.random.default_rng(22)
    n, f = 3000, 4 if pearson else 10
    # pearson_baseline needs 2 common features: 2 of 4 per row (6 pairs)
    cols = np.array([rng.choice(f, 2, replace=False) for _ in range(n)]) if pearson else None
    cols = rng.integers(0, f, (n, 1)) if cols is None else cols
    rows = np.repeat(np.arange(n), cols.shape[1])
    vals = rng.uniform(0.5, 2, rows.size)
    A = sp.csr_matrix((vals, (rows, cols.ravel())), shape=(n, f))
    A.sum_duplicates()
    got = knn_similarities(A, A, None, exclude_self=True, dtype=np.float64, pearson=pearson)
    assert np.diff(got.indptr).max() > _neighbors._KERNEL_SORT_MAX
    assert got.has_sorted_indices
    for r in range(0, n, 97):
        assert (np.diff(got.indices[got.indptr[r] : got.indptr[r + 1]]) > 0).all()
    if not pearson:
        ref = _dense_topk(A, A, n, 0.0, True, True)
        np.testing.assert_allclose(got.toarray(), ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_history_neighbors_recommend_matches_predict(cls, feedback):
    # a stored top-n_neighbors pool (not symmetric): the batched recommend
    # (targets filled from the references' lists) and predict of pairs
    # (merge of one target's list with the references) give the same scores
    rng = np.random.default_rng(23)
    mask = _binary(24, n_users=50, n_items=35, density=0.25) != 0
    X = np.argwhere(mask)
    y = rng.integers(1, 6, len(X)).astype(float) if feedback == "explicit" else None
    model = cls(n_neighbors=6, n_history_neighbors=3, feedback=feedback, n_jobs=2)
    model.fit(X, y)
    pairs = np.argwhere(np.ones(mask.shape))
    full = model.predict(pairs).reshape(mask.shape)
    rec = model.recommend(np.arange(mask.shape[0]), n=5, exclude_seen=False)
    np.testing.assert_allclose(rec.scores, -np.sort(-full, axis=1)[:, :5], rtol=1e-5)
    sub = np.array([30, 2, 11])
    rec = model.recommend(np.arange(mask.shape[0]), n=3, items=sub, exclude_seen=False)
    np.testing.assert_allclose(rec.scores, -np.sort(-full[:, sub], axis=1), rtol=1e-5)


@pytest.mark.parametrize(
    "feedback,kw",
    [
        ("implicit", dict(shrinkage=0.0, weighting=None)),
        ("implicit", dict(shrinkage=5.0, weighting="bm25", dtype=np.float64)),
        ("implicit", dict(similarity="dot", weighting="tfidf")),
        ("explicit", dict(shrinkage=2.0)),
        ("explicit", dict(similarity="pearson_baseline", shrinkage=10.0, dtype=np.float64)),
    ],
)
@pytest.mark.parametrize("block_bytes", [2**26, 50_000])
def test_lazy_user_similarities_equal_stored(monkeypatch, feedback, kw, block_bytes):
    # UserKNN(n_neighbors=None, n_history_neighbors=k) stores no users x users
    # matrix: the similarities of the users scored are computed then, block by
    # block; n_neighbors >= n_users stores the same similarities at fit: the
    # results are bit-equal (same kernel, same rows)
    monkeypatch.setattr(_neighbors, "_LAZY_BLOCK_BYTES", block_bytes)  # 50_000: blocks of 20 users
    # a few heavy users (dense accumulator rows, > 256 neighbours) and many light
    M = sp.vstack([_random_csr(20, 120, 0.5, 1), _random_csr(300, 120, 0.03, 2)]).tocsr()
    X, y = _triples(M)
    y = np.round(y) if feedback == "explicit" else y
    lazy = UserKNN(n_neighbors=None, n_history_neighbors=4, feedback=feedback, n_jobs=2, **kw)
    lazy.fit(X, y)
    stored = UserKNN(n_neighbors=10**6, n_history_neighbors=4, feedback=feedback, n_jobs=2, **kw)
    stored.fit(X, y)
    n_users = len(lazy.users_)
    assert lazy._lazy and not stored._lazy
    assert not any(sp.issparse(v) and v.shape == (n_users, n_users) for v in vars(lazy).values())
    S = lazy.similarity_  # computed on access
    assert S.shape == (n_users, n_users) and S.has_sorted_indices
    assert (S != stored.similarity_).nnz == 0 and S.nnz == stored.similarity_.nnz
    assert S.diagonal().max() == 0
    if feedback == "implicit":  # rows longer than the kernel's sort limit
        assert np.diff(S.indptr).max() > 256
    users = lazy.users_[::-1]

    def same(a, b):
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=0)

    same(lazy.recommend(users, n=7), stored.recommend(users, n=7))
    same(
        lazy.recommend(users, n=5, exclude_seen=False),
        stored.recommend(users, n=5, exclude_seen=False),
    )
    some = lazy.items_[3:60:2]
    same(lazy.recommend(users[:40], n=4, items=some), stored.recommend(users[:40], n=4, items=some))
    same(lazy.similar_users(users[:30], n=6), stored.similar_users(users[:30], n=6))
    pairs = np.vstack([X[::3], [[10**6, X[0, 1]], [X[0, 0], 10**6]]])  # + unknown user, item
    np.testing.assert_array_equal(lazy.predict(pairs), stored.predict(pairs))
    hist = X[:, 0] == X[5, 0]
    new = np.column_stack([np.full(hist.sum(), -7), X[hist, 1]])
    y_new = None if y is None else y[hist]
    same(lazy.recommend_new(new, y_new, n=6), stored.recommend_new(new, y_new, n=6))
    # pickled: the vectors, not the similarities, and the same results
    back = joblib.load(_dump(lazy))
    assert back._lazy and back.__dict__["_similarity"] is None
    same(back.recommend(users, n=7), stored.recommend(users, n=7))
    np.testing.assert_array_equal(back.predict(pairs), stored.predict(pairs))


def _dump(model):
    import io

    buf = io.BytesIO()
    joblib.dump(model, buf)
    buf.seek(0)
    return buf


def test_lazy_only_for_all_user_neighbours_with_history_side():
    X = _blocks(5)
    assert UserKNN(n_neighbors=None, n_history_neighbors=2).fit(X)._lazy
    for kw in (dict(n_neighbors=None), dict(n_neighbors=5, n_history_neighbors=2)):
        assert not UserKNN(**kw).fit(X)._lazy
    # ItemKNN keeps the stored path (its neighbour lists are per item)
    assert not ItemKNN(n_neighbors=None, n_history_neighbors=2).fit(X)._lazy
    # a refit with other parameters drops the lazy state
    m = UserKNN(n_neighbors=None, n_history_neighbors=2).fit(X)
    m.set_params(n_neighbors=3).fit(X)
    assert not m._lazy and m._lazy_operands is None and m.similarity_.shape[0] == len(m.users_)
    with pytest.raises(AttributeError):
        assert UserKNN().similarity_ is None  # raises first


def test_integer_n_neighbors_keeping_every_pair_is_memory_checked(monkeypatch):
    X = _blocks(5)  # 40 users, 30 items
    monkeypatch.setattr(_neighbors, "available_memory", lambda: 1000)
    # an integer at least n - 1 keeps every similarity: the same check as None
    with pytest.raises(MemoryError, match=r"n_neighbors=40 keeps all 40 x 40 similarities"):
        UserKNN(n_neighbors=40).fit(X)
    with pytest.raises(MemoryError, match=r"n_neighbors=1000000000 keeps all 30 x 30"):
        ItemKNN(n_neighbors=10**9).fit(X)
    # a large top-k (above _CHECKED_BYTES) is checked too, a small one is not
    monkeypatch.setattr(_neighbors, "_CHECKED_BYTES", 100)
    with pytest.raises(MemoryError, match=r"n_neighbors=5 keeps 40 x 5 similarities"):
        UserKNN(n_neighbors=5).fit(X)
    monkeypatch.setattr(_neighbors, "available_memory", lambda: None)  # unknown: no check
    UserKNN(n_neighbors=40).fit(X)
    # the estimate is the kernel's buffers: 2 x n x k x (index + value bytes)
    assert _neighbors._KNNBase._check_all_pairs_memory(40, np.float32, 39) == 2 * 40 * 39 * 8


@pytest.mark.parametrize("cls", [ItemKNN, UserKNN])
@pytest.mark.parametrize("params", [{}, {"weighting": None}, {"n_history_neighbors": 3}])
def test_editing_user_items_after_fit_does_not_change_scores(cls, params):
    X = _blocks(3)
    model = cls(n_neighbors=10, n_jobs=1, **params).fit(X)
    users = np.arange(40)
    before = model.recommend(users, n=5, exclude_seen=False)
    pred = model.predict(X[:50])
    model.user_items_.data[:] = 7.0  # in place: the model has arrays of its own
    model.user_items_.indices[:] = 0
    after = model.recommend(users, n=5, exclude_seen=False)
    np.testing.assert_array_equal(before.items, after.items)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(pred, model.predict(X[:50]))
