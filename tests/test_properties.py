"""Property-based tests (hypothesis): id encoding round trips for any mix of id
types, splitters partition the rows and never leak the future, metrics stay in
their bounds, and ``predict`` is finite for any finite input ``fit`` accepted.

Each property runs a few dozen examples (``max_examples``) so that the module
stays within a few seconds."""

import numpy as np
import pytest
from sklearn.base import clone

hypothesis = pytest.importorskip("hypothesis")
from _models import estimators  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sklearn_mf import PopularityRecommender  # noqa: E402
from sklearn_mf._ids import factorize_ids  # noqa: E402
from sklearn_mf.metrics import (  # noqa: E402
    coverage,
    hit_rate_at_k,
    intra_list_diversity,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    serendipity,
)
from sklearn_mf.model_selection import (  # noqa: E402
    PerUserRandomSplit,
    PerUserTemporalSplit,
    TemporalSplit,
    UserDisjointKFold,
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ids: ints of any size, short strings, tuples of both; no floats or bools,
# which Python itself equates with ints (1 == 1.0 == True)
scalar_ids = st.one_of(st.integers(), st.text(max_size=3))
any_ids = st.one_of(scalar_ids, st.tuples(scalar_ids, scalar_ids))
id_lists = st.one_of(
    st.lists(st.integers(-5, 5), min_size=1, max_size=30),
    st.lists(st.text(max_size=2), min_size=1, max_size=30),
    st.lists(any_ids, min_size=1, max_size=30),
)


def _objects(values):
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _same(a, b):
    """Equal and of the same Python type (1 and "1" differ)."""
    return a == b and type(a) is type(b)


@FAST
@given(id_lists)
def test_factorize_ids_round_trip(values):
    arr = _objects(values)
    codes, uniques = factorize_ids(arr)
    assert codes.dtype == np.int32
    assert len(uniques) == len(set(values))
    assert all(_same(u, v) for u, v in zip(uniques[codes].tolist(), values))


@FAST
@given(st.lists(st.tuples(any_ids, any_ids), min_size=1, max_size=25))
def test_model_keeps_ids_exactly(pairs):
    X = np.empty((len(pairs), 2), dtype=object)
    for r, (u, i) in enumerate(pairs):
        X[r, 0], X[r, 1] = u, i
    model = PopularityRecommender().fit(X)
    users = {(type(u), u) for u, _ in pairs}
    items = {(type(i), i) for _, i in pairs}
    assert {(type(u), u) for u in model.users_.tolist()} == users
    assert {(type(i), i) for i in model.items_.tolist()} == items
    recs = model.recommend([pairs[0][0]], n=1, exclude_seen=False)
    assert not recs.fallback[0]
    assert any(_same(recs.items[0, 0], i) for _, i in pairs)


# ---------------------------------------------------------------- splitters
@st.composite
def interactions(draw, min_rows=4, max_rows=60):
    n = draw(st.integers(min_rows, max_rows))
    n_users = draw(st.integers(1, 8))
    users = draw(st.lists(st.integers(0, n_users - 1), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n))  # ties
    return np.column_stack([users, items, times])


def _splits(splitter, X):
    try:
        return list(splitter.split(X))
    except ValueError:  # degenerate data (one timestamp, one user, ...): said so
        assume(False)


@FAST
@given(interactions(), st.integers(1, 3))
def test_temporal_split_never_leaks_the_future(X, n_splits):
    folds = _splits(TemporalSplit(n_splits=n_splits), X)
    assert len(folds) == n_splits
    t = X[:, 2]
    previous_end = None
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        assert t[train].max() < t[test].min()
        # everything before the window is in train
        np.testing.assert_array_equal(train, np.flatnonzero(t < t[test].min()))
        if previous_end is not None:
            assert t[test].min() > previous_end
        previous_end = t[test].max()


@FAST
@given(interactions(), st.integers(1, 2))
def test_per_user_temporal_split_partitions_each_user(X, test_size):
    ((train, test),) = _splits(PerUserTemporalSplit(test_size=test_size), X)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(len(X)))
    for u in np.unique(X[test, 0]):
        tr, te = train[X[train, 0] == u], test[X[test, 0] == u]
        assert len(te) == test_size
        assert X[tr, 2].max() <= X[te, 2].min()


@FAST
@given(interactions(), st.integers(2, 4), st.booleans())
def test_user_disjoint_kfold_partitions_rows_and_users(X, n_splits, shuffle):
    folds = _splits(UserDisjointKFold(n_splits=n_splits, shuffle=shuffle, random_state=0), X)
    seen = np.zeros(len(X), dtype=int)
    for train, test in folds:
        np.testing.assert_array_equal(np.union1d(train, test), np.arange(len(X)))
        assert not set(X[train, 0]) & set(X[test, 0])
        seen[test] += 1
    assert (seen == 1).all()


@FAST
@given(interactions(), st.floats(0.1, 0.9))
def test_per_user_random_split_partitions(X, size):
    ((train, test),) = _splits(PerUserRandomSplit(test_size=size, random_state=0), X)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(len(X)))
    assert set(X[test, 0]) <= set(X[train, 0])


# ---------------------------------------------------------------- metrics
@st.composite
def ranked(draw, n_items=12):
    n_users = draw(st.integers(1, 6))
    k = draw(st.integers(1, 6))
    rec = np.full((n_users, k), -1)
    truth = []
    for u in range(n_users):
        m = draw(st.integers(0, k))
        rec[u, :m] = draw(st.permutations(range(n_items)))[:m]
        truth.append(draw(st.lists(st.integers(0, n_items - 1), max_size=6, unique=True)))
    return rec, truth, n_items


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranked(), st.sampled_from(["skip", "zero"]))
def test_accuracy_metrics_in_unit_interval(data, no_relevant):
    rec, truth, _ = data
    for metric in (precision_at_k, recall_at_k, ndcg_at_k, map_at_k, mrr_at_k, hit_rate_at_k):
        per_user = metric(truth, rec, average=False, no_relevant=no_relevant)
        ok = per_user[~np.isnan(per_user)]
        assert ((ok >= 0) & (ok <= 1 + 1e-12)).all(), metric.__name__
        # a user is undefined exactly when it has nothing relevant ("skip")
        empty = np.array([len(t) == 0 for t in truth])
        if no_relevant == "skip":
            np.testing.assert_array_equal(np.isnan(per_user), empty)
    ser = serendipity(truth, rec, [0, 1], average=False, no_relevant=no_relevant)
    assert ((ser[~np.isnan(ser)] >= 0) & (ser[~np.isnan(ser)] <= 1)).all()
    # serendipity counts a subset of the hits that precision counts
    prec = precision_at_k(truth, rec, average=False, no_relevant=no_relevant)
    ok = ~np.isnan(prec)
    assert (ser[ok] <= prec[ok] + 1e-12).all()


@FAST
@given(ranked(), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_beyond_accuracy_metrics_in_bounds(data, n_feat, seed):
    rec, _, n_items = data
    rng = np.random.default_rng(seed)
    assert 0 <= coverage(rec, n_items) <= 1
    pop = rng.integers(0, 20, n_items).astype(float)
    assume(pop.sum() > 0)
    nov = novelty(rec, pop, average=False)
    assert (nov[~np.isnan(nov)] >= 0).all()
    assert (nov[~np.isnan(nov)] <= np.log2(pop.sum()) + 1e-9).all()
    F = rng.normal(size=(n_items, n_feat))
    ild = intra_list_diversity(rec, F, average=False)
    ok = ild[~np.isnan(ild)]
    assert ((ok >= -1e-9) & (ok <= 2 + 1e-9)).all()
    # NaN exactly for lists of fewer than two items
    np.testing.assert_array_equal(np.isnan(ild), (rec >= 0).sum(axis=1) < 2)


# ---------------------------------------------------------------- predict
MODELS = estimators()


@st.composite
def ratings(draw):
    n = draw(st.integers(8, 40))
    users = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3, 1e6, 1e30]))
    y = draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n))
    return np.column_stack([users, items]), np.asarray(y) * scale


@pytest.mark.parametrize("name, est", MODELS, ids=[n for n, _ in MODELS])
def test_predict_is_finite_for_accepted_input(name, est):
    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ratings())
    def check(data):
        X, y = data
        model = clone(est)
        try:
            model.fit(X, y)
        except (ValueError, FloatingPointError) as exc:  # refused, with a reason
            assert str(exc)
            return
        X_new = np.column_stack([np.arange(-1, 7), np.arange(8) % 8])  # some unknown
        if hasattr(model, "predict"):
            assert np.isfinite(model.predict(X)).all()
            assert np.isfinite(model.predict(X_new)).all()
        recs = model.recommend(np.unique(X[:, 0]), n=1, exclude_seen=False)
        assert np.isfinite(recs.scores).all()

    check()
