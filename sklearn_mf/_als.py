"""Python side of the ALS kernels: CSR bookkeeping and half-step drivers.

Shared by ``MatrixFactorization(solver="als")``, ``ImplicitALS`` and the
fold-in of :class:`~sklearn_mf._base.RecommenderMixin`.  Everything here works
on whole arrays (no Python loop over users or items); the per-row solves run
in :mod:`sklearn_mf._als_fast`.
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from sklearn_mf import _als_fast, _setup_fast
from sklearn_mf._training import (
    EarlyStopping,
    LoopResult,
    TrainingLoop,
    rating_predictions,
    relative_decrease_below,
    weighted_rmse,
)


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
            np.ascontiguousarray(rows, dtype=np.int32), n_rows, 1
        )
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
        if key is None:  # the row lengths: no per-entry temporary
            return np.diff(self.indptr).astype(np.float64)
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        weights = None if key is None else self.data[key].astype(np.float64)
        return np.bincount(rows, weights=weights, minlength=self.n_rows).astype(np.float64)


def csr_to_rowmatrix(m, **data):
    """``RowMatrix`` view of a scipy CSR matrix (data passed explicitly)."""
    return RowMatrix(
        m.indptr.astype(np.intp),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        data,
        m.shape[1],
    )


# ------------------------------------------------------------------ explicit
def explicit_half_step(
    R,
    Y,
    other_bias,
    X,
    bias,
    reg,
    reg_bias,
    scale,
    n_threads,
    solver="cholesky",
    cg_steps=3,
    row_sse=None,
):
    """Solve the rows of ``R`` (a ``RowMatrix`` with ``t`` and ``w`` data)
    into ``X`` / ``bias`` given the fixed ``Y`` / ``other_bias``.

    ``solver="cholesky"`` solves every row exactly (``X`` / ``bias`` are only
    written); ``"cg"`` takes ``cg_steps`` conjugate-gradient steps from their
    current values and, when ``row_sse`` (float64, one per row) is given,
    writes each row's weighted squared error after its solve into it.
    """
    dtype = X.dtype
    empty = np.zeros(0, dtype=dtype)
    common = (
        R.indptr,
        R.indices,
        R.data["t"],
        R.data.get("w", empty),
        Y,
        empty if other_bias is None else other_bias,
        X,
        empty if bias is None else bias,
        float(reg),
        float(reg_bias),
        bool(scale),
    )
    with blas_single_thread():
        if solver == "cg":
            n_bad = _als_fast.explicit_solve_cg(
                *common,
                int(cg_steps),
                np.zeros(0) if row_sse is None else row_sse,
                _threads_for(R, n_threads),
            )
        else:
            n_bad = _als_fast.explicit_solve(*common, _threads_for(R, n_threads))
    if n_bad:
        raise np.linalg.LinAlgError(
            f"The ALS system of {n_bad} row(s) is not positive definite; use a "
            f"larger regularization (now {reg}), or rescale y if the ratings are huge."
        )


def explicit_objective(
    R, X, bias, Y, other_bias, reg, reg_bias, scale, n_threads, row_weight, col_weight
):
    """Regularised weighted squared error (float64) of the explicit model.

    ``row_weight`` / ``col_weight``: per-row and per-column total weights (the
    penalty multipliers under ``scale``).
    """
    dtype = X.dtype
    empty = np.zeros(0, dtype=dtype)
    sse = _als_fast.explicit_sse(
        R.indptr,
        R.indices,
        R.data["t"],
        R.data.get("w", empty),
        X,
        empty if bias is None else bias,
        Y,
        empty if other_bias is None else other_bias,
        _threads_for(R, n_threads),
    )
    return float(
        sse + explicit_penalty(X, bias, Y, other_bias, reg, reg_bias, scale, row_weight, col_weight)
    )


def explicit_penalty(X, bias, Y, other_bias, reg, reg_bias, scale, row_weight, col_weight):
    """The penalty term of :func:`explicit_objective` (float64)."""
    mr = row_weight if scale else 1.0
    mc = col_weight if scale else 1.0
    pen = reg * (
        np.sum(mr * np.einsum("ij,ij->i", X, X, dtype=np.float64))
        + np.sum(mc * np.einsum("ij,ij->i", Y, Y, dtype=np.float64))
    )
    if bias is not None:
        pen += reg_bias * (
            np.sum(mr * bias.astype(np.float64) ** 2)
            + np.sum(mc * other_bias.astype(np.float64) ** 2)
        )
    return float(pen)


# ------------------------------------------------------------------ implicit
def gram(Y):
    """``Y^T Y`` as a C-contiguous array of Y's dtype."""
    return np.ascontiguousarray(Y.T @ Y)


def implicit_half_step(R, Y, X, reg, solver, cg_steps, n_threads, G=None, row_loss=None):
    """Solve the rows of ``R`` (``RowMatrix`` with ``cw`` = alpha * y) into ``X``.

    ``G`` is ``gram(Y)`` (None: computed here).  ``row_loss`` (float64, one
    per row of ``R``, or None) receives each row's observed-cells part of the
    objective at its new factors (see ``_als_fast.implicit_loss_observed``).
    """
    if G is None:
        G = gram(Y)
    with blas_single_thread():
        n_bad = _als_fast.implicit_solve(
            R.indptr,
            R.indices,
            R.data["cw"],
            Y,
            G,
            X,
            float(reg),
            solver == "cg",
            int(cg_steps),
            _threads_for(R, n_threads),
            row_loss,
        )
    if n_bad:
        raise np.linalg.LinAlgError(
            f"The implicit ALS system of {n_bad} row(s) is not positive definite; "
            f"use a larger regularization (now {reg}), or a smaller alpha or y if the "
            "confidences 1 + alpha * y are huge."
        )


def implicit_objective(R, X, Y, reg, n_threads):
    """Hu-Koren-Volinsky objective (float64), computed without dense matrices."""
    with blas_single_thread():
        data = _als_fast.implicit_loss_observed(
            R.indptr, R.indices, R.data["cw"], X, Y, _threads_for(R, n_threads)
        )
    # every cell with confidence 1 and preference 0: trace(X G X^T)
    data += float(np.einsum("ij,ij->", X @ gram(Y), X, dtype=np.float64))
    pen = reg * (
        np.einsum("ij,ij->", X, X, dtype=np.float64) + np.einsum("ij,ij->", Y, Y, dtype=np.float64)
    )
    return float(data + pen)


def implicit_confidences(seen, alpha, dtype, n_threads=1):
    """User-major and item-major ``RowMatrix`` of the confidences minus one
    (``cw = alpha * y``) of a seen-items CSR of strengths.

    ``R_u`` shares the indices of ``seen``; ``R_i`` is its transpose (the
    same arrays as ``seen.T.tocsr()`` scaled, by one parallel counting sort,
    :func:`~sklearn_mf._setup_fast.transpose_rows`): 8 bytes per rating
    beyond ``seen`` and ``R_u``'s confidences in float32.
    """
    R_u = csr_to_rowmatrix(seen, cw=(alpha * seen.data).astype(dtype, copy=False))
    cw = R_u.data["cw"]
    indptr, indices, cw_i, _ = _setup_fast.transpose_rows(
        R_u.indptr, R_u.indices, cw, cw[:0], seen.shape[1], n_threads
    )
    R_i = RowMatrix(indptr, indices, {"cw": cw_i}, seen.shape[0])
    return R_u, R_i


def run_implicit_als(
    R_u,
    R_i,
    P,
    Q,
    *,
    regularization,
    solver,
    cg_steps,
    max_iter,
    tol,
    n_threads,
    verbose=0,
    desc=None,
):
    """ALS iterations of ``ImplicitALS`` on the confidences ``R_u`` / ``R_i``.

    ``P`` and ``Q`` are updated in place.  Stops after ``max_iter``
    iterations or when the objective decreases by at most ``tol`` times its
    value (``tol=None``: never).

    Returns
    -------
    loop : LoopResult
        ``loss_curve`` holds the Hu-Koren-Volinsky objective after each iteration.
    """

    # The objective after an iteration comes with its item half-step: the
    # observed cells' part from the user rows that solve has just read (no
    # second pass over the ratings), and trace(P G_Q P^T) = <P^T P, Q^T Q>
    # from the two Gram matrices the half-steps use anyway (Q^T Q of the new
    # item factors is the next user half-step's).
    row_loss = np.empty(R_i.n_rows, dtype=np.float64)
    grams = {"Q": None}

    def step(it):
        GQ = gram(Q) if grams["Q"] is None else grams["Q"]
        implicit_half_step(R_u, Q, P, regularization, solver, cg_steps, n_threads, G=GQ)
        GP = gram(P)
        implicit_half_step(
            R_i, P, Q, regularization, solver, cg_steps, n_threads, G=GP, row_loss=row_loss
        )
        grams["Q"] = GQ = gram(Q)
        loss = (
            float(np.sum(row_loss))
            + float(np.sum(GP.astype(np.float64) * GQ.astype(np.float64)))
            + regularization
            * (
                np.einsum("ij,ij->", P, P, dtype=np.float64)
                + np.einsum("ij,ij->", Q, Q, dtype=np.float64)
            )
        )
        loss = float(loss)
        return loss, 0, {"objective": loss}

    loop = TrainingLoop(
        max_iter,
        hint=f"Use a larger regularization (now {regularization}).",
        solver=solver,
        verbose=verbose,
        desc=desc,
        unit="iteration",
    )
    with blas_single_thread():  # nested BLAS threads only slow the kernels
        return loop.run(step, converged=relative_decrease_below(tol))


def solve_rows_implicit(R, rows, Y, X, reg, n_threads):
    """Exact implicit half-step restricted to ``rows`` of ``R``, written into ``X``."""
    if len(rows) == 0:
        return
    sub = R.take_rows(rows)
    out = np.zeros((len(rows), X.shape[1]), dtype=X.dtype)
    implicit_half_step(sub, Y, out, reg, "cholesky", 0, n_threads)
    X[rows] = out


def partial_fit_implicit_als(R_u, R_i, users, new_items, P, Q, *, regularization, n_threads):
    """The update of ``ImplicitALS.partial_fit``: the rows ``new_items`` of
    ``Q``, then ``users`` of ``P``, then ``new_items`` again, each solved
    exactly (Cholesky) with everything else fixed; in place."""
    with blas_single_thread():
        solve_rows_implicit(R_i, new_items, P, Q, regularization, n_threads)
        solve_rows_implicit(R_u, users, Q, P, regularization, n_threads)
        solve_rows_implicit(R_i, new_items, P, Q, regularization, n_threads)


def sum_duplicates_csr(indptr, indices, values, n_cols):
    """CSR with duplicate entries of each row summed (scipy does the work)."""
    m = sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, n_cols))
    m.sum_duplicates()
    return m


# ------------------------------------------------- MatrixFactorization(solver="als")
def _explicit_setup(R_u, n_threads=1):
    """Item-major copy and penalty multipliers of the user-major ratings
    (:func:`explicit_ratings`); the same as ``R_u.transpose()``, by one
    counting sort that allocates nothing but the copy."""
    t = R_u.data["t"]
    indptr, indices, t, w = _setup_fast.transpose_rows(
        R_u.indptr, R_u.indices, t, R_u.data.get("w", t[:0]), R_u.n_cols, n_threads
    )
    R_i = RowMatrix(indptr, indices, {"t": t} | ({"w": w} if "w" in R_u.data else {}), R_u.n_rows)
    key = "w" if "w" in R_u.data else None
    return R_i, R_u.row_sums(key), R_i.row_sums(key)


def explicit_targets(y, global_mean, dtype):
    """``(y - global_mean).astype(dtype)`` without the float64 temporary (the
    difference is still computed in float64, then rounded once)."""
    t = np.empty(len(y), dtype=dtype)
    np.subtract(y, global_mean, out=t, casting="same_kind")
    return t


def explicit_ratings(
    u, i, y, sample_weight, n_users, n_items, global_mean, dtype, targets=None, n_threads=1
):
    """User-major ``RowMatrix`` of the ratings minus the mean (``t``) and
    their weights (``w``, only when weighted).  ``targets`` (then ``y`` is
    not read) are the ratings minus the mean already, from
    :func:`explicit_targets`."""
    t = explicit_targets(y, global_mean, dtype) if targets is None else targets
    del targets
    w = t[:0] if sample_weight is None else sample_weight.astype(t.dtype)
    # RowMatrix.from_codes by one counting sort, without its permutation
    indptr, indices, t, w = _setup_fast.group_by_row(
        np.ascontiguousarray(u, dtype=np.int32),
        np.ascontiguousarray(i, dtype=np.int32),
        t,
        w,
        n_users,
        n_threads,
    )
    data = {"t": t} | ({"w": w} if sample_weight is not None else {})
    return RowMatrix(indptr, indices, data, n_items)


class ExplicitALSResult(NamedTuple):
    """What :func:`run_explicit_als` computed."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray  # or None (unbiased)
    item_bias: np.ndarray  # or None
    ratings: RowMatrix  # the user-major training ratings, for partial_fit
    loop: LoopResult


def run_explicit_als(
    u,
    i,
    y,
    sample_weight,
    train,
    val,
    P,
    Q,
    user_bias,
    item_bias,
    *,
    global_mean,
    regularization,
    bias_regularization,
    scaling,
    max_iter,
    tol,
    n_iter_no_change,
    clip_range,
    n_threads,
    verbose=0,
    desc=None,
    ratings=None,
    als_solver="cholesky",
    cg_steps=3,
):
    """ALS iterations of ``MatrixFactorization(solver="als")``.

    Alternates exact user and item half-steps (factors and, when biased,
    biases) on the ratings ``y[train]`` (``train=None``: all, no copies) of
    the codes ``u``, ``i`` (or on ``ratings``, their user-major
    :func:`explicit_ratings` built by the caller, who may then pass None for
    ``u``, ``i``, ``y`` when nothing is held out), starting
    from ``P``, ``Q``, ``user_bias``, ``item_bias`` (None when unbiased),
    which are updated in place and returned.  Stops after ``max_iter``
    iterations, when the objective decreases by at most ``tol`` times its
    value (``tol=None``: never), or on the validation RMSE of the rows
    ``val`` (None: no early stopping; the best iteration's parameters are
    kept).  ``scaling`` multiplies each row's penalties by its total weight.
    ``als_solver="cg"`` replaces the exact row solves by ``cg_steps``
    conjugate-gradient steps warm-started from the current factors; the
    item half-step then also returns each item's squared error, which gives
    the objective without another pass over the ratings.

    Returns
    -------
    result : ExplicitALSResult
        ``loop.loss_curve`` holds the regularised objective per unit of
        weight after each iteration.
    """
    if ratings is not None:
        R_u = ratings
    elif train is None:
        R_u = explicit_ratings(
            u, i, y, sample_weight, len(P), len(Q), global_mean, P.dtype, n_threads=n_threads
        )
    else:
        R_u = explicit_ratings(
            u[train],
            i[train],
            y[train],
            None if sample_weight is None else sample_weight[train],
            len(P),
            len(Q),
            global_mean,
            P.dtype,
            n_threads=n_threads,
        )
    del ratings
    R_i, wu, wi = _explicit_setup(R_u, n_threads)
    total_w = float(wu.sum())
    reg = float(regularization)
    reg_b = reg if bias_regularization is None else float(bias_regularization)
    bu, bi = user_bias, item_bias

    cg = als_solver == "cg"
    row_sse = np.zeros(R_i.n_rows) if cg else None

    def step(it):
        if cg:
            explicit_half_step(R_u, Q, bi, P, bu, reg, reg_b, scaling, n_threads, "cg", cg_steps)
            explicit_half_step(
                R_i, P, bu, Q, bi, reg, reg_b, scaling, n_threads, "cg", cg_steps, row_sse
            )
            obj = float(np.sum(row_sse)) + explicit_penalty(
                P, bu, Q, bi, reg, reg_b, scaling, wu, wi
            )
        else:
            explicit_half_step(R_u, Q, bi, P, bu, reg, reg_b, scaling, n_threads)
            explicit_half_step(R_i, P, bu, Q, bi, reg, reg_b, scaling, n_threads)
            obj = explicit_objective(R_u, P, bu, Q, bi, reg, reg_b, scaling, n_threads, wu, wi)
        obj /= max(total_w, 1e-300)
        return obj, 0, {"objective": obj}

    def score(it):
        pred = rating_predictions(u[val], i[val], P, Q, bu, bi, global_mean, clip_range, n_threads)
        return weighted_rmse(pred, y[val], None if sample_weight is None else sample_weight[val])

    stopper = None
    if val is not None:
        stopper = EarlyStopping(
            lambda: [a for a in (P, Q, bu, bi) if a is not None], tol, n_iter_no_change
        )
    loop = TrainingLoop(
        max_iter,
        hint=f"Use a larger regularization (now {reg}).",
        solver="als",
        early_stopping=stopper,
        verbose=verbose,
        desc=desc,
        unit="iteration",
    )
    with blas_single_thread():
        result = loop.run(
            step, score=score, score_name="validation RMSE", converged=relative_decrease_below(tol)
        )
    return ExplicitALSResult(P, Q, bu, bi, R_u, result)


def grow_rows(A, n_new, rng=None, std=0.0):
    """Append ``n_new`` rows (zeros, or N(0, std^2) when ``rng`` is given)."""
    shape = (n_new,) + A.shape[1:]
    extra = (
        np.zeros(shape, dtype=A.dtype) if rng is None else rng.normal(0, std, shape).astype(A.dtype)
    )
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


def partial_fit_explicit_als(
    ratings,
    u,
    i,
    y,
    sample_weight,
    n_items_old,
    P,
    Q,
    user_bias,
    item_bias,
    *,
    global_mean,
    regularization,
    bias_regularization,
    scaling,
    n_threads,
):
    """The ALS update of ``MatrixFactorization.partial_fit`` on a fitted model.

    ``ratings`` (the model's user-major training ratings) gets the new
    ratings of codes ``u``, ``i`` (a new rating of an already rated cell
    replaces it); ``P``, ``Q``, ``user_bias``, ``item_bias`` (None when
    unbiased) are the grown parameter arrays, with the new items from
    ``n_items_old`` on.  The new items, every user in ``u`` and again the new
    items are re-solved exactly with everything else fixed; the arrays are
    updated in place.  The global mean stays fixed.

    Returns
    -------
    ratings : RowMatrix
        The merged user-major training ratings.
    """
    n_users, n_items = len(P), len(Q)
    dtype = P.dtype
    old = ratings
    old_rows = np.repeat(np.arange(old.n_rows), np.diff(old.indptr))
    old_keys = old_rows.astype(np.int64) * n_items + old.indices
    keep = ~np.isin(old_keys, u.astype(np.int64) * n_items + i)
    weighted = "w" in old.data or sample_weight is not None
    data = {"t": np.r_[old.data["t"][keep], (y - global_mean).astype(dtype)]}
    if weighted:
        w_old = old.data["w"][keep] if "w" in old.data else np.ones(keep.sum(), dtype)
        w_new = np.ones(len(y), dtype) if sample_weight is None else sample_weight
        data["w"] = np.r_[w_old, w_new].astype(dtype)
    R_u = RowMatrix.from_codes(
        np.r_[old_rows[keep], u], np.r_[old.indices[keep], i], n_users, n_items, **data
    )
    R_i = R_u.transpose()
    reg = float(regularization)
    reg_b = reg if bias_regularization is None else float(bias_regularization)
    bu, bi = user_bias, item_bias
    touched = np.unique(u)
    new_items = np.arange(n_items_old, n_items)
    with blas_single_thread():
        solve_rows_explicit(R_i, new_items, P, bu, Q, bi, reg, reg_b, scaling, n_threads)
        solve_rows_explicit(R_u, touched, Q, bi, P, bu, reg, reg_b, scaling, n_threads)
        solve_rows_explicit(R_i, new_items, P, bu, Q, bi, reg, reg_b, scaling, n_threads)
    return R_u
