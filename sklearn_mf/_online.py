"""Online updates for SGD models: grow the model, merge interactions, replay.

Shared by ``MatrixFactorization._partial_fit_sgd``, ``SVDpp.partial_fit``,
``BPR.partial_fit`` and ``FMRecommender.partial_fit`` (which pass the arrays
they grow themselves).
A ``partial_fit`` call

1. encodes the new interactions with the fitted ids, appending users and items
   never seen before (:func:`grow_ids`);
2. grows every per-user / per-item parameter array: new embedding rows are drawn
   from :math:`\\mathcal N(0, \\text{init\\_std}^2)`, new biases start at 0;
3. merges the new ratings into ``user_items_`` (a new rating of an already
   rated (user, item) cell replaces the old one) and adds them to
   ``item_popularity_``;
4. returns the new ratings plus a *replay* sample of old ratings drawn
   uniformly without replacement from ``user_items_`` (``replay_ratio`` old
   ratings per new one), so that a few SGD passes over the result adapt the
   model to the new data without drifting away from what it learned before.

The global mean is kept fixed, so old predictions move only as far as the SGD
passes move the parameters.  These functions compute on copies and return
what they computed; the estimator sets its attributes once the update has
succeeded, so a failed call leaves the model as it was.
"""

from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sklearn_mf._utils import make_rng

# Default number of SGD passes over (new + replayed) ratings per partial_fit call.
PARTIAL_FIT_PASSES = 5
# Default number of replayed old ratings per new rating.
PARTIAL_FIT_REPLAY = 1.0


def online_rng(random_state, n_calls):
    """The generator of the ``n_calls``-th ``partial_fit`` call (1-based).

    Each call gets a different stream of the seed drawn from
    ``random_state`` (so replay samples differ between calls) while a given
    sequence of calls is reproducible.
    """
    return make_rng(random_state, n_calls)


def check_online_params(n_passes, replay_ratio):
    if not isinstance(n_passes, (int, np.integer)) or isinstance(n_passes, bool) or n_passes < 1:
        raise ValueError(f"n_passes must be a positive integer, got {n_passes!r}.")
    if not np.isscalar(replay_ratio) or not np.isfinite(replay_ratio) or replay_ratio < 0:
        raise ValueError(f"replay_ratio must be a finite number >= 0, got {replay_ratio!r}.")


def extend_ids(codes, raw, known):
    """Give the ids with code -1 new codes after ``known`` (first-seen order).

    ``codes`` (from ``lookup_ids``) is updated in place.  Returns
    ``(codes, ids, n_new)``: the raw ids of the grown model (a new array;
    ``known`` is not modified) and the number of ids appended.
    """
    unknown = codes < 0
    if not unknown.any():
        return codes, known, 0
    new_codes, new_ids = pd.factorize(raw[unknown], sort=False)
    codes[unknown] = new_codes + len(known)
    merged = np.concatenate([known.astype(object), np.asarray(new_ids, dtype=object)])
    try:
        merged = merged.astype(np.result_type(known.dtype, np.asarray(new_ids).dtype))
    except TypeError:
        pass
    return codes, merged, len(new_ids)


def grow_ids(model, users, items):
    """Codes of raw ``users`` / ``items`` in the grown id sets of a fitted model.

    Returns ``(u, i, users_, items_, n_new_users, n_new_items)``; the model
    is not modified (set the ids with ``model._set_ids(users_, items_)``).
    """
    u, users_, n_u = extend_ids(model._user_codes(users), users, model.users_)
    i, items_, n_i = extend_ids(model._item_codes(items), items, model.items_)
    return u, i, users_, items_, n_u, n_i


def merge_interactions(seen, popularity, u, i, values, n_users, n_items, *, replace):
    """Add encoded interactions to a seen-items CSR and the popularity counts.

    ``replace=True`` (ratings): a new value of an already stored (user, item)
    cell replaces the old one; ``replace=False`` (implicit strengths): values
    add up.  Nothing passed in is modified.

    Returns
    -------
    merged : scipy.sparse.csr_matrix of shape (n_users, n_items)
        float32 values, int32 sorted indices, duplicates summed.
    popularity : ndarray of int64 of shape (n_items,)
    old : scipy.sparse.coo_matrix
        The old entries.
    keep : ndarray of bool
        The old entries not replaced by new ones (all with ``replace=False``).
    """
    old = seen.tocoo()
    if replace:
        new_keys = np.unique(u.astype(np.int64) * n_items + i)
        keep = ~np.isin(old.row.astype(np.int64) * n_items + old.col, new_keys)
    else:
        keep = np.ones(old.nnz, dtype=bool)
    merged = sp.csr_matrix(
        (
            np.concatenate([old.data[keep], np.asarray(values, dtype=np.float32)]),
            (np.concatenate([old.row[keep], u]), np.concatenate([old.col[keep], i])),
        ),
        shape=(n_users, n_items),
        dtype=np.float32,
    )
    merged.sum_duplicates()
    merged.indices = merged.indices.astype(np.int32, copy=False)
    merged.indptr = merged.indptr.astype(np.int32, copy=False)
    grown = np.zeros(n_items, dtype=np.int64)
    grown[: len(popularity)] = popularity
    grown += np.bincount(i, minlength=n_items)
    return merged, grown, old, keep


def widened_range(rating_range, y):
    """``(low, high)`` stretched to cover the new ratings ``y`` (None for a
    model without a rating range, such as BPR)."""
    if rating_range is None:
        return None
    lo, hi = rating_range
    return (min(lo, float(y.min())), max(hi, float(y.max())))


class OnlineBatch(NamedTuple):
    """What :func:`grow_and_replay` computed."""

    user_codes: np.ndarray  # int32: the new ratings, then the replayed ones
    item_codes: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray  # or None
    n_new: int
    arrays: dict  # name -> grown parameter array (new array)
    users: np.ndarray
    items: np.ndarray
    user_items: sp.csr_matrix
    item_popularity: np.ndarray
    rating_range: tuple


def grow_and_replay(model, users, items, y, sample_weight, arrays, replay_ratio, rng):
    """Steps 1-4 of the module docstring, without modifying ``model``.

    Parameters
    ----------
    model : fitted estimator with ``RecommenderMixin`` ids, ``init_std`` and
        ``rating_range_``.
    users, items, y, sample_weight : ndarray
        The validated new interactions (raw ids; ``sample_weight`` may be None).
    arrays : list of (attribute name, "user" or "item", "normal" or "zeros")
        Parameter arrays to grow along axis 0.
    replay_ratio : float
        Old ratings replayed per new rating (0 = none).
    rng : numpy.random.Generator

    Returns
    -------
    batch : OnlineBatch
        The new ratings come first; replayed ratings get weight 1.
    """
    u, i, users_, items_, n_new_users, n_new_items = grow_ids(model, users, items)
    n_users, n_items = len(users_), len(items_)
    grown = {}
    for name, axis, init in arrays:
        arr = getattr(model, name)
        n_add = n_new_users if axis == "user" else n_new_items
        if n_add == 0:
            grown[name] = arr.copy()
            continue
        shape = (n_add,) + arr.shape[1:]
        extra = (
            rng.normal(0, model.init_std, shape) if init == "normal" else np.zeros(shape)
        ).astype(arr.dtype)
        grown[name] = np.ascontiguousarray(np.concatenate([arr, extra]))

    # merged interactions: surviving old cells + new ratings; replay sample:
    # old cells not overwritten by the new ratings
    merged, popularity, old, keep = merge_interactions(
        model.user_items_, model.item_popularity_, u, i, y, n_users, n_items, replace=True
    )
    candidates = np.flatnonzero(keep)
    n_replay = min(len(candidates), int(round(replay_ratio * len(y))))
    pick = (
        np.sort(rng.choice(candidates, n_replay, replace=False))
        if n_replay
        else np.zeros(0, dtype=np.intp)
    )

    all_u = np.concatenate([u, old.row[pick]]).astype(np.int32)
    all_i = np.concatenate([i, old.col[pick]]).astype(np.int32)
    all_y = np.concatenate([y, old.data[pick].astype(np.float64)])
    if sample_weight is None:
        all_w = None
    else:
        all_w = np.concatenate([sample_weight, np.ones(n_replay)])
    return OnlineBatch(
        all_u,
        all_i,
        all_y,
        all_w,
        len(y),
        grown,
        users_,
        items_,
        merged,
        popularity,
        widened_range(getattr(model, "rating_range_", None), y),
    )
