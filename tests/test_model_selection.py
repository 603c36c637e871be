"""Splitters: no leakage, fold coverage, determinism, timestamp sources, errors."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate, learning_curve

from sklearn_mf import MatrixFactorization
from sklearn_mf.datasets import make_ratings
from sklearn_mf.model_selection import (
    PerUserRandomSplit,
    PerUserTemporalSplit,
    TemporalSplit,
    UserDisjointKFold,
    get_timestamps,
)


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(n_users=120, n_items=80, n_ratings=3000, random_state=0)
    return X, y


def _per_user_max_min(users, t, train, test):
    tr = pd.Series(t[train]).groupby(users[train]).max()
    te = pd.Series(t[test]).groupby(users[test]).min()
    both = tr.index.intersection(te.index)
    return tr[both], te[both]


# ------------------------------------------------------------- TemporalSplit
def test_temporal_split_single_fold_no_leakage_and_size(ratings):
    X, _ = ratings
    t = X[:, 2]
    folds = list(TemporalSplit().split(X))
    assert len(folds) == 1 == TemporalSplit().get_n_splits()
    train, test = folds[0]
    assert t[train].max() < t[test].min()
    assert len(train) + len(test) == len(X)
    assert np.intersect1d(train, test).size == 0
    assert len(test) / len(X) == pytest.approx(0.2, abs=0.01)
    assert train.dtype.kind == "i" and np.all(np.diff(train) > 0)


def test_temporal_split_expanding_windows(ratings):
    X, _ = ratings
    t = X[:, 2]
    cv = TemporalSplit(n_splits=3, test_size=0.15)
    folds = list(cv.split(X))
    assert len(folds) == cv.get_n_splits() == 3
    tests = [te for _, te in folds]
    for f, (train, test) in enumerate(folds):
        assert t[train].max() < t[test].min()  # no leakage
        assert len(test) / len(X) == pytest.approx(0.15, abs=0.01)
        if f:
            prev_train, prev_test = folds[f - 1]
            # expanding: the previous training set plus the previous test window
            assert np.array_equal(train, np.union1d(prev_train, prev_test))
            assert t[prev_test].max() < t[test].min()
    # test windows are disjoint and cover everything from the first cutoff on
    allt = np.concatenate(tests)
    assert len(np.unique(allt)) == len(allt)
    assert np.array_equal(np.sort(allt), np.flatnonzero(t >= t[tests[0]].min()))


def test_temporal_split_explicit_cutoffs_and_ties():
    X = np.array([[0, 0, 1], [0, 1, 2], [1, 0, 2], [1, 1, 3], [2, 2, 5], [2, 0, 7]])
    folds = list(TemporalSplit(cutoffs=[2, 5]).split(X))
    # rows at exactly the cutoff go to test
    assert [f[0].tolist() for f in folds] == [[0], [0, 1, 2, 3]]
    assert [f[1].tolist() for f in folds] == [[1, 2, 3], [4, 5]]
    assert TemporalSplit(cutoffs=[2, 5]).get_n_splits() == 2
    folds_q = list(TemporalSplit(quantiles=[0.5]).split(X))
    assert folds_q[0][1].tolist() == [3, 4, 5]


def test_timestamp_sources_give_the_same_folds(ratings):
    X, y = ratings
    ref = [tuple(map(tuple, f)) for f in TemporalSplit(n_splits=2).split(X)]

    def same(cv, XX, groups=None):
        got = [tuple(map(tuple, f)) for f in cv.split(XX, groups=groups)]
        assert got == ref

    df = pd.DataFrame(X, columns=["user", "item", "timestamp"])
    same(TemporalSplit(n_splits=2), df)  # column named "timestamp"
    same(TemporalSplit(n_splits=2, time_col="when"), df.rename(columns={"timestamp": "when"}))
    same(TemporalSplit(n_splits=2), df.rename(columns={"timestamp": "t"}))  # third column
    same(TemporalSplit(n_splits=2, time_col=0), df[["timestamp", "user", "item"]].to_numpy())
    same(TemporalSplit(n_splits=2), X[:, :2], groups=X[:, 2])  # via groups
    same(TemporalSplit(n_splits=2), list(map(tuple, X)))  # list of tuples
    # datetime64 (naive and tz-aware) and float epochs
    dt = df.assign(timestamp=pd.to_datetime(df["timestamp"], unit="s"))
    same(TemporalSplit(n_splits=2), dt)
    same(TemporalSplit(n_splits=2), dt.assign(timestamp=dt["timestamp"].dt.tz_localize("UTC")))
    same(TemporalSplit(n_splits=2), df.astype({"timestamp": float}))
    same(TemporalSplit(n_splits=2), df, groups=pd.Series(dt["timestamp"].to_numpy()))


def test_datetime_cutoffs(ratings):
    X, _ = ratings
    df = pd.DataFrame(X, columns=["user", "item", "timestamp"])
    cut = 1_577_836_800 + 200 * 24 * 3600
    numeric = next(TemporalSplit(cutoffs=[cut]).split(df))
    dt = df.assign(timestamp=pd.to_datetime(df["timestamp"], unit="s"))
    for c in (
        pd.Timestamp(cut, unit="s"),
        str(pd.Timestamp(cut, unit="s")),
        np.datetime64(cut, "s"),
        pd.Timestamp(cut, unit="s", tz="UTC"),
    ):
        got = next(TemporalSplit(cutoffs=[c]).split(dt))
        assert np.array_equal(got[0], numeric[0]) and np.array_equal(got[1], numeric[1])
    with pytest.raises(ValueError, match="timestamps are datetimes, so cutoffs must be"):
        next(TemporalSplit(cutoffs=[cut]).split(dt))
    with pytest.raises(ValueError, match="timestamps are numeric, so cutoffs must be"):
        next(TemporalSplit(cutoffs=["2020-06-01"]).split(df))


def test_temporal_split_errors(ratings):
    X, _ = ratings
    with pytest.raises(ValueError, match="X has 2 column"):
        next(TemporalSplit().split(X[:, :2]))
    with pytest.raises(ValueError, match="none is named 'timestamp'"):
        next(TemporalSplit().split(pd.DataFrame(X[:, :2], columns=["u", "i"])))
    with pytest.raises(ValueError, match="no column 'ts'"):
        next(TemporalSplit(time_col="ts").split(pd.DataFrame(X, columns=["u", "i", "t"])))
    with pytest.raises(ValueError, match="names a column, but X is an array"):
        next(TemporalSplit(time_col="ts").split(X))
    bad = pd.DataFrame({"u": [1, 2], "i": [1, 2], "timestamp": ["abc", "def"]})
    with pytest.raises(ValueError, match="must be numeric or datetime; got values such as 'abc'"):
        next(TemporalSplit().split(bad))
    strings = np.array([["a", "b", "x"], ["c", "d", "y"]])
    with pytest.raises(ValueError, match="must be numeric or datetime; got dtype <U1"):
        next(TemporalSplit().split(strings))
    nan_t = pd.DataFrame({"u": [1, 2, 3], "i": [1, 2, 3], "timestamp": [1.0, np.nan, 3.0]})
    with pytest.raises(ValueError, match="contain 1 missing value"):
        next(TemporalSplit().split(nan_t))
    with pytest.raises(ValueError, match="strictly increasing"):
        next(TemporalSplit(cutoffs=[5, 5]).split(X))
    with pytest.raises(ValueError, match=r"Fold 0 with cutoff 0 has 0 training and 3000 test"):
        next(TemporalSplit(cutoffs=[0]).split(X))
    with pytest.raises(ValueError, match=r"n_splits \* test_size = 4 \* 0.25"):
        next(TemporalSplit(n_splits=4, test_size=0.25).split(X))
    with pytest.raises(ValueError, match="either cutoffs or quantiles"):
        next(TemporalSplit(cutoffs=[1], quantiles=[0.5]).split(X))
    with pytest.raises(ValueError, match="quantiles must lie in"):
        next(TemporalSplit(quantiles=[1.5]).split(X))
    with pytest.raises(ValueError, match="one value per interaction"):
        next(TemporalSplit().split(X, groups=X[:10, 2]))
    with pytest.raises(ValueError, match="unseen must be one of"):
        next(TemporalSplit(unseen="ignore").split(X))


def test_unseen_options():
    X, _ = make_ratings(n_users=600, n_items=400, n_ratings=3000, random_state=1)
    u, i = X[:, 0], X[:, 1]
    train, test_keep = next(TemporalSplit(test_size=0.3).split(X))
    unseen_u = ~np.isin(u[test_keep], u[train])
    unseen_i = ~np.isin(i[test_keep], i[train])
    assert unseen_u.any() and unseen_i.any()  # the case is exercised
    _, test_drop = next(TemporalSplit(test_size=0.3, unseen="drop").split(X))
    assert np.array_equal(test_drop, test_keep[~unseen_u & ~unseen_i])
    _, test_items = next(TemporalSplit(test_size=0.3, unseen="drop_items").split(X))
    assert np.array_equal(test_items, test_keep[~unseen_i])


def test_get_timestamps_returns_copies():
    df = pd.DataFrame({"u": [1, 2], "i": [3, 4], "timestamp": [10, 20]})
    for frame in (
        df,
        df.assign(timestamp=df["timestamp"].astype(float)),
        df.assign(timestamp=pd.to_datetime(df["timestamp"], unit="s")),
    ):
        before = frame.copy()
        t, _ = get_timestamps(frame)
        t[0] = 99
        pd.testing.assert_frame_equal(frame, before)
    t, is_dt = get_timestamps(df.assign(timestamp=pd.to_datetime(df["timestamp"], unit="s")))
    assert is_dt and t.tolist() == [10 * 10**9, 20 * 10**9]


def test_splitters_do_not_modify_input(ratings):
    X, _ = ratings
    df = pd.DataFrame(X, columns=["user", "item", "timestamp"])
    X0, df0 = X.copy(), df.copy()
    for cv in (
        TemporalSplit(n_splits=2, unseen="drop"),
        PerUserTemporalSplit(),
        PerUserRandomSplit(random_state=0),
        UserDisjointKFold(3),
    ):
        for XX in (X, df):
            list(cv.split(XX))
    assert np.array_equal(X, X0)
    pd.testing.assert_frame_equal(df, df0)


# -------------------------------------------------------- per-user splits
def test_per_user_temporal_leave_last_n_out(ratings):
    X, _ = ratings
    u, t = X[:, 0], X[:, 2]
    counts = np.bincount(u)
    train, test = next(PerUserTemporalSplit(test_size=2, min_train=12).split(X))
    assert len(train) + len(test) == len(X) and np.intersect1d(train, test).size == 0
    tr_max, te_min = _per_user_max_min(u, t, train, test)
    assert (tr_max <= te_min).all()  # no leakage per user
    n_test = np.bincount(u[test], minlength=len(counts))
    eligible = counts >= 14
    assert (n_test[eligible] == 2).all()
    assert (n_test[~eligible] == 0).all()  # users with too few stay in train
    assert (~eligible & (counts > 0)).any()  # and there are such users


def test_per_user_temporal_fraction_and_ties():
    # user 0: 10 rows; user 1: 3 rows with tied timestamps; user 2: one row
    X = np.array(
        [[0, j, 100 + j] for j in range(10)] + [[1, 0, 5], [1, 1, 5], [1, 2, 5]] + [[2, 0, 1]]
    )
    train, test = next(PerUserTemporalSplit(test_size=0.3).split(X))
    assert test.tolist() == [7, 8, 9, 12]  # 3 latest of user 0; tie: last row of user 1
    # the user with one interaction keeps it in train
    assert 13 in train
    pd_X = pd.DataFrame(X, columns=["u", "i", "ts"])
    train2, test2 = next(PerUserTemporalSplit(test_size=0.3, time_col="ts").split(pd_X))
    assert np.array_equal(test, test2)


def test_per_user_errors():
    X = np.array([[0, 0, 1], [1, 0, 2]])
    with pytest.raises(ValueError, match="most active of the 2 user"):
        next(PerUserTemporalSplit().split(X))
    with pytest.raises(ValueError, match="test_size must be a positive integer"):
        next(PerUserRandomSplit(test_size=1.5).split(X))
    with pytest.raises(ValueError, match="min_train must be an integer >= 1"):
        next(PerUserTemporalSplit(min_train=0).split(np.array([[0, 0, 1], [0, 1, 2]])))


def test_per_user_random_split(ratings):
    X, _ = ratings
    u = X[:, 0]
    counts = np.bincount(u)
    cv = PerUserRandomSplit(test_size=0.25, n_splits=3, min_train=2, random_state=7)
    folds = list(cv.split(X))
    assert len(folds) == cv.get_n_splits() == 3
    for train, test in folds:
        assert len(train) + len(test) == len(X) and np.intersect1d(train, test).size == 0
        n_test = np.bincount(u[test], minlength=len(counts))
        expected = np.maximum(1, np.floor(0.25 * counts + 0.5))
        eligible = counts - expected >= 2
        assert np.array_equal(n_test[eligible], expected[eligible])
        assert (n_test[~eligible] == 0).all()
    # reshuffles differ; an int random_state gives the same folds on every call
    assert not np.array_equal(folds[0][1], folds[1][1])
    again = list(cv.split(X))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = list(
        PerUserRandomSplit(test_size=0.25, n_splits=3, min_train=2, random_state=8).split(X)
    )
    assert not np.array_equal(folds[0][1], other[0][1])


# -------------------------------------------------------- user-disjoint
@pytest.mark.parametrize("shuffle", [False, True])
def test_user_disjoint_kfold(ratings, shuffle):
    X, _ = ratings
    u = X[:, 0]
    cv = UserDisjointKFold(n_splits=4, shuffle=shuffle, random_state=0)
    folds = list(cv.split(X))
    assert len(folds) == cv.get_n_splits() == 4
    seen_test = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(seen_test), np.arange(len(X)))  # every row tested once
    for train, test in folds:
        assert np.intersect1d(u[train], u[test]).size == 0  # cold-start users
        assert len(train) + len(test) == len(X)
        assert len(test) / len(X) == pytest.approx(0.25, abs=0.08)  # balanced
    if shuffle:
        again = list(cv.split(X))
        assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
        other = list(UserDisjointKFold(4, shuffle=True, random_state=1).split(X))
        assert not np.array_equal(folds[0][1], other[0][1])


def test_user_disjoint_errors_and_drop_items(ratings):
    X, _ = ratings
    with pytest.raises(ValueError, match="Cannot split 2 user"):
        next(UserDisjointKFold(3).split(np.array([[0, 0], [1, 0]])))
    with pytest.raises(ValueError, match="unseen='drop' would empty every fold"):
        next(UserDisjointKFold(3, unseen="drop").split(X))
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        UserDisjointKFold(1).get_n_splits()
    for train, test in UserDisjointKFold(3, unseen="drop_items").split(X):
        assert np.isin(X[test, 1], X[train, 1]).all()


# ------------------------------------------------------ sklearn integration
def test_splitters_as_cv_in_sklearn_tools(ratings):
    X, y = ratings
    mf = MatrixFactorization(n_factors=4, n_epochs=5, random_state=0, n_jobs=1)
    res = cross_validate(
        mf, X, y, cv=TemporalSplit(n_splits=2), scoring="neg_root_mean_squared_error"
    )
    assert len(res["test_score"]) == 2 and np.all(res["test_score"] < 0)
    sizes, tr_scores, te_scores = learning_curve(
        mf,
        X,
        y,
        cv=PerUserTemporalSplit(test_size=2),
        train_sizes=[0.5, 1.0],
        scoring="neg_mean_absolute_error",
    )
    assert te_scores.shape == (2, 1)
    res = cross_validate(mf, X, y, cv=UserDisjointKFold(3), scoring="neg_mean_absolute_error")
    assert len(res["test_score"]) == 3
    # timestamps passed as groups through GridSearchCV.fit
    search = GridSearchCV(
        mf,
        {"n_factors": [2, 4]},
        cv=TemporalSplit(n_splits=2),
        scoring="neg_root_mean_squared_error",
    )
    search.fit(X[:, :2], y, groups=X[:, 2])
    assert search.n_splits_ == 2


def test_groups_are_routed_as_timestamps(ratings):
    # under metadata routing the temporal splitters request ``groups`` themselves
    import sklearn

    X, y = ratings
    ref = [te.tolist() for _, te in TemporalSplit(n_splits=2).split(X)]
    with sklearn.config_context(enable_metadata_routing=True):
        res = cross_validate(
            MatrixFactorization(n_factors=2, n_epochs=2, random_state=0, n_jobs=1),
            X[:, :2],
            y,
            cv=TemporalSplit(n_splits=2),
            params={"groups": X[:, 2]},
            return_indices=True,
        )
    assert [te.tolist() for te in res["indices"]["test"]] == ref


def test_repr():
    assert repr(TemporalSplit(n_splits=3)).startswith("TemporalSplit(")
    assert "random_state=3" in repr(PerUserRandomSplit(random_state=3))
