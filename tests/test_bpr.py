"""BPR: kernel vs NumPy reference, sampler, learning, ml-100k, API contract, errors."""

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_mf import BPR, _bpr_fast


def _csr(n_users, n_items, rng, density=0.3):
    rows = [
        np.sort(rng.choice(n_items, max(1, rng.binomial(n_items, density)), replace=False))
        for _ in range(n_users)
    ]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
    indices = np.concatenate(rows).astype(np.int32)
    pos_users = np.repeat(np.arange(n_users), np.diff(indptr)).astype(np.int32)
    return indptr, indices, pos_users


def numpy_bpr_epoch(
    pos_users, indptr, indices, sample_pos, sample_neg, P, Q, b, lr, reg, reg_b, skip_seen
):
    """Slow reference: Rendle's LearnBPR step for each given (positive, negative)."""
    loss = correct = updates = skipped = 0
    for pos, j in zip(sample_pos, sample_neg):
        u, i = pos_users[pos], indices[pos]
        if j == i or (skip_seen and j in indices[indptr[u] : indptr[u + 1]]):
            skipped += 1
            continue
        x = b[i] - b[j] + P[u] @ (Q[i] - Q[j])
        loss += np.log1p(np.exp(-x))
        correct += x > 0
        g = 1 / (1 + np.exp(x))
        b[i] += lr * (g - reg_b * b[i])
        b[j] += lr * (-g - reg_b * b[j])
        pu, qi, qj = P[u].copy(), Q[i].copy(), Q[j].copy()
        P[u] += lr * (g * (qi - qj) - reg * pu)
        Q[i] += lr * (g * pu - reg * qi)
        Q[j] += lr * (-g * pu - reg * qj)
        updates += 1
    return np.array([loss, correct, updates, skipped])


@pytest.mark.parametrize("skip_seen", [False, True])
def test_bpr_epoch_matches_numpy_reference(skip_seen):
    rng = np.random.default_rng(0)
    n_users, n_items, k = 15, 12, 4
    indptr, indices, pos_users = _csr(n_users, n_items, rng)
    n = 400
    sample_pos = rng.integers(0, len(indices), n).astype(np.intp)
    sample_neg = rng.integers(0, n_items, n).astype(np.int32)
    P, Q = rng.normal(0, 0.3, (n_users, k)), rng.normal(0, 0.3, (n_items, k))
    b = rng.normal(0, 0.1, n_items)
    lr, reg, reg_b = 0.1, 0.01, 0.02
    ref = [a.copy() for a in (P, Q, b)]
    want = numpy_bpr_epoch(
        pos_users, indptr, indices, sample_pos, sample_neg, *ref, lr, reg, reg_b, skip_seen
    )
    stats = np.zeros(4)
    n_bad = _bpr_fast.bpr_epoch(
        pos_users,
        indptr,
        indices,
        sample_pos,
        sample_neg,
        n,
        P,
        Q,
        b,
        lr,
        reg,
        reg_b,
        skip_seen,
        np.ones(1, dtype=np.uint64),
        1,
        stats,
    )
    assert n_bad == 0
    for got, exp in zip((P, Q, b), ref):
        assert_allclose(got, exp, rtol=0, atol=1e-10)
    assert_allclose(stats, want, rtol=1e-10)
    if skip_seen:  # about 30% of the negatives are seen items: really skipped
        assert want[3] > 0.2 * n


def test_bpr_epoch_float32_follows_the_float64_reference():
    rng = np.random.default_rng(2)
    indptr, indices, pos_users = _csr(10, 9, rng)
    sample_pos = rng.integers(0, len(indices), 100).astype(np.intp)
    sample_neg = rng.integers(0, 9, 100).astype(np.int32)
    P, Q, b = rng.normal(0, 0.3, (10, 3)), rng.normal(0, 0.3, (9, 3)), np.zeros(9)
    ref = [a.copy() for a in (P, Q, b)]
    numpy_bpr_epoch(
        pos_users, indptr, indices, sample_pos, sample_neg, *ref, 0.05, 0.01, 0.01, True
    )
    P32, Q32, b32 = (a.astype(np.float32) for a in (P, Q, b))
    _bpr_fast.bpr_epoch(
        pos_users,
        indptr,
        indices,
        sample_pos,
        sample_neg,
        100,
        P32,
        Q32,
        b32,
        0.05,
        0.01,
        0.01,
        True,
        np.ones(1, dtype=np.uint64),
        1,
        np.zeros(4),
    )
    for got, want in zip((P32, Q32, b32), ref):
        assert_allclose(got, want, rtol=0, atol=1e-5)


def test_sampler_skips_seen_negatives_at_the_expected_rate():
    rng = np.random.default_rng(1)
    n_users, n_items = 30, 50
    indptr, indices, pos_users = _csr(n_users, n_items, rng, density=0.4)
    P = np.zeros((n_users, 2), dtype=np.float32)
    Q = np.zeros((n_items, 2), dtype=np.float32)
    b = np.zeros(n_items, dtype=np.float32)
    empty_p, empty_n = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)
    n = 200_000
    stats = np.zeros(4)
    _bpr_fast.bpr_epoch(
        pos_users,
        indptr,
        indices,
        empty_p,
        empty_n,
        n,
        P,
        Q,
        b,
        0.0001,
        0.0,
        0.0,
        True,
        np.array([7, 8], dtype=np.uint64),
        2,
        stats,
    )
    # a positive is drawn uniformly: the chance its user has seen a random item
    row_len = np.diff(indptr)[pos_users]
    expected = np.mean(row_len / n_items)
    assert stats[3] / n == pytest.approx(expected, abs=0.01)
    assert stats[2] + stats[3] == n
    stats_noskip = np.zeros(4)
    _bpr_fast.bpr_epoch(
        pos_users,
        indptr,
        indices,
        empty_p,
        empty_n,
        n,
        P,
        Q,
        b,
        0.0001,
        0.0,
        0.0,
        False,
        np.array([7, 8], dtype=np.uint64),
        2,
        stats_noskip,
    )
    assert stats_noskip[3] / n == pytest.approx(1 / n_items, abs=0.005)  # only j == i


# ------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def clusters():
    """Four user groups who interact with four disjoint quarters of the catalogue."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(240):
        for i in rng.choice(30, 10, replace=False):
            rows.append((u, i + 30 * (u % 4)))
    return np.array(rows)


def test_learns_cluster_structure(clusters):
    model = BPR(n_factors=8, n_epochs=40, learning_rate=0.1, random_state=0, n_jobs=1).fit(clusters)
    items, _ = model.recommend(np.arange(240), n=10)
    same_group = (items // 30) == (np.arange(240) % 4)[:, None]
    assert same_group.mean() > 0.95
    assert model.accuracy_curve_[-1] > 0.85 > 0.6 > model.accuracy_curve_[0]
    assert model.loss_curve_[-1] < 0.5 * model.loss_curve_[0]


def test_reproducible_single_thread_and_multithread_learns(clusters):
    a = BPR(n_factors=4, n_epochs=5, random_state=3, n_jobs=1).fit(clusters)
    b = BPR(n_factors=4, n_epochs=5, random_state=3, n_jobs=1).fit(clusters)
    assert_array_equal(a.item_factors_, b.item_factors_)
    c = BPR(n_factors=8, n_epochs=40, learning_rate=0.1, random_state=0, n_jobs=2).fit(clusters)
    items, _ = c.recommend(np.arange(240), n=10)
    assert ((items // 30) == (np.arange(240) % 4)[:, None]).mean() > 0.95


def test_reproducible_for_a_given_n_jobs(clusters):
    # DESIGN section 5: the block schedule makes parallel fits bit-reproducible
    X = np.c_[clusters, np.zeros(len(clusters))]
    fits = [BPR(n_factors=8, n_epochs=10, random_state=5, n_jobs=2).fit(clusters) for _ in range(2)]
    assert_array_equal(fits[0].predict(X), fits[1].predict(X))
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    new = np.array([[-1, 3], [-1, 40], [-2, 70]])
    assert_array_equal(fits[0].fold_in(new).user_factors, fits[1].fold_in(new).user_factors)
    one = BPR(n_factors=8, n_epochs=10, random_state=5, n_jobs=1).fit(clusters)
    assert not np.array_equal(one.predict(X), fits[0].predict(X))  # n_jobs is the schedule


def test_block_schedule_partitions_positives():
    from sklearn_mf._bpr import _block_schedule

    rng = np.random.default_rng(0)
    n_users, n_items, T = 40, 25, 3
    indptr, indices, pos_users = _csr(n_users, n_items, rng, density=0.3)
    block_users, block_items, block_ptr, item_perm, item_ptr = _block_schedule(
        np.random.default_rng(1), indptr, indices, n_users, n_items, T
    )
    # every positive exactly once
    got = sorted(zip(block_users.tolist(), block_items.tolist()))
    assert got == sorted(zip(pos_users.tolist(), indices.tolist()))
    assert sorted(item_perm) == list(range(n_items))
    assert block_ptr[-1] == len(indices) and item_ptr[-1] == n_items
    item_block = np.empty(n_items, dtype=int)
    for b in range(T):
        item_block[item_perm[item_ptr[b] : item_ptr[b + 1]]] = b
    user_of_block = {}
    for blk in range(T * T):
        sl = slice(block_ptr[blk], block_ptr[blk + 1])
        assert (item_block[block_items[sl]] == blk % T).all()
        for u in block_users[sl]:
            assert user_of_block.setdefault(u, blk // T) == blk // T  # one user block


@pytest.mark.parametrize("subset", [False, True])
def test_group_by_block_is_a_stable_sort_of_the_block_keys(subset):
    # the counting sort against the NumPy reference: a stable argsort of the keys
    rng = np.random.default_rng(7)
    n_users, n_items, T = 60, 35, 3
    indptr, indices, pos_users = _csr(n_users, n_items, rng, density=0.3)
    indptr[-3:] = indptr[-4]  # empty rows at the end
    indices, pos_users = indices[: indptr[-1]], pos_users[: indptr[-1]]
    positions = np.unique(rng.integers(0, len(indices), 40)) if subset else np.arange(len(indices))
    user_block = rng.integers(0, T, n_users).astype(np.int32)
    item_block = rng.integers(0, T, n_items).astype(np.int32)
    key = user_block[pos_users[positions]] * T + item_block[indices[positions]]
    order = positions[np.argsort(key, kind="stable")]
    out_u = np.empty(len(positions), np.int32)
    out_i = np.empty(len(positions), np.int32)
    ptr = np.empty(T * T + 1, np.intp)
    _bpr_fast.group_by_block(
        indptr,
        indices,
        positions if subset else np.zeros(0, np.intp),
        user_block,
        item_block,
        T,
        out_u,
        out_i,
        ptr,
    )
    np.testing.assert_array_equal(out_u, pos_users[order])
    np.testing.assert_array_equal(out_i, indices[order])
    np.testing.assert_array_equal(ptr, np.r_[0, np.cumsum(np.bincount(key, minlength=T * T))])


def test_blocked_epoch_does_not_depend_on_the_thread_count():
    from sklearn_mf._bpr import _block_schedule

    rng = np.random.default_rng(2)
    n_users, n_items = 50, 30
    indptr, indices, pos_users = _csr(n_users, n_items, rng, density=0.3)
    sched = _block_schedule(np.random.default_rng(3), indptr, indices, n_users, n_items, 4)
    out = []
    for n_threads in (1, 2, 4):
        P = np.random.default_rng(4).normal(0, 0.1, (n_users, 3))
        Q = np.random.default_rng(5).normal(0, 0.1, (n_items, 3))
        b = np.zeros(n_items)
        states = np.arange(1, 5, dtype=np.uint64)
        stats = np.zeros(4)
        n_bad = _bpr_fast.bpr_epoch_blocked(
            sched[0],
            sched[1],
            indptr,
            indices,
            *sched[2:],
            P,
            Q,
            b,
            0.1,
            0.01,
            0.01,
            True,
            states,
            n_threads,
            stats,
        )
        assert n_bad == 0
        assert stats[2] + stats[3] == len(indices)  # nnz samples per epoch
        out.append((P, Q, b, states, stats))
    for P, Q, b, states, stats in out[1:]:
        assert_array_equal(P, out[0][0])
        assert_array_equal(Q, out[0][1])
        assert_array_equal(b, out[0][2])
        assert_array_equal(states, out[0][3])
        assert_array_equal(stats, out[0][4])


def test_hyperparameters_are_used(clusters):
    base = dict(n_factors=4, n_epochs=3, random_state=0, n_jobs=1)
    ref = BPR(**base).fit(clusters).item_factors_
    for change in [
        dict(learning_rate=0.1),
        dict(regularization=0.1),
        dict(init_std=0.1),
        dict(skip_seen_negatives=False),
        dict(biased=False),
        dict(n_factors=5),
    ]:
        other = BPR(**{**base, **change}).fit(clusters).item_factors_
        assert other.shape != ref.shape or not np.allclose(ref, other), change
    no_bias = BPR(**base, biased=False).fit(clusters)
    assert_array_equal(no_bias.item_bias_, 0)


def test_float64_and_y_filtering(clusters):
    y = np.ones(len(clusters))
    y[::2] = 0  # zero strength = not a positive
    model = BPR(n_factors=3, n_epochs=2, dtype=np.float64, random_state=0).fit(clusters, y)
    assert model.user_factors_.dtype == np.float64
    assert model.user_items_.nnz == len(np.unique(clusters[1::2], axis=0))


def test_ml100k_ndcg(ml100k):
    r = ml100k.ratings
    pos = r[r["rating"] >= 4]
    pos = pos[pos.groupby("user")["item"].transform("size") >= 5]
    pos = pos.sort_values(["user", "timestamp", "item"], kind="stable")
    rank = pos.groupby("user").cumcount(ascending=False)
    n_test = np.maximum(1, np.round(0.2 * pos.groupby("user")["item"].transform("size")))
    train, test = pos[rank >= n_test], pos[rank < n_test]
    model = BPR(n_epochs=40, random_state=0).fit(train[["user", "item"]])
    ndcg = model.score(test[["user", "item"]])
    # measured 0.125 (implicit's BPR, 100 iterations at its defaults: 0.115)
    assert 0.09 < ndcg < 0.16
    # popularity-only ranking (the learned item bias alone) is clearly worse
    pop = BPR(n_factors=1, n_epochs=40, init_std=0.0, random_state=0).fit(train[["user", "item"]])
    assert pop.score(test[["user", "item"]]) < ndcg


# ------------------------------------------------------------------ API
def test_predict_and_recommend_agree(clusters):
    model = BPR(n_factors=4, n_epochs=5, random_state=0).fit(clusters)
    items, scores = model.recommend([0, 1], n=5)
    Xq = np.column_stack([np.repeat([0, 1], 5), items.ravel()])
    assert_allclose(model.predict(Xq), scores.ravel(), rtol=1e-5)
    unknown = model.predict(np.array([[-1, 3], [0, -1]]))
    assert unknown[0] == pytest.approx(model.item_bias_[model._item_codes([3])[0]])
    assert unknown[1] == 0.0
    rec = model.recommend([-1], n=3)
    assert rec.fallback.tolist() == [True]


def test_joblib_round_trip(clusters, tmp_path):
    model = BPR(n_factors=4, n_epochs=3, random_state=0).fit(clusters)
    joblib.dump(model, tmp_path / "bpr.joblib")
    loaded = joblib.load(tmp_path / "bpr.joblib")
    assert_array_equal(loaded.recommend([0, 5], n=4).items, model.recommend([0, 5], n=4).items)


def test_grid_search_uses_ndcg_score(clusters):
    gs = GridSearchCV(
        BPR(n_epochs=20, learning_rate=0.1, random_state=0, n_jobs=1),
        {"n_factors": [1, 8]},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    gs.fit(clusters)
    scores = gs.cv_results_["mean_test_score"]
    assert np.all((0 <= scores) & (scores <= 1))
    assert gs.best_params_["n_factors"] == 8


def test_bad_input(clusters):
    with pytest.raises(ValueError, match="negative"):
        BPR().fit(clusters, -np.ones(len(clusters)))
    with pytest.raises(ValueError, match="no positive"):
        BPR().fit(clusters, np.zeros(len(clusters)))
    with pytest.raises(ValueError, match="at least 2 items"):
        BPR().fit(np.array([[1, 7], [2, 7]]))
    with pytest.raises(ValueError, match="learning_rate"):
        BPR(learning_rate=0).fit(clusters)
    with pytest.raises(FloatingPointError, match="smaller learning_rate"):
        BPR(learning_rate=1e30, init_std=1e10, n_epochs=3, random_state=0, n_jobs=1).fit(clusters)


# ------------------------------------------------------------------ fold-in
def test_fold_in_by_user_only_sgd(clusters):
    model = BPR(n_factors=8, n_epochs=40, learning_rate=0.1, random_state=0, n_jobs=1).fit(clusters)
    before = model.item_factors_.copy(), model.item_bias_.copy()
    # two new users, each with 5 items of group 2 / group 3
    Xn = np.array(
        [("a", 60 + i) for i in range(5)] + [("b", 90 + i) for i in range(5)], dtype=object
    )
    rec = model.recommend_new(Xn, n=10)
    assert_array_equal(model.item_factors_, before[0])
    assert_array_equal(model.item_bias_, before[1])
    assert list(rec.query) == ["a", "b"] and not rec.fallback.any()
    assert np.mean(rec.items[0].astype(int) // 30 == 2) > 0.9
    assert np.mean(rec.items[1].astype(int) // 30 == 3) > 0.9
    assert not set(range(60, 65)) & set(rec.items[0].astype(int))
    # deterministic for a given random_state; zero strengths carry no information
    again = model.fold_in(Xn)
    assert_array_equal(again.user_factors, model.fold_in(Xn).user_factors)
    assert again.user_bias is None
    none = model.fold_in(Xn, np.zeros(len(Xn)))
    assert_array_equal(none.user_factors, 0)
