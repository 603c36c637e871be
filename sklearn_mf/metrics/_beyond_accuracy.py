r"""Beyond-accuracy metrics: coverage, novelty, diversity, serendipity.

They follow the input convention of :mod:`sklearn_mf.metrics._ranking`:
``recommended`` is an (n_users, n) array of ranked lists with padding
``None`` / NaN / negative integers.  Side information about items is
*positional* when given as a NumPy array or sparse matrix (row ``i``
describes item index ``i``; ``recommended`` then holds integer indices) and
*keyed* when given as a pandas Series or DataFrame (indexed by item id;
``recommended`` holds the same ids).
"""

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sklearn_mf.metrics._ranking import (
    _as_rec_array,
    _check_k,
    _check_no_relevant,
    _check_no_repeats,
    _finish,
    _is_padding,
    _prepare,
    _undefined,
)


def _top(recommended, k):
    """The first ``k`` columns of the lists, ``k`` and the padding mask; a
    list that holds the same item twice is an error, as for the ranking
    metrics."""
    rec = _as_rec_array(recommended)
    k = _check_k(k, rec.shape[1])
    rec = rec[:, :k]
    pad = _is_padding(rec.ravel()).reshape(rec.shape)
    codes = np.full(rec.shape, -1, dtype=np.intp)
    if (~pad).any():
        try:
            codes[~pad] = pd.factorize(rec[~pad])[0]
        except TypeError as exc:  # unhashable ids
            raise TypeError("Item ids must be hashable values (numbers, strings).") from exc
    _check_no_repeats(codes, rec)
    return rec, k, pad


def _rows_in(side, rec, pad, what):
    """Row of ``side`` for each recommended slot: -1 for padding.

    Keyed ``side`` (pandas) is matched by id; items missing from its index
    get -2.  Positional ``side`` needs integer indices.
    """
    rows = np.full(rec.shape, -1, dtype=np.intp)
    good = rec[~pad]
    if isinstance(side, (pd.Series, pd.DataFrame)):
        idx = side.index.get_indexer(good)
        rows[~pad] = np.where(idx >= 0, idx, -2)
        return rows
    try:
        as_int = np.asarray(good).astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} is positional (an array), so recommended must hold integer item "
            "indices; pass a pandas object indexed by item id to match raw ids."
        ) from exc
    if len(good) and not np.array_equal(as_int, np.asarray(good)):
        raise TypeError(
            f"{what} is positional (an array), so recommended must hold integer item "
            "indices; pass a pandas object indexed by item id to match raw ids."
        )
    n = side.shape[0]
    if len(as_int) and as_int.max() >= n:
        raise ValueError(
            f"recommended contains item index {int(as_int.max())} but {what} has only {n} rows."
        )
    rows[~pad] = as_int
    return rows


def coverage(recommended, catalog, *, k=None):
    """Catalogue coverage: share of the catalogue recommended to at least one user.

    Parameters
    ----------
    recommended : array-like of shape (n_users, n)
        Ranked lists, best first; padding ``None`` / NaN / negative integer.
    catalog : int or array-like of ids
        The catalogue size, or the catalogue's item ids (then recommended
        items outside the catalogue are not counted).
    k : int, default=None
        Cut-off (all columns when None).

    Returns
    -------
    coverage : float
        ``|distinct items in the top k of some user| / |catalogue|``, in [0, 1].

    Examples
    --------
    >>> from sklearn_mf.metrics import coverage
    >>> coverage([["a", "b"], ["a", "c"]], ["a", "b", "c", "d"], k=1)
    0.25
    """
    rec, k, pad = _top(recommended, k)
    shown = pd.unique(rec[~pad])
    if isinstance(catalog, numbers.Integral) and not isinstance(catalog, bool):
        if catalog < 1:
            raise ValueError(f"catalog size must be >= 1, got {catalog}.")
        if len(shown) > catalog:
            raise ValueError(
                f"{len(shown)} distinct items were recommended but the catalogue has "
                f"only {catalog}."
            )
        return len(shown) / catalog
    cat = pd.Index(pd.unique(np.asarray(catalog).ravel()))
    if len(cat) == 0:
        raise ValueError("catalog is empty.")
    return float((cat.get_indexer(shown) >= 0).sum() / len(cat))


def novelty(recommended, item_popularity, *, k=None, n_users=None, average=True):
    r"""Mean self-information of the recommended items.

    .. math:: \mathrm{novelty}(L) = \frac{1}{|L|} \sum_{i \in L} -\log_2 p_i,
              \qquad p_i = \frac{\mathrm{pop}_i}{n_{users}}

    where :math:`\mathrm{pop}_i` is the number of training users (or
    interactions) of item :math:`i`.  Rare items are novel.  An item with a
    popularity of 0, or missing from a keyed ``item_popularity``, counts as
    popularity 1 (the largest finite novelty).  Padded slots are ignored.

    Parameters
    ----------
    recommended : array-like of shape (n_users, n)
        Ranked lists, best first; padding ``None`` / NaN / negative integer.
    item_popularity : ndarray of shape (n_items,) or Series
        Counts per item, positional (array) or indexed by item id (Series).
    k : int, default=None
        Cut-off (all columns when None).
    n_users : int, default=None
        Normaliser of the counts (the number of training users, so that
        :math:`p_i` is the share of users who know the item).  None uses the
        sum of ``item_popularity`` (share of interactions).
    average : bool, default=True
        Mean over users (True) or per-user values (False; NaN for a user
        whose list is empty).

    Returns
    -------
    novelty : float or ndarray of shape (n_users,)
        In bits.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_mf.metrics import novelty
    >>> pop = pd.Series({"a": 4, "b": 1})
    >>> # p_a = 1, p_b = 1/4: (0 + 2) / 2
    >>> novelty([["a", "b"]], pop, n_users=4)
    1.0
    """
    rec, k, pad = _top(recommended, k)
    if isinstance(item_popularity, pd.Series):
        pop = item_popularity.to_numpy(dtype=np.float64)
        side = item_popularity
    else:
        pop = np.asarray(item_popularity, dtype=np.float64).ravel()
        side = pop
    if not np.isfinite(pop).all() or (pop < 0).any():
        raise ValueError("item_popularity must hold finite, non-negative counts.")
    norm = float(pop.sum()) if n_users is None else float(n_users)
    if norm <= 0:
        raise ValueError(f"The popularity normaliser must be > 0, got {norm:g}.")
    rows = _rows_in(side, rec, pad, "item_popularity")
    counts = np.where(rows >= 0, pop[np.maximum(rows, 0)], 0.0)
    counts = np.maximum(counts, 1.0)
    info = -np.log2(np.minimum(counts / norm, 1.0))
    valid = rows != -1
    n_valid = valid.sum(axis=1)
    per_user = np.where(valid, info, 0.0).sum(axis=1) / np.maximum(n_valid, 1)
    per_user = np.where(n_valid > 0, per_user, np.nan)
    if not average:
        return per_user
    if not (n_valid > 0).any():
        return _undefined(
            "novelty", f"none of the {len(per_user)} list(s) holds an item", stacklevel=3
        )
    return float(np.nanmean(per_user))


def intra_list_diversity(recommended, item_features, *, k=None, average=True):
    r"""Intra-list diversity: mean pairwise cosine distance inside each list.

    .. math:: \mathrm{ILD}(L) = \frac{2}{|L|(|L|-1)} \sum_{i < j \in L}
              \big(1 - \cos(f_i, f_j)\big)

    computed for all users at once from
    :math:`\sum_{i<j} \cos = (\lVert\sum_i \hat f_i\rVert^2 - \sum_i \lVert\hat f_i\rVert^2) / 2`
    with unit-normalised features :math:`\hat f`.  An item whose feature
    vector is all zero (or that is missing from keyed features) has
    similarity 0 with every other item.  Lists with fewer than two items
    get NaN and are left out of the mean.

    Parameters
    ----------
    recommended : array-like of shape (n_users, n)
        Ranked lists, best first; padding ``None`` / NaN / negative integer.
    item_features : ndarray or sparse matrix of shape (n_items, n_features), or DataFrame
        Item descriptions: one-hot genres, embeddings (e.g. a model's
        ``item_factors_``), ...; positional (array) or indexed by item id
        (DataFrame with numeric columns).
    k : int, default=None
        Cut-off (all columns when None).
    average : bool, default=True
        Mean over users (True) or per-user values (False).

    Returns
    -------
    diversity : float or ndarray of shape (n_users,)
        In [0, 2]; 0 when all items of a list point the same way, 1 for
        orthogonal (e.g. genre-disjoint) items.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf.metrics import intra_list_diversity
    >>> F = np.array([[1, 0], [1, 0], [0, 1]])
    >>> # pairs (0,1): 0, (0,2): 1, (1,2): 1
    >>> round(intra_list_diversity([[0, 1, 2]], F), 4)
    0.6667
    """
    rec, k, pad = _top(recommended, k)
    if isinstance(item_features, pd.DataFrame):
        F = item_features.to_numpy(dtype=np.float64)
        side = item_features
    elif sp.issparse(item_features):
        F = sp.csr_matrix(item_features, dtype=np.float64)
        side = F
    else:
        F = np.asarray(item_features, dtype=np.float64)
        if F.ndim != 2:
            raise ValueError(f"item_features must be 2-dimensional, got shape {F.shape}.")
        side = F
    if sp.issparse(F):
        norms = np.sqrt(np.asarray(F.multiply(F).sum(axis=1)).ravel())
    else:
        if not np.isfinite(F).all():
            raise ValueError("item_features contains NaN or infinite values.")
        norms = np.linalg.norm(F, axis=1)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    Fn = sp.diags(scale) @ F if sp.issparse(F) else F * scale[:, None]
    rows = _rows_in(side, rec, pad, "item_features")
    valid = rows != -1
    known = rows >= 0
    n_users = rec.shape[0]
    n_feat = F.shape[1]
    per_user = np.empty(n_users)
    # bound memory of the (users, k, features) gather
    chunk = max(1, int(2**22 // max(1, k * n_feat)))
    for start in range(0, n_users, chunk):
        sl = slice(start, min(start + chunk, n_users))
        r = rows[sl]
        kn = known[sl]
        idx = np.where(kn, r, 0).ravel()
        G = Fn[idx]
        G = G.toarray() if sp.issparse(G) else G
        G = G.reshape(r.shape[0], k, n_feat) * kn[:, :, None]
        s = G.sum(axis=1)
        self_sim = (G * G).sum(axis=(1, 2))
        pair_sum = 0.5 * ((s * s).sum(axis=1) - self_sim)
        m = valid[sl].sum(axis=1)
        n_pairs = m * (m - 1) / 2
        per_user[sl] = np.where(n_pairs > 0, 1.0 - pair_sum / np.maximum(n_pairs, 1), np.nan)
    if not average:
        return per_user
    ok = ~np.isnan(per_user)
    if not ok.any():
        return _undefined(
            "intra_list_diversity",
            f"none of the {n_users} list(s) holds two items",
            stacklevel=3,
        )
    return float(per_user[ok].mean())


def serendipity(y_true, recommended, expected, *, k=None, average=True, no_relevant="skip"):
    r"""Serendipity: share of the top ``k`` that is relevant *and* unexpected.

    Following Ge, Delgado-Battenfeld and Jannach (2010), an item is
    unexpected when a primitive baseline would not have recommended it:

    .. math:: \mathrm{ser}@k = \frac{|\mathrm{top}_k \setminus E \,\cap\,
              \{\text{relevant}\}|}{k}

    where :math:`E` is the *expected* set, typically the ``k`` most popular
    items (the same for every user) or a baseline model's per-user lists.

    Parameters
    ----------
    y_true : sparse matrix of shape (n_users, n_items) or sequence of length n_users
        Held-out relevant items (see :func:`precision_at_k`).
    recommended : array-like of shape (n_users, n)
        Ranked lists, best first; padding ``None`` / NaN / negative integer.
    expected : array-like of shape (n_expected,) or (n_users, m)
        Item ids (or indices, positional form) a baseline would show: one set
        for all users (1-d) or one row per user (2-d, padding allowed).
    k : int, default=None
        Cut-off (all columns when None).
    average : bool, default=True
        Mean over users (True) or per-user values (False).
    no_relevant : {"skip", "zero"}, default="skip"
        Users without any relevant item: left out (NaN) or scored 0.

    Returns
    -------
    serendipity : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import serendipity
    >>> # "a" is relevant but expected (popular), "c" relevant and unexpected
    >>> serendipity([["a", "c"]], [["a", "c"]], expected=["a", "b"], k=2)
    0.5
    """
    _check_no_relevant(no_relevant)
    r = _prepare(y_true, recommended, k)
    exp = np.asarray(expected)
    if exp.ndim == 1:
        exp = np.broadcast_to(exp[None, :], (r.codes.shape[0], exp.shape[0]))
    elif exp.ndim != 2 or exp.shape[0] != r.codes.shape[0]:
        raise ValueError(
            "expected must be 1-d (one set for every user) or have one row per user "
            f"({r.codes.shape[0]}); got shape {exp.shape}."
        )
    flat = exp.ravel()
    epad = _is_padding(flat)
    ecodes = np.full(flat.shape, -1, dtype=np.int64)
    if r.item_ids is None:  # positional
        ecodes[~epad] = flat[~epad].astype(np.int64)
    else:
        ecodes[~epad] = pd.Index(r.item_ids).get_indexer(flat[~epad])
    ecodes = ecodes.reshape(exp.shape)
    n_cols = max(
        int(max(r.truth.shape[1], ecodes.max(initial=-1) + 1, r.codes.max(initial=-1) + 1)), 1
    )
    urow = np.arange(exp.shape[0], dtype=np.int64)[:, None]
    ekeys = np.unique((urow * n_cols + ecodes)[ecodes >= 0])
    q = np.arange(r.codes.shape[0], dtype=np.int64)[:, None] * n_cols + r.codes
    pos = np.minimum(np.searchsorted(ekeys, q), max(len(ekeys) - 1, 0))
    is_expected = (ekeys[pos] == q) if len(ekeys) else np.zeros(q.shape, bool)
    surprising_hits = (r.hit & ~is_expected).sum(axis=1) / r.k
    return _finish(surprising_hits, r.n_relevant > 0, average, no_relevant, "serendipity")
