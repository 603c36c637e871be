"""Relational blocks of the Bayesian FM (Bayesian SVD++ and its flipped form):
the kernel against a sweep over the materialised design matrix, and
``FMRecommender(solver="mcmc", implicit_features=...)``."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import cholesky, solve_triangular

from sklearn_mf._fm import _fm_fast, _mcmc_fast
from sklearn_mf._fm._blocks import BlockSampler
from sklearn_mf._fm._estimators import _as_csr, _csc_parts
from sklearn_mf._fm._mcmc import column_classes
from sklearn_mf._fm._mcmc import sample_prior


def _implicit(codes, others, n_codes, n_others):
    """The 1/sqrt|N(u)| block of who-rated-what, by hand."""
    M = np.zeros((n_codes, n_others))
    M[codes, others] = 1.0
    norm = M.sum(axis=1, keepdims=True)
    return sp.csr_matrix(np.divide(M, np.sqrt(norm), out=np.zeros_like(M), where=norm > 0))


def _toy(seed=0, n_users=12, n_items=9, n=70, k=3):
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_items, n, replace=False)
    u, i = pairs // n_items, pairs % n_items
    X = sp.hstack([sp.csr_matrix((np.ones(n), (np.arange(n), u)), shape=(n, n_users)),
                   sp.csr_matrix((np.ones(n), (np.arange(n), i)), shape=(n, n_items))],
                  format="csr")
    y = rng.normal(0, 1, n)
    return rng, u, i, X, y


def _conditional_draw(H, s, y_minus_rest, alpha, lam, mu, z):
    """theta ~ N(A^-1 b, A^-1) with the draw's normals z, by SciPy."""
    A = alpha * (H.T * s) @ H + np.diag(lam)
    b = alpha * H.T @ (s * y_minus_rest) + lam * mu
    L = cholesky(A, lower=True)
    return solve_triangular(L.T, solve_triangular(L, b, lower=True) + z, lower=False)


def _reference(Xfull, y, s, w0, w, V, plain_order, block_cols, alpha, lam0, group, lam, mu,
               seed, block_seeds):
    """The sweep over the materialised matrix [X | B_1[row_of_1] | ...]: the
    intercept, the plain columns in colour order, then each block's columns."""
    X = Xfull.toarray()
    k = V.shape[1]
    m = k + 1
    w, V = w.copy(), V.copy()

    def predict():
        Q = X @ V
        return w0 + X @ w + 0.5 * ((Q * Q).sum(1) - (X * X) @ (V * V).sum(1))

    p = predict()
    prec = alpha * s.sum() + lam0
    w0 = (alpha * (s * (y - p + w0)).sum() / prec
          + _mcmc_fast.std_normal_draws(seed, 0, 1)[0] / np.sqrt(prec))
    steps = [(j, _mcmc_fast.std_normal_draws(seed, 1 + j * m, m)) for j in plain_order]
    for offset, cols, bseed in block_cols:
        steps += [(offset + j, _mcmc_fast.std_normal_draws(bseed, j * m, m)) for j in cols]
    for j, z in steps:
        p = predict()
        Q = X @ V
        rows = np.flatnonzero(X[:, j])
        x = X[rows, j]
        H = np.column_stack([x, x[:, None] * (Q[rows] - x[:, None] * V[j])])
        theta = np.concatenate([[w[j]], V[j]])
        g = group[j]
        new = _conditional_draw(H, s[rows], y[rows] - p[rows] + H @ theta, alpha, lam[g],
                                mu[g], z)
        w[j], V[j] = new[0], new[1:]
    return w0, w, V


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("which", ["user", "both"])
def test_sweep_with_blocks_matches_reference_on_materialised_matrix(weighted, n_threads,
                                                                   which):
    k = 3
    rng, u, i, X, y = _toy(k=k)
    n, d = X.shape
    n_users, n_items = 12, 9
    blocks = [(u, _implicit(u, i, n_users, n_items))]
    if which == "both":
        blocks.append((i, _implicit(i, u, n_items, n_users)))
    s = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    Xc = _as_csr(X, np.float64)
    data, rows, ptr = _csc_parts(Xc)
    columns, class_ptr = column_classes(data, rows, ptr, n)
    w0 = np.array([0.1])
    w = rng.normal(0, 0.3, d)
    V = rng.normal(0, 0.3, (d, k))
    sampler = BlockSampler(blocks, n, k, np.float64, 0.3, np.random.default_rng(5), n_threads)
    # groups: 0 plain columns, 1 + t block t; priors of every group
    n_groups = 1 + len(blocks)
    lam = rng.uniform(1, 3, (n_groups, k + 1))
    mu = rng.normal(0, 0.1, (n_groups, k + 1))
    for t, b in enumerate(sampler.blocks):
        b["w"][:] = rng.normal(0, 0.3, len(b["w"]))
        b["lam"], b["mu"] = lam[1 + t], mu[1 + t]
    # the reference: every block materialised as columns of one matrix
    Xfull = sp.hstack([X] + [B[row_of] for row_of, B in blocks], format="csr")
    w_full = np.concatenate([w] + [b["w"] for b in sampler.blocks])
    V_full = np.vstack([V] + [b["V"] for b in sampler.blocks])
    group = np.concatenate([np.zeros(d, dtype=np.intp)] + [
        np.full(B.shape[1], 1 + t, dtype=np.intp) for t, (_, B) in enumerate(blocks)])
    seed = 4242
    block_seeds, block_cols, offset = [], [], d
    for t, (b, (_, B)) in enumerate(zip(sampler.blocks, blocks)):
        bseed = (seed ^ (0xA24BAED4963EE407 * (t + 1))) % 2**64
        block_cols.append((offset, b["columns"], bseed))
        offset += B.shape[1]
    ref_w0, ref_w, ref_V = _reference(Xfull, y, s, float(w0[0]), w_full, V_full, columns,
                                      block_cols, 1.3, 0.5, group, lam, mu, seed,
                                      block_seeds)
    # the kernel: plain sweep, then the blocks through their per-row sums
    pred = np.empty(n)
    q = np.zeros((n, k))
    _fm_fast.predict_cache(Xc.data, Xc.indices, Xc.indptr, float(w0[0]), w, V, pred, q, 1,
                           rows_major=True)
    sampler.add_to_caches(pred, q)
    np.testing.assert_allclose(pred, _predict_full(Xfull, float(w0[0]), w_full, V_full))
    sw = s if weighted else np.zeros(0)
    assert _mcmc_fast.gibbs_sweep(data, rows, ptr, y, sw, w0, w, V, pred, q, columns,
                                  class_ptr, 1.3, 0.5, np.zeros(d, dtype=np.intp), lam[:1],
                                  mu[:1], True, seed, n_threads) == 0
    assert sampler.sweep(y, sw, pred, q, 1.3, seed) == 0
    np.testing.assert_allclose(w0[0], ref_w0, rtol=1e-10)
    got_w = np.concatenate([w] + [b["w"] for b in sampler.blocks])
    got_V = np.vstack([V] + [b["V"] for b in sampler.blocks])
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got_V, ref_V, rtol=1e-9, atol=1e-11)
    # the caches and the per-user terms were kept up to date
    np.testing.assert_allclose(pred, _predict_full(Xfull, w0[0], got_w, got_V), atol=1e-10)
    np.testing.assert_allclose(q, Xfull.toarray() @ got_V, atol=1e-10)
    for (row_of, B), b in zip(blocks, sampler.blocks):
        np.testing.assert_allclose(b["s"], B @ b["V"], atol=1e-10)


def _predict_full(X, w0, w, V):
    X = X.toarray()
    Q = X @ V
    return w0 + X @ w + 0.5 * ((Q * Q).sum(1) - (X * X) @ (V * V).sum(1))
