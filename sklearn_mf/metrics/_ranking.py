r"""Top-K ranking metrics over many users at once.

Input convention (the same for every function of :mod:`sklearn_mf.metrics`)
---------------------------------------------------------------------------

``recommended`` : array-like of shape (n_users, n)
    Row ``u`` is the ranked list shown to user ``u``, best first.  Only the
    first ``k`` columns are used.  A slot may be *padding* (fewer candidates
    than ``n``): ``None`` or NaN, and for integer arrays any negative value.
    An item may appear at most once per row.

``y_true`` : the held-out truth of the same users, in one of two forms:

* a ``scipy.sparse`` matrix of shape (n_users, n_items) whose stored values
  are relevance grades (1 for binary relevance; entries ``<= 0`` are not
  relevant).  ``recommended`` then holds integer column indices
  (positional form, as produced by an argsort of a score matrix);
* a sequence of ``n_users`` collections of relevant item ids (binary
  relevance), or of mappings / :class:`pandas.Series` ``{item id: grade}``
  (graded relevance).  ``recommended`` then holds the same raw ids (any
  hashable type; keyed form, as returned by
  :meth:`RecommenderMixin.recommend`).

In short: arrays are positional, keyed containers are matched by id.

Users without any relevant item
-------------------------------
Recall, NDCG, AP and AUC are undefined for them.  For consistency every
accuracy metric treats them alike: with ``no_relevant="skip"`` (default) they
get NaN in the per-user output and are left out of the average, with
``"zero"`` they score 0 and are averaged in.  If no user is left, the average
is NaN and an :class:`~sklearn.exceptions.UndefinedMetricWarning` is emitted.

Everything is vectorised: the truth is stored as sorted ``user * n_items +
item`` keys and each recommended slot is looked up with one
:func:`numpy.searchsorted`, so there is no Python loop over users.
"""

import numbers
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.exceptions import UndefinedMetricWarning

from sklearn_mf._utils import effective_n_threads
from sklearn_mf.metrics import _ranking_fast

_NO_RELEVANT = ("skip", "zero")


# ---------------------------------------------------------------- helpers
def _is_padding(values):
    """Boolean mask of padded slots in a raveled array of recommended ids."""
    if values.dtype.kind in "iu":
        return values < 0 if values.dtype.kind == "i" else np.zeros(values.shape, bool)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return pd.isna(values)
    return np.zeros(values.shape, dtype=bool)


def _as_rec_array(recommended):
    if isinstance(recommended, pd.DataFrame):
        rec = recommended.to_numpy()
    else:
        rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(
            "recommended must be 2-dimensional (one ranked list per user), got an "
            f"array of shape {rec.shape}."
        )
    return rec


def _check_k(k, n_cols):
    if k is None:
        return n_cols
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if k > n_cols:
        raise ValueError(
            f"k={k} but recommended has only {n_cols} column(s); pad the lists "
            "with None (or -1 for integer item indices) up to k."
        )
    return int(k)


def _check_no_relevant(no_relevant):
    if no_relevant not in _NO_RELEVANT:
        raise ValueError(f"no_relevant must be one of {_NO_RELEVANT}, got {no_relevant!r}.")


class _Ranked:
    """The recommended lists matched against the truth, as dense arrays.

    Attributes
    ----------
    codes : ndarray of intp of shape (n_users, k)
        Item codes of the recommended slots, -1 for padding.
    gain : ndarray of float64 of shape (n_users, k)
        Relevance grade of each slot (0 when not relevant or padded).
    n_relevant : ndarray of intp of shape (n_users,)
        Number of relevant items (grade > 0) of each user.
    truth : csr_matrix of shape (n_users, n_codes)
        Relevant (user, item code) grades, sorted indices, grades > 0 only.
    k : int
    """

    __slots__ = ("codes", "gain", "n_relevant", "truth", "k", "item_ids")

    def prefix(self, k):
        """The same lists cut at ``k <= self.k`` (no new matching)."""
        if k == self.k:
            return self
        out = _Ranked()
        out.codes, out.gain = self.codes[:, :k], self.gain[:, :k]
        out.n_relevant, out.truth, out.item_ids, out.k = (
            self.n_relevant,
            self.truth,
            self.item_ids,
            k,
        )
        return out

    @property
    def valid(self):
        return self.codes >= 0

    @property
    def hit(self):
        return self.gain > 0


def _truth_from_sparse(y_true):
    """Canonical CSR of positive grades; the input is never modified (it is
    only copied when something has to change)."""
    T = sp.csr_matrix(y_true, dtype=np.float64)  # no copy for a float64 CSR
    if not np.isfinite(T.data).all():
        raise ValueError("y_true contains NaN or infinite relevance grades.")
    if not T.has_canonical_format or (T.data <= 0).any():
        T = T.copy()
        T.sum_duplicates()
        T.data[T.data < 0] = 0
        T.eliminate_zeros()
    return T


def _concat_ids(arrays):
    """Concatenate id arrays without mixing types.

    Integer ids (any width) stay integers and strings stay strings; any other
    mix becomes an object array, so that ``1`` and ``"1"`` stay different.
    """
    arrays = [np.asarray(a).ravel() for a in arrays if len(a)]
    if not arrays:
        return np.empty(0, dtype=object)
    kinds = {a.dtype.kind for a in arrays}
    if kinds <= set("iu") or kinds == {"U"} or len({a.dtype for a in arrays}) == 1:
        return np.concatenate(arrays)
    return np.concatenate([a.astype(object) for a in arrays])


def _truth_lists(y_true):
    """Concatenate a sequence of per-user id collections (or id->grade maps)."""
    if isinstance(y_true, (str, bytes)) or not hasattr(y_true, "__len__"):
        raise TypeError(
            "y_true must be a sparse matrix or a sequence with one collection of "
            f"relevant item ids per user, got {type(y_true).__name__}."
        )
    ids, grades, lengths = [], [], np.empty(len(y_true), dtype=np.intp)
    graded = False
    for u, entry in enumerate(y_true):
        if isinstance(entry, np.ndarray) and entry.ndim == 1:  # fast path
            ids.append(entry)
            grades.append(None)
        elif isinstance(entry, pd.Series):
            ids.append(entry.index.to_numpy())
            grades.append(entry.to_numpy(dtype=np.float64))
            graded = True
        elif isinstance(entry, Mapping):
            ids.append(np.asarray(list(entry.keys())))
            grades.append(np.asarray(list(entry.values()), dtype=np.float64))
            graded = True
        elif entry is None:
            ids.append(np.empty(0))
            grades.append(None)
        else:
            if isinstance(entry, (set, frozenset)):
                entry = list(entry)
            if isinstance(entry, (str, bytes)) or np.ndim(entry) == 0:
                raise TypeError(
                    f"y_true[{u}] must be a collection of item ids (e.g. a list), "
                    f"got the scalar {entry!r}."
                )
            ids.append(np.asarray(entry).ravel())
            grades.append(None)
        lengths[u] = len(ids[-1])
    if graded:
        flat_grades = np.concatenate(
            [np.ones(len(i)) if g is None else g for i, g in zip(ids, grades)]
        )
    else:
        flat_grades = np.ones(int(lengths.sum()))
    flat_ids = _concat_ids(ids)
    if not np.isfinite(flat_grades).all():
        raise ValueError("y_true contains NaN or infinite relevance grades.")
    return flat_ids, flat_grades, lengths


def _prepare(y_true, recommended, k):
    """Match ``recommended[:, :k]`` against ``y_true``; returns a ``_Ranked``."""
    rec = _as_rec_array(recommended)
    k = _check_k(k, rec.shape[1])
    rec = rec[:, :k]
    n_users = rec.shape[0]
    flat = rec.ravel()
    pad = _is_padding(flat)

    if sp.issparse(y_true):
        T = _truth_from_sparse(y_true)
        if T.shape[0] != n_users:
            raise ValueError(f"y_true has {T.shape[0]} rows (users) but recommended has {n_users}.")
        if rec.dtype.kind == "O":
            good = flat[~pad]
            if not all(isinstance(v, numbers.Integral) for v in good[:1000]):
                raise TypeError(
                    "With a sparse y_true, recommended must hold integer item "
                    "indices (columns of y_true)."
                )
            flat = np.where(pad, -1, flat).astype(np.intp)
        elif rec.dtype.kind not in "iu":
            if rec.dtype.kind == "f" and np.array_equal(flat[~pad], np.round(flat[~pad])):
                flat = np.where(pad, -1, flat).astype(np.intp)
            else:
                raise TypeError(
                    "With a sparse y_true, recommended must hold integer item "
                    f"indices (columns of y_true), got dtype {rec.dtype}."
                )
        codes = np.where(pad, -1, flat).astype(np.intp)
        n_codes = T.shape[1]
        if (codes >= n_codes).any():
            bad = int(codes.max())
            raise ValueError(
                f"recommended contains item index {bad} but y_true has only {n_codes} columns."
            )
        item_ids = None
    else:
        t_ids, t_grades, lengths = _truth_lists(y_true)
        if len(lengths) != n_users:
            raise ValueError(
                f"y_true has {len(lengths)} entries (users) but recommended has {n_users} rows."
            )
        good = flat[~pad]
        try:
            all_codes, item_ids = pd.factorize(_concat_ids([t_ids, good]))
        except TypeError as exc:  # unhashable ids
            raise TypeError("Item ids must be hashable values (numbers, strings).") from exc
        n_codes = len(item_ids)
        codes = np.full(flat.shape, -1, dtype=np.intp)
        codes[~pad] = all_codes[len(t_ids) :]
        rows = np.repeat(np.arange(n_users), lengths)
        # duplicates of the same item for a user: keep the largest grade
        T = _dedupe_max(rows, all_codes[: len(t_ids)], t_grades, n_users, n_codes)
    codes = codes.reshape(n_users, k)

    _check_no_repeats(codes, rec)

    out = _Ranked()
    out.codes, out.truth, out.k = codes, T, k
    out.item_ids = item_ids
    out.n_relevant = np.diff(T.indptr).astype(np.intp)
    out.gain = _lookup(T, codes)
    return out


def _check_no_repeats(codes, rec):
    """Raise if a list holds the same item twice.

    ``codes`` are integer item codes of shape (n_users, k), negative for
    padding; ``rec`` the lists as given (for the message).
    """
    k = codes.shape[1]
    if k < 2 or codes.shape[0] == 0:
        return
    marked = np.where(codes >= 0, codes, -1 - np.arange(k)[None, :])
    s = np.sort(marked, axis=1)
    dup = (s[:, 1:] == s[:, :-1]).any(axis=1)
    if dup.any():
        u = int(np.flatnonzero(dup)[0])
        raise ValueError(
            f"{int(dup.sum())} recommended list(s) contain the same item twice, "
            f"e.g. row {u}: {list(rec[u])}."
        )


def _undefined(name, why, stacklevel=4):
    """The NaN average of a metric that no user defines, with the warning."""
    warnings.warn(
        f"{name} is undefined: {why}; returning NaN.",
        UndefinedMetricWarning,
        stacklevel=stacklevel,
    )
    return float("nan")


def _dedupe_max(rows, cols, grades, n_rows, n_cols):
    """CSR of grades; a (row, col) given twice keeps its largest grade; only
    grades > 0 are stored."""
    T = sp.csr_matrix((grades, (rows, cols)), shape=(n_rows, n_cols))  # sums duplicates
    if T.nnz != len(rows):  # duplicates: redo keeping the maximum (rare)
        keys = rows.astype(np.int64) * n_cols + cols
        order = np.lexsort((-grades, keys))
        keys_s = keys[order]
        first = np.ones(len(keys_s), dtype=bool)
        first[1:] = keys_s[1:] != keys_s[:-1]
        sel = order[first]
        T = sp.csr_matrix((grades[sel], (rows[sel], cols[sel])), shape=(n_rows, n_cols))
    T.data[T.data < 0] = 0
    T.eliminate_zeros()
    T.sort_indices()
    return T


def _lookup(T, codes):
    """Grade ``T[u, codes[u, j]]`` for every slot (0 if absent or padding).

    One binary search per slot inside the user's sorted CSR row (Cython
    kernel, parallel over users): the cost does not grow with the total
    number of held-out interactions.
    """
    codes = np.ascontiguousarray(codes, dtype=np.intp)
    out = np.empty(codes.shape, dtype=np.float64)
    if T.indptr.dtype != T.indices.dtype:  # pragma: no cover - scipy keeps them equal
        indptr, indices = T.indptr.astype(np.int64), T.indices.astype(np.int64)
    else:
        indptr, indices = T.indptr, T.indices
    if indices.dtype not in (np.int32, np.int64):  # pragma: no cover
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    _ranking_fast.lookup_gains(
        indptr,
        indices,
        np.ascontiguousarray(T.data, np.float64),
        codes,
        out,
        effective_n_threads(None),
    )
    return out


def _lookup_numpy(T, codes):
    """NumPy reference of :func:`_lookup` (vectorised binary search, used in tests)."""
    n_users, k = codes.shape
    nnz = len(T.indices)
    if nnz == 0:
        return np.zeros(codes.shape)
    indptr = T.indptr.astype(np.int64, copy=False)
    lo = np.repeat(indptr[:-1, None], k, axis=1)
    hi = np.repeat(indptr[1:, None], k, axis=1)
    longest = int(np.diff(indptr).max())
    for _ in range(max(1, longest).bit_length()):
        mid = (lo + hi) >> 1
        open_ = lo < hi
        right = open_ & (T.indices[np.minimum(mid, nnz - 1)] < codes)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)
    pos = np.minimum(lo, nnz - 1)
    found = (codes >= 0) & (lo < indptr[1:, None]) & (T.indices[pos] == codes)
    return np.where(found, T.data[pos], 0.0)


def _finish(per_user, defined, average, no_relevant, name):
    """Apply the no-relevant rule and average."""
    _check_no_relevant(no_relevant)
    per_user = np.asarray(per_user, dtype=np.float64)
    if no_relevant == "zero":
        per_user = np.where(defined, per_user, 0.0)
        counted = np.ones(len(per_user), dtype=bool)
    else:
        per_user = np.where(defined, per_user, np.nan)
        counted = defined
    if not average:
        return per_user
    if not counted.any():
        return _undefined(name, f"none of the {len(per_user)} user(s) has a relevant item")
    return float(per_user[counted].mean())


_PARAMS_DOC = """
    y_true : sparse matrix of shape (n_users, n_items) or sequence of length n_users
        Held-out relevant items: a sparse matrix of relevance grades
        (positional form), or one collection of relevant item ids (or
        ``{id: grade}`` mapping) per user (keyed form).  See the module
        docstring.
    recommended : array-like of shape (n_users, n)
        Ranked lists, best first; padding ``None`` / NaN / negative integer.
    k : int, default=None
        Cut-off; the first ``k`` columns of ``recommended`` are used
        (all when None).  ``k`` larger than ``n`` is an error.
    average : bool, default=True
        Return the mean over users (True) or the per-user values (False).
    no_relevant : {"skip", "zero"}, default="skip"
        Users without any relevant item: "skip" gives them NaN and leaves
        them out of the mean, "zero" scores them 0.
"""


def _doc(func):
    func.__doc__ = func.__doc__.replace("    {params}\n", _PARAMS_DOC.lstrip("\n"))
    return func


@_doc
def precision_at_k(y_true, recommended, *, k=None, average=True, no_relevant="skip"):
    r"""Precision@K: share of the top ``k`` slots that hold a relevant item.

    .. math:: P@k = \frac{1}{k} \sum_{j=1}^{k} \mathrm{rel}_j

    The denominator is always ``k``: padded slots count as misses.

    Parameters
    ----------
    {params}

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import precision_at_k
    >>> precision_at_k([["a", "c"], ["x"]], [["a", "b"], ["y", "x"]], k=2)
    0.5
    """
    r = _prepare(y_true, recommended, k)
    return _finish(*_precision(r), average, no_relevant, "precision_at_k")


def _precision(r):
    return r.hit.sum(axis=1) / r.k, r.n_relevant > 0


@_doc
def recall_at_k(y_true, recommended, *, k=None, average=True, no_relevant="skip"):
    r"""Recall@K: share of the user's relevant items found in the top ``k``.

    .. math:: R@k = \frac{|\{\text{relevant}\} \cap \mathrm{top}_k|}{|\{\text{relevant}\}|}

    The denominator is the number of relevant items (not ``min(k, .)``), so
    a user with more than ``k`` relevant items cannot reach 1.

    Parameters
    ----------
    {params}

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import recall_at_k
    >>> recall_at_k([["a", "c"], ["x"]], [["a", "b"], ["y", "x"]], k=2)
    0.75
    """
    r = _prepare(y_true, recommended, k)
    return _finish(*_recall(r), average, no_relevant, "recall_at_k")


def _recall(r):
    return r.hit.sum(axis=1) / np.maximum(r.n_relevant, 1), r.n_relevant > 0


@_doc
def hit_rate_at_k(y_true, recommended, *, k=None, average=True, no_relevant="skip"):
    r"""Hit rate@K: 1 if at least one relevant item is in the top ``k``, else 0.

    Parameters
    ----------
    {params}

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import hit_rate_at_k
    >>> hit_rate_at_k([["a"], ["x"]], [["a", "b"], ["y", "z"]], k=2)
    0.5
    """
    r = _prepare(y_true, recommended, k)
    return _finish(*_hit_rate(r), average, no_relevant, "hit_rate_at_k")


def _hit_rate(r):
    return r.hit.any(axis=1).astype(float), r.n_relevant > 0


@_doc
def mrr_at_k(y_true, recommended, *, k=None, average=True, no_relevant="skip"):
    r"""Mean reciprocal rank@K: ``1 / rank`` of the first relevant item (0 if none).

    Parameters
    ----------
    {params}

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import mrr_at_k
    >>> mrr_at_k([["b"], ["x"]], [["a", "b"], ["x", "y"]], k=2)
    0.75
    """
    r = _prepare(y_true, recommended, k)
    return _finish(*_mrr(r), average, no_relevant, "mrr_at_k")


def _mrr(r):
    hit = r.hit
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), 1.0 / (first + 1), 0.0), r.n_relevant > 0


@_doc
def map_at_k(y_true, recommended, *, k=None, average=True, no_relevant="skip"):
    r"""Mean average precision@K.

    For one user, with :math:`R` relevant items,

    .. math:: AP@k = \frac{1}{\min(k, R)} \sum_{j=1}^{k} P@j \cdot \mathrm{rel}_j ,

    so a list that puts ``min(k, R)`` relevant items first scores 1.  Grades
    only matter through ``grade > 0``.

    Parameters
    ----------
    {params}

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import map_at_k
    >>> # hits at ranks 1 and 3: (1/1 + 2/3) / 2
    >>> round(map_at_k([["a", "c"]], [["a", "b", "c"]], k=3), 4)
    0.8333
    """
    r = _prepare(y_true, recommended, k)
    return _finish(*_map(r), average, no_relevant, "map_at_k")


def _map(r):
    hit = r.hit.astype(np.float64)
    prec = np.cumsum(hit, axis=1) / np.arange(1, r.k + 1)
    denom = np.maximum(np.minimum(r.n_relevant, r.k), 1)
    return (prec * hit).sum(axis=1) / denom, r.n_relevant > 0


def _discount(k):
    return 1.0 / np.log2(np.arange(2, k + 2))


def _ideal_gains(T, k):
    """Per-user best ``k`` grades, descending: shape (n_users, k)."""
    n_users = T.shape[0]
    counts = np.diff(T.indptr)
    if len(T.data) == 0 or (T.data == T.data[0]).all():  # binary: no sort needed
        g = T.data[0] if len(T.data) else 0.0
        return np.where(np.arange(k)[None, :] < counts[:, None], g, 0.0)
    rows = np.repeat(np.arange(n_users), counts)
    order = np.lexsort((-T.data, rows))
    pos = np.arange(len(rows)) - T.indptr[rows]
    keep = pos < k
    ideal = np.zeros((n_users, k))
    ideal[rows[keep], pos[keep]] = T.data[order][keep]
    return ideal


@_doc
def ndcg_at_k(y_true, recommended, *, k=None, gains="linear", average=True, no_relevant="skip"):
    r"""Normalised discounted cumulative gain@K, for binary or graded relevance.

    .. math::

        DCG@k = \sum_{j=1}^{k} \frac{g(\mathrm{rel}_j)}{\log_2(j + 1)}, \qquad
        NDCG@k = \frac{DCG@k}{IDCG@k}

    where :math:`IDCG@k` is the DCG of the user's ``k`` highest grades in
    decreasing order and :math:`g` is the gain: the grade itself
    (``gains="linear"``, the definition of :func:`sklearn.metrics.ndcg_score`)
    or :math:`2^{\mathrm{rel}} - 1` (``"exponential"``).  With binary
    relevance both are the same.

    Parameters
    ----------
    {params}
    gains : {"linear", "exponential"}, default="linear"
        Gain of a grade.

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import ndcg_at_k
    >>> # one relevant item, found at rank 2
    >>> round(ndcg_at_k([["b"]], [["a", "b"]], k=2), 4)
    0.6309
    """
    r = _prepare(y_true, recommended, k)
    return _finish(*_ndcg(r, gains), average, no_relevant, "ndcg_at_k")


def _ndcg(r, gains="linear"):
    if gains not in ("linear", "exponential"):
        raise ValueError(f"gains must be 'linear' or 'exponential', got {gains!r}.")
    ideal = _ideal_gains(r.truth, r.k)
    g, gi = r.gain, ideal
    if gains == "exponential":
        g, gi = np.exp2(g) - 1, np.exp2(gi) - 1
    disc = _discount(r.k)
    dcg = g @ disc
    idcg = gi @ disc
    defined = idcg > 0
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=defined), defined


@_doc
def auc(y_true, recommended, *, n_items=None, k=None, average=True, no_relevant="skip"):
    r"""Area under the ROC curve of each user's ranking, from a top-``k`` list.

    The AUC of a user is the probability that a random relevant candidate is
    ranked above a random non-relevant one.  Only the top ``k`` are known, so
    every candidate missing from the list is ranked below the listed ones, in
    one tie (a tie counts one half, as in :func:`sklearn.metrics.roc_auc_score`).
    With :math:`N` candidates, :math:`R` relevant ones and
    :math:`M = N - R`:

    .. math::

        AUC = \frac{1}{R M}\Big[\sum_{\text{listed relevant } j} (M - m_j)
              + \tfrac12 (R - h)(M - m)\Big]

    where :math:`m_j` is the number of non-relevant items listed above slot
    :math:`j`, :math:`m` the number of non-relevant listed items and
    :math:`h` the number of hits.  It equals ``roc_auc_score`` on scores that
    follow the list and tie everything else at the bottom.  Users with no
    non-relevant candidate are undefined like users with no relevant item.

    Parameters
    ----------
    {params}
    n_items : int or array-like of shape (n_users,), default=None
        Number of candidate items each user's list was drawn from (the
        catalogue minus the items excluded for that user).  Defaults to the
        number of columns of a sparse ``y_true``; required with the keyed
        form.

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    Examples
    --------
    >>> from sklearn_mf.metrics import auc
    >>> # 4 candidates, relevant "b" listed 2nd: beats "c" and "d", loses to "a"
    >>> round(auc([["b"]], [["a", "b"]], n_items=4), 4)
    0.6667
    """
    r = _prepare(y_true, recommended, k)
    if n_items is None:
        if not sp.issparse(y_true):
            raise ValueError(
                "auc needs n_items (the number of candidate items per user) when "
                "y_true is given as per-user id collections."
            )
        n_items = y_true.shape[1]
    return _finish(*_auc(r, n_items), average, no_relevant, "auc")


def _auc(r, n_items):
    N = np.broadcast_to(np.asarray(n_items, dtype=np.float64), (len(r.n_relevant),))
    listed = r.valid.sum(axis=1)
    if (N < listed).any():
        u = int(np.flatnonzero(N < listed)[0])
        raise ValueError(
            f"n_items={N[u]:g} for user row {u} is smaller than the {int(listed[u])} "
            "items recommended to that user."
        )
    R = r.n_relevant.astype(np.float64)
    M = N - R
    hit = r.hit
    neg = r.valid & ~hit
    neg_above = np.cumsum(neg, axis=1) - neg
    won_listed = np.where(hit, M[:, None] - neg_above, 0.0).sum(axis=1)
    h = hit.sum(axis=1)
    m = neg.sum(axis=1)
    won = won_listed + 0.5 * (R - h) * (M - m)
    defined = (R > 0) & (M > 0)
    denom = np.where(defined, R * M, 1.0)
    return won / denom, defined


_CORES = {
    "precision": _precision,
    "recall": _recall,
    "ndcg": _ndcg,
    "map": _map,
    "mrr": _mrr,
    "hit_rate": _hit_rate,
    "auc": _auc,
}


def ranking_metrics(
    y_true,
    recommended,
    *,
    k=None,
    metrics=None,
    n_items=None,
    gains="linear",
    average=True,
    no_relevant="skip",
):
    """Several ranking metrics at several cut-offs, matching the lists only once.

    Equivalent to calling :func:`precision_at_k`, :func:`recall_at_k`,
    :func:`ndcg_at_k`, :func:`map_at_k`, :func:`mrr_at_k`,
    :func:`hit_rate_at_k` and :func:`auc` one by one, but the recommended
    lists are matched against ``y_true`` once, at the largest ``k``.

    Parameters
    ----------
    y_true : sparse matrix of shape (n_users, n_items) or sequence of length n_users
        Held-out relevant items (see :func:`precision_at_k`).
    recommended : array-like of shape (n_users, n)
        Ranked lists, best first; padding ``None`` / NaN / negative integer.
    k : int or sequence of int, default=None
        Cut-off(s); None uses all columns.
    metrics : sequence of str, default=None
        Among ``"precision"``, ``"recall"``, ``"ndcg"``, ``"map"``, ``"mrr"``,
        ``"hit_rate"``, ``"auc"``; None means all of them (``"auc"`` only when
        ``n_items`` is known, i.e. given or ``y_true`` is sparse).
    n_items : int or array-like of shape (n_users,), default=None
        Candidates per user, for ``"auc"`` (see :func:`auc`).
    gains : {"linear", "exponential"}, default="linear"
        Gain of a grade for ``"ndcg"``.
    average : bool, default=True
        Mean over users (True) or per-user arrays (False).
    no_relevant : {"skip", "zero"}, default="skip"
        Users without any relevant item (see :func:`precision_at_k`).

    Returns
    -------
    scores : dict
        ``{"ndcg@10": value, ...}``: one entry per metric and cut-off.

    Examples
    --------
    >>> from sklearn_mf.metrics import ranking_metrics
    >>> ranking_metrics([["a", "c"]], [["a", "b", "c"]], k=[1, 3],
    ...                 metrics=["precision", "recall"])
    {'precision@1': 1.0, 'precision@3': 0.6666666666666666, 'recall@1': 0.5, 'recall@3': 1.0}
    """
    if k is None or isinstance(k, numbers.Integral):
        ks = [k]
    else:
        ks = sorted(set(k))
    if not ks:
        raise ValueError("k must be an integer, None or a non-empty list of integers.")
    if n_items is None and sp.issparse(y_true):
        n_items = y_true.shape[1]
    if metrics is None:
        metrics = [m for m in _CORES if m != "auc" or n_items is not None]
    unknown = [m for m in metrics if m not in _CORES]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; choose among {list(_CORES)}.")
    if "auc" in metrics and n_items is None:
        raise ValueError(
            "auc needs n_items (the number of candidate items per user) when y_true is "
            "given as per-user id collections."
        )
    full = _prepare(y_true, recommended, None if ks[-1] is None else ks[-1])
    out = {}
    for name in metrics:
        for kk in ks:
            r = full.prefix(full.k if kk is None else kk)
            if name == "ndcg":
                core = _ndcg(r, gains)
            elif name == "auc":
                core = _auc(r, n_items)
            else:
                core = _CORES[name](r)
            out[f"{name}@{r.k}"] = _finish(*core, average, no_relevant, name)
    return out
