"""Relational blocks of the Bayesian FM (Bayesian SVD++ and its flipped form):
the kernel against a sweep over the materialised design matrix, and
``FMRecommender(solver="mcmc", implicit_features=...)``."""

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from test_fm_mcmc import _reference_sweep

from sklearn_mf._fm import _fm_fast, _mcmc_fast
from sklearn_mf._fm._blocks import BlockSampler
from sklearn_mf._fm._estimators import _as_csr, _csc_parts
from sklearn_mf._fm._mcmc import column_classes


def _implicit(codes, others, n_codes, n_others):
    """The 1/sqrt|N(u)| block of who-rated-what, by hand."""
    M = np.zeros((n_codes, n_others))
    M[codes, others] = 1.0
    norm = M.sum(axis=1, keepdims=True)
    return sp.csr_matrix(np.divide(M, np.sqrt(norm), out=np.zeros_like(M), where=norm > 0))


def _toy(seed=0, n_users=12, n_items=9, n=70, k=3, sorted_rows=False):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)
    if sorted_rows:  # by user (the sampler's own order: runs of one user's rows)
        pairs = np.sort(pairs)
    u, i = pairs // n_items, pairs % n_items
    X = sp.hstack(
        [
            sp.csr_matrix((np.ones(n), (np.arange(n), u)), shape=(n, n_users)),
            sp.csr_matrix((np.ones(n), (np.arange(n), i)), shape=(n, n_items)),
        ],
        format="csr",
    )
    y = rng.normal(0, 1, n)
    return rng, u, i, X, y


def _toy_state(sides, weighted, n_threads, k=3, n_users=12, n_items=9, n=70, sorted_rows=False):
    """The toy ratings with the implicit blocks of ``sides`` ("user",
    "item"), random parameters and priors (group 0: the columns, 1 + t:
    block t), and a :class:`BlockSampler` of the blocks."""
    rng, u, i, X, y = _toy(k=k, n_users=n_users, n_items=n_items, n=n, sorted_rows=sorted_rows)
    n, d = X.shape
    codes = {"user": (u, i, n_users, n_items), "item": (i, u, n_items, n_users)}
    blocks = [(codes[side][0], _implicit(*codes[side])) for side in sides]
    s = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    Xc = _as_csr(X, np.float64)
    data, rows, ptr = _csc_parts(Xc)
    columns, class_ptr = column_classes(data, rows, ptr, n)
    w0 = np.array([0.1])
    w = rng.normal(0, 0.3, d)
    V = rng.normal(0, 0.3, (d, k))
    sampler = BlockSampler(blocks, n, k, np.float64, 0.3, np.random.default_rng(5), n_threads)
    lam = rng.uniform(1, 3, (1 + len(blocks), k + 1))
    mu = rng.normal(0, 0.1, (1 + len(blocks), k + 1))
    for t, b in enumerate(sampler.blocks):
        b["w"][:] = rng.normal(0, 0.3, len(b["w"]))
        b["lam"], b["mu"] = lam[1 + t], mu[1 + t]
    return SimpleNamespace(**locals())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("which", ["user", "both"])
def test_sweep_with_blocks_matches_reference_on_materialised_matrix(weighted, n_threads, which):
    k = 3
    t_ = _toy_state(["user"] if which == "user" else ["user", "item"], weighted, n_threads, k)
    X, y, n, d, blocks, s = t_.X, t_.y, t_.n, t_.d, t_.blocks, t_.s
    Xc, data, rows, ptr = t_.Xc, t_.data, t_.rows, t_.ptr
    columns, class_ptr = t_.columns, t_.class_ptr
    w0, w, V, sampler, lam, mu = t_.w0, t_.w, t_.V, t_.sampler, t_.lam, t_.mu
    # the reference: every block materialised as columns of one matrix
    Xfull = sp.hstack([X] + [B[row_of] for row_of, B in blocks], format="csr")
    w_full = np.concatenate([w] + [b["w"] for b in sampler.blocks])
    V_full = np.vstack([V] + [b["V"] for b in sampler.blocks])
    group = np.concatenate(
        [np.zeros(d, dtype=np.intp)]
        + [np.full(B.shape[1], 1 + t, dtype=np.intp) for t, (_, B) in enumerate(blocks)]
    )
    seed = 4242
    # after the plain columns, each block's columns in order, with the block's
    # own stream of normal draws (counter j (k + 1) for its column j)
    extra, offset = [], d
    for t, (b, (_, B)) in enumerate(zip(sampler.blocks, blocks)):
        bseed = (seed ^ (0xA24BAED4963EE407 * (t + 1))) % 2**64
        extra += [(offset + j, bseed, j * (k + 1)) for j in b["columns"]]
        offset += B.shape[1]
    ref_w0, ref_w, ref_V = _reference_sweep(
        Xfull,
        y,
        s if weighted else None,
        float(w0[0]),
        w_full,
        V_full,
        columns,
        class_ptr,
        1.3,
        0.5,
        group,
        lam,
        mu,
        seed,
        extra,
    )
    # the kernel: plain sweep, then the blocks through their per-row sums
    pred = np.empty(n)
    q = np.zeros((n, k))
    _fm_fast.predict_cache(
        Xc.data, Xc.indices, Xc.indptr, float(w0[0]), w, V, pred, q, 1, rows_major=True
    )
    sampler.add_to_caches(pred, q)
    np.testing.assert_allclose(pred, _predict_full(Xfull, float(w0[0]), w_full, V_full))
    sw = s if weighted else np.zeros(0)
    assert (
        _mcmc_fast.gibbs_sweep(
            data,
            rows,
            ptr,
            y,
            sw,
            w0,
            w,
            V,
            pred,
            q,
            columns,
            class_ptr,
            1.3,
            0.5,
            np.zeros(d, dtype=np.intp),
            lam[:1],
            mu[:1],
            True,
            seed,
            n_threads,
        )
        == 0
    )
    assert sampler.sweep(y, sw, pred, q, 1.3, seed) == 0
    np.testing.assert_allclose(w0[0], ref_w0, rtol=1e-10)
    got_w = np.concatenate([w] + [b["w"] for b in sampler.blocks])
    got_V = np.vstack([V] + [b["V"] for b in sampler.blocks])
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got_V, ref_V, rtol=1e-9, atol=1e-11)
    # the caches and the per-user terms were kept up to date
    np.testing.assert_allclose(pred, _predict_full(Xfull, w0[0], got_w, got_V), atol=1e-10)
    np.testing.assert_allclose(q, Xfull.toarray() @ got_V, atol=1e-10)
    for (_row_of, B), b in zip(blocks, sampler.blocks):
        np.testing.assert_allclose(b["s"], B @ b["V"], atol=1e-10)


def _predict_full(X, w0, w, V):
    X = X.toarray()
    Q = X @ V
    return w0 + X @ w + 0.5 * ((Q * Q).sum(1) - (X * X) @ (V * V).sum(1))


# ----------------------------------------------------------- FMRecommender
from sklearn.model_selection import train_test_split  # noqa: E402

from sklearn_mf import FMRecommender  # noqa: E402
from sklearn_mf.datasets import make_ratings  # noqa: E402


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(scope="module")
def small_ratings():
    X, y = make_ratings(n_users=150, n_items=80, n_ratings=3000, random_state=0)
    return train_test_split(
        np.asarray(X)[:, :2], np.asarray(y, float), test_size=0.2, random_state=0
    )


def test_implicit_sets_come_from_training_rows_only(small_ratings):
    Xtr, Xte, ytr, yte = small_ratings
    rec = FMRecommender(
        4, solver="mcmc", max_iter=15, implicit_features="both", random_state=0
    ).fit(Xtr, ytr)
    Bu, Bi = rec._implicit["user"][0], rec._implicit["item"][0]
    # exactly the training pairs, weighted 1/sqrt|N(u)|
    np.testing.assert_array_equal((Bu.toarray() > 0), rec.user_items_.toarray() > 0)
    seen = rec.user_items_.toarray() > 0
    np.testing.assert_allclose(Bu.sum(axis=1).A1 ** 2, seen.sum(1), rtol=1e-5)
    np.testing.assert_array_equal(Bi.toarray() > 0, seen.T)
    np.testing.assert_allclose(Bi.sum(axis=1).A1 ** 2, seen.sum(0), rtol=1e-5)
    # a held-out item never enters its user's set
    train_pairs = set(zip(Xtr[:, 0].tolist(), Xtr[:, 1].tolist()))
    held = [
        (a, b) for a, b in zip(Xte[:, 0].tolist(), Xte[:, 1].tolist()) if (a, b) not in train_pairs
    ]
    assert len(held) > 100
    hu, hi = (
        rec._user_codes(np.array([a for a, _ in held])),
        rec._item_codes(np.array([b for _, b in held])),
    )
    ok = (hu >= 0) & (hi >= 0)
    assert np.all(Bu[hu[ok], hi[ok]].A1 == 0) and np.all(Bi[hi[ok], hu[ok]].A1 == 0)
    # a row's prediction does not depend on the rows passed with it
    full = rec.predict(Xte)
    np.testing.assert_allclose(
        [rec.predict(Xte[j : j + 1])[0] for j in range(0, 600, 7)], full[0:600:7], rtol=1e-12
    )
    np.testing.assert_allclose(rec.predict(Xte[::-1]), full[::-1], rtol=1e-12)


def test_implicit_model_is_reproducible_across_thread_counts():
    # popular items hold more than 4096 users: the split accumulation is used
    X, y = make_ratings(n_users=6000, n_items=30, n_ratings=40_000, random_state=1)
    X = np.asarray(X)[:, :2]
    kw = dict(solver="mcmc", max_iter=4, implicit_features="both", random_state=0, dtype=np.float64)
    a = FMRecommender(3, n_jobs=1, **kw).fit(X, y)
    b = FMRecommender(3, n_jobs=2, **kw).fit(X, y)
    assert np.diff(a._implicit["user"][0].tocsc().indptr).max() > 4096
    np.testing.assert_array_equal(a.user_embeddings_, b.user_embeddings_)
    np.testing.assert_array_equal(a.item_offsets_, b.item_offsets_)


def test_implicit_terms_are_user_features_of_the_decomposition(small_ratings):
    Xtr, Xte, ytr, _ = small_ratings
    rec = FMRecommender(
        3,
        solver="mcmc",
        max_iter=12,
        implicit_features="user",
        random_state=0,
        clip_predictions=False,
    ).fit(Xtr, ytr)
    B, wb, Vb = rec._implicit["user"]
    fm = rec.fm_
    n_ids = rec._n_user_id_cols
    # p_u = v_u + sum_j b_uj y_j; the FM on the materialised row equals predict
    u, i = rec._user_codes(Xte[:50, 0]), rec._item_codes(Xte[:50, 1])
    keep = (u >= 0) & (i >= 0)
    design = sp.hstack([rec.design_matrix(Xte[:50]), B[np.where(u >= 0, u, 0)]], format="csr")[keep]
    w = np.concatenate([fm.w_, wb])
    V = np.vstack([fm.V_, Vb])
    ref = _predict_full(design, fm.intercept_, w, V)
    np.testing.assert_allclose(rec.predict(Xte[:50])[keep], ref, rtol=1e-5)
    assert n_ids == len(np.unique(u[u >= 0])) or n_ids > 0


def test_fold_in_uses_the_history_as_implicit_set(small_ratings):
    Xtr, _, ytr, _ = small_ratings
    rec = FMRecommender(
        3, solver="mcmc", max_iter=12, implicit_features="user", random_state=0, dtype=np.float64
    ).fit(Xtr, ytr)
    items = rec.items_[[0, 3, 5, 8]]
    ratings = np.array([5.0, 1.0, 4.0, 2.0])
    new = np.column_stack([np.full(4, "new"), items]).astype(object)
    new[:, 1] = items
    got = rec.fold_in(new, ratings)
    # by hand: s, T of the set; ridge of the rest towards the average user
    B, wb, Vb = rec._implicit["user"]
    codes = rec._item_codes(items)
    b = np.zeros(Vb.shape[0])
    b[codes] = 0.5
    s = b @ Vb
    T = b @ wb + 0.5 * (s @ s - (b * b) @ (Vb * Vb).sum(1))
    Q = rec.item_embeddings_[codes]
    off = rec.item_offsets_[codes] + rec.intercept_
    v_mean, lam_v, w_mean, lam_w = rec._fold_in_prior
    t = ratings - off - T - Q @ s - w_mean - Q @ v_mean
    H = np.column_stack([np.ones(4), Q])
    A = H.T @ H + np.diag([lam_w] + [lam_v] * Q.shape[1])
    sol = np.linalg.solve(A, H.T @ t)
    np.testing.assert_allclose(got.user_bias[0], sol[0] + w_mean + T, rtol=1e-6)
    np.testing.assert_allclose(got.user_factors[0], sol[1:] + v_mean + s, rtol=1e-6, atol=1e-9)
    # recommend_new ranks with that user
    recs = rec.recommend_new(new, ratings, n=5, exclude_seen=False)
    scores = rec.item_embeddings_ @ got.user_factors[0] + rec.item_offsets_ + got.user_bias[0]
    np.testing.assert_allclose(
        recs.scores[0], np.sort(scores)[::-1][:5] + rec.intercept_, rtol=1e-6
    )


def test_time_bins_learn_a_drifting_item_bias():
    rng = np.random.default_rng(0)
    X, y = make_ratings(
        n_users=400, n_items=80, n_ratings=12_000, random_state=2, round_ratings=False, noise=0.3
    )
    X = np.asarray(X, dtype=np.float64)[:, :2]
    t = rng.uniform(0, 1000, len(y))
    # the first 20 items gain two stars in the second half of time
    y = np.asarray(y) + np.where((X[:, 1] < 20) & (t > 500), 2.0, 0.0)
    Xt = np.column_stack([X, t])
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0)
    kw = dict(solver="mcmc", max_iter=40, random_state=0, clip_predictions=False)
    plain = FMRecommender(4, **kw).fit(Xt[tr], y[tr])
    timed = FMRecommender(4, time_bins=4, **kw).fit(Xt[tr], y[tr])
    e_plain = _rmse(plain.predict(Xt[te]), y[te])
    e_timed = _rmse(timed.predict(Xt[te]), y[te])
    assert e_timed < e_plain - 0.05, (e_timed, e_plain)
    # predictions follow the row's time; recommend ranks at the last bin
    hot = Xt[tr][Xt[tr][:, 1] < 20][:1]
    hot_late, hot_early = hot.copy(), hot.copy()
    hot_late[0, 2], hot_early[0, 2] = 900.0, 100.0
    assert timed.predict(hot_late)[0] - timed.predict(hot_early)[0] > 0.5
    user = hot[0, 0]
    items, sc = timed.recommend([user], n=80, exclude_seen=False)
    got = dict(zip(items[0].tolist(), sc[0].tolist()))
    probe = np.column_stack([np.full(80, user), timed.items_, np.full(80, 999.0)])
    np.testing.assert_allclose(
        [got[it] for it in timed.items_.tolist()], timed.predict(probe), rtol=1e-5
    )


def test_implicit_and_time_parameters_are_checked(small_ratings):
    Xtr, _, ytr, _ = small_ratings
    with pytest.raises(ValueError, match="implicit_features='user' needs solver='mcmc'"):
        FMRecommender(implicit_features="user").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="time_bins=3 needs solver='mcmc'"):
        FMRecommender(time_bins=3, solver="sgd").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="early_stopping"):
        FMRecommender(solver="mcmc", implicit_features="item", early_stopping=True).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="timestamp"):
        FMRecommender(solver="mcmc", time_bins=3).fit(Xtr, ytr)
