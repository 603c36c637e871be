"""Explicit ALS by conjugate gradient (``MatrixFactorization(als_solver="cg")``).

The kernel ``_als_fast.explicit_solve_cg`` takes a few CG steps on each row's
augmented system (factors and bias), warm-started from the current values;
these tests hold it to a NumPy transcription of the same steps, to the exact
(Cholesky) solution after many steps, and the local and the Dask fits to each
other.
"""

import numpy as np
import pytest
from _dask_helpers import assert_explicit_fit_equals_local, ml100k_ratings, small_blocks
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_mf import MatrixFactorization
from sklearn_mf._als import RowMatrix, explicit_half_step, explicit_objective


def _problem(seed=0, n_rows=40, n_cols=30, nnz=500, k=6, weighted=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    r = rng.integers(0, n_rows, nnz)
    c = rng.integers(0, n_cols, nnz)
    t = rng.normal(0, 1, nnz)
    data = {"t": t.astype(dtype)}
    if weighted:
        data["w"] = rng.uniform(0.2, 2.0, nnz).astype(dtype)
    R = RowMatrix.from_codes(r, c, n_rows, n_cols, **data)
    Y = rng.normal(0, 0.5, (n_cols, k)).astype(dtype)
    by = rng.normal(0, 0.3, n_cols).astype(dtype)
    X0 = rng.normal(0, 0.3, (n_rows, k)).astype(dtype)
    b0 = rng.normal(0, 0.3, n_rows).astype(dtype)
    return R, Y, by, X0, b0


def _numpy_cg(R, Y, by, X0, b0, reg, reg_b, scale, steps):
    """Textbook CG on each row's normal equations, formed densely (float64)."""
    k = Y.shape[1]
    X, b, sse = X0.astype(np.float64).copy(), b0.astype(np.float64).copy(), []
    for r in range(R.n_rows):
        s, e = R.indptr[r], R.indptr[r + 1]
        cols = R.indices[s:e]
        w = R.data["w"][s:e].astype(np.float64) if "w" in R.data else np.ones(e - s)
        Z = np.column_stack([Y[cols].astype(np.float64), np.ones(e - s)])
        t = R.data["t"][s:e].astype(np.float64) - by[cols]
        n = w.sum()
        lam = np.r_[np.full(k, reg), reg_b] * (n if scale else 1.0)
        A = Z.T @ (w[:, None] * Z) + np.diag(lam)
        rhs = Z.T @ (w * t)
        x = np.r_[X[r], b[r]]
        if n <= 0:
            x = np.zeros(k + 1)
        else:
            res = rhs - A @ x
            p, rs = res.copy(), res @ res
            for _ in range(steps):
                if rs < 1e-30:
                    break
                ap = A @ p
                a = rs / (p @ ap)
                x = x + a * p
                res = res - a * ap
                rs_new = res @ res
                p = res + rs_new / rs * p
                rs = rs_new
        X[r], b[r] = x[:k], x[k]
        sse.append(float(np.sum(w * (t - Z @ x) ** 2)))
    return X, b, np.array(sse)


@pytest.mark.parametrize("steps", [1, 2, 3, 5])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("scale", [True, False])
def test_kernel_takes_the_numpy_cg_steps(steps, weighted, scale):
    R, Y, by, X0, b0 = _problem(weighted=weighted)
    X, b, sse = X0.copy(), b0.copy(), np.zeros(R.n_rows)
    explicit_half_step(R, Y, by, X, b, 0.1, 0.05, scale, 1, "cg", steps, sse)
    X_ref, b_ref, sse_ref = _numpy_cg(R, Y, by, X0, b0, 0.1, 0.05, scale, steps)
    assert_allclose(X, X_ref, rtol=1e-8, atol=1e-10)
    assert_allclose(b, b_ref, rtol=1e-8, atol=1e-10)
    assert_allclose(sse, sse_ref, rtol=1e-8, atol=1e-10)


def test_long_rows_are_solved_in_gather_chunks():
    # rows with more entries than the kernel's gather buffer (16384) take the
    # chunked path: the same steps
    R, Y, by, X0, b0 = _problem(n_rows=2, n_cols=500, nnz=40000, k=4, weighted=True)
    X, b, sse = X0.copy(), b0.copy(), np.zeros(R.n_rows)
    explicit_half_step(R, Y, by, X, b, 0.1, 0.1, True, 1, "cg", 4, sse)
    X_ref, b_ref, sse_ref = _numpy_cg(R, Y, by, X0, b0, 0.1, 0.1, True, 4)
    assert np.diff(R.indptr).max() > 16384
    assert_allclose(X, X_ref, rtol=1e-7)
    assert_allclose(b, b_ref, rtol=1e-7)
    assert_allclose(sse, sse_ref, rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_cg_steps_reach_the_cholesky_solution(dtype):
    R, Y, by, X0, b0 = _problem(dtype=dtype, k=5)
    X_ch, b_ch = np.zeros_like(X0), np.zeros_like(b0)
    explicit_half_step(R, Y, by, X_ch, b_ch, 0.1, 0.1, True, 2)
    X, b = X0.copy(), b0.copy()
    explicit_half_step(R, Y, by, X, b, 0.1, 0.1, True, 2, "cg", 30)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_allclose(X, X_ch, atol=tol)
    assert_allclose(b, b_ch, atol=tol)


def test_empty_and_threaded_rows():
    R, Y, by, X0, b0 = _problem(n_rows=300, nnz=3000)
    # rows 0..9 emptied
    keep = np.repeat(np.arange(R.n_rows), np.diff(R.indptr)) >= 10
    rows = np.repeat(np.arange(R.n_rows), np.diff(R.indptr))[keep]
    R = RowMatrix.from_codes(rows, R.indices[keep], R.n_rows, R.n_cols, t=R.data["t"][keep])
    X1, b1, s1 = X0.copy(), b0.copy(), np.zeros(R.n_rows)
    X2, b2, s2 = X0.copy(), b0.copy(), np.zeros(R.n_rows)
    explicit_half_step(R, Y, by, X1, b1, 0.1, 0.1, True, 1, "cg", 3, s1)
    explicit_half_step(R, Y, by, X2, b2, 0.1, 0.1, True, 2, "cg", 3, s2)
    assert_array_equal(X1, X2)  # rows are independent: threads do not matter
    assert_array_equal(s1, s2)
    assert not X1[:10].any() and not b1[:10].any() and not s1[:10].any()


def test_cg_loss_is_the_explicit_objective(ml100k):
    X = np.asarray(ml100k.X)[:, :2]
    y = np.asarray(ml100k.y, dtype=np.float64)
    mf = MatrixFactorization(
        solver="als",
        als_solver="cg",
        n_factors=8,
        max_iter=3,
        tol=None,
        random_state=0,
        n_jobs=1,
    ).fit(X, y)
    # the objective of the fitted parameters, computed from scratch
    R = mf._als_ratings
    wu = R.row_sums()
    wi = np.bincount(R.indices, minlength=R.n_cols).astype(np.float64)
    codes_obj = explicit_objective(
        R,
        mf.user_factors_,
        mf.user_bias_,
        mf.item_factors_,
        mf.item_bias_,
        mf.regularization,
        mf.regularization,
        True,
        1,
        wu,
        wi,
    ) / len(y)
    assert mf.loss_curve_[-1] == pytest.approx(codes_obj, rel=1e-5)
    assert np.all(np.diff(mf.loss_curve_) < 0)


def test_cg_fit_close_to_cholesky_fit(ml100k):
    X = np.asarray(ml100k.X)[:, :2]
    y = np.asarray(ml100k.y, dtype=np.float64)
    kw = dict(solver="als", n_factors=8, max_iter=10, tol=None, random_state=0, n_jobs=1)
    ch = MatrixFactorization(**kw).fit(X, y)
    cg = MatrixFactorization(als_solver="cg", cg_steps=3, **kw).fit(X, y)
    many = MatrixFactorization(als_solver="cg", cg_steps=40, **kw).fit(X, y)
    assert cg.loss_curve_[-1] == pytest.approx(ch.loss_curve_[-1], rel=0.02)
    assert_allclose(many.loss_curve_, ch.loss_curve_, rtol=1e-4)


def test_chunked_cg_block_equals_whole_block():
    from sklearn_mf.dask import _blocks

    B, k = 3, 5
    params, ublk, iblk, ifac, _, rng = small_blocks("explicit", "cg", B=B, k=k)
    for b in range(B):
        n_b = ublk[b]["R"].n_rows
        old = (
            rng.normal(0, 0.1, (n_b, k)).astype(np.float32),
            rng.normal(0, 0.1, n_b).astype(np.float32),
            None,
        )
        frozen = (old[0].copy(), old[1].copy())
        msgs = [_blocks.send(_blocks.out_links(iblk[j]), ifac[j], b) for j in range(B)]
        whole = _blocks.solve_block(ublk[b], old, None, params, True, *msgs)
        chunked = _blocks.solve_block(
            ublk[b], old, None, {**params, "max_gathered_rows": 7}, True, *msgs
        )
        assert_array_equal(old[0], frozen[0])  # the old factors are not written
        assert_array_equal(old[1], frozen[1])
        assert_array_equal(chunked[0], whole[0])
        assert_array_equal(chunked[1], whole[1])
        assert chunked[2]["data"] == pytest.approx(whole[2]["data"], rel=1e-12)
        # the data term is the squared error of the block's ratings at the new factors
        R = ublk[b]["R"]
        Y = np.concatenate([m[0] for m in msgs]).astype(np.float64)
        ob = np.concatenate([m[1] for m in msgs]).astype(np.float64)
        rows = np.repeat(np.arange(R.n_rows), np.diff(R.indptr))
        pred = np.einsum("ij,ij->i", whole[0][rows].astype(np.float64), Y[R.indices])
        err = R.data["t"] - ob[R.indices] - whole[1][rows] - pred
        assert whole[2]["data"] == pytest.approx(np.sum(err.astype(np.float64) ** 2), rel=1e-4)


def test_dask_cg_fit_equals_local_cg_fit(ml100k, dask_als_client):
    dd = pytest.importorskip("dask.dataframe")
    import sklearn_mf.dask as smd

    train = ml100k_ratings(ml100k)
    params = dict(
        n_factors=16,
        max_iter=6,
        regularization=0.05,
        random_state=0,
        als_solver="cg",
        cg_steps=3,
    )
    local = MatrixFactorization(solver="als", n_jobs=1, **params).fit(
        train[["user", "item"]], train["rating"]
    )
    dist = smd.MatrixFactorization(**params).fit(dd.from_pandas(train, npartitions=5))
    model = dist.to_local()
    assert dist.n_iter_ == local.n_iter_
    assert_allclose(dist.loss_curve_, local.loss_curve_, rtol=1e-5)
    assert_explicit_fit_equals_local(model, local, atol=1e-4)
    assert model.als_solver == "cg" and model.cg_steps == 3
    pred, pred_local = (
        model.predict(train[["user", "item"]]),
        local.predict(train[["user", "item"]]),
    )
    assert np.sqrt(np.mean((pred - pred_local) ** 2)) < 1e-3
