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
            "sklearn_mf.matrix_to_interactions."
        )
    if isinstance(X, pd.DataFrame):
        frame = X
    elif hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(
                "X must be 2-dimensional with one (user, item, ...) interaction per "
                f"row; got an array with {arr.ndim} dimension(s) and shape {arr.shape}."
            )
        if arr.shape[1] < 2:
            raise ValueError(
                "X must have at least 2 columns (user id, item id); "
                f"got {arr.shape[1]} column(s)."
            )
        users, items = arr[:, 0].copy(), arr[:, 1].copy()
        return _check_ids(users, "user"), _check_ids(items, "item")
    else:
        try:
            frame = pd.DataFrame(list(X))
        except Exception as exc:  # noqa: BLE001 - re-raised with context
            raise ValueError(
                "X must be an array, a DataFrame or a list of (user, item, ...) rows."
            ) from exc
    if frame.ndim != 2 or frame.shape[1] < 2:
        raise ValueError(
            "X must have at least 2 columns (user id, item id); "
            f"got {frame.shape[1] if frame.ndim == 2 else 0} column(s)."
        )
    users = frame.iloc[:, 0].to_numpy(copy=True)
    items = frame.iloc[:, 1].to_numpy(copy=True)
    return _check_ids(users, "user"), _check_ids(items, "item")


def _check_ids(ids, kind):
    if ids.dtype.kind in "fc":
        if not np.isfinite(ids).all():
            raise ValueError(f"X contains missing or infinite {kind} ids (NaN or inf).")
    elif ids.dtype.kind == "O" and pd.isna(ids).any():
        raise ValueError(f"X contains missing {kind} ids (None or NaN).")
    elif ids.dtype.kind == "M" or ids.dtype.kind == "m":
        raise ValueError(f"{kind} ids must be numbers or strings, got dtype {ids.dtype}.")
    return ids


def check_interactions(
    estimator,
    X,
    y=None,
    sample_weight=None,
    *,
    reset,
    y_required=False,
    y_nonnegative=False,
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

    Returns
    -------
    users, items : ndarray of shape (n_interactions,)
        Raw ids.
    y : ndarray of float64 or None
    sample_weight : ndarray of float64 or None
    """
    name = type(estimator).__name__
    if X is None:
        raise ValueError(f"{name} requires interaction data X, got None.")
    if isinstance(X, str):
        raise ValueError(f"{name} expects a table of interactions, got a string.")
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    n = _n_rows(X)
    if n == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=({n}, ...)) while a minimum of 1 "
            f"is required by {name}: X holds no interactions."
        )
    users, items = split_interactions(X)
    if y is None:
        if y_required:
            raise ValueError(f"{name} requires y (the ratings) to be passed, but y is None.")
    else:
        y = column_or_1d(y, warn=True)
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"y must be numeric (ratings or counts); got dtype {y.dtype}."
                ) from exc
        y = np.array(y, dtype=np.float64)  # always a private copy
        check_consistent_length(users, y)
        if not np.isfinite(y).all():
            n_bad = int((~np.isfinite(y)).sum())
            raise ValueError(
                f"y contains {n_bad} NaN or infinite value(s); ratings must be finite."
            )
        if y_nonnegative and (y < 0).any():
            raise ValueError(
                f"y contains {int((y < 0).sum())} negative value(s); implicit feedback "
                "strengths (counts, durations) must be >= 0."
            )
    if sample_weight is not None:
        sample_weight = _check_sample_weight(sample_weight, users, dtype=np.float64, copy=True)
        if (sample_weight < 0).any():
            raise ValueError("sample_weight must be non-negative.")
    return users, items, y, sample_weight


def check_n(n, n_max, what="items"):
    """Validate the number of results requested from a recommender."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool):
        raise TypeError(f"n must be a positive integer, got {n!r}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    if n > n_max:
        raise ValueError(
            f"n={n} is larger than the number of candidate {what} ({n_max})."
        )
    return int(n)
