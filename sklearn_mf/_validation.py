"""Validation of interaction data, shared by every recommender.

Interactions follow the convention of DESIGN.md section 2: each row of ``X`` is
one (user, item, ...) interaction; column 0 holds user ids, column 1 item ids
(any hashable values), further columns are ignored by the models.  ``y`` is the
rating or interaction strength.  Everything here copies rather than modifies
what the user passed.
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    column_or_1d,
    validate_data,
)

from sklearn_mf import _setup_fast


def _n_rows(X):
    shape = getattr(X, "shape", None)
    if shape is not None:
        return shape[0]
    return len(X)


def split_interactions(X):
    """Return the user-id and item-id columns of interaction data ``X``.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_interactions, n_columns)
        Interactions; ``n_columns >= 2``.

    Returns
    -------
    users, items : ndarray of shape (n_interactions,)
        Raw ids, as new arrays (never views that could alias the input).
    """
    if sp.issparse(X):
        raise TypeError(
            "Interaction data X must be a dense table of (user, item, ...) rows, "
            "not a sparse matrix. To start from a sparse user-item matrix use "
            "sklearn_mf.matrix_to_interactions (and sklearn_mf.interactions_to_matrix "
            "for the way back)."
        )
    if isinstance(X, pd.DataFrame):
        frame = X
    elif hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        arr = np.asarray(X)
        if arr.dtype.kind == "c":
            raise ValueError("Complex data not supported: ids must be numbers or strings.")
        if arr.ndim != 2:
            raise ValueError(
                "Expected a 2D array of (user, item, ...) interactions, got an array "
                f"with {arr.ndim} dimension(s) and shape {arr.shape}. Reshape your data "
                "so that each row is one interaction."
            )
        _check_n_columns(arr.shape)
        if arr.dtype in (np.int32, np.int64) and arr.flags.c_contiguous:
            # one parallel pass (integer ids: nothing more to check)
            return _setup_fast.split_columns(arr, 0)
        users, items = arr[:, 0].copy(), arr[:, 1].copy()
        return _check_ids(users, "user"), _check_ids(items, "item")
    else:
        try:
            frame = pd.DataFrame(list(X))
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            raise ValueError(
                "X must be an array, a DataFrame or a list of (user, item, ...) rows."
            ) from exc
    _check_n_columns(frame.shape)
    users = frame.iloc[:, 0].to_numpy(copy=True)
    items = frame.iloc[:, 1].to_numpy(copy=True)
    return _check_ids(users, "user"), _check_ids(items, "item")


def _check_n_columns(shape):
    if shape[1] < 2:
        raise ValueError(
            f"Found array with {shape[1]} feature(s) (shape={shape}) while a minimum "
            "of 2 is required: X needs a user id column and an item id column."
        )


def _check_ids(ids, kind):
    if ids.dtype.kind in "fc":
        if not np.isfinite(ids).all():
            raise ValueError(f"X contains missing or infinite {kind} ids (NaN or inf).")
    elif ids.dtype.kind == "O":
        if pd.isna(ids).any():
            raise ValueError(f"X contains missing {kind} ids (None or NaN).")
        bad = next((v for v in ids if not _hashable(v)), None)
        if bad is not None:
            raise TypeError(
                f"{kind} ids must be hashable values; argument must be a string, a "
                f"number or a tuple of them, not {type(bad).__name__!r}: {bad!r:.60}."
            )
        if any(isinstance(v, complex) for v in ids):
            raise ValueError("Complex data not supported: ids must be numbers or strings.")
    elif ids.dtype.kind == "M" or ids.dtype.kind == "m":
        raise ValueError(f"{kind} ids must be numbers or strings, got dtype {ids.dtype}.")
    return ids


def _hashable(value):
    """Whether ``value`` can be an id: any hashable value, tuples included
    (a tuple holding a list is not hashable and is refused)."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def check_columns(estimator, X, *, reset):
    """The column rule of interaction data (``doc/user_guide/conventions.rst``).

    Columns are read by position: 0 holds the user ids, 1 the item ids, and
    any further columns (a timestamp, ...) are ignored by the models, however
    many there are.  ``fit`` (``reset=True``) records ``n_features_in_`` and,
    for a DataFrame with string column names, ``feature_names_in_``.  Later
    calls accept any number of columns >= 2; when both the fitted data and
    ``X`` carry column names, the names of the two id columns must agree, so
    that a table with reordered columns is refused rather than read with users
    and items swapped.  Names of the ignored columns are not compared.

    Parameters
    ----------
    estimator : estimator instance
    X : ndarray, DataFrame or list of rows
    reset : bool
        True in ``fit``.
    """
    if reset:
        if type(X) is np.ndarray and X.ndim == 2:
            # what validate_data(reset=True, skip_check_array=True) does for
            # an array, which has no feature names, without its look-up of
            # dataframe libraries (40 us per fit)
            estimator.n_features_in_ = X.shape[1]
            if hasattr(estimator, "feature_names_in_"):
                delattr(estimator, "feature_names_in_")
            return
        validate_data(estimator, X, reset=True, skip_check_array=True)
        return
    name = type(estimator).__name__
    shape = getattr(X, "shape", None)
    n_cols = shape[1] if shape is not None and len(shape) == 2 else None
    if n_cols is not None and n_cols < 2:
        expected = getattr(estimator, "n_features_in_", 2)
        raise ValueError(
            f"X has {n_cols} features, but {name} is expecting {expected} features "
            "as input: X needs a user id column and an item id column (columns 0 "
            "and 1; further columns are ignored)."
        )
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None or not isinstance(X, pd.DataFrame) or len(fitted) < 2:
        return
    given = list(X.columns[:2])
    if not all(isinstance(c, str) for c in given) or list(fitted[:2]) == given:
        return
    try:  # scikit-learn's own message first: it says what differs
        validate_data(estimator, X, reset=False, skip_check_array=True)
        detail = ""
    except ValueError as exc:
        detail = str(exc).rstrip("\n") + "\n"
    raise ValueError(
        f"{detail}{name} reads the user and item ids from columns 0 and 1 of X; "
        f"it was fitted with columns {list(fitted[:2])} there, but X has {given}. "
        "Reorder or rename the columns of X, or pass X.to_numpy() to read them by "
        "position. Columns after the ids are ignored and may differ."
    )


def check_interactions(
    estimator,
    X,
    y=None,
    sample_weight=None,
    *,
    reset,
    y_required=False,
    y_nonnegative=False,
    y_float32=False,
):
    """Validate interaction data once, at the Python boundary.

    Parameters
    ----------
    estimator : estimator instance
        Used for ``n_features_in_`` / ``feature_names_in_`` bookkeeping and
        error messages.
    X : array-like or DataFrame of shape (n_interactions, n_columns)
    y : array-like of shape (n_interactions,), default=None
        Ratings or interaction strengths.  Must be finite.
    sample_weight : array-like of shape (n_interactions,), default=None
        Non-negative weights.
    reset : bool
        True in ``fit`` (record ``n_features_in_``), False afterwards (check it).
    y_required : bool, default=False
        Raise if ``y`` is None.
    y_nonnegative : bool, default=False
        Raise if ``y`` has negative entries (implicit feedback counts).
    y_float32 : bool, default=False
        Return a 1-d float32 ``y`` as a read-only view of the caller's
        array instead of a private float64 copy (for a caller that only
        reads it and computes in float64 what it needs; 0.8 GB of new
        memory less at 100M ratings).

    Returns
    -------
    users, items : ndarray of shape (n_interactions,)
        Raw ids.
    y : ndarray of float64 (or float32, see ``y_float32``) or None
    sample_weight : ndarray of float64 or None
    """
    name = type(estimator).__name__
    if X is None:
        raise ValueError(f"{name} requires interaction data X, got None.")
    if isinstance(X, str):
        raise ValueError(f"{name} expects a table of interactions, got a string.")
    if hasattr(X, "__array__") and not isinstance(X, pd.DataFrame) and not sp.issparse(X):
        X = np.asarray(X)
    if _n_rows(X) == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={getattr(X, 'shape', (0,))}) while a "
            f"minimum of 1 is required by {name}: X holds no interactions."
        )
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind != "c":
        # compare the number of columns with fit before complaining about it
        check_columns(estimator, X, reset=reset)
        users, items = split_interactions(X)
    else:
        users, items = split_interactions(X)
        check_columns(estimator, X, reset=reset)
    if y is None:
        if y_required:
            raise ValueError(
                f"{name} requires y to be passed, but the target y is None (y holds the ratings)."
            )
    else:
        y = column_or_1d(np.asarray(y), warn=True)
        if y.dtype.kind == "c":
            raise ValueError("Complex data not supported: y must be real ratings.")
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"y must be numeric (ratings or counts); got dtype {y.dtype}."
                ) from exc
        check_consistent_length(users, y)
        n_bad = 0
        if y_float32 and y.dtype == np.float32 and y.ndim == 1:
            y = np.ascontiguousarray(y).view()
            y.flags.writeable = False
            n_bad = _setup_fast.count_nonfinite(y, 0)
        elif y.dtype in (np.float32, np.float64) and y.ndim == 1:
            # the private float64 copy and the finiteness check in one parallel pass
            y, n_bad = _setup_fast.finite_float64(np.ascontiguousarray(y), 0)
        else:
            y = np.array(y, dtype=np.float64)  # always a private copy
            if not np.isfinite(y).all():
                n_bad = int((~np.isfinite(y)).sum())
        if n_bad:
            raise ValueError(
                f"y contains {n_bad} NaN or infinite value(s); ratings must be finite."
            )
        if y_nonnegative and (y < 0).any():
            raise ValueError(
                f"y contains {int((y < 0).sum())} negative value(s); implicit feedback "
                "strengths (counts, durations) must be >= 0."
            )
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            np.asarray(sample_weight), users, dtype=np.float64, copy=True
        )
        if (sample_weight < 0).any():
            raise ValueError("sample_weight must be non-negative.")
    return users, items, y, sample_weight


def check_als_regularization(estimator):
    """ALS solves one ridge system per user and per item: without a penalty,
    a user or item with fewer ratings than factors has a singular system, so
    ``regularization=0`` is refused before any work is done."""
    if getattr(estimator, "solver", "als") == "als" and estimator.regularization == 0:
        raise ValueError(
            f"{type(estimator).__name__}(solver='als') needs regularization > 0: "
            "with regularization=0 the least-squares system of every user or item "
            "with fewer ratings than n_factors is singular. Use a small positive "
            "value (e.g. 1e-3) or solver='sgd'."
        )


def check_n(n, n_max, what="items"):
    """Validate the number of results requested from a recommender."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"n must be a positive integer, got {n!r}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if n > n_max:
        raise ValueError(f"n={n} is larger than the number of candidate {what} ({n_max}).")
    return int(n)
