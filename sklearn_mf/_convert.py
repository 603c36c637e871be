"""Long-format interactions to a sparse user-item matrix and back.

``interactions_to_matrix`` and ``matrix_to_interactions`` are the documented
bridge between the interaction convention of the estimators (one row per
(user, item) event, DESIGN.md section 2) and a ``scipy.sparse`` user-item
matrix.  Both run in time linear in the number of interactions: integer ids go
through :func:`~sklearn_mf._ids.factorize_ids` (no hashing; ids that are
already ``0..n-1`` are used as they are) and the CSR build is a counting sort
(:mod:`sklearn_mf._setup_fast`).
"""

import copy

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import check_consistent_length, column_or_1d

from sklearn_mf import _setup_fast
from sklearn_mf._ids import factorize_ids, lookup_ids
from sklearn_mf._utils import effective_n_threads
from sklearn_mf._validation import split_interactions


def interactions_csr(
    user_codes, item_codes, values, n_users, n_items, n_jobs=None, return_counts=False
):
    """CSR user-item matrix (float32 data, int32 indices) of encoded interactions.

    ``values`` None means 1 per interaction.  Column indices are sorted in each
    row and repeated (user, item) pairs are summed.  With ``return_counts``,
    also the number of interactions of each item (int64, repeats included:
    ``np.bincount(item_codes, minlength=n_items)`` without its int64 copy of
    the codes).
    """
    n = len(user_codes)
    data = np.ones(n, dtype=np.float32) if values is None else values
    if data.dtype != np.float64:
        data = np.ascontiguousarray(data, dtype=np.float32)  # float64 is read as it is
    indptr, indices, data, *counts = _setup_fast.coo_to_csr(
        np.ascontiguousarray(user_codes, dtype=np.int32),
        np.ascontiguousarray(item_codes, dtype=np.int32),
        np.ascontiguousarray(data),
        n_users,
        n_items,
        effective_n_threads(n_jobs),
        return_col_counts=return_counts,
    )
    m = csr_from_arrays(indptr, indices, data, n_users, n_items)
    return (m, counts[0]) if return_counts else m


# An empty matrix whose shallow copies carry the new arrays: scipy's
# constructor, even for an empty shape, costs 30 us (a small kNN fit builds
# four matrices); the copy 3 us.  Used only when the private layout is the
# known one (``_shape`` in the instance dictionary, as in scipy 1.8 - 1.17).
_EMPTY_CSR = sp.csr_matrix((0, 0), dtype=np.float32)
_COPY_EMPTY_CSR = set(vars(_EMPTY_CSR)) == {"_shape", "maxprint", "data", "indices", "indptr"}


def csr_from_arrays(indptr, indices, data, n_rows, n_cols):
    """The ``csr_matrix`` of canonical arrays from :func:`_setup_fast.coo_to_csr`
    (sorted indices, no duplicates), without the copies and checks of the
    scipy constructor; ``indptr`` becomes int32 when the entries allow."""
    if indptr[-1] < 2**31 - 1:
        indptr = indptr.astype(np.int32)
    if _COPY_EMPTY_CSR:
        m = copy.copy(_EMPTY_CSR)
        m._shape = (int(n_rows), int(n_cols))
    else:
        m = sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    m.indptr, m.indices, m.data = indptr, indices, data
    m.has_sorted_indices = True
    m.has_canonical_format = True
    return m


def _encode(ids, known, what):
    if known is None:
        return factorize_ids(ids)
    known = np.asarray(known)
    index = pd.Index(known)
    if not index.is_unique:
        raise ValueError(f"The given {what} ids contain duplicates.")
    codes = lookup_ids(index, ids)
    if (codes < 0).any():
        missing = ids[codes < 0][:5]
        raise ValueError(
            f"X holds {int((codes < 0).sum())} {what} id(s) that are not in the given "
            f"{what}s, e.g. {list(missing)}."
        )
    return codes, known


def interactions_to_matrix(X, y=None, *, users=None, items=None):
    """Sparse user-item matrix of long-format interactions.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_interactions, n_columns)
        Column 0 user ids, column 1 item ids (any hashable values); further
        columns are ignored.
    y : array-like of shape (n_interactions,), default=None
        Value of each interaction (a rating or a strength); None means 1.
        Must be finite.  Repeated (user, item) rows add up.
    users, items : array-like of ids, default=None
        The ids of the matrix's rows and columns, in order (for example the
        ``users_`` and ``items_`` of a fitted model, or a catalogue that includes
        items nobody interacted with).  Every id of ``X`` must be among them.
        None: the distinct ids of ``X``, sorted when comparable.

    Returns
    -------
    matrix : scipy.sparse.csr_matrix of float32 of shape (n_users, n_items)
        Row ``r`` is user ``users[r]``, column ``c`` item ``items[c]``; column
        indices are sorted and hold int32.
    users, items : ndarray
        The raw id of each row and column.

    See Also
    --------
    matrix_to_interactions : The inverse conversion.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf import interactions_to_matrix
    >>> X = np.array([["ann", "tea"], ["bob", "tea"], ["ann", "jam"]])
    >>> m, users, items = interactions_to_matrix(X, [5, 3, 1])
    >>> m.toarray()
    array([[1., 5.],
           [0., 3.]], dtype=float32)
    >>> users.tolist(), items.tolist()
    (['ann', 'bob'], ['jam', 'tea'])
    """
    raw_users, raw_items = split_interactions(X)
    if y is not None:
        y = column_or_1d(np.asarray(y), warn=True)
        if y.dtype.kind not in "biuf":
            raise ValueError(f"y must be numeric, got dtype {y.dtype}.")
        check_consistent_length(raw_users, y)
        if not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite values.")
    u, users = _encode(raw_users, users, "user")
    del raw_users
    i, items = _encode(raw_items, items, "item")
    del raw_items
    return interactions_csr(u, i, y, len(users), len(items)), users, items


def matrix_to_interactions(matrix, users=None, items=None, *, as_frame=False):
    """Long-format interactions of the stored entries of a user-item matrix.

    Parameters
    ----------
    matrix : scipy.sparse matrix or array of shape (n_users, n_items)
        Row ``r`` holds user ``r``'s interactions.  Every stored entry becomes
        one interaction (an explicitly stored zero too); a dense array's
        non-zero entries are the interactions.
    users, items : array-like, default=None
        Raw ids of the rows and columns; None means the integer codes
        ``0..n-1``, which the estimators take without hashing.
    as_frame : bool, default=False
        Return a DataFrame with columns ``user`` and ``item`` and a Series
        named ``value`` instead of arrays.

    Returns
    -------
    X : ndarray of shape (n_interactions, 2) or DataFrame
        User and item id of each interaction, row by row of ``matrix`` (items
        in increasing column order).  With integer codes (no ids given) the
        array is int32.
    y : ndarray of shape (n_interactions,) or Series
        The stored values, in ``matrix``'s dtype.

    See Also
    --------
    interactions_to_matrix : The inverse conversion.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from sklearn_mf import matrix_to_interactions
    >>> m = sp.csr_matrix([[0, 2], [1, 0]])
    >>> X, y = matrix_to_interactions(m, users=["ann", "bob"], items=["jam", "tea"])
    >>> X.tolist(), y.tolist()
    ([['ann', 'tea'], ['bob', 'jam']], [2, 1])
    """
    if not sp.issparse(matrix):
        dense = np.asarray(matrix)
        if dense.ndim != 2:
            raise ValueError(f"matrix must be 2-d, got shape {dense.shape}.")
        matrix = sp.csr_matrix(dense)
    m = sp.csr_matrix(matrix)  # a copy only when not already CSR
    if not m.has_sorted_indices:
        m = m.sorted_indices()
    n_users, n_items = m.shape
    rows = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(m.indptr))
    cols = m.indices.astype(np.int32)  # a copy: never a view of the caller's matrix
    y = m.data.copy()
    ids = []
    for codes, names, what, n in ((rows, users, "users", n_users), (cols, items, "items", n_items)):
        if names is None:
            ids.append(codes)
            continue
        names = np.asarray(names)
        if names.ndim != 1 or len(names) != n:
            raise ValueError(
                f"{what} must hold one id per {'row' if what == 'users' else 'column'} "
                f"of matrix ({n}), got shape {names.shape}."
            )
        ids.append(names[codes])
    if as_frame:
        return pd.DataFrame({"user": ids[0], "item": ids[1]}), pd.Series(y, name="value")
    if ids[0].dtype == ids[1].dtype:
        X = np.column_stack(ids)
    else:
        X = np.empty((len(y), 2), dtype=object)
        X[:, 0], X[:, 1] = ids
    return X, y
