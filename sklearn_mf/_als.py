"""Python side of the ALS kernels: CSR bookkeeping and half-step drivers.

Shared by ``MatrixFactorization(solver="als")``, ``ImplicitALS`` and the
fold-in of :class:`~sklearn_mf._base.RecommenderMixin`.  Everything here works
on whole arrays (no Python loop over users or items); the per-row solves run
in :mod:`sklearn_mf._als_fast`.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from threadpoolctl import ThreadpoolController

from sklearn_mf import _als_fast, _setup_fast
from sklearn_mf._progress import EpochProgress
from sklearn_mf._training import EarlyStopping, validation_rmse
from sklearn_mf._utils import effective_n_threads
from sklearn_mf._validation import check_interactions


def blas_single_thread():
    """Context manager limiting BLAS to one thread.

    The kernels call BLAS from inside OpenMP threads; a multithreaded BLAS
    would then oversubscribe the cores (nested parallelism is slow).  The
    loaded libraries are scanned once per process (scanning is slow).
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER = None


# Below this many entries + rows a half-step runs on one thread: waking
# OpenMP threads costs more than the solves (milliseconds on a busy machine).
_MIN_PARALLEL_WORK = 20_000


def _threads_for(R, n_threads):
    return int(n_threads) if R.indptr[-1] + R.n_rows >= _MIN_PARALLEL_WORK else 1


class RowMatrix:
    """A CSR matrix kept as plain arrays, duplicates allowed.

    ``indptr`` is intp, ``indices`` int32 and ``data`` a dict of arrays aligned
    with ``indices`` (for example ``"t"`` ratings minus the mean and ``"w"``
    weights).
    """

    def __init__(self, indptr, indices, data, n_cols):
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.n_cols = n_cols

    @property
    def n_rows(self):
        return len(self.indptr) - 1

    @classmethod
    def from_codes(cls, rows, cols, n_rows, n_cols, **data):
        """Group the entries ``(rows[j], cols[j], data[*][j])`` by row (stable)."""
        # a stable counting sort: linear in the entries (argsort is a merge sort)
        order, counts = _setup_fast.counting_order(
            np.ascontiguousarray(rows, dtype=np.int32), n_rows, 1)
        indptr = np.zeros(n_rows + 1, dtype=np.intp)
        np.cumsum(counts, out=indptr[1:])
        indices = np.ascontiguousarray(np.asarray(cols)[order], dtype=np.int32)
        data = {k: np.ascontiguousarray(np.asarray(v)[order]) for k, v in data.items()}
        return cls(indptr, indices, data, n_cols)

    def take_rows(self, rows):
        """The sub-matrix made of ``rows`` (in that order)."""
        rows = np.asarray(rows, dtype=np.intp)
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.intp)
        np.cumsum(lengths, out=indptr[1:])
        # position of every selected entry in the full arrays
        pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        data = {k: np.ascontiguousarray(v[pos]) for k, v in self.data.items()}
        return RowMatrix(indptr, self.indices[pos], data, self.n_cols)

    def transpose(self):
        """The column-major view, as a new ``RowMatrix``."""
        rows = np.repeat(np.arange(self.n_rows, dtype=np.int32), np.diff(self.indptr))
        return RowMatrix.from_codes(self.indices, rows, self.n_cols, self.n_rows, **self.data)

    def row_sums(self, key=None):
        """Per-row count of entries (``key=None``) or sum of ``data[key]`` (float64)."""
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        weights = None if key is None else self.data[key].astype(np.float64)
        return np.bincount(rows, weights=weights, minlength=self.n_rows).astype(np.float64)


def csr_to_rowmatrix(m, **data):
    """``RowMatrix`` view of a scipy CSR matrix (data passed explicitly)."""
    return RowMatrix(
        m.indptr.astype(np.intp), np.ascontiguousarray(m.indices, dtype=np.int32),
        data, m.shape[1],
    )


# ------------------------------------------------------------------ explicit
def explicit_half_step(R, Y, other_bias, X, bias, reg, reg_bias, scale, n_threads):
    """Solve the rows of ``R`` (a ``RowMatrix`` with ``t`` and ``w`` data)
    into ``X`` / ``bias`` given the fixed ``Y`` / ``other_bias``."""
    dtype = X.dtype
    empty = np.zeros(0, dtype=dtype)
    with blas_single_thread():
        n_bad = _als_fast.explicit_solve(
            R.indptr, R.indices, R.data["t"], R.data.get("w", empty), Y,
            empty if other_bias is None else other_bias, X,
            empty if bias is None else bias, float(reg), float(reg_bias),
            bool(scale), _threads_for(R, n_threads),
        )
    if n_bad:
        raise np.linalg.LinAlgError(
            f"The ALS system of {n_bad} row(s) is not positive definite; use a "
            f"larger regularization (now {reg})."
        )


def explicit_objective(R, X, bias, Y, other_bias, reg, reg_bias, scale, n_threads,
                       row_weight, col_weight):
    """Regularised weighted squared error (float64) of the explicit model.

    ``row_weight`` / ``col_weight``: per-row and per-column total weights (the
    penalty multipliers under ``scale``).
    """
    dtype = X.dtype
    empty = np.zeros(0, dtype=dtype)
    sse = _als_fast.explicit_sse(
        R.indptr, R.indices, R.data["t"], R.data.get("w", empty), X,
        empty if bias is None else bias, Y, empty if other_bias is None else other_bias,
        _threads_for(R, n_threads),
    )
    mr = row_weight if scale else 1.0
    mc = col_weight if scale else 1.0
    pen = reg * (np.sum(mr * np.einsum("ij,ij->i", X, X, dtype=np.float64))
                 + np.sum(mc * np.einsum("ij,ij->i", Y, Y, dtype=np.float64)))
    if bias is not None:
        pen += reg_bias * (np.sum(mr * bias.astype(np.float64) ** 2)
                           + np.sum(mc * other_bias.astype(np.float64) ** 2))
    return float(sse + pen)


# ------------------------------------------------------------------ implicit
def gram(Y):
    """``Y^T Y`` as a C-contiguous array of Y's dtype."""
    return np.ascontiguousarray(Y.T @ Y)


def implicit_half_step(R, Y, X, reg, solver, cg_steps, n_threads, G=None):
    """Solve the rows of ``R`` (``RowMatrix`` with ``cw`` = alpha * y) into ``X``."""
    if G is None:
        G = gram(Y)
    with blas_single_thread():
        n_bad = _als_fast.implicit_solve(
            R.indptr, R.indices, R.data["cw"], Y, G, X, float(reg),
            solver == "cg", int(cg_steps), _threads_for(R, n_threads),
        )
    if n_bad:
        raise np.linalg.LinAlgError(
            f"The implicit ALS system of {n_bad} row(s) is not positive definite; "
            f"use a larger regularization (now {reg})."
        )


def implicit_objective(R, X, Y, reg, n_threads):
    """Hu-Koren-Volinsky objective (float64), computed without dense matrices."""
    with blas_single_thread():
        data = _als_fast.implicit_loss_observed(
            R.indptr, R.indices, R.data["cw"], X, Y, _threads_for(R, n_threads)
        )
    # every cell with confidence 1 and preference 0: trace(X G X^T)
    data += float(np.einsum("ij,ij->", X @ gram(Y), X, dtype=np.float64))
    pen = reg * (np.einsum("ij,ij->", X, X, dtype=np.float64)
                 + np.einsum("ij,ij->", Y, Y, dtype=np.float64))
    return float(data + pen)


def sum_duplicates_csr(indptr, indices, values, n_cols):
    """CSR with duplicate entries of each row summed (scipy does the work)."""
    m = sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, n_cols))
    m.sum_duplicates()
    return m


# ------------------------------------------------- MatrixFactorization(solver="als")
def _explicit_setup(est, R_u):
    """Item-major copy and penalty multipliers of the user-major ratings."""
    R_i = R_u.transpose()
    key = "w" if "w" in R_u.data else None
    return R_i, R_u.row_sums(key), R_i.row_sums(key)


def _explicit_params(est):
    reg = float(est.regularization)
    reg_b = reg if est.bias_regularization is None else float(est.bias_regularization)
    return reg, reg_b, est.als_regularization == "weighted"


def run_explicit_als(est, u, i, y, sample_weight, train, val):
    """ALS iterations of ``MatrixFactorization(solver="als")``.

    Expects ``est`` to hold initialised ``user_factors_``, ``item_factors_``,
    ``user_bias_``, ``item_bias_`` and ``global_mean_``; fills ``loss_curve_``
    (regularised objective per unit of weight), ``n_iter_`` and the early
    stopping attributes, and keeps the training ratings for ``partial_fit``.
    """
    dtype = est.user_factors_.dtype
    n_threads = effective_n_threads(est.n_jobs)
    data = {"t": (y[train] - est.global_mean_).astype(dtype)}
    if sample_weight is not None:
        data["w"] = sample_weight[train].astype(dtype)
    R_u = RowMatrix.from_codes(u[train], i[train], len(est.users_), len(est.items_), **data)
    est._als_ratings = R_u
    R_i, wu, wi = _explicit_setup(est, R_u)
    total_w = float(wu.sum())
    reg, reg_b, scale = _explicit_params(est)
    P, Q = est.user_factors_, est.item_factors_
    bu = est.user_bias_ if est.biased else None
    bi = est.item_bias_ if est.biased else None

    est.loss_curve_ = []
    est.validation_scores_ = est.best_iteration_ = None
    stopper = (None if val is None
               else EarlyStopping(est._state, est.tol, est.n_iter_no_change))
    progress = EpochProgress(est.verbose, est.max_iter, unit="iteration",
                             desc=type(est).__name__)
    with blas_single_thread(), progress:
        for it in range(1, est.max_iter + 1):
            explicit_half_step(R_u, Q, bi, P, bu, reg, reg_b, scale, n_threads)
            explicit_half_step(R_i, P, bu, Q, bi, reg, reg_b, scale, n_threads)
            obj = explicit_objective(R_u, P, bu, Q, bi, reg, reg_b, scale, n_threads,
                                     wu, wi) / max(total_w, 1e-300)
            est.loss_curve_.append(obj)
            est.n_iter_ = it
            metrics = {"objective": obj}
            stop = False
            if stopper is not None:
                rmse = validation_rmse(est, u[val], i[val], y[val],
                                       None if sample_weight is None else sample_weight[val])
                metrics["validation RMSE"] = rmse
                stop = stopper.update(it, rmse)
            progress.update(it, metrics)
            if stop:
                break
            if it > 1 and est.loss_curve_[-2] - obj <= est.tol * abs(est.loss_curve_[-2]):
                break
    if stopper is not None:
        stopper.report_to(est)
        stopper.restore()


def merge_seen(est, u, i, values, replace):
    """Add new interactions to ``user_items_`` / ``item_popularity_`` after
    ``_grow_ids``.  ``replace``: a new value of an existing cell replaces it
    (ratings); otherwise values add up (implicit strengths)."""
    n_users, n_items = len(est.users_), len(est.items_)
    old = est.user_items_.tocoo()
    new = sp.csr_matrix((np.asarray(values, dtype=np.float32), (u, i)),
                        shape=(n_users, n_items))
    new.sum_duplicates()
    if replace:
        old_keys = old.row.astype(np.int64) * n_items + old.col
        new_coo = new.tocoo()
        keep = ~np.isin(old_keys, new_coo.row.astype(np.int64) * n_items + new_coo.col)
        old = sp.coo_matrix((old.data[keep], (old.row[keep], old.col[keep])),
                            shape=(n_users, n_items))
    else:
        old = sp.coo_matrix((old.data, (old.row, old.col)), shape=(n_users, n_items))
    m = (old.tocsr() + new).tocsr()
    m.sort_indices()
    m.indices = m.indices.astype(np.int32, copy=False)
    m.indptr = m.indptr.astype(np.int32, copy=False)
    est.user_items_ = m
    pop = np.zeros(n_items, dtype=np.int64)
    pop[: len(est.item_popularity_)] = est.item_popularity_
    est.item_popularity_ = pop + np.bincount(i, minlength=n_items)


def grow_rows(A, n_new, rng=None, std=0.0):
    """Append ``n_new`` rows (zeros, or N(0, std^2) when ``rng`` is given)."""
    shape = (n_new,) + A.shape[1:]
    extra = (np.zeros(shape, dtype=A.dtype) if rng is None
             else rng.normal(0, std, shape).astype(A.dtype))
    return np.concatenate([A, extra])


def solve_rows_explicit(R, rows, Y, other_bias, X, bias, reg, reg_b, scale, n_threads):
    """Explicit half-step restricted to ``rows`` of ``R``, written into X/bias."""
    if len(rows) == 0:
        return
    sub = R.take_rows(rows)
    out = np.zeros((len(rows), X.shape[1]), dtype=X.dtype)
    out_b = None if bias is None else np.zeros(len(rows), dtype=X.dtype)
    explicit_half_step(sub, Y, other_bias, out, out_b, reg, reg_b, scale, n_threads)
    X[rows] = out
    if bias is not None:
        bias[rows] = out_b


def partial_fit_explicit_als(est, X, y, sample_weight):
    """``MatrixFactorization.partial_fit`` for ``solver="als"`` (fitted model).

    New ratings join the training ratings (a new rating of an already rated
    cell replaces it); new users and items are appended; then the new items,
    every user in ``X`` and again the new items are re-solved exactly with
    everything else fixed.  The global mean stays fixed.
    """
    users, items, y, sample_weight = check_interactions(
        est, X, y, sample_weight, reset=False, y_required=True
    )
    n_items_old = len(est.items_)
    u, i, n_new_u, n_new_i = est._grow_ids(users, items)
    rng = np.random.default_rng(check_random_state(est.random_state).randint(2**31))
    est.user_factors_ = grow_rows(est.user_factors_, n_new_u)
    est.item_factors_ = grow_rows(est.item_factors_, n_new_i, rng, est.init_std)
    est.user_bias_ = grow_rows(est.user_bias_, n_new_u)
    est.item_bias_ = grow_rows(est.item_bias_, n_new_i)
    merge_seen(est, u, i, y, replace=True)
    lo, hi = est.rating_range_
    est.rating_range_ = (min(lo, float(y.min())), max(hi, float(y.max())))
    n_users, n_items = len(est.users_), len(est.items_)
    dtype = est.user_factors_.dtype

    old = est._als_ratings
    old_rows = np.repeat(np.arange(old.n_rows), np.diff(old.indptr))
    old_keys = old_rows.astype(np.int64) * n_items + old.indices
    keep = ~np.isin(old_keys, u.astype(np.int64) * n_items + i)
    weighted = "w" in old.data or sample_weight is not None
    data = {"t": np.r_[old.data["t"][keep], (y - est.global_mean_).astype(dtype)]}
    if weighted:
        w_old = old.data["w"][keep] if "w" in old.data else np.ones(keep.sum(), dtype)
        w_new = np.ones(len(y), dtype) if sample_weight is None else sample_weight
        data["w"] = np.r_[w_old, w_new].astype(dtype)
    R_u = RowMatrix.from_codes(np.r_[old_rows[keep], u], np.r_[old.indices[keep], i],
                               n_users, n_items, **data)
    est._als_ratings = R_u
    R_i = R_u.transpose()
    reg, reg_b, scale = _explicit_params(est)
    bu = est.user_bias_ if est.biased else None
    bi = est.item_bias_ if est.biased else None
    P, Q = est.user_factors_, est.item_factors_
    n_threads = effective_n_threads(est.n_jobs)
    touched = np.unique(u)
    new_items = np.arange(n_items_old, n_items)
    with blas_single_thread():
        solve_rows_explicit(R_i, new_items, P, bu, Q, bi, reg, reg_b, scale, n_threads)
        solve_rows_explicit(R_u, touched, Q, bi, P, bu, reg, reg_b, scale, n_threads)
        solve_rows_explicit(R_i, new_items, P, bu, Q, bi, reg, reg_b, scale, n_threads)
    return est
