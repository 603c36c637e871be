"""Raw ids to contiguous codes and back.

Every estimator, splitter and scorer that maps user or item ids to internal
codes goes through these helpers, so that one rule holds everywhere: ids are
kept exactly as given, sorted when they are mutually comparable.
"""

import numpy as np
import pandas as pd

from sklearn_mf import _setup_fast
from sklearn_mf._utils import is_scalar_id

# np.iinfo builds an object per call (1.5 us; four calls per encoded column)
_INT32_MIN, _INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
_INT64_MAX = int(np.iinfo(np.int64).max)


def factorize_ids(values, *, copy=True):
    """Map raw ids to contiguous codes.

    Returns ``(codes, uniques)`` with ``codes`` int32 and ``uniques[codes] ==
    values``.  ``uniques`` is sorted when the ids can be compared (all numbers or
    all strings), otherwise kept in order of first appearance.

    Integer ids are encoded without hashing: ids that are already the codes
    ``0..n-1`` (all present) are used as they are, and other integer ids in a
    range not much wider than their number go through a presence table, in
    O(n).  With ``copy=False`` the codes may share memory with ``values``
    (int32 ids that are already ``0..n-1``); the caller then must not modify
    either.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values):
        if values.dtype in (np.int32, np.int64) and values.ndim == 1:
            values = np.ascontiguousarray(values)
        if values.dtype in (np.int32, np.int64) and values.ndim == 1 and len(values) >= 10**6:
            # one parallel pass, no temporaries (0.9 s for two columns of
            # 100M ids with NumPy's min, max and fancy-index scatter); below
            # a million ids the kernel runs on one thread and NumPy's
            # vectorised min and max take a third of its time
            lo, hi = _setup_fast.id_range(values, 0)
        else:
            lo, hi = int(values.min()), int(values.max())
        if hi - lo <= 4 * len(values) + 1024 and hi <= _INT64_MAX:
            return _factorize_dense_ints(values, lo, hi, copy)
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(values, sort=False)
    uniques = np.asarray(uniques)
    if len(uniques) >= np.iinfo(np.int32).max:
        raise ValueError(f"Too many distinct ids ({len(uniques)}); at most 2**31 - 2.")
    return codes.astype(np.int32, copy=False), uniques


def _factorize_dense_ints(values, lo, hi, copy):
    """``factorize_ids`` for integer ids in the range ``[lo, hi]`` (no hashing)."""
    span = hi - lo + 1
    if lo >= _INT32_MIN and hi <= _INT32_MAX:
        # int32 arithmetic is exact here: the offsets fit (span is bounded)
        offset = values.astype(np.int32, copy=copy or lo != 0)
        if lo != 0:
            offset -= np.int32(lo)
    else:
        # cast before subtracting: small dtypes (int8, uint16, ...) would overflow
        offset = (values.astype(np.int64) - lo).astype(np.int32)
    # a scatter into a boolean table: np.bincount would first cast the offsets
    # to intp (a temporary of 8 bytes per id; 2.8 s cold at 100M ids, the
    # scatter 0.25 s)
    if values.dtype in (np.int32, np.int64) and values.ndim == 1:
        present, n_present = _setup_fast.id_presence(values, lo, span, 0)
    else:
        present = np.zeros(span, dtype=bool)
        present[offset] = True
        n_present = int(np.count_nonzero(present))
    if n_present == span:
        # ids are lo..hi, all present: the offsets are the codes
        uniques = np.arange(lo, hi + 1, dtype=np.int64).astype(values.dtype)
        return offset, uniques
    position = (np.cumsum(present, dtype=np.int64) - 1).astype(np.int32)
    uniques = (np.flatnonzero(present) + lo).astype(values.dtype)
    return position[offset], uniques


def id_index(ids):
    """The ``pandas.Index`` of fitted raw ids (position = code) for
    :func:`lookup_ids`.

    For a NumPy array of integer or float ids this is ``pd.Index(ids)`` (a
    copy, the same dtype) without the constructor's type inference, which
    costs 20 us per call, a hundredth of a small kNN fit; other ids go
    through the constructor.
    """
    if (
        type(ids) is np.ndarray
        and ids.ndim == 1
        and ids.dtype.kind in "iuf"
        and hasattr(pd.Index, "_simple_new")
    ):
        return pd.Index._simple_new(ids.copy())
    return pd.Index(ids)


def lookup_ids(index, values):
    """Codes of ``values`` in a ``pandas.Index`` of known ids; -1 when unknown."""
    return np.asarray(index.get_indexer(values), dtype=np.int32)


def _as_id_array(ids):
    """A 1-d array of ids from a scalar id, a list or an array."""
    if is_scalar_id(ids):
        return np.asarray([ids])
    if isinstance(ids, (pd.Series, pd.Index)):
        return ids.to_numpy()
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise ValueError(f"ids must be a 1-d sequence, got shape {ids.shape}.")
        return ids
    # a list may mix types (1 and "1"): let pandas infer per element rather
    # than numpy, which would turn every id into a string
    return pd.Index(list(ids), tupleize_cols=False).to_numpy()


def _ids_from_codes(ids, codes):
    """Raw ids for codes; -1 (padding) becomes None in an object array."""
    missing = codes < 0
    if not missing.any():
        return ids[codes]
    out = np.empty(codes.shape, dtype=object)
    out[~missing] = ids[codes[~missing]]
    out[missing] = None
    return out
