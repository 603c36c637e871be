"""Per-coordinate Gibbs draws of the Bayesian FM (``sampler="coordinate"`` and
``"mixed"``): the kernels against a brute-force NumPy sweep on a materialised
design matrix, the scalar conditional's moments, thread counts, accuracy."""

import numpy as np
import pytest
import scipy.sparse as sp
from test_fm_blocks import _predict_full, _toy, _toy_state
from test_fm_mcmc import _reference_sweep

from sklearn_mf import FactorizationMachineRegressor, FMRecommender
from sklearn_mf._fm import _fm_fast, _mcmc, _mcmc_fast
from sklearn_mf._fm._blocks import _block_seed
from sklearn_mf._fm._estimators import _as_csr, _csc_parts
from sklearn_mf._fm._mcmc import coordinate_draws
from sklearn_mf.datasets import make_ratings


def _fm(X, w0, w, V):
    Q = X @ V
    return w0 + X @ w + 0.5 * ((Q * Q).sum(1) - (X * X) @ (V * V).sum(1))


def _scalar_conditional(X, y, s, w0, w, V, alpha, index, lam, mu):
    """Precision and mean of one parameter's conditional, by brute force: the
    prediction is affine in the parameter, so two evaluations give it."""
    w, V = w.copy(), V.copy()

    def at(value):
        if index[0] == "w0":
            return _fm(X, value, w, V)
        if index[0] == "w":
            w[index[1]] = value
        else:
            V[index[1], index[2]] = value
        return _fm(X, w0, w, V)

    c = at(0.0)
    h = at(1.0) - c
    prec = alpha * (s * h * h).sum() + lam
    return prec, (alpha * (s * h * (y - c)).sum() + lam * mu) / prec


def _reference_coordinate_sweep(X, y, s, w0, w, V, alpha, steps, columns_too):
    """The sweep, one brute-force scalar draw after the other.  ``steps``: for
    coordinate a (0: w, 1 + f: v_f), the ``(column, group prior (lam, mu),
    seed, counter)`` of every draw in the kernels' order."""
    w, V = w.copy(), V.copy()
    if columns_too:
        prec, mean = _scalar_conditional(X, y, s, w0, w, V, alpha, ("w0",), 0.0, 0.0)
        w0 = mean + _mcmc_fast.std_normal_draws(steps[0][0][2], 0, 1)[0] / np.sqrt(prec)
    for a, draws in enumerate(steps):
        for j, (lam, mu), seed, counter in draws:
            index = ("w", j) if a == 0 else ("v", j, a - 1)
            prec, mean = _scalar_conditional(X, y, s, w0, w, V, alpha, index, lam[a], mu[a])
            z = _mcmc_fast.std_normal_draws(seed, counter, 1)[0]
            if a == 0:
                w[j] = mean + z / np.sqrt(prec)
            else:
                V[j, a - 1] = mean + z / np.sqrt(prec)
    return w0, w, V


def test_scalar_draw_follows_the_brute_force_conditional():
    # one coordinate drawn many times (fresh seeds) from the same state: the
    # sample mean and variance match the brute-force conditional
    rng, u, i, X, y = _toy(seed=3, k=2)
    Xc = _as_csr(X, np.float64)
    data, rows, ptr = _csc_parts(Xc)
    n, d = X.shape
    w = rng.normal(0, 0.3, d)
    V = rng.normal(0, 0.3, (d, 2))
    lam, mu = np.array([[2.0, 1.5, 3.0]]), np.array([[0.1, -0.2, 0.3]])
    j = int(np.argmax(np.diff(ptr)))
    prec, mean = _scalar_conditional(
        X.toarray(), y, np.ones(n), 0.4, w, V, 1.7, ("v", j, 1), 3.0, 0.3
    )
    pred = np.empty(n)
    q = np.zeros((n, 2))
    _fm_fast.predict_cache(Xc.data, Xc.indices, Xc.indptr, 0.4, w, V, pred, q, 1, rows_major=True)
    only_j = np.array([j], dtype=np.intp)
    draws = []
    for seed in range(4000):
        Vs, e, qf = V.copy(), y - pred, np.ascontiguousarray(q[:, 1])
        _mcmc_fast.coordinate_pass(
            data, rows, ptr, np.zeros(0), e, qf, Vs[:, 1], only_j, np.array([0, 1]),
            np.zeros(d, dtype=np.intp), lam, mu, 2, 2, 1.7, seed, 1,
        )  # fmt: skip
        draws.append(Vs[j, 1])
        if seed == 0:  # the caches followed the draw
            np.testing.assert_allclose(y - e, _predict_full(X, 0.4, w, Vs), atol=1e-12)
            np.testing.assert_allclose(qf, Xc @ Vs[:, 1], atol=1e-12)
    draws = np.array(draws)
    se = 1 / np.sqrt(prec * len(draws))
    assert abs(draws.mean() - mean) < 4 * se
    assert abs(draws.var() * prec - 1) < 0.1


@pytest.mark.parametrize("columns_too", [True, False], ids=["coordinate", "mixed"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("which", ["none", "user", "both"])
@pytest.mark.parametrize("shape", ["square", "tall", "tall-sorted"])
def test_coordinate_sweep_matches_brute_force_reference(
    columns_too, weighted, n_threads, which, shape
):
    # "tall": 4 users with 27-28 ratings each, so that the user block's sums
    # are added over several row segments (walk_parts > 1); "tall-sorted":
    # the rows sorted by user, so that the user block's walks sum runs
    k = 3
    sides = {"none": [], "user": ["user"], "both": ["user", "item"]}[which]
    size = {
        "square": {},
        "tall": dict(n_users=4, n_items=30, n=110),
        "tall-sorted": dict(n_users=4, n_items=30, n=110, sorted_rows=True),
    }[shape]
    t_ = _toy_state(sides, weighted, n_threads, k, **size)
    if shape != "square":
        assert _mcmc_fast.walk_parts(t_.n, 4) == 3
    X, y, n, d, blocks, s = t_.X, t_.y, t_.n, t_.d, t_.blocks, t_.s
    data, rows, ptr, columns, class_ptr = t_.data, t_.rows, t_.ptr, t_.columns, t_.class_ptr
    w0, w, V, sampler, lam, mu = t_.w0, t_.w, t_.V, t_.sampler, t_.lam, t_.mu
    Xc = t_.Xc
    Xfull = sp.hstack([X] + [B[row_of] for row_of, B in blocks], format="csr")
    w_full = np.concatenate([w] + [b["w"] for b in sampler.blocks])
    V_full = np.vstack([V] + [b["V"] for b in sampler.blocks])
    seed, alpha, m = 4242, 1.3, k + 1
    ref_w0 = float(w0[0])
    if not columns_too:  # "mixed": the joint draws of the columns come first
        ref_w0, w_full, V_full = _reference_sweep(
            Xfull, y, s, ref_w0, w_full, V_full, columns, class_ptr, alpha, 0.0,
            np.zeros(len(w_full), dtype=np.intp), lam[:1], mu[:1], seed,
        )  # fmt: skip
    steps = []
    for a in range(m):
        draws = []
        if columns_too:
            draws += [(j, (lam[0], mu[0]), seed, 1 + j * m + a) for j in columns]
        offset = d
        for t, b in enumerate(sampler.blocks):
            draws += [
                (offset + j, (lam[1 + t], mu[1 + t]), _block_seed(seed, t), 1 + j * m + a)
                for j in b["columns"]
            ]
            offset += len(b["w"])
        steps.append(draws)
    ref = _reference_coordinate_sweep(
        Xfull.toarray(), y, s, ref_w0, w_full, V_full, alpha, steps, columns_too
    )
    # the kernels
    pred = np.empty(n)
    q = np.zeros((n, k))
    _fm_fast.predict_cache(
        Xc.data, Xc.indices, Xc.indptr, float(w0[0]), w, V, pred, q, 1, rows_major=True
    )
    sampler.add_to_caches(pred, q)
    sw = s if weighted else np.zeros(0)
    group = np.zeros(d, dtype=np.intp)
    if not columns_too:
        caches = (pred, q, columns, class_ptr, alpha, 0.0, group, lam[:1], mu[:1], True)
        joint = _mcmc_fast.gibbs_sweep(data, rows, ptr, y, sw, w0, w, V, *caches, seed, n_threads)
        assert joint == 0
    n_bad = coordinate_draws(
        (data, rows, ptr), y, sw, w0, w, V, pred, q, columns, class_ptr, group, lam[:1],
        mu[:1], alpha, seed, n_threads, sampler if blocks else None,
        columns_too=columns_too, fit_intercept=True,
    )  # fmt: skip
    assert n_bad == 0
    got_w = np.concatenate([w] + [b["w"] for b in sampler.blocks])
    got_V = np.vstack([V] + [b["V"] for b in sampler.blocks])
    np.testing.assert_allclose(w0[0], ref[0], rtol=1e-10)
    np.testing.assert_allclose(got_w, ref[1], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got_V, ref[2], rtol=1e-9, atol=1e-11)
    # the caches and the per-block-row terms followed
    np.testing.assert_allclose(pred, _predict_full(Xfull, w0[0], got_w, got_V), atol=1e-10)
    np.testing.assert_allclose(q, Xfull.toarray() @ got_V, atol=1e-10)
    for (_row_of, B), b in zip(blocks, sampler.blocks):
        np.testing.assert_allclose(b["s"], B @ b["V"], atol=1e-10)
        s_, T_ = np.zeros_like(b["s"]), np.zeros_like(b["T"])
        _mcmc_fast.block_state(*b["csr"], b["w"], b["V"], s_, T_, 1)
        np.testing.assert_allclose(b["T"], T_, atol=1e-10)


def _mixed_block_draws(which, weighted, n_threads, fused, k=3, size=None):
    """The toy state after the joint column draws and then the blocks'
    coordinate draws of one "mixed" sweep, by the per-step path
    (``coordinate_draws``) or the fused kernel."""
    sides = {"user": ["user"], "both": ["user", "item"]}[which]
    t_ = _toy_state(sides, weighted, n_threads, k, **(size or {}))
    w0, w, V, sampler, lam, mu = t_.w0, t_.w, t_.V, t_.sampler, t_.lam, t_.mu
    pred = np.empty(t_.n)
    q = np.zeros((t_.n, k))
    _fm_fast.predict_cache(
        t_.Xc.data, t_.Xc.indices, t_.Xc.indptr, float(w0[0]), w, V, pred, q, 1, rows_major=True
    )
    sampler.add_to_caches(pred, q)
    sw = t_.s if weighted else np.zeros(0)
    group = np.zeros(t_.d, dtype=np.intp)
    seed, alpha = 4242, 1.3
    out = []
    for sweep in range(3):  # the fused kernel's buffers are reused across sweeps
        _mcmc_fast.gibbs_sweep(
            t_.data, t_.rows, t_.ptr, t_.y, sw, w0, w, V, pred, q, t_.columns, t_.class_ptr,
            alpha, 0.0, group, lam[:1], mu[:1], True, seed + sweep, n_threads,
        )  # fmt: skip
        if fused:
            n_bad = sampler.fused_coordinate_sweep(t_.y, sw, pred, q, alpha, seed + sweep)
        else:
            n_bad = coordinate_draws(
                (t_.data, t_.rows, t_.ptr), t_.y, sw, w0, w, V, pred, q, t_.columns,
                t_.class_ptr, group, lam[:1], mu[:1], alpha, seed + sweep, n_threads, sampler,
                columns_too=False, fit_intercept=True,
            )  # fmt: skip
        assert n_bad == 0
    out = [w0, w, V, pred, q]
    for b in sampler.blocks:
        out += [b["w"], b["V"], b["s"], b["T"]]
    return out


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("which", ["user", "both"])
@pytest.mark.parametrize("shape", ["square", "tall", "tall-sorted"])
def test_fused_block_draws_equal_the_per_step_draws_bit_for_bit(which, weighted, n_threads, shape):
    # the per-step path is the one checked against the brute-force reference
    # above; the fused kernel must give the same parameters, caches and
    # per-block-row terms, bit for bit, on any number of threads
    size = {
        "square": None,
        "tall": dict(n_users=4, n_items=30, n=110),
        "tall-sorted": dict(n_users=4, n_items=30, n=110, sorted_rows=True),
    }[shape]
    ref = _mixed_block_draws(which, weighted, 1, fused=False, size=size)
    got = _mixed_block_draws(which, weighted, n_threads, fused=True, size=size)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("implicit", ["user", "both"])
def test_mixed_fits_are_bit_equal_with_and_without_the_fused_kernel(implicit, monkeypatch):
    # float32 (the default), weights, 1 and 2 threads: the fitted models of
    # the fused block sweep and of the per-step path are identical
    X, y = make_ratings(n_users=300, n_items=80, n_ratings=6000, random_state=2)
    X = np.asarray(X)[:, :2]
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    kw = dict(solver="mcmc", max_iter=6, implicit_features=implicit, random_state=0)
    fits = {}
    for fused in (False, True):
        monkeypatch.setattr(_mcmc, "_FUSED_MIXED", fused)
        for n_jobs in (1, 2):
            for weights in (None, sw):
                m = FMRecommender(4, n_jobs=n_jobs, **kw).fit(X, y, sample_weight=weights)
                fits[fused, n_jobs, weights is None] = m.predict(X[:200])
    for key, pred in fits.items():
        np.testing.assert_array_equal(pred, fits[(False, 1, key[2])], err_msg=str(key))


@pytest.mark.parametrize("sampler", ["coordinate", "mixed"])
def test_coordinate_samplers_are_reproducible_across_thread_counts(sampler):
    # long columns (> 8192 rows: items, > 4096 block rows) take the split paths
    X, y = make_ratings(n_users=6000, n_items=30, n_ratings=40_000, random_state=1)
    X = np.asarray(X)[:, :2]
    kw = dict(solver="mcmc", max_iter=4, implicit_features="both", random_state=0, sampler=sampler)
    a = FMRecommender(3, n_jobs=1, **kw).fit(X, y)
    b = FMRecommender(3, n_jobs=2, **kw).fit(X, y)
    np.testing.assert_array_equal(a.user_embeddings_, b.user_embeddings_)
    np.testing.assert_array_equal(a.item_offsets_, b.item_offsets_)
    np.testing.assert_array_equal(a.predict(X[:50]), b.predict(X[:50]))


def test_samplers_agree_on_a_planted_fm(planted_fm):
    # three ways to sample one posterior: the posterior means agree with each
    # other and recover the planted model far better than the mean does
    X, y = planted_fm(n=3000, d=40, k=3, density=0.15)
    Xtr, Xte, ytr, yte = X[:2400], X[2400:], y[:2400], y[2400:]
    preds = {}
    for sampler in ("blocked", "coordinate", "mixed"):
        fm = FactorizationMachineRegressor(
            3, solver="mcmc", max_iter=150, sampler=sampler, random_state=0, dtype=np.float64
        ).fit(Xtr, ytr)
        preds[sampler] = fm.predict(Xte)
    base = np.sqrt(np.mean((yte - ytr.mean()) ** 2))
    for sampler, p in preds.items():
        assert np.sqrt(np.mean((p - yte) ** 2)) < 0.5 * base, sampler
    # "mixed" without blocks is "blocked", draw for draw
    np.testing.assert_array_equal(preds["mixed"], preds["blocked"])
    assert np.sqrt(np.mean((preds["coordinate"] - preds["blocked"]) ** 2)) < 0.15 * base


def test_sampler_is_checked():
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=300, random_state=0)
    with pytest.raises(ValueError, match="sampler"):
        FMRecommender(solver="mcmc", sampler="gibbs").fit(np.asarray(X)[:, :2], y)


@pytest.mark.slow
def test_bayesian_svdpp_meets_the_ml100k_bound_on_five_folds(ml100k):
    # the protocol of benchmarks/accuracy_ml100k.py, default sampler
    from sklearn.model_selection import KFold, cross_val_score

    X, y = ml100k.X.to_numpy()[:, :2], ml100k.y.to_numpy()
    model = FMRecommender(
        10, solver="mcmc", max_iter=200, implicit_features="both", random_state=0, n_jobs=2
    )
    cv = KFold(5, shuffle=True, random_state=0)
    rmse = -cross_val_score(model, X, y, cv=cv, scoring="neg_root_mean_squared_error")
    assert rmse.mean() <= 0.885
    assert rmse.max() < 0.895
