"""EASE: the closed-form item-item linear model of Steck (2019)."""

import numbers
import os
import time

import numpy as np
from scipy.linalg import lapack
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from sklearn_mf import _neighbors_fast
from sklearn_mf._base import ImplicitRecommenderMixin, RecommenderMixin
from sklearn_mf._fold_in import RecommendNewMixin
from sklearn_mf._neighbors import (
    _as_csr,
    _HistoryScoringMixin,
    _own_copy,
    _transpose,
    csr_parts,
)
from sklearn_mf._online import merge_interactions
from sklearn_mf._training import check_strengths, encode_strengths, undo_validation_on_error
from sklearn_mf._utils import check_dtype, effective_n_threads

# Thread counts of the three stages with n_jobs > 1.  On 2 cores a parallel
# region whose second thread waits for a core costs a scheduler slice: with
# another process busy (load 2.6-3.9, 12-03 18:36, one process, interleaved,
# medians of 15) two OpenMP threads took the Gram matrix of Amazon (897
# items) from 0.5 to 14 ms and the weights pass from 0.9 to 16 ms, and two
# BLAS threads potrf + potri from 64 to 225 ms (ML-100K, 1356 items: 65 ->
# 202 ms); on a free core the two passes could at best halve their 1.4 ms.
# So each stage takes n_jobs threads only from a size where one thread needs
# a few milliseconds:
# * the Gram matrix from this many multiply-adds (sum of n_u^2 / 2; the
#   benchmark's ML-100K training set has 1.96M, 2.8 ms on one thread, Amazon
#   27k): the kNN kernels' threshold (_PARALLEL_WORK);
_PARALLEL_GRAM_WORK = 2_000_000
# * the weights pass from this many items (n^2 / 2 pairs, 2 ms at 2048);
# * LAPACK's Cholesky factorisation and inverse from this many items.  In
#   whole EASE fits with n_jobs=2 and one process on the other core (load
#   0.1-0.9) two BLAS threads lost at 897 items (26.8 against 18.7 ms) and
#   gained 1.17x at 1356 (45.5 against 53.0); potrf + potri alone at load 1.8
#   gained 1.22x at 900, 1.49x at 1356 and 1.69x at 2000 items (110 -> 66
#   ms), but at load 2-4 two threads were 3-4x slower at every size (897:
#   181 against 61 ms, 1356: 323 against 84, 3000: 2.2 s against 0.57).
#   From 2048 items the solve takes 0.1 s or more on one core and the gain on
#   a free core is 1.5x or more; below it the gain is small and the risk on
#   a shared machine large.  The thread count changes the rounding of P
#   (about 1e-7 relative in float32).
_PARALLEL_PASS_ITEMS = _PARALLEL_SOLVE_ITEMS = 2048


_CONTROLLER = []


def _blas_threads(n_threads):
    """Context limiting the BLAS pool to ``n_threads`` (the scan of the loaded
    libraries, slow next to a small solve, is done once per process)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=n_threads, user_api="blas")


def available_memory():
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``),
    or None when the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def ease_memory(n_items, dtype):
    """Peak bytes of an EASE fit beyond the interactions: one dense
    n_items x n_items matrix (the Gram matrix is factorised, inverted and
    turned into the weights in place)."""
    return int(n_items) ** 2 * np.dtype(dtype).itemsize


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.2f} GiB"


def ease_weights(X, regularization, *, dtype=np.float32, n_threads=1, timings=None):
    """EASE's weights ``B`` and ``diag(P)`` from a users x items CSR matrix.

    :math:`P = (X^\\top X + \\lambda I)^{-1}` by Cholesky factorisation and
    inversion (LAPACK ``potrf`` / ``potri``, in place), then
    :math:`B = I - P\\,\\mathrm{diag}(1/\\mathrm{diag}\\,P)`, whose diagonal is 0.

    Returns
    -------
    B : ndarray of shape (n_items, n_items)
    d : ndarray of shape (n_items,)
        The diagonal of P (kept for exact updates).
    """
    dtype = np.dtype(dtype).type
    X = _as_csr(X)
    if X.dtype != dtype:
        X = X.astype(dtype)
    n = X.shape[1]
    tic = time.perf_counter()
    # only the lower triangle: LAPACK reads no other (the strict upper
    # triangle stays uninitialised until the weights are written over it)
    G = np.empty((n, n), dtype=dtype)
    X_t = _transpose(X, n_threads if X.nnz >= 100_000 else 1)
    lengths = np.diff(X.indptr).astype(np.float64)
    gram_threads = n_threads if lengths @ lengths / 2 >= _PARALLEL_GRAM_WORK else 1
    _neighbors_fast.gram_lower(*csr_parts(X_t, dtype), *csr_parts(X, dtype), G, gram_threads)
    G.flat[:: n + 1] += dtype(regularization)
    if timings is not None:
        timings["gram"] = time.perf_counter() - tic
        tic = time.perf_counter()
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (G,))
    # G is symmetric and C-ordered: its transpose is the same matrix in Fortran
    # order, so LAPACK works in place on the upper triangle of G.T (the lower of G)
    # n_jobs BLAS threads from _PARALLEL_SOLVE_ITEMS items (see there)
    with _blas_threads(n_threads if n >= _PARALLEL_SOLVE_ITEMS else 1):
        c, info = potrf(G.T, lower=0, overwrite_a=1, clean=0)
        if info == 0:
            c, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise ValueError(
            f"X^T X + regularization*I is not positive definite in "
            f"{np.dtype(dtype).name} (LAPACK info={info}): increase regularization "
            f"(now {regularization}) or use dtype=np.float64."
        )
    # c is Fortran-ordered (in place, the memory of G): P is C-contiguous, no copy
    P = c.T
    d = np.diag(P).astype(np.float64)
    if not (d > 0).all():
        raise ValueError("EASE's inverse has a non-positive diagonal: increase regularization.")
    # B = -P / diag(P) with a zero diagonal, from P's lower triangle, in place
    pass_threads = n_threads if n >= _PARALLEL_PASS_ITEMS else 1
    _neighbors_fast.ease_from_inverse(P, -d.astype(dtype), pass_threads)
    if timings is not None:
        timings["solve"] = time.perf_counter() - tic
    return P, d


class EASE(
    _HistoryScoringMixin,
    RecommendNewMixin,
    ImplicitRecommenderMixin,
    RecommenderMixin,
    BaseEstimator,
):
    r"""Embarrassingly shallow autoencoder: closed-form item-item weights.

    Steck (2019): the item-item weight matrix :math:`B` with a zero diagonal
    that best reconstructs the user-item matrix :math:`X` from itself,

    .. math::

        \min_B \lVert X - XB\rVert_F^2 + \lambda \lVert B\rVert_F^2
        \quad\text{s.t.}\ \mathrm{diag}(B) = 0,

    has the closed form

    .. math::

        P = (X^\top X + \lambda I)^{-1}, \qquad
        B = I - P\,\mathrm{diag}(1 / \mathrm{diag}\,P),

    and the score of item :math:`i` for user :math:`u` is
    :math:`\hat x_{ui} = \sum_j x_{uj} B_{ji}`.  The fit computes the Gram
    matrix with a parallel sparse kernel, then factorises (Cholesky, LAPACK
    ``potrf``) and inverts (``potri``) it in place, in ``float32`` by default:
    one dense :math:`n_\text{items}^2` matrix in all, i.e. 4 bytes per item
    pair (1.6 GB at 20,000 items).  Before allocating it the fit compares that
    size with the memory available (or ``max_memory``) and raises
    ``MemoryError`` naming both; use :class:`ItemKNN` (sparse top-k
    neighbours) for larger catalogues.  The cost is
    :math:`O(\sum_u n_u^2 + n_\text{items}^3)`, independent of the number of
    users beyond the Gram matrix.

    New users are scored from their history without refitting
    (:meth:`recommend_new`); unknown users get the popularity fallback.
    :meth:`partial_fit` is exact: new interactions of known items change
    :math:`X^\top X` by a low-rank term, and the Woodbury identity updates
    :math:`P` in :math:`O(m\,n_\text{items}^2)` for :math:`m` touched users
    (new items refit).

    Parameters
    ----------
    regularization : float, default=300.0
        The L2 penalty :math:`\lambda > 0` (Steck used a few hundred on
        MovieLens and Netflix; it grows with the data's density).
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the weights.
    max_memory : int or None, default=None
        Largest dense matrix allowed, in bytes; None: the memory the system
        reports as available.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for a user or item not seen in ``fit``: ``"fallback"``
        scores 0, ``"nan"`` returns NaN, ``"error"`` raises.  ``recommend``
        serves unknown users from item popularity.
    n_jobs : int or None, default=None
        Threads of the Gram and scoring kernels (OpenMP) and, from 2048 items
        on, of the weights pass and of the LAPACK factorisation and inverse
        (the BLAS thread pool, through threadpoolctl); None uses every
        available core.  Smaller catalogues, and Gram matrices of fewer than
        2 million multiply-adds, take one core whatever ``n_jobs``: there a
        second thread gains at most a few milliseconds on a free core, while
        one that waits for a busy core made whole fits 3-4x slower on a
        shared 2-core machine.  The BLAS thread count changes the rounding of
        the weights slightly (``n_jobs=1`` is reproducible bit for bit); on a
        machine whose cores are busy with other work ``n_jobs=1`` can be the
        faster setting at any size.
    verbose : int, default=0
        1 or more: print the size of the matrix and the seconds of each stage.

    Attributes
    ----------
    coef_ : ndarray of shape (n_items, n_items)
        The weights :math:`B` (row :math:`j`: what item :math:`j` in a history
        adds to each item's score); zero diagonal.
    precision_diag_ : ndarray of shape (n_items,)
        :math:`\mathrm{diag}\,P`, which with ``coef_`` determines :math:`P`
        (used by ``partial_fit``).
    users_, items_ : ndarray
        Raw ids; position = internal index.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training interactions (summed ``y``); the scores and
        :meth:`partial_fit` use a copy of their own, so editing this matrix
        does not change them.
    item_popularity_ : ndarray of shape (n_items,)
        Training interactions per item (the popularity fallback).
    n_features_in_ : int

    See Also
    --------
    ItemKNN : Sparse item-item model for catalogues too large for EASE.

    Examples
    --------
    >>> from sklearn_mf import EASE
    >>> X = [(1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "c"), (4, "a")]
    >>> ease = EASE(regularization=1.0).fit(X)
    >>> ease.coef_.shape
    (3, 3)
    >>> items, scores = ease.recommend([4], n=1)
    >>> items.tolist()
    [['b']]
    """

    _parameter_constraints: dict = {
        "regularization": [Interval(numbers.Real, 0, None, closed="neither")],
        "dtype": "no_validation",  # checked by check_dtype
        "max_memory": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        regularization=300.0,
        *,
        dtype=np.float32,
        max_memory=None,
        handle_unknown="fallback",
        n_jobs=None,
        verbose=0,
    ):
        self.regularization = regularization
        self.dtype = dtype
        self.max_memory = max_memory
        self.handle_unknown = handle_unknown
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _check_memory(self, n_items, dtype):
        need = ease_memory(n_items, dtype)
        limit = self.max_memory if self.max_memory is not None else available_memory()
        if limit is not None and need > limit:
            source = "max_memory" if self.max_memory is not None else "available memory"
            raise MemoryError(
                f"EASE needs a dense {n_items} x {n_items} {np.dtype(dtype).name} matrix "
                f"({_gib(need)}) but the {source} is {_gib(limit)}. Use ItemKNN (sparse "
                "top-k neighbours) for this catalogue, keep fewer items, or raise "
                "max_memory if more memory is really free."
            )
        return need

    def _solve(self):
        dtype = check_dtype(self.dtype)
        n_items = len(self.items_)
        need = self._check_memory(n_items, dtype)
        timings = {}
        self.coef_, self.precision_diag_ = ease_weights(
            self._history,
            self.regularization,
            dtype=dtype,
            n_threads=effective_n_threads(self.n_jobs),
            timings=timings,
        )
        if self.verbose:
            print(
                f"EASE: {n_items} items ({_gib(need)} matrix), Gram "
                f"{timings['gram']:.2f}s, Cholesky + inverse {timings['solve']:.2f}s",
                flush=True,
            )

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y=None):
        """Solve for the item-item weights of the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
            Repeated (user, item) rows add up.
        y : array-like of shape (n_interactions,), default=None
            Non-negative strengths; None means 1 (the binary matrix of the
            paper).

        Returns
        -------
        self : EASE
            The fitted estimator.
        """
        check_dtype(self.dtype)
        u, i, y, users_, items_ = encode_strengths(self, X, y)
        self._set_ids(users_, items_)
        self._set_training_interactions(u, i, y)
        # the model's own arrays: editing ``user_items_`` after fit changes
        # neither the scores nor what ``partial_fit`` updates
        self._history = _own_copy(self.user_items_, check_dtype(self.dtype))
        self._solve()
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def partial_fit(self, X, y=None):
        """Add interactions and update the weights exactly, without a refit.

        The touched users' rows of :math:`X` change from :math:`x` to
        :math:`x'`, so :math:`X^\\top X` changes by
        :math:`W^\\top C W` with :math:`W` the old and new rows stacked and
        :math:`C = \\mathrm{diag}(-1, \\dots, +1, \\dots)`; by the Woodbury
        identity :math:`P' = P - P W^\\top (C + W P W^\\top)^{-1} W P`, in
        :math:`O(m\\,n_\\text{items}^2)` for :math:`m` touched users.  New
        users are appended; new items (or more touched users than an eighth
        of the items, when the update would cost as much) refit on all
        interactions.  On an unfitted model this is ``fit(X, y)``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            New interactions (user id, item id, ...); strengths add up.
        y : array-like of shape (n_interactions,), default=None
            Non-negative strengths; None means 1.

        Returns
        -------
        self : EASE
            The updated estimator.
        """
        if not hasattr(self, "coef_"):
            return self.fit(X, y)
        users, items, y = check_strengths(self, X, y, reset=False)
        u, i, n_new_u, n_new_i = self._grow_ids(users, items)
        touched = np.unique(u)
        n_items = len(self.items_)
        H = self._history  # the model's copy (``user_items_`` may have been edited)
        old_rows = H[touched[touched < H.shape[0]]]
        merged, self.item_popularity_, _, _ = merge_interactions(
            H,
            self.item_popularity_,
            u,
            i,
            y,
            len(self.users_),
            n_items,
            replace=False,
        )
        merged.sort_indices()
        self.user_items_ = merged
        self._history = _own_copy(merged, H.dtype)
        if n_new_i or 8 * len(touched) > n_items:
            self._solve()
            return self
        dtype = self.coef_.dtype
        W_old = np.zeros((len(touched), n_items), dtype=np.float64)
        W_old[: old_rows.shape[0]] = old_rows.toarray()
        # rows of new users sort after the old ones in ``touched`` and start empty
        W = np.vstack([W_old, self._history[touched].toarray().astype(np.float64)])
        C = np.concatenate([-np.ones(len(touched)), np.ones(len(touched))])
        P = (np.eye(n_items) - self.coef_.astype(np.float64)) * self.precision_diag_[None, :]
        WP = W @ P
        K = np.diag(C) + WP @ W.T
        P -= WP.T @ np.linalg.solve(K, WP)
        d = np.diag(P).copy()
        B = -P / d[None, :]
        B.flat[:: n_items + 1] = 0
        self.coef_ = B.astype(dtype)
        self.precision_diag_ = d
        return self

    # ------------------------------------------------------------ scoring
    def _known_scores(self, user_codes, cand):
        return self._scores_from(self._history, user_codes, cand)

    def _new_scores(self, m, cand):
        return self._scores_from(m, np.arange(m.shape[0]), cand)

    def _scores_from(self, H, rows, cand):
        B = self.coef_
        every = len(cand) == B.shape[1] and (cand == np.arange(B.shape[1])).all()
        cols = np.zeros(0, dtype=np.intp) if every else np.ascontiguousarray(cand, np.intp)
        out = np.empty((len(rows), B.shape[1] if every else len(cand)), dtype=B.dtype)
        _neighbors_fast.sparse_rows_dense(
            *csr_parts(H, B.dtype.type),
            np.ascontiguousarray(rows, dtype=np.intp),
            B,
            cols,
            out,
            effective_n_threads(self.n_jobs),
        )
        return out

    def _predict_codes(self, user_codes, item_codes):
        known = (user_codes >= 0) & (item_codes >= 0)
        out = np.zeros(len(user_codes), dtype=np.float64)
        idx = np.flatnonzero(known)
        H = self._history
        step = max(1, (64 * 2**20) // (8 * max(len(self.items_), 1)))
        for start in range(0, len(idx), step):
            sel = idx[start : start + step]
            rows = H[user_codes[sel]]
            Bi = self.coef_[:, item_codes[sel]].T
            out[sel] = np.asarray(rows.multiply(Bi).sum(axis=1), dtype=np.float64).ravel()
        return out

    def similar_items(self, items, n=10):
        """The ``n`` items whose scores each item raises most (largest weights).

        Row :math:`i` of ``coef_`` is what having item :math:`i` in a history
        adds to every other item's score, so these are the items EASE
        recommends most strongly alongside :math:`i`.

        Parameters
        ----------
        items : id or array-like of ids
            Raw item ids seen in ``fit``.
        n : int, default=10
            Items per query (the item itself is excluded; only positive
            weights are returned, fewer leave ``None`` / ``-inf`` slots).

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` and ``scores`` (the weights :math:`B_{ij}`).
        """
        check_is_fitted(self)
        return self._neighbour_search(items, n, self.coef_, self._item_index, self.items_, "items")
