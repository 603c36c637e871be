"""The training loop and its shared pieces.

Every iterative model (SGD and ALS matrix factorization, SVD++, implicit ALS,
BPR, factorization machines and their Gibbs sampler) runs its epochs through
one :class:`TrainingLoop`, which owns the skeleton: the loss curve, the
divergence check, early stopping on a validation score, the ``verbose``
progress and the break.  A model supplies only its epoch step and its score.
The rating models (MF, SVD++) also share the start of ``fit``
(:func:`start_rating_fit`), the random validation holdout and the
predictions of a biased factor model (:func:`rating_predictions`).

The functions here work on arrays and numbers and return what they
computed; the estimators alone set their fitted attributes, through the
setters of :class:`FittedLoopMixin`, once training succeeded
(:func:`undo_validation_on_error` covers what input validation sets before).
"""

import functools
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from sklearn_mf import _predict_fast
from sklearn_mf._ids import factorize_ids
from sklearn_mf._progress import EpochProgress, SetupTimer
from sklearn_mf._utils import check_dtype, make_rng, normal_factors_in_background
from sklearn_mf._validation import check_interactions


def undo_validation_on_error(fit):
    """Decorator of ``fit`` and ``partial_fit``: if it raises, put back every
    attribute as it was, so that a failed fit leaves a fitted model exactly as
    it was and an unfitted one unfitted.  The fitted attributes are set only
    after training succeeded; what can still change before an error is
    ``n_features_in_`` / ``feature_names_in_`` (set by ``validate_data``
    before training starts) and the attributes set just before the final
    finiteness check (``check_finite_fit``).
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        state = vars(self)
        saved = dict(state)  # shallow: fits replace their arrays, never write into them
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            state.clear()
            state.update(saved)
            raise

    return wrapper


def seen_matrix(user_codes, item_codes, values, n_users, n_items):
    """The seen-items CSR (float32, int32 sorted indices, duplicates summed;
    built by a linear-time counting sort) and the item popularity counts
    (int64) of encoded interactions."""
    from sklearn_mf._convert import interactions_csr

    return interactions_csr(user_codes, item_codes, values, n_users, n_items, return_counts=True)


class RatingFitStart(NamedTuple):
    """What :func:`start_rating_fit` computed."""

    user_codes: np.ndarray
    item_codes: np.ndarray
    users: np.ndarray  # raw ids, position = code
    items: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray  # or None
    user_items: sp.csr_matrix
    item_popularity: np.ndarray
    rating_range: tuple
    user_factors: np.ndarray
    item_factors: np.ndarray
    extra_item_factors: list
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float
    train: np.ndarray  # or None: every row trains
    val: np.ndarray  # or None: nothing held out
    rng: np.random.Generator


def start_rating_fit(
    users,
    items,
    y,
    sample_weight,
    *,
    n_factors,
    init_std,
    dtype,
    biased,
    early_stopping,
    validation_fraction,
    random_state,
    n_extra_item_factors=0,
    timer=None,
    seen=True,
    while_drawing=None,
):
    """The common start of ``fit`` for the biased rating models (MF, SVD++).

    Encodes the validated ratings, builds the seen-items matrix (unless
    ``seen=False``: ``user_items`` and ``item_popularity`` are then None, for
    a caller that builds them from its own copy of the ratings), draws the
    user factors, the item factors and ``n_extra_item_factors`` more item
    matrices from N(0, init_std^2) (in that order, from one generator seeded
    by ``random_state``), zeroes the biases, holds out the early-stopping
    validation set and computes the global mean from the training part.

    ``while_drawing(n_ratings, done)``, when given, is called in this thread
    while the factors are drawn on another (after the rating range and the
    mean), with ``done`` the one-byte flag that becomes 1 when the draws are
    finished (see :func:`~sklearn_mf._utils.normal_factors_in_background`):
    work that does not use the generator, such as paging in the arrays the
    caller fills next.

    Returns
    -------
    start : RatingFitStart
        ``train`` and ``val`` are the rows used for training and validation
        (both None when nothing is held out); ``rng`` is the generator, to be
        used for the rest of the fit.
    """
    timer = SetupTimer(0) if timer is None else timer
    # the raw ids are private copies (check_interactions): the codes may share
    # their memory (ids that are already int32 codes)
    u, users_ = factorize_ids(users, copy=False)
    i, items_ = factorize_ids(items, copy=False)
    del users, items  # only the codes are used from here on (memory)
    timer.lap("encode ids")
    n_users, n_items, k = len(users_), len(items_), n_factors
    rng = make_rng(random_state)
    # the factors are drawn on another thread meanwhile (the same values:
    # nothing else uses rng until then): the seen-items matrix, when built
    # here, and the rating range and mean overlap with the draws
    factors = normal_factors_in_background(
        rng,
        [(n_users, k)] + [(n_items, k)] * (1 + n_extra_item_factors),
        init_std,
        dtype,
    )
    if seen:
        seen, popularity = seen_matrix(u, i, y, n_users, n_items)
        timer.lap("user-item matrix")
    else:
        seen = popularity = None
    rating_range = (float(y.min()), float(y.max()))
    global_mean = 0.0
    if biased and not early_stopping:
        w = sample_weight
        global_mean = _float64_mean(y, w)
    if while_drawing is not None:
        while_drawing(len(y), factors.done)
    P, Q, *extra = factors()
    train = val = None
    if early_stopping:
        train, val = holdout_split(len(y), validation_fraction, rng)
        if biased:
            w = None if sample_weight is None else sample_weight[train]
            global_mean = float(np.average(y[train], weights=w))
    timer.lap("initialise")
    return RatingFitStart(
        u,
        i,
        users_,
        items_,
        y,
        sample_weight,
        seen,
        popularity,
        rating_range,
        P,
        Q,
        extra,
        np.zeros(n_users, dtype=dtype),
        np.zeros(n_items, dtype=dtype),
        global_mean,
        train,
        val,
        rng,
    )


def _float64_mean(y, sample_weight):
    """``float(np.average(y, weights=sample_weight))`` of ``y`` as float64:
    a float32 ``y`` is summed in float64 in NumPy's order (the same bits as
    the mean of its float64 copy; NumPy's own mean of float32 accumulates in
    float32)."""
    if y.dtype == np.float32 and sample_weight is None:
        from sklearn_mf import _setup_fast

        return _setup_fast.float64_sum(np.ascontiguousarray(y), 0) / len(y)
    return float(np.average(y, weights=sample_weight))


def holdout_split(n, validation_fraction, rng):
    """Random (train, validation) index split for early stopping, both sorted.

    Raises a ``ValueError`` naming the numbers when nothing would be left to train on.
    """
    n_val = max(1, int(round(validation_fraction * n)))
    if n_val >= n:
        raise ValueError(
            f"validation_fraction={validation_fraction} leaves no training rows out of {n}."
        )
    shuffled = rng.permutation(n)
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])


def rating_predictions(
    user_codes, item_codes, P, Q, user_bias, item_bias, global_mean, clip_range, n_threads
):
    """Predictions ``mu + b_u + b_i + p_u.q_i`` (float64) of (user, item) codes.

    ``user_bias`` / ``item_bias`` are None for an unbiased model, or one of
    them alone (BPR has item biases only: the other side is read as zeros);
    ``clip_range`` is ``(low, high)`` or None (no clipping).  The kernel
    computes in the factors' dtype.
    """
    dtype = P.dtype.type
    if user_bias is None and item_bias is not None:
        user_bias = np.zeros(len(P), dtype=dtype)
    if item_bias is None and user_bias is not None:
        item_bias = np.zeros(len(Q), dtype=dtype)
    empty = np.zeros(0, dtype=dtype)
    out = np.empty(len(user_codes), dtype=dtype)
    _predict_fast.dot_scores(
        np.ascontiguousarray(user_codes, dtype=np.int32),
        np.ascontiguousarray(item_codes, dtype=np.int32),
        P,
        Q,
        empty if user_bias is None else user_bias,
        empty if item_bias is None else item_bias,
        global_mean,
        out,
        n_threads,
    )
    out = out.astype(np.float64)
    if clip_range is not None:
        np.clip(out, *clip_range, out=out)
    return out


def weighted_rmse(pred, y, sample_weight):
    """Root of the (weighted) mean squared error."""
    return float(np.sqrt(np.average((pred - y) ** 2, weights=sample_weight)))


def sgd_hint(learning_rate):
    """What to change when an SGD run diverges."""
    return f"Use a smaller learning_rate (now {learning_rate}) or a larger regularization."


def raise_if_diverged(epoch, n_bad, loss, hint, *, solver="sgd", unit="epoch"):
    """Stop a run whose predictions or parameters became NaN or infinite.

    ``n_bad`` counts the non-finite values a kernel met; ``loss`` is the
    epoch's loss (checked for finiteness); ``hint`` says what to change.
    """
    if n_bad or not np.isfinite(loss):
        raise FloatingPointError(
            f"The {solver} solver diverged in {unit} {epoch}: a prediction or a "
            f"parameter became NaN or infinite. {hint}"
        )


class EarlyStopping:
    """Track a validation score to minimise; keep a copy of the best parameters.

    Parameters
    ----------
    state : callable
        Returns the arrays that make up the model's parameters (updated in
        place by training); they are copied at each new best epoch and written
        back by :meth:`restore`.
    tol : float or None
        Minimum decrease of the score that counts as an improvement (None:
        any decrease).
    patience : int
        Stop after this many epochs without improvement.

    Attributes
    ----------
    scores : list of float
        The score after each epoch.
    best_iteration : int or None
        1-based epoch of the best score.
    """

    def __init__(self, state, tol, patience):
        self.state = state
        self.tol = 0.0 if tol is None else tol
        self.patience = patience
        self.scores = []
        self.best_iteration = None
        self._best = np.inf
        self._best_state = None
        self._no_improve = 0

    def update(self, epoch, score):
        """Record the score of ``epoch``; return True when training should stop."""
        self.scores.append(score)
        if score < self._best - self.tol:
            self._best, self._no_improve, self.best_iteration = score, 0, epoch
            self._best_state = [a.copy() for a in self.state()]
        else:
            self._no_improve += 1
        return self._no_improve >= self.patience

    def restore(self):
        """Write the best epoch's parameters back; True if there was one."""
        if self._best_state is None:
            return False
        for dst, src in zip(self.state(), self._best_state):
            dst[...] = src
        return True


class FittedLoopMixin:
    """Setters of the fitted attributes that the training loop and the start
    of a rating fit produce (called by the estimator once training succeeded)."""

    def _set_loop_attributes(self, loop, *, early_stopping=True):
        """``loss_curve_``, ``n_iter_`` (and the early-stopping attributes)."""
        self.loss_curve_ = loop.loss_curve
        self.n_iter_ = loop.n_iter
        if early_stopping:
            self.validation_scores_ = loop.validation_scores
            self.best_iteration_ = loop.best_iteration

    def _start_rating_fit(
        self,
        X,
        y,
        sample_weight,
        n_extra_item_factors=0,
        seen=True,
        while_drawing=None,
        y_float32=False,
    ):
        """Validate the ratings and run :func:`start_rating_fit` with this
        model's parameters (nothing is set on the model); ``y_float32`` as in
        :func:`~sklearn_mf._validation.check_interactions`."""
        timer = SetupTimer(self.verbose)
        users, items, y, sample_weight = check_interactions(
            self, X, y, sample_weight, reset=True, y_required=True, y_float32=y_float32
        )
        timer.lap("validate")
        return start_rating_fit(
            users,
            items,
            y,
            sample_weight,
            n_factors=self.n_factors,
            init_std=self.init_std,
            dtype=check_dtype(self.dtype),
            biased=self.biased,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction,
            random_state=self.random_state,
            n_extra_item_factors=n_extra_item_factors,
            timer=timer,
            seen=seen,
            while_drawing=while_drawing,
        )

    def _set_rating_start(self, start):
        """The ids, seen items, rating range and global mean of a rating fit."""
        self._set_ids(start.users, start.items)
        self.user_items_ = start.user_items
        self.item_popularity_ = start.item_popularity
        self.rating_range_ = start.rating_range
        self.global_mean_ = start.global_mean

    def _set_online_batch(self, batch):
        """The grown ids, seen items and rating range of a ``partial_fit``."""
        self._set_ids(batch.users, batch.items)
        self.user_items_ = batch.user_items
        self.item_popularity_ = batch.item_popularity
        self.rating_range_ = batch.rating_range
        for name, value in batch.arrays.items():
            setattr(self, name, value)


class LoopResult(NamedTuple):
    """What :meth:`TrainingLoop.run` observed."""

    loss_curve: list
    n_iter: int
    validation_scores: list  # or None without early stopping
    best_iteration: int  # or None
    stopped: bool  # a stopping criterion ended the run (not the epoch cap)


class TrainingLoop:
    """The epoch skeleton shared by every iterative estimator.

    Each epoch the loop calls the model's ``step``, checks the result for
    divergence (:func:`raise_if_diverged`), appends the loss to the curve,
    scores the validation set under early stopping (:class:`EarlyStopping`),
    asks the model's convergence test, reports progress
    (:class:`~sklearn_mf._progress.EpochProgress`) and stops when a criterion
    says so; at the end it writes the best epoch's parameters back.

    Parameters
    ----------
    n_epochs : int
        Upper bound on the number of epochs.
    hint : str
        What to change when the run diverges (ends the error message).
    solver : str, default="sgd"
        Named in the divergence error.
    early_stopping : EarlyStopping or None, default=None
        Tracks the validation score and the best parameters.
    verbose : int, default=0
        ``verbose`` of the estimator.
    desc : str or None, default=None
        Label of the progress output (the estimator's class name).
    unit : str, default="epoch"
        What one step is called ("epoch", "iteration", "sweep").

    Examples
    --------
    >>> from sklearn_mf._training import TrainingLoop
    >>> def step(epoch):
    ...     loss = 1.0 / epoch
    ...     return loss, 0, {"loss": loss}
    >>> result = TrainingLoop(10, hint="").run(
    ...     step, converged=lambda curve: curve[-1] < 0.3)
    >>> result.n_iter, result.stopped
    (4, True)
    """

    def __init__(
        self,
        n_epochs,
        *,
        hint,
        solver="sgd",
        early_stopping=None,
        verbose=0,
        desc=None,
        unit="epoch",
    ):
        self.n_epochs = n_epochs
        self.hint = hint
        self.solver = solver
        self.early_stopping = early_stopping
        self.verbose = verbose
        self.desc = desc
        self.unit = unit

    def run(self, step, *, score=None, score_name="validation score", converged=None):
        """Run the epochs.

        Parameters
        ----------
        step : callable
            ``step(epoch)`` (1-based) runs one epoch and returns
            ``(loss, n_bad, metrics)``: the loss for the curve, the count of
            non-finite values met (0 when none) and a dict of numbers to
            report.
        score : callable or None, default=None
            ``score(epoch)`` returns the validation score to minimise (or None
            to skip this epoch); used only with ``early_stopping``.
        score_name : str, default="validation score"
            Name of the score in the progress output.
        converged : callable or None, default=None
            ``converged(loss_curve)`` returns True to stop (checked when early
            stopping has not stopped the run).

        Returns
        -------
        result : LoopResult
        """
        stopper = self.early_stopping
        curve, n_iter, stop = [], 0, False
        with EpochProgress(self.verbose, self.n_epochs, unit=self.unit, desc=self.desc) as progress:
            for epoch in range(1, self.n_epochs + 1):
                loss, n_bad, metrics = step(epoch)
                raise_if_diverged(epoch, n_bad, loss, self.hint, solver=self.solver, unit=self.unit)
                curve.append(float(loss))
                n_iter = epoch
                stop = False
                if stopper is not None and score is not None:
                    value = score(epoch)
                    if value is not None:
                        metrics[score_name] = value
                        stop = stopper.update(epoch, value)
                if not stop and converged is not None:
                    stop = bool(converged(curve))
                progress.update(epoch, metrics)
                if stop:
                    break
        if stopper is None:
            return LoopResult(curve, n_iter, None, None, stop)
        stopper.restore()
        return LoopResult(curve, n_iter, stopper.scores, stopper.best_iteration, stop)


def relative_decrease_below(tol):
    """Convergence test: the objective fell by at most ``tol`` times its
    previous value in the last epoch (None when ``tol`` is None: never)."""
    if tol is None:
        return None
    return lambda curve: len(curve) > 1 and curve[-2] - curve[-1] <= tol * abs(curve[-2])


def objective_stalled(tol, patience):
    """Convergence test: for ``patience`` epochs in a row the objective fell
    by less than ``tol`` times its previous value (None when ``tol`` is None).

    The returned callable counts the stalled epochs; use one per run.
    """
    if tol is None:
        return None
    n_stalled = 0

    def converged(curve):
        nonlocal n_stalled
        if len(curve) < 2:
            return False
        prev, obj = curve[-2], curve[-1]
        n_stalled = n_stalled + 1 if prev - obj < tol * max(abs(prev), 1e-12) else 0
        return n_stalled >= patience

    return converged


def check_strengths(estimator, X, y, *, reset, ratings=False):
    """Validated ``(users, items, y)`` of interactions with strengths or ratings.

    The shared start of the fits of the interaction models (ItemKNN, UserKNN,
    EASE).  ``ratings`` False: ``y`` are non-negative strengths, None meaning 1
    (float32, exact), and at least one must be positive; True: ``y`` are
    ratings and required.  ``reset`` as in :func:`check_interactions`.
    """
    users, items, y, _ = check_interactions(
        estimator, X, y, None, reset=reset, y_required=ratings, y_nonnegative=not ratings
    )
    if y is None:
        y = np.ones(len(users), dtype=np.float32)
    if not ratings and not (y > 0).any():
        raise ValueError(
            "y holds no positive interaction strength: every value is 0, so "
            "there is no observed preference to learn from."
        )
    return users, items, y


def encode_strengths(estimator, X, y, *, ratings=False):
    """:func:`check_strengths` for a fit from scratch, with the ids encoded.

    Returns ``(user_codes, item_codes, y, users, items)``: int32 codes and
    the raw ids in code order (see :func:`~sklearn_mf._ids.factorize_ids`).
    """
    users, items, y = check_strengths(estimator, X, y, reset=True, ratings=ratings)
    u, users_ = factorize_ids(users, copy=False)
    i, items_ = factorize_ids(items, copy=False)
    return u, i, y, users_, items_
