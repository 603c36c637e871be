"""Raw ids to contiguous codes and back.

Every estimator, splitter and scorer that maps user or item ids to internal
codes goes through these helpers, so that one rule holds everywhere: ids are
kept exactly as given, sorted when they are mutually comparable.
"""

import numpy as np
import pandas as pd

from sklearn_mf._utils import is_scalar_id


def factorize_ids(values):
    """Map raw ids to contiguous codes.

    Returns ``(codes, uniques)`` with ``codes`` int32 and ``uniques[codes] ==
    values``.  ``uniques`` is sorted when the ids can be compared (all numbers or
    all strings), otherwise kept in order of first appearance.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values):
        lo, hi = int(values.min()), int(values.max())
        if hi - lo <= 4 * len(values) + 1024:
            # dense integer ids: a presence table replaces hashing, O(n)
            present = np.bincount(values - lo, minlength=hi - lo + 1) > 0
            position = np.cumsum(present, dtype=np.int64) - 1
            codes = position[values - lo].astype(np.int32)
            return codes, np.flatnonzero(present).astype(values.dtype) + lo
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(values, sort=False)
    uniques = np.asarray(uniques)
    if len(uniques) >= np.iinfo(np.int32).max:
        raise ValueError(f"Too many distinct ids ({len(uniques)}); at most 2**31 - 2.")
    return codes.astype(np.int32, copy=False), uniques


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
