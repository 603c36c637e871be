"""Splitters for interaction data: temporal, per-user and user-disjoint.

Rows of ``X`` are interactions (DESIGN.md section 2): column 0 holds user
ids, column 1 item ids.  Every splitter here has the scikit-learn interface
(``split(X, y=None, groups=None)`` yielding ``(train, test)`` integer index
arrays, ``get_n_splits``), so it can be passed as ``cv=`` to
:class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_validate` or
:func:`~sklearn.model_selection.learning_curve`.

Timestamps
----------
The temporal splitters read one timestamp per interaction:

* from ``groups`` when it is given (scikit-learn's way of passing side
  information to a splitter; ``GridSearchCV.fit(X, y, groups=t)``);
* otherwise from the column ``time_col`` of ``X``: a column name for a
  DataFrame or a position; by default the column named ``"timestamp"`` of a
  DataFrame, else the third column (position 2).

Numeric timestamps (integer or float epochs) and datetimes (``datetime64``,
timezone-aware pandas datetimes, ``datetime`` objects) are accepted; explicit
cutoffs must be of the same kind.

Users and items unseen in training
----------------------------------
A test interaction whose user or item never occurs in the training part
cannot be scored by a pure collaborative model.  ``unseen="keep"`` (default)
keeps such rows in the test set: recommenders then serve unknown users from
their popularity fallback and the ranking scorers count them (see
:func:`sklearn_mf.metrics.make_ranking_scorer`).  ``unseen="drop"`` removes
test rows whose user or item is unseen, ``"drop_items"`` only rows whose item
is unseen.  Dropped rows are in neither part of the fold.
"""

import numbers
import warnings
from abc import abstractmethod

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_random_state

from sklearn_mf._ids import factorize_ids
from sklearn_mf._validation import split_interactions

_UNSEEN = ("keep", "drop", "drop_items")


# ------------------------------------------------------------ timestamps
def _column(X, time_col):
    """The timestamp column of X as a 1-d array (or raise)."""
    if isinstance(X, pd.DataFrame):
        frame = X
    elif hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {arr.shape}.")
        if isinstance(time_col, str):
            raise ValueError(
                f"time_col={time_col!r} names a column, but X is an array without "
                "column names; pass a column position (e.g. time_col=2) or a DataFrame."
            )
        pos = 2 if time_col is None else time_col
        if not -arr.shape[1] <= pos < arr.shape[1]:
            raise ValueError(
                f"X has {arr.shape[1]} column(s), so there is no timestamp column at "
                f"position {pos}; pass time_col=<position> or the timestamps as groups."
            )
        return arr[:, pos], f"column {pos} of X"
    else:
        frame = pd.DataFrame(list(X))
    if time_col is None:
        if "timestamp" in frame.columns:
            return frame["timestamp"], "column 'timestamp' of X"
        if frame.shape[1] < 3:
            raise ValueError(
                f"X has {frame.shape[1]} column(s) and none is named 'timestamp'; pass "
                "time_col=<name or position> or the timestamps as groups."
            )
        return frame.iloc[:, 2], "column 2 of X"
    if isinstance(time_col, str):
        if time_col not in frame.columns:
            raise ValueError(
                f"X has no column {time_col!r}; its columns are {list(frame.columns)}."
            )
        return frame[time_col], f"column {time_col!r} of X"
    if not -frame.shape[1] <= time_col < frame.shape[1]:
        raise ValueError(
            f"X has {frame.shape[1]} column(s), so there is no timestamp column at "
            f"position {time_col}."
        )
    return frame.iloc[:, time_col], f"column {time_col} of X"


def _datetime_ns(values):
    s = pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.array(s.to_numpy(dtype="datetime64[ns]").view(np.int64))


def get_timestamps(X, groups=None, time_col=None):
    """One timestamp per interaction, as numbers that can be compared.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_interactions, n_columns)
    groups : array-like of shape (n_interactions,), default=None
        Timestamps given directly; they take precedence over ``time_col``.
    time_col : str or int, default=None
        Column name (DataFrame) or position; None looks for a column named
        ``"timestamp"`` and falls back to position 2.

    Returns
    -------
    t : ndarray of shape (n_interactions,)
        Numeric timestamps (int64 nanoseconds for datetimes).
    is_datetime : bool
        Whether the source held datetimes.
    """
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    if groups is not None:
        col = groups.to_numpy() if isinstance(groups, (pd.Series, pd.Index)) else groups
        source = "groups"
        col = np.asarray(col) if not isinstance(col, np.ndarray) else col
        if col.ndim != 1 or len(col) != n:
            raise ValueError(
                f"groups (the timestamps) must be 1-d with one value per interaction: "
                f"got shape {col.shape} for {n} interaction(s)."
            )
    else:
        col, source = _column(X, time_col)
    if isinstance(col, pd.Series) and isinstance(col.dtype, pd.DatetimeTZDtype):
        return _datetime_ns(col), True
    arr = col.to_numpy() if isinstance(col, pd.Series) else np.asarray(col)
    kind = arr.dtype.kind
    if kind == "M":
        t = _datetime_ns(arr)
        is_dt = True
    elif kind in "iu":
        return np.array(arr, dtype=np.int64), False
    elif kind == "f":
        t, is_dt = np.array(arr, dtype=np.float64), False
    elif kind == "O":
        sample = next((v for v in arr if v is not None), None)
        if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in arr):
            t, is_dt = arr.astype(np.float64), False
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # format inference
                    t = _datetime_ns(pd.to_datetime(pd.Series(arr), utc=True))
                is_dt = True
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"Timestamps from {source} must be numeric or datetime; got "
                    f"values such as {sample!r} (dtype object)."
                ) from exc
    else:
        example = arr[0] if len(arr) else None
        raise ValueError(
            f"Timestamps from {source} must be numeric or datetime; got dtype "
            f"{arr.dtype} (e.g. {example!r})."
        )
    bad = np.isnan(t) if not is_dt else (t == np.iinfo(np.int64).min)
    if bad.any():
        raise ValueError(
            f"Timestamps from {source} contain {int(bad.sum())} missing value(s) "
            f"(NaN/NaT) out of {len(t)}."
        )
    return t, is_dt


def _convert_cutoffs(cutoffs, is_datetime):
    vals = list(np.atleast_1d(np.asarray(cutoffs, dtype=object)))
    if is_datetime:
        try:
            out = np.array(
                [
                    pd.Timestamp(v).tz_convert("UTC").tz_localize(None).value
                    if pd.Timestamp(v).tzinfo is not None
                    else pd.Timestamp(v).value
                    for v in vals
                ],
                dtype=np.int64,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"The timestamps are datetimes, so cutoffs must be datetimes too; got {vals!r}."
            ) from exc
        if any(isinstance(v, numbers.Real) for v in vals):
            raise ValueError(
                f"The timestamps are datetimes, so cutoffs must be datetimes too; got {vals!r}."
            )
        return out
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in vals):
        raise ValueError(
            f"The timestamps are numeric, so cutoffs must be numbers too; got {vals!r}."
        )
    if all(isinstance(v, numbers.Integral) for v in vals):
        return np.asarray(vals, dtype=np.int64)
    return np.asarray(vals, dtype=np.float64)


# ---------------------------------------------------------------- base
def _check_unseen(unseen):
    if unseen not in _UNSEEN:
        raise ValueError(f"unseen must be one of {_UNSEEN}, got {unseen!r}.")


def _codes(X):
    """User and item codes (sorted ids when comparable) of interaction data."""
    users, items = split_interactions(X)
    return factorize_ids(users)[0], factorize_ids(items)[0]


def _apply_unseen(train, test, users, items, unseen):
    if unseen == "keep":
        return test
    keep = np.ones(len(test), dtype=bool)
    seen_i = np.zeros(items.max() + 1, dtype=bool)
    seen_i[items[train]] = True
    keep &= seen_i[items[test]]
    if unseen == "drop":
        seen_u = np.zeros(users.max() + 1, dtype=bool)
        seen_u[users[train]] = True
        keep &= seen_u[users[test]]
    return test[keep]


class _InteractionSplitter(BaseCrossValidator):
    """Shared plumbing: index dtype, empty-fold errors, unseen handling."""

    @abstractmethod
    def _folds(self, X, y, groups):
        """Yield (train, test) boolean-free index arrays before unseen handling."""

    def split(self, X, y=None, groups=None):
        """Generate indices to split interactions into training and test set.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Interactions: column 0 user ids, column 1 item ids.
        y : array-like of shape (n_interactions,), default=None
            Ignored; present for API compatibility.
        groups : array-like of shape (n_interactions,), default=None
            Timestamps for the temporal splitters (override ``time_col``);
            ignored by the others.

        Yields
        ------
        train : ndarray of int
            Training interaction indices, sorted.
        test : ndarray of int
            Test interaction indices, sorted.
        """
        _check_unseen(self.unseen)
        if X is None or _n_rows(X) == 0:
            raise ValueError(
                f"{type(self).__name__} cannot split an empty X: got "
                f"{'None' if X is None else 'no interactions'}; it needs at least one "
                "training and one test interaction."
            )
        users = items = None
        for fold, (train, test) in enumerate(self._folds(X, y, groups)):
            if self.unseen != "keep":
                if users is None:
                    users, items = _codes(X)
                n_before = len(test)
                test = _apply_unseen(train, test, users, items, self.unseen)
                if len(test) == 0:
                    raise ValueError(
                        f"Fold {fold}: all {n_before} test interaction(s) have a user or "
                        f"item unseen in the {len(train)} training interaction(s) and "
                        f"unseen={self.unseen!r} dropped them."
                    )
            yield np.sort(train).astype(np.intp), np.sort(test).astype(np.intp)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError  # split is overridden: train + test need not cover X


def _n_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _check_int(value, name, low):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _per_user_test_counts(counts, test_size, min_train):
    """How many of each user's interactions go to test (0: user kept in train)."""
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
        if test_size < 1:
            raise ValueError(f"test_size must be >= 1 when an integer, got {test_size}.")
        n_test = np.full(len(counts), int(test_size))
    elif isinstance(test_size, numbers.Real) and 0 < test_size < 1:
        n_test = np.maximum(1, np.floor(test_size * counts + 0.5)).astype(np.int64)
    else:
        raise ValueError(
            "test_size must be a positive integer (interactions per user) or a "
            f"float in (0, 1) (share of each user's interactions), got {test_size!r}."
        )
    min_train = _check_int(min_train, "min_train", 1)
    return np.where(counts - n_test >= min_train, n_test, 0)


def _last_per_group(group, order_keys, n_test_group):
    """Mask of rows that are among the last ``n_test_group[g]`` of their group,
    ordering rows by ``order_keys`` (lexsort keys, last = primary)."""
    order = np.lexsort(order_keys + (group,))
    g_sorted = group[order]
    counts = np.bincount(group)
    ends = np.cumsum(counts)
    from_end = ends[g_sorted] - 1 - np.arange(len(order))
    mask = np.zeros(len(group), dtype=bool)
    mask[order] = from_end < n_test_group[g_sorted]
    return mask


# ------------------------------------------------------------ splitters
class TemporalSplit(_InteractionSplitter):
    """Global time cutoffs: train strictly before a cutoff, test after it.

    With one fold, everything at or after the cutoff is the test set.  With
    several folds the windows expand, as in
    :class:`~sklearn.model_selection.TimeSeriesSplit`: fold ``f`` trains on
    every interaction before cutoff ``c_f`` and tests on ``c_f <= t <
    c_{f+1}`` (the last fold up to the end).  Interactions at exactly the
    cutoff go to test, so every test timestamp is ``>=`` every training
    timestamp.

    The cutoffs are, in order of precedence: ``cutoffs`` (explicit
    timestamps), ``quantiles`` (levels of the timestamp distribution), or
    ``n_splits`` windows of ``test_size`` of the interactions each, at the
    end of the timeline.

    Parameters
    ----------
    n_splits : int, default=1
        Number of folds when neither ``cutoffs`` nor ``quantiles`` is given.
    test_size : float, default=None
        Share of all interactions in each test window (quantile mode); None
        means 0.2 for one fold and ``1 / (n_splits + 1)`` otherwise.
        ``n_splits * test_size`` must be < 1.
    quantiles : array-like of float in (0, 1), default=None
        Increasing quantile levels of the timestamps, one cutoff per fold.
    cutoffs : array-like, default=None
        Increasing explicit cutoffs, one per fold: numbers for numeric
        timestamps, datetimes (or strings pandas parses) for datetimes.
    time_col : str or int, default=None
        Where the timestamps are in ``X`` (see the module docstring); ignored
        when ``groups`` is passed to ``split``.
    unseen : {"keep", "drop", "drop_items"}, default="keep"
        What to do with test interactions whose user or item has no training
        interaction in the fold (see the module docstring).

    See Also
    --------
    PerUserTemporalSplit : each user's latest interactions to test.
    sklearn.model_selection.TimeSeriesSplit : expanding windows by position.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf.model_selection import TemporalSplit
    >>> X = np.array([[0, 0, 10], [0, 1, 40], [1, 0, 20], [1, 2, 30], [2, 1, 50]])
    >>> for train, test in TemporalSplit(cutoffs=[30, 50]).split(X):
    ...     print(train, test)
    [0 2] [1 3]
    [0 1 2 3] [4]
    """

    # timestamps may come through ``groups``: request them under metadata routing
    __metadata_request__split = {"groups": True}

    def __init__(
        self,
        n_splits=1,
        *,
        test_size=None,
        quantiles=None,
        cutoffs=None,
        time_col=None,
        unseen="keep",
    ):
        self.n_splits = n_splits
        self.test_size = test_size
        self.quantiles = quantiles
        self.cutoffs = cutoffs
        self.time_col = time_col
        self.unseen = unseen

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
        """
        if self.cutoffs is not None:
            return len(np.atleast_1d(np.asarray(self.cutoffs, dtype=object)))
        if self.quantiles is not None:
            return len(np.atleast_1d(self.quantiles))
        return _check_int(self.n_splits, "n_splits", 1)

    def _cutoff_values(self, t, is_dt):
        if self.cutoffs is not None and self.quantiles is not None:
            raise ValueError("Give either cutoffs or quantiles, not both.")
        if self.cutoffs is not None:
            c = _convert_cutoffs(self.cutoffs, is_dt)
        else:
            if self.quantiles is not None:
                q = np.atleast_1d(np.asarray(self.quantiles, dtype=np.float64))
                if not ((q > 0) & (q < 1)).all():
                    raise ValueError(f"quantiles must lie in (0, 1), got {q.tolist()}.")
            else:
                n_splits = _check_int(self.n_splits, "n_splits", 1)
                size = self.test_size
                if size is None:
                    size = 0.2 if n_splits == 1 else 1.0 / (n_splits + 1)
                if not isinstance(size, numbers.Real) or not 0 < size < 1:
                    raise ValueError(f"test_size must be a float in (0, 1), got {size!r}.")
                if n_splits * size >= 1:
                    raise ValueError(
                        f"n_splits * test_size = {n_splits} * {size} = "
                        f"{n_splits * size:g} must be < 1 to leave training data."
                    )
                q = 1.0 - size * np.arange(n_splits, 0, -1)
            ts = np.sort(t)
            pos = np.clip(np.floor(q * len(ts) + 0.5).astype(np.intp), 0, len(ts) - 1)
            c = ts[pos]
        if len(c) > 1 and not (np.diff(c) > 0).all():
            f = int(np.flatnonzero(np.diff(c) <= 0)[0])
            a, b = (pd.Timestamp(v) if is_dt else v.item() for v in c[f : f + 2])
            where = f"cutoffs {f} and {f + 1} are {a} and {b}"
            if self.cutoffs is not None:
                raise ValueError(f"The {len(c)} cutoffs must be strictly increasing; {where}.")
            n_distinct = len(np.unique(t))
            given = (
                f"{len(c)} quantiles" if self.quantiles is not None else f"n_splits={self.n_splits}"
            )
            raise ValueError(
                f"{given} is too many for {len(t)} interaction(s) with {n_distinct} "
                f"distinct timestamp(s): two test windows start at the same time "
                f"({where}). Use fewer splits (or a larger test_size) so that each "
                "window holds interactions of its own."
            )
        return c

    def _folds(self, X, y, groups):
        t, is_dt = get_timestamps(X, groups, self.time_col)
        c = self._cutoff_values(t, is_dt)
        for f, cut in enumerate(c):
            train = np.flatnonzero(t < cut)
            upper = c[f + 1] if f + 1 < len(c) else None
            in_test = t >= cut
            if upper is not None:
                in_test &= t < upper
            test = np.flatnonzero(in_test)
            if len(train) == 0 or len(test) == 0:
                shown = pd.Timestamp(cut) if is_dt else cut
                raise ValueError(
                    f"Fold {f} with cutoff {shown} has {len(train)} training and "
                    f"{len(test)} test interaction(s) out of {len(t)}; choose cutoffs "
                    "inside the time range."
                )
            yield train, test


class PerUserTemporalSplit(_InteractionSplitter):
    """Leave-last-n-out: each user's latest interactions form the test set.

    For every user, the ``test_size`` most recent interactions (or the most
    recent share of them) go to test and the rest to train, so for each user
    every test timestamp is ``>=`` every training timestamp (ties are broken
    by row order: later rows count as more recent).  Users who would keep
    fewer than ``min_train`` training interactions stay entirely in train.
    Unlike :class:`TemporalSplit`, training rows of one user may be more
    recent than test rows of another.

    Parameters
    ----------
    test_size : int or float, default=1
        An integer: that many latest interactions per user (leave-one-out by
        default).  A float in (0, 1): that share of each user's interactions,
        rounded, at least 1.
    min_train : int, default=1
        Minimum number of training interactions a user must keep to get a
        test part.
    time_col : str or int, default=None
        Where the timestamps are in ``X`` (see the module docstring); ignored
        when ``groups`` is passed to ``split``.
    unseen : {"keep", "drop", "drop_items"}, default="keep"
        Handling of test items (users always have training data here) unseen
        in training.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf.model_selection import PerUserTemporalSplit
    >>> X = np.array([[0, 0, 10], [0, 1, 40], [0, 2, 20], [1, 0, 30], [1, 1, 5]])
    >>> train, test = next(PerUserTemporalSplit().split(X))
    >>> train, test
    (array([0, 2, 4]), array([1, 3]))
    """

    __metadata_request__split = {"groups": True}

    def __init__(self, test_size=1, *, min_train=1, time_col=None, unseen="keep"):
        self.test_size = test_size
        self.min_train = min_train
        self.time_col = time_col
        self.unseen = unseen

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds: always 1.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
        """
        return 1

    def _folds(self, X, y, groups):
        t, _ = get_timestamps(X, groups, self.time_col)
        users, _ = _codes(X)
        counts = np.bincount(users)
        n_test = _per_user_test_counts(counts, self.test_size, self.min_train)
        is_test = _last_per_group(users, (np.arange(len(t)), t), n_test)
        if not is_test.any():
            raise ValueError(
                f"No user has enough interactions for a test part: the most active of "
                f"the {len(counts)} user(s) has {int(counts.max())}, test_size="
                f"{self.test_size!r} and min_train={self.min_train}."
            )
        yield np.flatnonzero(~is_test), np.flatnonzero(is_test)


class PerUserRandomSplit(_InteractionSplitter):
    """Per-user random holdout: a random part of every user's interactions to test.

    Every user with enough interactions contributes to both parts, which is
    the classic (optimistic) protocol: the model may train on a user's
    future.  Prefer :class:`PerUserTemporalSplit` or :class:`TemporalSplit`
    when timestamps exist.  Several splits are independent reshuffles, as in
    :class:`~sklearn.model_selection.ShuffleSplit`.

    Parameters
    ----------
    test_size : int or float, default=0.2
        An integer: that many interactions per user; a float in (0, 1): that
        share of each user's interactions, rounded, at least 1.
    n_splits : int, default=1
        Number of independent reshuffles.
    min_train : int, default=1
        Minimum number of training interactions a user must keep to get a
        test part; other users stay entirely in train.
    random_state : int, RandomState instance or None, default=None
        Controls the draws; pass an int for the same folds on every call.
    unseen : {"keep", "drop", "drop_items"}, default="keep"
        Handling of test items unseen in training.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf.model_selection import PerUserRandomSplit
    >>> X = np.array([[0, i] for i in range(5)] + [[1, 0]])
    >>> train, test = next(PerUserRandomSplit(test_size=2, random_state=0).split(X))
    >>> len(train), len(test), 5 in train
    (4, 2, True)
    """

    def __init__(self, test_size=0.2, *, n_splits=1, min_train=1, random_state=None, unseen="keep"):
        self.test_size = test_size
        self.n_splits = n_splits
        self.min_train = min_train
        self.random_state = random_state
        self.unseen = unseen

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of reshuffles.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
        """
        return _check_int(self.n_splits, "n_splits", 1)

    def _folds(self, X, y, groups):
        users, _ = _codes(X)
        counts = np.bincount(users)
        n_test = _per_user_test_counts(counts, self.test_size, self.min_train)
        if not n_test.any():
            raise ValueError(
                f"No user has enough interactions for a test part: the most active of "
                f"the {len(counts)} user(s) has {int(counts.max())}, test_size="
                f"{self.test_size!r} and min_train={self.min_train}."
            )
        rng = check_random_state(self.random_state)
        for _ in range(self.get_n_splits()):
            keys = rng.random_sample(len(users))
            is_test = _last_per_group(users, (keys,), n_test)
            yield np.flatnonzero(~is_test), np.flatnonzero(is_test)


class UserDisjointKFold(_InteractionSplitter):
    """K-fold over users: each user's interactions are all in one test fold.

    The test users of a fold have no training interaction at all, which is
    the cold-start setting (a recommender serves them from its fallback or
    by fold-in).  Users are cut into ``n_splits`` consecutive groups of
    about the same number of *interactions*, in id order or, with
    ``shuffle=True``, in a random order.  Equivalent in spirit to
    :class:`~sklearn.model_selection.GroupKFold` with ``groups = user ids``.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=False
        Randomise which users share a fold.
    random_state : int, RandomState instance or None, default=None
        Used when ``shuffle=True``.
    unseen : {"keep", "drop_items"}, default="keep"
        Test items unseen in training: keep or drop their rows (test users are
        unseen by design, so "drop" would empty every fold and is refused).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf.model_selection import UserDisjointKFold
    >>> X = np.array([[u, i] for u in range(4) for i in range(3)])
    >>> for train, test in UserDisjointKFold(n_splits=2).split(X):
    ...     print(np.unique(X[test, 0]))
    [0 1]
    [2 3]
    """

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None, unseen="keep"):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state
        self.unseen = unseen

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of folds.

        Parameters
        ----------
        X, y, groups : object
            Ignored; present for API compatibility.

        Returns
        -------
        n_splits : int
        """
        return _check_int(self.n_splits, "n_splits", 2)

    def _folds(self, X, y, groups):
        if self.unseen == "drop":
            raise ValueError(
                "UserDisjointKFold tests on users unseen in training by design; "
                "unseen='drop' would empty every fold (use 'keep' or 'drop_items')."
            )
        k = self.get_n_splits()
        users, _ = _codes(X)
        counts = np.bincount(users)
        n_users = len(counts)
        if n_users < k:
            raise ValueError(f"Cannot split {n_users} user(s) into n_splits={k} folds.")
        if self.shuffle:
            order = check_random_state(self.random_state).permutation(n_users)
        else:
            order = np.arange(n_users)  # codes follow sorted user ids
        cum = np.cumsum(counts[order]) - counts[order] / 2.0
        fold_of_pos = np.minimum((cum / counts.sum() * k).astype(np.intp), k - 1)
        # guarantee non-empty folds when some users are very active
        if len(np.unique(fold_of_pos)) < k:
            fold_of_pos = np.minimum((np.arange(n_users) * k) // n_users, k - 1)
        fold = np.empty(n_users, dtype=np.intp)
        fold[order] = fold_of_pos
        row_fold = fold[users]
        for f in range(k):
            yield np.flatnonzero(row_fold != f), np.flatnonzero(row_fold == f)
