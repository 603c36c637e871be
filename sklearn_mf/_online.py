"""Online updates for SGD models: grow the model, merge interactions, replay.

Shared by ``MatrixFactorization._partial_fit_sgd``, ``SVDpp.partial_fit``,
``BPR.partial_fit`` and ``FMRecommender.partial_fit`` (which pass the arrays
they grow themselves).
A ``partial_fit`` call

1. encodes the new interactions with the fitted ids, appending users and items
   never seen before (``RecommenderMixin._grow_ids``);
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
passes move the parameters.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from sklearn_mf._utils import make_writable
from sklearn_mf._validation import check_interactions

# Default number of SGD passes over (new + replayed) ratings per partial_fit call.
PARTIAL_FIT_PASSES = 5
# Default number of replayed old ratings per new rating.
PARTIAL_FIT_REPLAY = 1.0


def online_rng(model):
    """A generator for the ``n``-th ``partial_fit`` call, derived from ``random_state``.

    Each call gets a different stream (so replay samples differ between calls)
    while a given sequence of calls is reproducible.
    """
    n_calls = getattr(model, "_n_partial_fit_calls", 0) + 1
    model._n_partial_fit_calls = n_calls
    seed = check_random_state(model.random_state).randint(2**31)
    return np.random.default_rng([seed, n_calls])


def check_online_params(n_passes, replay_ratio):
    if not isinstance(n_passes, (int, np.integer)) or isinstance(n_passes, bool) or n_passes < 1:
        raise ValueError(f"n_passes must be a positive integer, got {n_passes!r}.")
    if not np.isscalar(replay_ratio) or not np.isfinite(replay_ratio) or replay_ratio < 0:
        raise ValueError(f"replay_ratio must be a finite number >= 0, got {replay_ratio!r}.")


def grow_and_replay(model, X, y, sample_weight, arrays, replay_ratio, rng):
    """Steps 1-4 of the module docstring.

    Parameters
    ----------
    model : fitted estimator with ``RecommenderMixin`` ids and ``init_std``.
    arrays : list of (attribute name, "user" or "item", "normal" or "zeros")
        Parameter arrays to grow along axis 0.
    replay_ratio : float
        Old ratings replayed per new rating (0 = none).

    Returns
    -------
    u, i : int32 arrays
        Codes of the new ratings followed by the replayed ones.
    y : float64 array
    sample_weight : float64 array or None
        Replayed ratings get weight 1.
    n_new : int
        Number of new ratings (they come first).
    """
    users, items, y, sample_weight = check_interactions(
        model, X, y, sample_weight, reset=False, y_required=True
    )
    old = model.user_items_.tocoo()
    make_writable(model, [name for name, _, _ in arrays])  # e.g. joblib mmap_mode="r"
    u, i, n_new_users, n_new_items = model._grow_ids(users, items)
    n_users, n_items = len(model.users_), len(model.items_)
    for name, axis, init in arrays:
        arr = getattr(model, name)
        n_add = n_new_users if axis == "user" else n_new_items
        if n_add == 0:
            continue
        shape = (n_add,) + arr.shape[1:]
        extra = (rng.normal(0, model.init_std, shape) if init == "normal"
                 else np.zeros(shape)).astype(arr.dtype)
        setattr(model, name, np.ascontiguousarray(np.concatenate([arr, extra])))

    # replay sample: old cells not overwritten by the new ratings
    new_keys = np.unique(u.astype(np.int64) * n_items + i)
    old_keys = old.row.astype(np.int64) * n_items + old.col
    keep = ~np.isin(old_keys, new_keys)
    candidates = np.flatnonzero(keep)
    n_replay = min(len(candidates), int(round(replay_ratio * len(y))))
    pick = (np.sort(rng.choice(candidates, n_replay, replace=False))
            if n_replay else np.zeros(0, dtype=np.intp))

    # merged interactions: surviving old cells + new ratings (duplicates summed)
    merged = sp.csr_matrix(
        (np.concatenate([old.data[keep], y.astype(np.float32)]),
         (np.concatenate([old.row[keep], u]), np.concatenate([old.col[keep], i]))),
        shape=(n_users, n_items), dtype=np.float32,
    )
    merged.sum_duplicates()
    merged.indices = merged.indices.astype(np.int32, copy=False)
    merged.indptr = merged.indptr.astype(np.int32, copy=False)
    popularity = np.zeros(n_items, dtype=np.int64)
    popularity[: len(model.item_popularity_)] = model.item_popularity_
    popularity += np.bincount(i, minlength=n_items)
    model.user_items_, model.item_popularity_ = merged, popularity
    if hasattr(model, "rating_range_"):
        lo, hi = model.rating_range_
        model.rating_range_ = (min(lo, float(y.min())), max(hi, float(y.max())))

    all_u = np.concatenate([u, old.row[pick]]).astype(np.int32)
    all_i = np.concatenate([i, old.col[pick]]).astype(np.int32)
    all_y = np.concatenate([y, old.data[pick].astype(np.float64)])
    if sample_weight is None:
        all_w = None
    else:
        all_w = np.concatenate([sample_weight, np.ones(n_replay)])
    return all_u, all_i, all_y, all_w, len(y)
