"""ALS on a Dask cluster (``sklearn_mf.dask``) gives the local estimators' fit.

One module-scoped ``LocalCluster`` (two worker processes, one thread each,
bound to loopback: ``dask_als_client`` of conftest.py) serves every test;
the killed-worker test runs last because it makes the cluster restart a
worker.
"""

import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from _dask_helpers import assert_explicit_fit_equals_local, ml100k_ratings, small_blocks
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from sklearn_mf import ImplicitALS, MatrixFactorization
from sklearn_mf.metrics import make_ranking_scorer

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
import sklearn_mf.dask as smd  # noqa: E402  (after the importorskip)
from sklearn_mf.dask._estimators import initial_factor_chunks  # noqa: E402


@pytest.fixture(scope="module")
def client(dask_als_client):
    return dask_als_client


@pytest.fixture(scope="module")
def ml100k_split(ml100k):
    train, test = train_test_split(ml100k_ratings(ml100k), test_size=0.2, random_state=0)
    train = train.reset_index(drop=True)
    return train, test[["user", "item"]].reset_index(drop=True), test["rating"].to_numpy()


def _rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


def test_initial_factor_chunks_are_the_local_draws():
    rng = np.random.default_rng(check_random_state(7).randint(2**31))
    P = rng.normal(0, 0.1, (1000, 5)).astype(np.float32)
    Q = rng.normal(0, 0.1, (300, 5)).astype(np.float32)
    got = [np.empty_like(P), np.empty_like(Q)]
    for which, start, rows in initial_factor_chunks(7, (1000, 300), 5, 0.1, np.float32, chunk=128):
        got[which][start : start + len(rows)] = rows
    assert_array_equal(got[0], P)
    assert_array_equal(got[1], Q)


def test_explicit_fit_equals_local_fit(client, ml100k_split):
    train, X_te, y_te = ml100k_split
    params = dict(n_factors=16, max_iter=8, regularization=0.05, random_state=0)
    local = MatrixFactorization(solver="als", n_jobs=1, **params).fit(
        train[["user", "item"]], train["rating"]
    )
    dist = smd.MatrixFactorization(**params).fit(dd.from_pandas(train, npartitions=7))
    assert dist.n_blocks_ == 4 and dist.n_iter_ == local.n_iter_
    assert_allclose(dist.loss_curve_, local.loss_curve_, rtol=1e-6)
    model = dist.to_local()
    assert_array_equal(model.users_, local.users_)
    assert_array_equal(model.items_, local.items_)
    assert_explicit_fit_equals_local(model, local, atol=1e-4)
    assert model.global_mean_ == pytest.approx(local.global_mean_, rel=1e-12)
    assert abs(_rmse(model, X_te, y_te) - _rmse(local, X_te, y_te)) < 1e-3
    assert _rmse(model, X_te, y_te) < 1.0  # a real fit, not a constant
    ndcg = make_ranking_scorer("ndcg", k=10, relevance_threshold=4)
    assert abs(ndcg(model, X_te, y_te) - ndcg(local, X_te, y_te)) < 1e-3
    # what moved: factor rows to the blocks that need them, far less than the data
    assert 0 < np.median(dist.bytes_per_iteration_) < 20 * len(train) * 4


def test_implicit_fit_equals_local_fit(client, ml100k_split):
    train, X_te, _ = ml100k_split
    params = dict(n_factors=16, max_iter=8, alpha=2.0, random_state=0)
    local = ImplicitALS(n_jobs=1, **params).fit(train[["user", "item"]])
    dist = smd.ImplicitALS(**params).fit(dd.from_pandas(train[["user", "item"]], npartitions=5))
    assert_allclose(dist.loss_curve_, local.loss_curve_, rtol=1e-5)
    model = dist.to_local()
    scale = np.abs(local.user_factors_).max()
    assert_allclose(model.user_factors_, local.user_factors_, atol=1e-3 * scale)
    assert_allclose(
        model.item_factors_, local.item_factors_, atol=1e-3 * np.abs(local.item_factors_).max()
    )
    assert abs(model.score(X_te) - local.score(X_te)) < 1e-3
    assert model.score(X_te) > 0.05  # far above a random ranking (about 0.01)
    assert_array_equal(model.user_items_.toarray(), local.user_items_.toarray())
    assert_array_equal(model.item_popularity_, local.item_popularity_)


@pytest.mark.parametrize("model", ["explicit", "implicit"])
def test_block_solved_in_row_chunks_equals_whole_block(model):
    # a block whose gathered factor rows exceed the memory target is solved in
    # row chunks, each copying out of the messages only the rows it uses:
    # every row's system is unchanged, so the result is the same bits
    from sklearn_mf.dask import _blocks

    B, k = 3, 5
    # explicit CG has a test of its own (tests/test_als_cg.py)
    solver = "cg" if model == "implicit" else "cholesky"
    params, ublk, iblk, ifac, Q, rng = small_blocks(model, solver, B=B, k=k)
    G = Q.T.astype(np.float64) @ Q.astype(np.float64)
    for b in range(B):
        old = (rng.normal(0, 0.1, (ublk[b]["R"].n_rows, k)).astype(np.float32), None, None)
        msgs = [_blocks.send(_blocks.out_links(iblk[j]), ifac[j], b) for j in range(B)]
        frozen = [m[0].copy() for m in msgs]
        whole = _blocks.solve_block(ublk[b], old, G, params, True, *msgs)
        chunked = _blocks.solve_block(
            ublk[b], old, G, {**params, "max_gathered_rows": 7}, True, *msgs
        )
        assert len(_blocks.row_chunks(ublk[b]["R"].indptr, sum(len(m[0]) for m in msgs), 7)) > 3
        assert_array_equal(chunked[0], whole[0])
        if model == "explicit":
            assert_array_equal(chunked[1], whole[1])
        assert chunked[2]["data"] == pytest.approx(whole[2]["data"], rel=1e-12)
        for m, f in zip(msgs, frozen):
            assert_array_equal(m[0], f)  # the messages are read, never written
    # and a row is solved as the reference says: explicit = ridge on (t - other bias)
    if model == "explicit":
        R, b = ublk[0]["R"], 0
        msgs = [_blocks.send(_blocks.out_links(iblk[j]), ifac[j], b) for j in range(B)]
        X, bias, _ = _blocks.solve_block(
            ublk[0], None, None, {**params, "max_gathered_rows": 7}, False, *msgs
        )
        Y = np.concatenate([m[0] for m in msgs]).astype(np.float64)
        ob = np.concatenate([m[1] for m in msgs]).astype(np.float64)
        r = int(np.argmax(np.diff(R.indptr)))
        s, e = R.indptr[r], R.indptr[r + 1]
        A = np.column_stack([Y[R.indices[s:e]], np.ones(e - s)])
        rhs = R.data["t"][s:e].astype(np.float64) - ob[R.indices[s:e]]
        sol = np.linalg.solve(A.T @ A + 0.1 * (e - s) * np.eye(k + 1), A.T @ rhs)
        assert_allclose(np.append(X[r], bias[r]), sol, rtol=1e-3, atol=1e-4)


def _small_blocks(model, B=3, k=5, seed=0):
    params, ublk, iblk, ifac, Q, rng = small_blocks(model, "cg", B=B, k=k, seed=seed)
    olds = [
        (
            rng.normal(0, 0.1, (blk["R"].n_rows, k)).astype(np.float32),
            rng.normal(0, 0.1, blk["R"].n_rows).astype(np.float32),
            None,
        )
        for blk in ublk
    ]
    G = Q.T.astype(np.float64) @ Q.astype(np.float64)
    return params, ublk, iblk, ifac, olds, G


@pytest.mark.parametrize("model", ["explicit", "implicit"])
@pytest.mark.parametrize("max_rows", [None, 7])
def test_solve_reading_factor_blocks_in_place_equals_solve_of_messages(model, max_rows):
    # a solve reads its own worker's factor blocks in place and receives one
    # message per other worker holding the rows of all its blocks: the same
    # bits as stacking one message per block, whole or in row chunks
    from sklearn_mf.dask import _blocks

    B = 4
    params, ublk, iblk, ifac, olds, G = _small_blocks(model, B=B)
    params = {**params, "max_gathered_rows": max_rows}
    links = [_blocks.out_links(blk) for blk in iblk]
    for b in range(B):
        msgs = [_blocks.send(links[j], ifac[j], b) for j in range(B)]
        ref = _blocks.solve_block(ublk[b], olds[b], G, params, True, *msgs)
        # blocks 1 and 3 "on this worker", 0 and 2 grouped from another
        group = _blocks.send_group(b, links[0], ifac[0], links[2], ifac[2])
        assert group[2] == [len(links[0][b]), len(links[2][b])]
        assert_array_equal(group[0], np.concatenate([msgs[0][0], msgs[2][0]]))
        assert_array_equal(group[1], np.concatenate([msgs[0][1], msgs[2][1]]))
        plan = [("l", 3), ("m", [0, 2]), ("l", 1)]
        inputs = [ifac[3], links[3], group, ifac[1], links[1]]
        got = _blocks.solve_block_from(ublk[b], olds[b], G, params, True, b, plan, *inputs)
        assert_array_equal(got[0], ref[0])
        if model == "explicit":
            assert_array_equal(got[1], ref[1])
        assert got[2]["data"] == ref[2]["data"]
        assert got[2]["pen"] == ref[2]["pen"]
        # and a single-block message (send's pairs) mixes with the others
        plan = [("m", [0]), ("m", [1]), ("l", 2), ("m", [3])]
        inputs = [msgs[0], msgs[1], ifac[2], links[2], msgs[3]]
        again = _blocks.solve_block_from(ublk[b], olds[b], G, params, True, b, plan, *inputs)
        assert_array_equal(again[0], ref[0])
        assert set(got[2]["seconds"]) == {"gather", "wall", "cpu"}
    for f in ifac:  # the factor blocks read in place are never written
        assert f[0].flags.c_contiguous


def _lpt_reference(loads, caps):
    # the greedy rule written out: largest load first, to the worker whose
    # load per thread after taking it is least (then fewest blocks per thread)
    held, count, place = [0.0] * len(caps), [0] * len(caps), {}
    for b in np.lexsort((np.arange(len(loads)), -np.asarray(loads, dtype=float))):
        w = min(
            range(len(caps)),
            key=lambda w: ((held[w] + loads[b]) / caps[w], count[w] / caps[w], w),
        )
        place[int(b)] = w
        held[w] += loads[b]
        count[w] += 1
    return np.array([place[b] for b in range(len(loads))])


def test_blocks_placed_by_interactions():
    from itertools import product

    from sklearn_mf.dask._blocks import balanced_placement

    rng = np.random.default_rng(0)
    for _ in range(50):
        n, W = int(rng.integers(1, 8)), int(rng.integers(1, 4))
        loads = (rng.pareto(1.0, n) * 1000).astype(np.int64)
        caps = rng.integers(1, 3, W)
        place = balanced_placement(loads, caps)
        assert_array_equal(place, _lpt_reference(loads, caps))
        # within the greedy rule's bound of the best placement (brute force)
        per_thread = np.bincount(place, weights=loads, minlength=W) / caps
        best = min(
            (np.bincount(p, weights=loads, minlength=W) / caps).max()
            for p in map(np.array, product(range(W), repeat=n))
        )
        assert per_thread.max() <= 2 * best + 1e-9
        if W == 2 and caps[0] == caps[1] and n > 1:  # two equal workers: 4/3 - 1/6
            assert per_thread.max() <= (7 / 6) * best + 1e-9
    # equal (or empty) blocks go round the workers; a 2-thread worker takes twice
    assert_array_equal(balanced_placement([0, 0, 0, 0], [1, 1]), [0, 1, 0, 1])
    assert_array_equal(balanced_placement([5] * 6, [2, 1]), [0, 1, 0, 0, 1, 0])
    # a heavy block alone on one worker, the rest on the other
    assert_array_equal(balanced_placement([10, 3, 3, 3], [1, 1]), [0, 1, 1, 1])


def test_fit_stopped_by_tol_equals_local_and_drops_the_iteration_ahead(client, ml100k_split):
    # the iteration after the one tol stops at was submitted ahead: it is
    # cancelled, and the result is the local fit's
    train = ml100k_split[0]
    params = dict(n_factors=8, max_iter=30, tol=1e-2, regularization=0.05, random_state=0)
    local = MatrixFactorization(solver="als", n_jobs=1, **params).fit(
        train[["user", "item"]], train["rating"]
    )
    assert 1 < local.n_iter_ < params["max_iter"]
    dist = smd.MatrixFactorization(**params).fit(dd.from_pandas(train, npartitions=3))
    assert dist.n_iter_ == local.n_iter_
    assert len(dist.loss_curve_) == len(dist.seconds_per_iteration_) == dist.n_iter_
    assert_allclose(dist.loss_curve_, local.loss_curve_, rtol=1e-6)
    assert_allclose(dist.item_factors_, local.item_factors_, atol=1e-4)
    assert_allclose(dist.to_local().user_factors_, local.user_factors_, atol=1e-4)
    ahead = f"-{dist._uid}-{dist.n_iter_ + 1}-"  # keys mf-<kind>-<uid>-<iteration>-...
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        keys = [k for k in client.who_has() if ahead in str(k)]
        if not keys:
            break
        time.sleep(0.05)
    assert not keys


def test_fit_with_a_small_memory_target_solves_in_chunks(client, ml100k_split, monkeypatch):
    from sklearn_mf.dask import _estimators

    train = ml100k_split[0]
    params = dict(n_factors=8, max_iter=3, random_state=0)
    whole = smd.MatrixFactorization(**params).fit(dd.from_pandas(train, npartitions=3))
    # a gather budget of a few hundred rows per solve forces row chunks
    monkeypatch.setattr(
        _estimators, "_GATHER_SHARE", 2000 * 36 / _estimators._worker_memory(client)
    )
    chunked = smd.MatrixFactorization(**params).fit(dd.from_pandas(train, npartitions=3))
    assert chunked._window >= 1
    assert_array_equal(chunked.item_factors_, whole.item_factors_)
    assert_array_equal(chunked.item_bias_, whole.item_bias_)
    assert_allclose(chunked.loss_curve_, whole.loss_curve_, rtol=1e-12)


def test_string_ids_mixed_and_empty_partitions_and_dask_array(client):
    rng = np.random.default_rng(0)
    users = rng.choice([f"u{j}" for j in range(40)], 600)
    items = rng.choice([f"i{j:02d}" for j in range(25)], 600)
    counts = rng.integers(1, 4, 600).astype(float)
    df = pd.DataFrame({"user": users, "item": items, "count": counts})
    # every user spread over several partitions, and two empty partitions
    pieces = [df.iloc[:200], df.iloc[:0], df.iloc[200:450], df.iloc[:0], df.iloc[450:]]
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in pieces])
    assert ddf.npartitions == 5
    params = dict(n_factors=4, max_iter=4, random_state=1)
    local = ImplicitALS(n_jobs=1, **params).fit(df[["user", "item"]], df["count"])
    model = smd.ImplicitALS(n_blocks=3, **params).fit(ddf).to_local()
    assert_array_equal(model.users_, np.sort(df.user.unique()))
    assert_allclose(model.user_factors_, local.user_factors_, rtol=1e-3, atol=1e-6)
    # repeated (user, item) rows add up, as locally
    assert_allclose(model.user_items_.toarray(), local.user_items_.toarray())

    # integer ids through a dask array (third column = strength)
    import dask.array as da

    arr = np.column_stack([rng.integers(0, 30, 500), rng.integers(100, 120, 500), np.ones(500)])
    d_model = smd.ImplicitALS(**params).fit(da.from_array(arr, chunks=(120, 3))).to_local()
    l_model = ImplicitALS(n_jobs=1, **params).fit(arr[:, :2].astype(int), arr[:, 2])
    assert_array_equal(d_model.items_, l_model.items_)
    assert_allclose(d_model.item_factors_, l_model.item_factors_, rtol=1e-3, atol=1e-6)


def test_explicit_real_valued_ratings_given_as_y(client):
    # ratings float32 cannot hold exactly travel in float64; y as a dask Series
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"user": rng.integers(0, 50, 800), "item": rng.integers(0, 30, 800)})
    y = pd.Series(rng.uniform(1, 5, 800), name="rating")
    params = dict(n_factors=3, max_iter=5, tol=0, random_state=2)
    local = MatrixFactorization(solver="als", n_jobs=1, **params).fit(X, y)
    dist = smd.MatrixFactorization(**params).fit(
        dd.from_pandas(X, npartitions=3), dd.from_pandas(y, npartitions=3)
    )
    model = dist.to_local()
    assert_allclose(model.item_factors_, local.item_factors_, rtol=1e-5, atol=1e-6)
    assert_allclose(model.item_bias_, local.item_bias_, rtol=1e-5, atol=1e-6)
    assert model.rating_range_ == local.rating_range_
    assert_allclose(model.predict(X), local.predict(X), rtol=1e-5)


def test_recommend_all_and_unknown_users(client, ml100k_split, tmp_path):
    train = ml100k_split[0]
    dist = smd.MatrixFactorization(n_factors=8, max_iter=4, random_state=0).fit(
        dd.from_pandas(train, npartitions=4)
    )
    local = dist.to_local()
    recs = dist.recommend_all(n=20)
    assert isinstance(recs, dd.DataFrame)
    recs.to_parquet(tmp_path / "recs")  # the nightly batch, block by block
    out = pd.read_parquet(tmp_path / "recs").sort_values(["user", "rank"])
    assert len(out) == 20 * len(local.users_)
    assert_array_equal(out["rank"].to_numpy()[:20], np.arange(1, 21))
    some = local.users_[::97]
    items, scores = local.recommend(some, n=20)
    sub = out[out.user.isin(some)].set_index("user").loc[some]
    assert_array_equal(sub["item"].to_numpy().reshape(len(some), 20), items)
    assert_allclose(sub["score"].to_numpy().reshape(len(some), 20), scores, rtol=1e-6)
    seen = local.user_items_[local._user_codes(some)[0]].indices
    assert not np.isin(local.items_[seen], items[0]).any()

    # a requested user without factors gets the popularity list
    part = dist.recommend_all(n=5, users=[some[0], -1]).compute()
    assert len(part) == 10
    popular = local.items_[np.argsort(-local.item_popularity_, kind="stable")[:5]]
    assert_array_equal(np.sort(part[part.user == -1]["item"].to_numpy()), np.sort(popular))
    # unknown ids in predict: the local fallback (global mean plus known bias)
    p = local.predict(pd.DataFrame({"user": [-1, -1], "item": [train.item.iloc[0], -2]}))
    assert p[1] == pytest.approx(local.global_mean_)


def test_to_local_round_trip(client, ml100k_split):
    train = ml100k_split[0]
    dist = smd.ImplicitALS(n_factors=8, max_iter=3, random_state=0).fit(
        dd.from_pandas(train[["user", "item"]], npartitions=3)
    )
    model = pickle.loads(pickle.dumps(dist.to_local()))
    assert isinstance(model, ImplicitALS) and model.get_params()["n_factors"] == 8
    u = model.users_[:3]
    assert_array_equal(model.recommend(u, n=5).items, dist.to_local().recommend(u, n=5).items)
    new = pd.DataFrame({"user": 999999, "item": train.item.iloc[:10]})
    folded = model.fold_in(new)
    assert folded.user_factors.shape == (1, 8) and np.abs(folded.user_factors).sum() > 0
    model.partial_fit(pd.DataFrame({"user": [model.users_[0]], "item": [424242]}))
    assert 424242 in model.items_


def test_bad_input_is_rejected_early(client):
    good = pd.DataFrame({"user": [1, 2, 2], "item": [1, 1, 3], "v": [1.0, -1.0, 2.0]})
    with pytest.raises(ValueError, match="negative"):
        smd.ImplicitALS().fit(dd.from_pandas(good, npartitions=1))
    bad = good.assign(v=[1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        smd.MatrixFactorization().fit(dd.from_pandas(bad, npartitions=1))
    with pytest.raises(ValueError, match="needs ratings"):
        smd.MatrixFactorization().fit(dd.from_pandas(good[["user", "item"]], npartitions=1))
    with pytest.raises(TypeError, match="dask.dataframe"):
        smd.ImplicitALS().fit(good)
    with pytest.raises(ValueError, match="n_factors"):
        smd.ImplicitALS(n_factors=0).fit(dd.from_pandas(good, npartitions=1))
    with pytest.raises(ValueError, match="sample_weight is not supported"):
        smd.MatrixFactorization().fit(dd.from_pandas(good, npartitions=1), sample_weight=[1, 1, 1])
    assert good["v"].tolist() == [1.0, -1.0, 2.0]  # inputs untouched


def test_import_sklearn_mf_does_not_import_dask():
    code = "import sys, sklearn_mf; sys.exit('dask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=os.getcwd()).returncode == 0


@pytest.mark.slow
def test_killed_worker_does_not_lose_the_fit(client, ml100k_split):
    train = ml100k_split[0][["user", "item"]]
    params = dict(n_factors=16, max_iter=25, random_state=0)
    reference = smd.ImplicitALS(**params).fit(dd.from_pandas(train, npartitions=4))
    pids = client.run(os.getpid)
    victim = max(pids.values())
    est = smd.ImplicitALS(**params)
    errors = []

    def run():
        try:
            est.fit(dd.from_pandas(train, npartitions=4))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while len(getattr(est, "loss_curve_", [])) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    killed_at = len(est.loss_curve_)
    os.kill(victim, signal.SIGKILL)
    thread.join(300)
    assert not errors, errors
    assert killed_at < params["max_iter"]  # the worker died mid-fit
    assert victim not in client.run(os.getpid).values()  # and was replaced
    assert_allclose(est.loss_curve_, reference.loss_curve_, rtol=1e-12)
    assert_array_equal(est.item_factors_, reference.item_factors_)
    assert_array_equal(est.to_local().user_factors_, reference.to_local().user_factors_)


def _message_keys(stream, uid):
    """Keys of the message tasks of a fit's first user half-step, as run."""
    prefix = f"mf-msg-{uid}-1-u-"
    return {str(t["key"]) for t in stream if str(t["key"]).startswith(prefix)}


@pytest.mark.parametrize("target", [5, 0])  # a window of 5 of 8 blocks; serial
def test_memory_window_sends_one_message_per_block(client, monkeypatch, target):
    # when the planner's window does not cover every block, the solves take
    # one message per block (no in-place reads, no grouping): checked in the
    # tasks the scheduler ran, and the factors are still the local fit's and
    # the bits of the fit with the window open
    from sklearn_mf.dask import _estimators
    from sklearn_mf.datasets import make_ratings

    X, y = make_ratings(n_users=300, n_items=200, n_ratings=6000, random_state=0)
    df = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "rating": y})
    B, k = 8, 4
    params = dict(n_factors=k, max_iter=3, tol=0, random_state=0)
    local = MatrixFactorization(solver="als", n_jobs=1, **params).fit(df[["user", "item"]], y)
    with distributed.get_task_stream(client) as open_ts:
        open_ = smd.MatrixFactorization(n_blocks=B, **params).fit(dd.from_pandas(df, npartitions=3))
    assert open_._window == B and not open_._serial
    # the planner's budget: the rows the fullest block receives (distinct
    # (item, user block) pairs), held twice, against the workers' memory
    codes = {c: np.unique(df[c], return_inverse=True)[1] for c in ("user", "item")}
    received = max(
        pd.DataFrame({"blk": codes[a] % B, "o": codes[b]}).groupby("blk")["o"].nunique().max()
        for a, b in (("user", "item"), ("item", "user"))
    )
    biggest = received * (k + 1) * 4
    limit, n_workers = _estimators._worker_memory(client), len(client.nthreads())
    monkeypatch.setattr(
        _estimators, "_IN_FLIGHT_SHARE", (target + 0.5) * 2 * biggest / (limit * n_workers)
    )
    with distributed.get_task_stream(client) as tight_ts:
        tight = smd.MatrixFactorization(n_blocks=B, **params).fit(dd.from_pandas(df, npartitions=3))
    assert tight._window == max(1, target) < B
    assert tight._serial == (target < 2 * n_workers)

    # gate open: one message per (solve, other worker); closed: one per
    # (solve, block), also from the blocks on the solve's own worker
    home = tight._home
    ukeys = [f.key for f in tight._user_blocks]
    ikeys = [f.key for f in tight._item_blocks]
    assert len({home[key] for key in ikeys}) == n_workers == 2
    sent = _message_keys(tight_ts.data, tight._uid)
    assert sent == {f"mf-msg-{tight._uid}-1-u-{j}-{b}" for b in range(B) for j in range(B)}
    assert any(home[ikeys[j]] == home[ukeys[b]] for b in range(B) for j in range(B))
    assert len(_message_keys(open_ts.data, open_._uid)) == B

    assert tight.n_iter_ == open_.n_iter_ == local.n_iter_
    assert_array_equal(tight.item_factors_, open_.item_factors_)
    assert_array_equal(tight.item_bias_, open_.item_bias_)
    assert_array_equal(tight.to_local().user_factors_, open_.to_local().user_factors_)
    assert_allclose(tight.loss_curve_, open_.loss_curve_, rtol=1e-12)
    model = tight.to_local()
    assert_allclose(tight.loss_curve_, local.loss_curve_, rtol=1e-6)
    assert_explicit_fit_equals_local(model, local, atol=1e-4)
