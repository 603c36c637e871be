"""Second-order factorization machines: regressor and binary classifier."""

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import log_ndtr, logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from sklearn_mf._fm import _fm_fast
from sklearn_mf._fm._mcmc import FMFit, run_mcmc
from sklearn_mf._training import (
    EarlyStopping,
    FittedLoopMixin,
    TrainingLoop,
    holdout_split,
    objective_stalled,
    sgd_hint,
    undo_validation_on_error,
)
from sklearn_mf._utils import check_dtype, check_finite_fit, effective_n_threads, make_rng

_LOSS = {"squared": 0, "logistic": 1}


def _as_csr(X, dtype):
    """A private CSR copy of validated ``X`` with summed duplicates and intp indices."""
    if sp.issparse(X):
        Xc = sp.csr_matrix(X, dtype=dtype, copy=True)
        Xc.sum_duplicates()
        Xc.eliminate_zeros()
    else:
        Xc = sp.csr_matrix(np.asarray(X, dtype=dtype))
    Xc.indices = Xc.indices.astype(np.intp, copy=False)
    Xc.indptr = Xc.indptr.astype(np.intp, copy=False)
    return Xc


def _csc_parts(Xc):
    Xt = Xc.tocsc()
    return (
        np.ascontiguousarray(Xt.data),
        Xt.indices.astype(np.intp, copy=False),
        Xt.indptr.astype(np.intp, copy=False),
    )


def fm_predict_naive(X, w0, w, V):
    r"""Reference FM scores by the pairwise definition, in O(k n_features^2) per row.

    :math:`\hat y(x) = w_0 + \sum_j w_j x_j + \sum_{j<l} \langle v_j, v_l\rangle x_j x_l`.
    For tests and teaching; use the estimators' ``predict`` for real work.
    """
    X = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    G = np.asarray(V, dtype=np.float64) @ np.asarray(V, dtype=np.float64).T
    out = np.full(X.shape[0], float(w0))
    out += X @ np.asarray(w, dtype=np.float64)
    d = X.shape[1]
    for r in range(X.shape[0]):
        x = X[r]
        for j in range(d):
            for m in range(j + 1, d):
                out[r] += G[j, m] * x[j] * x[m]
    return out


def fm_penalty(w0, w, V, scale, scale0, regularization_w0, bias_regularization, regularization):
    """The penalty term of the FM objective (float64), with per-feature
    multipliers ``scale`` and the intercept's ``scale0``."""
    w0 = float(w0[0])
    w = w.astype(np.float64)
    return 0.5 * (
        regularization_w0 * scale0 * w0 * w0
        + bias_regularization * float(np.dot(scale, w * w))
        + regularization * float(np.dot(scale, np.square(V, dtype=np.float64).sum(axis=1)))
    )


def penalty_scales(Xt, swt, sum_w, occurrence):
    """Penalty multipliers: per feature its (weighted) number of non-zeros and
    ``sum_w`` for the intercept (``occurrence``), or 1 and 1.  Also returns
    the plain counts and the mask of features with positive weight."""
    counts = np.bincount(Xt.indices, minlength=Xt.shape[1]).astype(np.float64)
    weighted = None
    if len(swt):
        row_w = np.repeat(swt.astype(np.float64), np.diff(Xt.indptr))
        weighted = np.bincount(Xt.indices, weights=row_w, minlength=Xt.shape[1])
    if occurrence:
        # weighted occurrences, so that a weight of 2 equals a repeated row
        scale = weighted if weighted is not None else counts
        scale0 = sum_w
    else:
        scale, scale0 = np.ones_like(counts), 1.0
    # Features with no (positively weighted) occurrence carry no data:
    # their minimiser is 0, as if the rows holding them had been removed.
    present = (weighted if weighted is not None else counts) > 0
    return scale, scale0, counts, present


class _BaseFactorizationMachine(FittedLoopMixin, BaseEstimator):
    """Parameters, validation and the solver loops shared by both FM estimators."""

    _parameter_constraints: dict = {
        "n_factors": [Interval(numbers.Integral, 0, None, closed="left")],
        "solver": [StrOptions({"sgd", "als", "mcmc"})],
        "n_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "learning_rate_schedule": [StrOptions({"constant", "invscaling"})],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "bias_regularization": [Interval(numbers.Real, 0, None, closed="left"), None],
        "regularization_w0": [Interval(numbers.Real, 0, None, closed="left")],
        "regularization_scaling": [StrOptions({"occurrence", "none"})],
        "fit_intercept": ["boolean"],
        "init_std": [Interval(numbers.Real, 0, None, closed="left")],
        "dtype": "no_validation",  # checked by check_dtype
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "burn_in": [
            Interval(numbers.Integral, 0, None, closed="left"),
            Interval(numbers.Real, 0, 1, closed="left"),
        ],
        "feature_groups": [StrOptions({"auto"}), "array-like", None],
        "sampler": [StrOptions({"mixed", "blocked", "coordinate"})],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    _loss_name = "squared"

    def __init__(
        self,
        n_factors=8,
        *,
        solver="als",
        n_epochs=100,
        max_iter=100,
        learning_rate=0.01,
        learning_rate_schedule="constant",
        power_t=0.5,
        regularization=0.1,
        bias_regularization=None,
        regularization_w0=0.0,
        regularization_scaling="occurrence",
        fit_intercept=True,
        init_std=0.1,
        dtype=np.float32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        burn_in=0.05,
        feature_groups="auto",
        sampler="mixed",
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.solver = solver
        self.n_epochs = n_epochs
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.power_t = power_t
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.regularization_w0 = regularization_w0
        self.regularization_scaling = regularization_scaling
        self.fit_intercept = fit_intercept
        self.init_std = init_std
        self.dtype = dtype
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.burn_in = burn_in
        self.feature_groups = feature_groups
        self.sampler = sampler
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------ helpers
    def _validate_X(self, X, reset):
        dtype = check_dtype(self.dtype) if reset else self.w_.dtype.type
        X = validate_data(
            self,
            X,
            accept_sparse=("csr", "csc", "coo"),
            dtype=dtype,
            reset=reset,
            ensure_all_finite=True,
        )
        return _as_csr(X, dtype)

    def _decision(self, X):
        check_is_fitted(self)
        Xc = self._validate_X(X, reset=False)
        out = np.empty(Xc.shape[0], dtype=np.float64)
        _fm_fast.predict(
            Xc.data,
            Xc.indices,
            Xc.indptr,
            float(self._w0[0]),
            self.w_,
            self.V_,
            out,
            effective_n_threads(self.n_jobs),
        )
        return out

    # --------------------------------------------------------------- fit
    def _fit(self, X, y, sample_weight, init_intercept, blocks=None):
        """Fit to the encoded target ``y`` (float64; ±1 for the logistic loss).

        ``blocks``: relational blocks for ``solver="mcmc"`` (see ``_blocks``;
        used by :class:`FMRecommender`); their posterior means come back in
        the fit's ``extra["_relational"]``.  Returns the solver's
        :class:`FMFit`; the caller sets the attributes (:meth:`_set_fit`)
        once everything has succeeded.
        """
        dtype = check_dtype(self.dtype)
        Xc = self._validate_X(X, reset=True)
        n, d = Xc.shape
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)} values.")
        sample_weight = (
            None
            if sample_weight is None
            else _check_sample_weight(sample_weight, Xc, dtype=np.float64, ensure_non_negative=True)
        )
        rng = make_rng(self.random_state)
        V = rng.normal(0.0, self.init_std, (d, self.n_factors)).astype(dtype)
        w = np.zeros(d, dtype=dtype)
        w0 = np.zeros(1, dtype=dtype)

        train = np.arange(n)
        val = None
        if self.early_stopping:
            train, val = holdout_split(n, self.validation_fraction, rng)
        Xt = _as_csr(Xc[train], dtype) if val is not None else Xc
        yt = np.ascontiguousarray(y[train], dtype=dtype)
        swt = (
            np.zeros(0, dtype=dtype)
            if sample_weight is None
            else np.ascontiguousarray(sample_weight[train], dtype=dtype)
        )
        if self.fit_intercept:
            w0[0] = init_intercept(
                y[train], None if sample_weight is None else sample_weight[train]
            )
        sum_w = float(len(yt)) if sample_weight is None else float(swt.sum())
        validation = None
        if val is not None:
            validation = (
                _as_csr(Xc[val], dtype),
                y[val],
                None if sample_weight is None else sample_weight[val],
            )
        if self.solver == "mcmc":
            return run_mcmc(
                Xt,
                _csc_parts(Xt),
                yt,
                swt,
                sum_w,
                rng,
                validation,
                w0,
                w,
                V,
                max_iter=self.max_iter,
                burn_in=self.burn_in,
                fit_intercept=self.fit_intercept,
                feature_groups=self.feature_groups,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                n_threads=effective_n_threads(self.n_jobs),
                verbose=self.verbose,
                desc=type(self).__name__,
                probit=self._loss_name == "logistic",
                init_std=self.init_std,
                blocks=blocks,
                sampler=self.sampler,
            )
        return self._optimize(Xt, yt, swt, sum_w, rng, validation, w0, w, V)

    def _set_fit(self, fit):
        """Set the fitted attributes from the solver's :class:`FMFit`."""
        self._w0, self.w_, self.V_ = fit.w0, fit.w, fit.V
        self.intercept_ = float(fit.w0[0])
        self._set_loop_attributes(fit.loop)
        for name, value in fit.extra.items():
            setattr(self, name, value)

    def _optimize(self, Xt, yt, swt, sum_w, rng, validation, w0, w, V):
        """The ALS and SGD solvers, from ``w0``, ``w``, ``V`` (updated in place)."""
        dtype = w.dtype.type
        loss = _LOSS[self._loss_name]
        n, k = Xt.shape[0], self.n_factors
        n_threads = effective_n_threads(self.n_jobs)
        reg_w = (
            self.regularization if self.bias_regularization is None else self.bias_regularization
        )
        scale, scale0, counts, present = penalty_scales(
            Xt, swt, sum_w, self.regularization_scaling == "occurrence"
        )
        w[~present] = 0
        V[~present] = 0

        def objective(data_loss):
            return (
                data_loss
                + fm_penalty(
                    w0, w, V, scale, scale0, self.regularization_w0, reg_w, self.regularization
                )
            ) / sum_w

        if self.solver == "sgd":
            n_epochs, hint = self.n_epochs, sgd_hint(self.learning_rate)
            # per-row share of each feature's penalty: m_j / n_j
            with np.errstate(divide="ignore", invalid="ignore"):
                row_scale = np.where(counts > 0, scale / counts, 0.0).astype(dtype)
            row_scale0 = scale0 / n
            q = np.zeros(k, dtype=dtype)
            invscaling = self.learning_rate_schedule == "invscaling"

            def step(epoch):
                lr = self.learning_rate / epoch**self.power_t if invscaling else self.learning_rate
                order = rng.permutation(n).astype(np.intp)
                data_loss, n_bad = _fm_fast.sgd_epoch(
                    Xt.data,
                    Xt.indices,
                    Xt.indptr,
                    yt,
                    swt,
                    order,
                    w0,
                    w,
                    V,
                    row_scale,
                    row_scale0,
                    self.regularization_w0,
                    reg_w,
                    self.regularization,
                    lr,
                    loss,
                    self.fit_intercept,
                    q,
                )
                return finish(data_loss, n_bad)
        else:
            n_epochs, hint = self.max_iter, "Use a larger regularization or scale the features."
            cdata, crows, cptr = _csc_parts(Xt)
            cd_scale = scale.astype(dtype)
            pred = np.empty(n, dtype=dtype)
            qc = np.zeros((k, n), dtype=dtype)

            def step(epoch):
                # Refresh the caches from scratch each sweep: no drift in float32.
                _fm_fast.predict_cache(
                    Xt.data, Xt.indices, Xt.indptr, float(w0[0]), w, V, pred, qc, n_threads
                )
                n_bad = _fm_fast.cd_epoch(
                    cdata,
                    crows,
                    cptr,
                    yt,
                    swt,
                    w0,
                    w,
                    V,
                    pred,
                    qc,
                    cd_scale,
                    scale0,
                    self.regularization_w0,
                    reg_w,
                    self.regularization,
                    loss,
                    self.fit_intercept,
                )
                return finish(_fm_fast.objective(pred, yt, swt, loss), n_bad)

        def finish(data_loss, n_bad):
            if n_bad or not np.isfinite(data_loss) or not np.all(np.isfinite(V)):
                return np.nan, max(int(n_bad), 1), {}
            obj = objective(data_loss)
            return obj, 0, {"objective": obj}

        score = stopper = None
        if validation is not None:
            X_val, y_val, w_val = validation
            out = np.empty(X_val.shape[0], dtype=np.float64)

            def score(epoch):
                _fm_fast.predict(
                    X_val.data, X_val.indices, X_val.indptr, float(w0[0]), w, V, out, n_threads
                )
                return self._validation_loss(out, y_val, w_val)

            stopper = EarlyStopping(lambda: (w0, w, V), self.tol, self.n_iter_no_change)
        loop = TrainingLoop(
            n_epochs,
            hint=hint,
            solver=self.solver,
            early_stopping=stopper,
            verbose=self.verbose,
            desc=type(self).__name__,
        )
        result = loop.run(
            step,
            score=score,
            score_name=f"validation {self._validation_name}",
            converged=(
                None if stopper is not None else objective_stalled(self.tol, self.n_iter_no_change)
            ),
        )
        if not result.stopped and self.tol is not None:
            cap = "n_epochs" if self.solver == "sgd" else "max_iter"
            warnings.warn(
                f"{type(self).__name__} reached {cap}={n_epochs} before the "
                f"{'validation score' if stopper is not None else 'objective'} stopped "
                f"improving; increase {cap} or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return FMFit(w0, w, V, result, {})


class FactorizationMachineRegressor(RegressorMixin, _BaseFactorizationMachine):
    r"""Second-order factorization machine for regression (squared loss).

    The model scores a feature vector :math:`x \in \mathbb R^d` as

    .. math::

        \hat y(x) = w_0 + \sum_{j=1}^d w_j x_j
            + \sum_{j=1}^d \sum_{l=j+1}^d \langle v_j, v_l\rangle x_j x_l ,

    every pair of features interacting through the inner product of their
    ``n_factors``-dimensional latent vectors (Rendle 2010).  Because
    :math:`\sum_{j<l} \langle v_j, v_l\rangle x_j x_l = \frac12 \sum_f
    \big[(\sum_j v_{jf} x_j)^2 - \sum_j v_{jf}^2 x_j^2\big]`, a row costs
    O(``n_factors`` x its number of non-zeros).  With one-hot user and item
    columns only, this is biased matrix factorization; further columns (side
    features, context) interact with users, items and each other.

    ``X`` is any numeric matrix, dense or ``scipy.sparse``, for example the
    output of ``OneHotEncoder`` / ``ColumnTransformer`` in a ``Pipeline``, or a
    LIBSVM file read with :func:`sklearn.datasets.load_svmlight_file`.  The
    fit minimises

    .. math::

        J = \sum_i s_i\, \ell(y_i, \hat y(x_i))
            + \sum_j m_j \Big(\frac{\lambda_w}{2} w_j^2
            + \frac{\lambda_V}{2} \lVert v_j\rVert^2\Big)
            + m_0 \frac{\lambda_0}{2} w_0^2

    where the penalty multiplier :math:`m_j` is the (sample-weighted) number
    :math:`n_j` of training rows in which feature :math:`j` is non-zero
    (``regularization_scaling="occurrence"``, the per-rating penalty of matrix
    factorization and of libFM's SGD; :math:`m_0 = \sum_i s_i`) or 1
    (``"none"``, the penalty of libFM's ALS).

    Here :math:`\ell(y, \hat y) = \frac12 (y - \hat y)^2` and :math:`s_i`
    are the sample weights.

    Parameters
    ----------
    n_factors : int, default=8
        Dimension :math:`k` of the latent vectors :math:`v_j` (0 gives a linear
        model).
    solver : {"als", "sgd", "mcmc"}, default="als"
        ``"als"``: coordinate descent (libFM's "ALS"): each of :math:`w_0`,
        :math:`w_j` and :math:`v_{jf}` in turn is set to the minimiser of the
        objective with the others fixed (exact for the squared loss, a
        Newton step with curvature bound 1/4 for the logistic loss), using
        cached predictions and factor sums so that one update costs
        O(nnz of its column); no learning rate to tune.
        ``"sgd"``: stochastic gradient descent over the rows in a fresh random
        order each epoch.  Both solvers train on one thread (every update
        depends on the previous one); ``predict`` runs in parallel.
        ``"mcmc"``: the Bayesian FM (Freudenthaler et al. 2011, libFM's
        MCMC) by Gibbs sampling.  Gaussian priors with Normal-Gamma
        hyperpriors replace the penalties, so the ``regularization*``
        parameters are not used and nothing needs tuning; the noise
        precision and the prior means and precisions are sampled with the
        weights, on the standardised target.
        Each sweep draws every
        column's :math:`(w_j, v_j)` jointly from its conditional posterior,
        in parallel over classes of columns that share no row (``n_jobs``
        threads).  ``predict`` averages the FMs of the draws kept after
        ``burn_in``, which is usually more accurate than the optimisation
        solvers (see :ref:`fm`); the cost is ``max_iter`` sweeps (100
        to 200 are typical) and a model that stores every kept draw.
    n_epochs : int, default=100
        ``solver="sgd"``: maximum number of epochs (passes over the rows).
    max_iter : int, default=100
        ``solver="als"``: maximum number of sweeps over all coordinates;
        ``solver="mcmc"``: number of Gibbs sweeps.
    learning_rate : float, default=0.01
        SGD step size :math:`\eta_0` (unused by ALS).
    learning_rate_schedule : {"constant", "invscaling"}, default="constant"
        SGD step in epoch :math:`t` (1-based): :math:`\eta_0` or
        :math:`\eta_0 / t^{\text{power\_t}}`.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule.
    regularization : float, default=0.1
        L2 penalty :math:`\lambda_V` on the latent vectors (see the objective
        above; SGD shares the penalty of feature :math:`j` out over the
        :math:`n_j` rows where it is non-zero, so that an epoch follows the
        gradient of :math:`J`).
    bias_regularization : float or None, default=None
        L2 penalty :math:`\lambda_w` on the linear weights (the biases of
        one-hot ids); None uses ``regularization``.
    regularization_w0 : float, default=0.0
        L2 penalty :math:`\lambda_0` on the intercept.
    regularization_scaling : {"occurrence", "none"}, default="occurrence"
        Penalty multiplier :math:`m_j`: :math:`n_j` (each occurrence of a
        feature is penalised, like matrix factorization's per-rating
        regularization; frequent side features such as a gender column are
        then held back as much as rare ids) or 1 (one penalty per parameter).
    fit_intercept : bool, default=True
        Learn :math:`w_0` (else it is 0).
    init_std : float, default=0.1
        :math:`v_{jf}` start from :math:`\mathcal N(0, \text{init\_std}^2)`;
        :math:`w` starts at 0 and :math:`w_0` at the best constant.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of ``X`` inside the solver and of the parameters.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when the validation
        score (RMSE) has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and keep the parameters of the best epoch.
    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping.
    n_iter_no_change : int, default=5
        Patience, in epochs, of early stopping and of the ``tol`` criterion.
    tol : float or None, default=1e-4
        Without early stopping, training stops when the objective has not
        decreased by a relative ``tol`` for ``n_iter_no_change`` epochs, and a
        ``ConvergenceWarning`` is raised if ``n_epochs`` (SGD) or ``max_iter``
        (ALS) comes first.  With
        early stopping, the minimum improvement of the validation score.
        None disables the check (always run every epoch, no warning).
        MCMC has no objective to converge: it always runs ``max_iter``
        sweeps, or stops early on the validation score of the averaged
        prediction when ``early_stopping=True``.
    burn_in : int or float, default=0.05
        ``solver="mcmc"`` only: the first sweeps, whose draws are discarded
        (the chain is still moving away from the initialisation).  An int
        is a number of sweeps, a float in [0, 1) a fraction of ``max_iter``;
        it must leave at least one sweep.  Keeping more draws helps more
        than discarding more (see :ref:`fm`).
    feature_groups : "auto", array-like of int or None, default="auto"
        ``solver="mcmc"`` only: features in the same group share the prior
        means and precisions of their weights and latent vectors (libFM's
        and myfm's grouping), so that, say, user ids and movie genres are
        shrunk by their own amounts.  An array gives the group of each
        feature; None puts all features in one group; ``"auto"`` gives every
        one-hot encoded field its own group (a run of two or more adjacent
        0/1 columns that are never non-zero in the same row and cover at
        least half the rows, as ``OneHotEncoder`` and ``ColumnTransformer``
        lay them out) and puts the other features together.
    sampler : {"mixed", "blocked", "coordinate"}, default="mixed"
        ``solver="mcmc"`` only: how a sweep draws the parameters.
        ``"blocked"``: each column's :math:`(w_j, v_j)` jointly from its
        :math:`(k+1)`-dimensional conditional (a Cholesky solve per column,
        O(nnz k^2) per sweep).  ``"coordinate"``: every :math:`w_j` and
        :math:`v_{jf}` alone from its scalar conditional, factor by factor
        (libFM's order, O(nnz k) per sweep).  ``"mixed"``: blocked draws
        for the columns of ``X`` and coordinate draws for the relational
        blocks of :class:`FMRecommender`'s ``implicit_features``; without
        such blocks it is ``"blocked"``.  The three sample the same
        posterior; ``"mixed"`` was the fastest at equal accuracy on
        MovieLens (see :ref:`fm`).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split, the SGD order and
        the MCMC draws.  A fixed seed gives identical results, for MCMC
        whatever ``n_jobs`` (each draw is keyed by its parameter, not by the
        thread that makes it).
    n_jobs : int or None, default=None
        OpenMP threads for ``predict``, the ALS cache refresh and the MCMC
        sweeps; None uses every available core.
    verbose : int, default=0
        0: silent.  1: one line per epoch with the objective, the validation
        score under early stopping and the seconds it took.  2 or more: a
        progress bar (``tqdm.auto``) with the same numbers, if tqdm is
        installed (``pip install sklearn_mf[progress]``), otherwise the lines
        of 1 and a note that tqdm is missing.  The fitted model does not
        depend on ``verbose``.
    clip_predictions : bool, default=True
        Clip ``predict`` to the range of targets seen in ``fit``.

    Attributes
    ----------
    intercept_ : float
        :math:`w_0`.
    w_ : ndarray of shape (n_features_in_,)
        Linear weights.
    V_ : ndarray of shape (n_features_in_, n_factors)
        Latent vectors, one row per feature.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Objective :math:`J` divided by the total sample weight after each
        epoch (for SGD the data term is the loss observed during the epoch).
    validation_scores_ : list of float or None
        Validation score after each epoch (RMSE; ``early_stopping=True`` only).
    best_iteration_ : int or None
        1-based epoch whose parameters were kept (``early_stopping=True`` only).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a DataFrame with string column names.
    target_range_ : tuple of float
        Smallest and largest training target.
    n_samples_ : int
        ``solver="mcmc"`` only: number of draws averaged.  ``w_`` and
        ``intercept_`` are their means, and ``V_`` has shape
        ``(n_features_in_, n_factors * n_samples_)``: the kept latent vectors
        side by side, each scaled by :math:`1/\sqrt{\text{n\_samples\_}}`,
        so that the FM formula with ``V_`` is the average of the draws' FMs
        (its pairwise term is the mean of their Gram matrices).
    noise_precision_ : float
        ``solver="mcmc"`` only: posterior mean of the noise precision
        :math:`\alpha` (the residual standard deviation is about
        :math:`\alpha^{-1/2}`).

    See Also
    --------
    FactorizationMachineClassifier : The same model with the logistic loss.
    FMRecommender : Ranked recommendations from an FM on user and item features.
    MatrixFactorization : The special case with one-hot user and item ids.

    References
    ----------
    S. Rendle, "Factorization Machines", ICDM 2010.
    S. Rendle, "Factorization Machines with libFM", ACM TIST 3(3), 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder
    >>> from sklearn_mf import FactorizationMachineRegressor
    >>> X = np.array([["ann", "jaws"], ["ann", "up"], ["bob", "jaws"],
    ...               ["bob", "heat"], ["cat", "up"], ["cat", "heat"]])
    >>> y = np.array([5.0, 3.0, 4.0, 2.0, 4.0, 1.0])
    >>> model = make_pipeline(
    ...     OneHotEncoder(handle_unknown="ignore"),
    ...     FactorizationMachineRegressor(n_factors=2, regularization=0.01,
    ...                                   random_state=0, tol=None, max_iter=50),
    ... )
    >>> model.fit(X, y).predict([["ann", "heat"]]).shape
    (1,)
    """

    _parameter_constraints: dict = {
        **_BaseFactorizationMachine._parameter_constraints,
        "clip_predictions": ["boolean"],
    }

    def __init__(
        self,
        n_factors=8,
        *,
        solver="als",
        n_epochs=100,
        max_iter=100,
        learning_rate=0.01,
        learning_rate_schedule="constant",
        power_t=0.5,
        regularization=0.1,
        bias_regularization=None,
        regularization_w0=0.0,
        regularization_scaling="occurrence",
        fit_intercept=True,
        init_std=0.1,
        dtype=np.float32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        burn_in=0.05,
        feature_groups="auto",
        sampler="mixed",
        clip_predictions=True,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        super().__init__(
            n_factors,
            solver=solver,
            n_epochs=n_epochs,
            max_iter=max_iter,
            learning_rate=learning_rate,
            learning_rate_schedule=learning_rate_schedule,
            power_t=power_t,
            regularization=regularization,
            bias_regularization=bias_regularization,
            regularization_w0=regularization_w0,
            regularization_scaling=regularization_scaling,
            fit_intercept=fit_intercept,
            init_std=init_std,
            dtype=dtype,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            burn_in=burn_in,
            feature_groups=feature_groups,
            sampler=sampler,
            random_state=random_state,
            n_jobs=n_jobs,
            verbose=verbose,
        )
        self.clip_predictions = clip_predictions

    _validation_name = "RMSE"

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the factorization machine.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training features (dense or CSR/CSC/COO); NaN or infinity raise.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights :math:`s_i` of the samples in the loss.

        Returns
        -------
        self : FactorizationMachineRegressor
            The fitted estimator.
        """
        return self._fit_regression(X, y, sample_weight)

    def _fit_regression(self, X, y, sample_weight, blocks=None):
        """``fit``, with the relational ``blocks`` of :class:`FMRecommender`."""
        y = column_or_1d(y, warn=True)
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity.")
        fit = self._fit(X, y, sample_weight, lambda t, s: np.average(t, weights=s), blocks=blocks)
        self._set_fit(fit)
        self.target_range_ = (float(y.min()), float(y.max())) if len(y) else (0.0, 0.0)
        check_finite_fit(self, y, what="targets")
        return self

    @staticmethod
    def _validation_loss(pred, y, w):  # the ALS and SGD solvers' RMSE
        return float(np.sqrt(np.average((pred - y) ** 2, weights=w)))

    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features, with the columns seen in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions (clipped to ``target_range_`` when
            ``clip_predictions=True``).
        """
        out = self._decision(X)
        if self.clip_predictions:
            np.clip(out, *self.target_range_, out=out)
        return out


def _logit_init(y, w):
    p = np.average(y > 0, weights=w)
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


class FactorizationMachineClassifier(ClassifierMixin, _BaseFactorizationMachine):
    r"""Second-order factorization machine for binary classification (logistic loss).

    The model scores a feature vector :math:`x \in \mathbb R^d` as

    .. math::

        \hat y(x) = w_0 + \sum_{j=1}^d w_j x_j
            + \sum_{j=1}^d \sum_{l=j+1}^d \langle v_j, v_l\rangle x_j x_l ,

    every pair of features interacting through the inner product of their
    ``n_factors``-dimensional latent vectors (Rendle 2010).  Because
    :math:`\sum_{j<l} \langle v_j, v_l\rangle x_j x_l = \frac12 \sum_f
    \big[(\sum_j v_{jf} x_j)^2 - \sum_j v_{jf}^2 x_j^2\big]`, a row costs
    O(``n_factors`` x its number of non-zeros).  With one-hot user and item
    columns only, this is biased matrix factorization; further columns (side
    features, context) interact with users, items and each other.

    ``X`` is any numeric matrix, dense or ``scipy.sparse``, for example the
    output of ``OneHotEncoder`` / ``ColumnTransformer`` in a ``Pipeline``, or a
    LIBSVM file read with :func:`sklearn.datasets.load_svmlight_file`.  The
    fit minimises

    .. math::

        J = \sum_i s_i\, \ell(y_i, \hat y(x_i))
            + \sum_j m_j \Big(\frac{\lambda_w}{2} w_j^2
            + \frac{\lambda_V}{2} \lVert v_j\rVert^2\Big)
            + m_0 \frac{\lambda_0}{2} w_0^2

    where the penalty multiplier :math:`m_j` is the (sample-weighted) number
    :math:`n_j` of training rows in which feature :math:`j` is non-zero
    (``regularization_scaling="occurrence"``, the per-rating penalty of matrix
    factorization and of libFM's SGD; :math:`m_0 = \sum_i s_i`) or 1
    (``"none"``, the penalty of libFM's ALS).

    Here :math:`\ell(y, \hat y) = \log(1 + e^{-y \hat y})` for the target
    encoded as :math:`y = +1` for ``classes_[1]`` and :math:`-1` for
    ``classes_[0]``; :math:`P(y = \text{classes\_[1]} \mid x) =
    \sigma(\hat y(x))`.  ``y`` may hold any two labels; more than two raise
    ``ValueError``.

    Parameters
    ----------
    n_factors : int, default=8
        Dimension :math:`k` of the latent vectors :math:`v_j` (0 gives a linear
        model).
    solver : {"als", "sgd", "mcmc"}, default="als"
        ``"als"``: coordinate descent (libFM's "ALS"): each of :math:`w_0`,
        :math:`w_j` and :math:`v_{jf}` in turn is set to the minimiser of the
        objective with the others fixed (exact for the squared loss, a
        Newton step with curvature bound 1/4 for the logistic loss), using
        cached predictions and factor sums so that one update costs
        O(nnz of its column); no learning rate to tune.
        ``"sgd"``: stochastic gradient descent over the rows in a fresh random
        order each epoch.  Both solvers train on one thread (every update
        depends on the previous one); ``predict`` runs in parallel.
        ``"mcmc"``: the Bayesian FM (Freudenthaler et al. 2011, libFM's
        MCMC) by Gibbs sampling.  Gaussian priors with Normal-Gamma
        hyperpriors replace the penalties, so the ``regularization*``
        parameters are not used and nothing needs tuning; the link
        is then the probit, :math:`P(y = 1 \mid x) = \Phi(\hat y(x))`,
        sampled through a latent Gaussian target drawn each sweep
        (Albert and Chib, 1993), and the prior means and precisions are
        sampled with the weights.
        Each sweep draws every
        column's :math:`(w_j, v_j)` jointly from its conditional posterior,
        in parallel over classes of columns that share no row (``n_jobs``
        threads).  ``predict`` averages the FMs of the draws kept after
        ``burn_in``, which is usually more accurate than the optimisation
        solvers (see :ref:`fm`); the cost is ``max_iter`` sweeps (100
        to 200 are typical) and a model that stores every kept draw.
    n_epochs : int, default=100
        ``solver="sgd"``: maximum number of epochs (passes over the rows).
    max_iter : int, default=100
        ``solver="als"``: maximum number of sweeps over all coordinates;
        ``solver="mcmc"``: number of Gibbs sweeps.
    learning_rate : float, default=0.01
        SGD step size :math:`\eta_0` (unused by ALS).
    learning_rate_schedule : {"constant", "invscaling"}, default="constant"
        SGD step in epoch :math:`t` (1-based): :math:`\eta_0` or
        :math:`\eta_0 / t^{\text{power\_t}}`.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule.
    regularization : float, default=0.1
        L2 penalty :math:`\lambda_V` on the latent vectors (see the objective
        above; SGD shares the penalty of feature :math:`j` out over the
        :math:`n_j` rows where it is non-zero, so that an epoch follows the
        gradient of :math:`J`).
    bias_regularization : float or None, default=None
        L2 penalty :math:`\lambda_w` on the linear weights (the biases of
        one-hot ids); None uses ``regularization``.
    regularization_w0 : float, default=0.0
        L2 penalty :math:`\lambda_0` on the intercept.
    regularization_scaling : {"occurrence", "none"}, default="occurrence"
        Penalty multiplier :math:`m_j`: :math:`n_j` (each occurrence of a
        feature is penalised, like matrix factorization's per-rating
        regularization; frequent side features such as a gender column are
        then held back as much as rare ids) or 1 (one penalty per parameter).
    fit_intercept : bool, default=True
        Learn :math:`w_0` (else it is 0).
    init_std : float, default=0.1
        :math:`v_{jf}` start from :math:`\mathcal N(0, \text{init\_std}^2)`;
        :math:`w` starts at 0 and :math:`w_0` at the best constant.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of ``X`` inside the solver and of the parameters.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows, stop when the validation
        score (log-loss) has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and keep the parameters of the best epoch.
    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping.
    n_iter_no_change : int, default=5
        Patience, in epochs, of early stopping and of the ``tol`` criterion.
    tol : float or None, default=1e-4
        Without early stopping, training stops when the objective has not
        decreased by a relative ``tol`` for ``n_iter_no_change`` epochs, and a
        ``ConvergenceWarning`` is raised if ``n_epochs`` (SGD) or ``max_iter``
        (ALS) comes first.  With
        early stopping, the minimum improvement of the validation score.
        None disables the check (always run every epoch, no warning).
        MCMC has no objective to converge: it always runs ``max_iter``
        sweeps, or stops early on the validation score of the averaged
        prediction when ``early_stopping=True``.
    burn_in : int or float, default=0.05
        ``solver="mcmc"`` only: the first sweeps, whose draws are discarded
        (the chain is still moving away from the initialisation).  An int
        is a number of sweeps, a float in [0, 1) a fraction of ``max_iter``;
        it must leave at least one sweep.  Keeping more draws helps more
        than discarding more (see :ref:`fm`).
    feature_groups : "auto", array-like of int or None, default="auto"
        ``solver="mcmc"`` only: features in the same group share the prior
        means and precisions of their weights and latent vectors (libFM's
        and myfm's grouping), so that, say, user ids and movie genres are
        shrunk by their own amounts.  An array gives the group of each
        feature; None puts all features in one group; ``"auto"`` gives every
        one-hot encoded field its own group (a run of two or more adjacent
        0/1 columns that are never non-zero in the same row and cover at
        least half the rows, as ``OneHotEncoder`` and ``ColumnTransformer``
        lay them out) and puts the other features together.
    sampler : {"mixed", "blocked", "coordinate"}, default="mixed"
        ``solver="mcmc"`` only: joint (``"blocked"``, also what ``"mixed"``
        does here) or one-at-a-time (``"coordinate"``) draws; see
        :class:`FactorizationMachineRegressor`.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split, the SGD order and
        the MCMC draws.  A fixed seed gives identical results, for MCMC
        whatever ``n_jobs`` (each draw is keyed by its parameter, not by the
        thread that makes it).
    n_jobs : int or None, default=None
        OpenMP threads for ``predict``, the ALS cache refresh and the MCMC
        sweeps; None uses every available core.
    verbose : int, default=0
        0: silent.  1: one line per epoch with the objective, the validation
        score under early stopping and the seconds it took.  2 or more: a
        progress bar (``tqdm.auto``) with the same numbers, if tqdm is
        installed (``pip install sklearn_mf[progress]``), otherwise the lines
        of 1 and a note that tqdm is missing.  The fitted model does not
        depend on ``verbose``.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels; ``classes_[1]`` is the positive class.
    intercept_ : float
        :math:`w_0`.
    w_ : ndarray of shape (n_features_in_,)
        Linear weights.
    V_ : ndarray of shape (n_features_in_, n_factors)
        Latent vectors, one row per feature.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Objective :math:`J` divided by the total sample weight after each
        epoch (for SGD the data term is the loss observed during the epoch).
    validation_scores_ : list of float or None
        Validation score after each epoch (log-loss; ``early_stopping=True`` only).
    best_iteration_ : int or None
        1-based epoch whose parameters were kept (``early_stopping=True`` only).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a DataFrame with string column names.
    n_samples_ : int
        ``solver="mcmc"`` only: number of draws averaged (``V_`` holds them
        side by side, as for :class:`FactorizationMachineRegressor`).

    See Also
    --------
    FactorizationMachineRegressor : The same model with the squared loss.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf import FactorizationMachineClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4))
    >>> y = np.where(X[:, 0] * X[:, 1] > 0, "match", "other")
    >>> clf = FactorizationMachineClassifier(n_factors=2, random_state=0, tol=None,
    ...                                      regularization=1e-3, max_iter=30)
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _validation_name = "log-loss"
    _loss_name = "logistic"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the factorization machine to binary labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training features (dense or CSR/CSC/COO); NaN or infinity raise.
        y : array-like of shape (n_samples,)
            Two distinct labels (any type).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights :math:`s_i` of the samples in the loss.

        Returns
        -------
        self : FactorizationMachineClassifier
            The fitted estimator.
        """
        check_array(
            X, accept_sparse=True, dtype=None, ensure_all_finite=False, estimator=self
        )  # no samples: say so before counting classes
        y = column_or_1d(y, warn=True)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind != "binary":
            n_cls = "continuous" if kind == "continuous" else f"{len(np.unique(y))} distinct"
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{kind!r} ({n_cls} values); FactorizationMachineClassifier needs exactly "
                "two labels. Use FactorizationMachineRegressor for continuous targets."
            )
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) != 2:
            raise ValueError(
                "FactorizationMachineClassifier needs exactly two classes in y; got "
                f"{len(classes)} class: {classes.tolist()}."
            )
        y_pm = np.where(y_enc == 1, 1.0, -1.0)
        fit = self._fit(X, y_pm, sample_weight, _logit_init)
        self._set_fit(fit)
        self.classes_ = classes
        check_finite_fit(self, y_pm, what="targets")
        return self

    @staticmethod
    def _validation_loss(pred, y, w):  # the ALS and SGD solvers' log-loss
        return float(np.average(np.logaddexp(0.0, -pred * y), weights=w))

    def decision_function(self, X):
        """Raw FM score :math:`\\hat y(x)`; positive favours ``classes_[1]``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The log-odds of ``classes_[1]`` (``solver="mcmc"``: of the
            posterior predictive probability, see :meth:`predict_proba`).
        """
        if self.solver == "mcmc":
            log_p = self.predict_log_proba(X)
            return log_p[:, 1] - log_p[:, 0]
        return self._decision(X)

    def predict_proba(self, X):
        """Class probabilities :math:`\\sigma(\\hat y(x))` for ``classes_[1]``.

        With ``solver="mcmc"`` the posterior predictive probability
        :math:`\\frac1S \\sum_s \\Phi(\\hat y_s(x))`, the probit of each kept
        draw's score averaged over the draws.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns in the order of ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, 2)
            Columns in the order of ``classes_``.
        """
        if self.solver == "mcmc":
            return self._probit_predictive_log_proba(X)
        z = self._decision(X)
        return np.column_stack([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)])

    def _probit_predictive_log_proba(self, X):
        """log of (1 - p, p) with p the mean over the kept draws of
        Phi(score of the draw): each draw is the FM with its own linear part
        and its block of ``V_`` (stored scaled by 1/sqrt(S))."""
        check_is_fitted(self)
        Xc = self._validate_X(X, reset=False)
        n_draws, k = len(self._w0_draws), self.n_factors
        n_threads = effective_n_threads(self.n_jobs)
        score = np.empty(Xc.shape[0], dtype=np.float64)
        log_p1 = np.empty((n_draws, Xc.shape[0]))
        log_p0 = np.empty((n_draws, Xc.shape[0]))
        dtype = self.V_.dtype
        for s in range(n_draws):
            V = np.ascontiguousarray(
                self.V_[:, s * k : (s + 1) * k] * np.sqrt(n_draws), dtype=dtype
            )
            _fm_fast.predict(
                Xc.data,
                Xc.indices,
                Xc.indptr,
                float(self._w0_draws[s]),
                self._w_draws[s],
                V,
                score,
                n_threads,
            )
            log_p1[s], log_p0[s] = log_ndtr(score), log_ndtr(-score)
        log_n = np.log(n_draws)
        return np.column_stack(
            [logsumexp(log_p0, axis=0) - log_n, logsumexp(log_p1, axis=0) - log_n]
        )

    def predict(self, X):
        """Predicted labels (``classes_[1]`` where the score is positive).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Features.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]
