"""Bayesian factorization machine by Gibbs sampling (``solver="mcmc"``).

The model is the FM of ``_fm`` with a Gaussian likelihood and hierarchical
priors (Freudenthaler, Schmidt-Thieme & Rendle, 2011; libFM's MCMC):

    y_i ~ N(yhat(x_i), 1 / (alpha s_i)),       alpha ~ Gamma(1, 1)
    w_j ~ N(mu_w, 1 / lam_w),  v_jf ~ N(mu_f, 1 / lam_f)
    mu ~ N(0, 1 / (gamma_0 lam)),               lam ~ Gamma(1, 1)

with a flat prior on the intercept.  No penalty is tuned: the prior
precisions are sampled with everything else.  The sampler runs on the
standardised target (y - mean) / sd (mean 0 without an intercept), so that
these fixed hyperpriors suit targets of any scale, and maps the draws back (w0 -> mean + sd w0,
w -> sd w, V -> sqrt(sd) V, which scales every prediction by sd).  Each sweep draws ``alpha`` and
the (mu, lam) pairs here, then every parameter in the Cython kernel
(``_mcmc_fast``).  Predictions average the FM over the draws kept after
burn-in; since the pairwise term is linear in the Gram matrix of the latent
vectors, that average is itself an FM whose latent vectors are the kept draws
side by side, each scaled by ``1 / sqrt(n_kept)``, and it is stored as such.
"""

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from sklearn_mf._fm import _fm_fast, _mcmc_fast as _fm_mcmc_fast
from sklearn_mf._fm._blocks import BlockSampler
from sklearn_mf._progress import EpochProgress
from sklearn_mf._training import EarlyStopping
from sklearn_mf._utils import effective_n_threads

# Hyperprior constants (libFM's defaults): Gamma(shape, rate) priors on the
# noise precision and on the prior precisions, and the weight gamma_0 of the
# prior mean's own prior N(0, 1 / (gamma_0 lam)).
_ALPHA_SHAPE = _ALPHA_RATE = 1.0
_LAM_SHAPE = _LAM_RATE = 1.0
_GAMMA_0 = 1.0
# Refresh the cached predictions and factor sums from scratch this often
# (the kernel updates them incrementally; refreshing stops float32 drift).
_REFRESH_EVERY = 10


def n_burn_in(burn_in, max_iter):
    """Number of discarded sweeps for ``burn_in`` (count, or fraction of ``max_iter``)."""
    if isinstance(burn_in, (float, np.floating)):
        n = int(round(burn_in * max_iter))
    else:
        n = int(burn_in)
    if n >= max_iter:
        raise ValueError(
            f"burn_in={burn_in!r} discards {n} of max_iter={max_iter} sweeps, "
            "so no draw would be kept; lower burn_in or raise max_iter."
        )
    return n


def one_hot_groups(cdata, crows, cptr, n_rows):
    """Prior groups found from the column layout (``feature_groups="auto"``).

    A run of at least two consecutive columns holding only 0/1 values, no two
    of them non-zero in the same row, and together non-zero in at least half
    of the rows is taken for one one-hot encoded field (as ``OneHotEncoder``
    and ``ColumnTransformer`` lay them out) and gets a group of its own; all
    other columns share group 0.  Returns the group of every column.
    """
    d = len(cptr) - 1
    group = np.zeros(d, dtype=np.intp)
    # rows covered by the current run: stamp == run (starting a run is O(1))
    stamp = np.full(n_rows, -1, dtype=np.intp)
    run, run_start, n_covered, n_groups = 0, 0, 0, 1
    for j in range(d + 1):
        rows = crows[cptr[j]:cptr[j + 1]] if j < d else None
        binary = j < d and bool(np.all(cdata[cptr[j]:cptr[j + 1]] == 1))
        if j == d or not binary or (stamp[rows] == run).any():
            if j - run_start >= 2 and 2 * n_covered >= n_rows:  # close the run
                group[run_start:j] = n_groups
                n_groups += 1
            run, n_covered = run + 1, 0
            run_start = j if binary else j + 1
        if binary:
            stamp[rows] = run
            n_covered += len(rows)
    return group


def _feature_groups(spec, cdata, crows, cptr, n_rows, d):
    """The prior group of every column from ``feature_groups``."""
    if spec is None:
        return np.zeros(d, dtype=np.intp)
    if isinstance(spec, str):  # "auto" (the only string the constraints allow)
        return one_hot_groups(cdata, crows, cptr, n_rows)
    groups = np.asarray(spec)
    if groups.shape != (d,) or groups.dtype.kind not in "iu":
        raise ValueError(
            "feature_groups must be None, 'auto' or one integer per feature "
            f"(n_features_in_={d}), got an array of shape {groups.shape} and dtype "
            f"{groups.dtype}."
        )
    if d and groups.min() < 0:
        raise ValueError("feature_groups must hold non-negative integers.")
    # renumber to 0..G-1 (empty groups are harmless but cost a prior each)
    return np.unique(groups, return_inverse=True)[1].astype(np.intp)


def column_classes(cdata, crows, cptr, n_rows):
    """Columns with data, grouped into row-disjoint classes (largest first)."""
    counts = np.diff(cptr)
    present = np.flatnonzero(counts > 0)
    order = present[np.argsort(-counts[present], kind="stable")].astype(np.intp)
    return _fm_mcmc_fast.color_columns(crows, cptr, n_rows, order)


def sample_prior(theta, lam, rng):
    """Draw the prior means and precisions of the columns of ``theta``.

    ``theta`` (n_params, n_coords) holds one parameter per row; each column
    has its own normal prior whose mean and precision get the conjugate
    Normal-Gamma update given the current parameters.  ``lam`` is the
    current precision (the mean is drawn given it, then the precision given
    the new mean).  Returns ``(mu, lam)``.
    """
    p = theta.shape[0]
    mu = rng.normal(theta.sum(axis=0) / (p + _GAMMA_0),
                    1.0 / np.sqrt((p + _GAMMA_0) * lam))
    sq = ((theta - mu) ** 2).sum(axis=0) + _GAMMA_0 * mu * mu
    lam = rng.gamma((_LAM_SHAPE + p + 1) / 2.0, 2.0 / (_LAM_RATE + sq))
    return mu, lam


def draw_probit_latent(pred, labels, weights, rng, out):
    """Albert-Chib data augmentation: draw each ``z_i`` from N(pred_i, 1/s_i)
    truncated to the side of 0 given by its label (+1 or -1), into ``out``.

    Inverse-CDF sampling of the upper tail: with m = label * pred * sqrt(s),
    x = -ndtri(v Phi(m)) for v ~ U(0, 1) is N(0, 1) truncated to x > -m,
    accurate also far in the tail.  Rows of weight 0 get ``z = pred``.
    """
    root = np.ones_like(pred) if weights is None else np.sqrt(weights)
    m = labels * pred * root
    tail = np.maximum(rng.random(len(pred)) * ndtr(m), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = pred + np.where(root > 0, labels * -ndtri(tail) / root, 0.0)
        z = np.where(root > 0, z, pred)
    out[...] = z


def run_mcmc(est, Xt, csc, yt, swt, sum_w, rng, validation, probit=False, blocks=None):
    """Gibbs-sample ``est`` (a factorization machine) on the training rows:
    CSR ``Xt``, its CSC parts ``csc = (data, rows, indptr)``, targets ``yt``
    and weights ``swt`` (empty: unweighted) of total ``sum_w``.

    ``probit=True`` (the classifier): ``yt`` holds labels -1/+1 and the model
    is ``P(y = 1 | x) = Phi(yhat(x))``, sampled with a latent Gaussian target
    drawn every sweep (Albert and Chib, 1993) of unit noise precision.

    ``validation`` is None or ``(X_val, y_val, w_val)`` (CSR of the model's
    dtype, float64 targets, weights or None) for early stopping.  Starts from
    ``est._w0``, ``est.w_``, ``est.V_``; ends with them holding the
    posterior-mean FM, and sets the sampler's fitted attributes.

    ``blocks`` (regression without validation only): relational blocks
    ``[(row_of, B), ...]`` sampled with the columns of ``Xt`` (see
    ``_blocks``); their posterior-mean ``(w, V)`` are returned, one pair per
    block (None without blocks).
    """
    dtype = est.w_.dtype.type
    n, d = Xt.shape
    k = est.n_factors
    n_threads = effective_n_threads(est.n_jobs)
    burn = n_burn_in(est.burn_in, est.max_iter)
    cdata, crows, cptr = csc
    weights = None if len(swt) == 0 else swt
    if probit:
        labels = np.asarray(yt, dtype=np.float64)
        y_mean, y_sd = 0.0, 1.0
        if est.fit_intercept:  # the probit of the base rate
            rate = np.average(labels > 0, weights=weights)
            est._w0[0] = ndtri(min(max(rate, 1e-6), 1 - 1e-6))
        yt = np.empty(n, dtype=dtype)  # the latent target, drawn each sweep
    else:
        y_mean = float(np.average(yt, weights=weights)) if est.fit_intercept else 0.0
        y_sd = float(np.sqrt(np.average((yt - y_mean) ** 2, weights=weights)))
        if not y_sd > 0:
            y_sd = 1.0
        yt = np.ascontiguousarray((yt - y_mean) / y_sd, dtype=dtype)
        est._w0[0] = (est._w0[0] - y_mean) / y_sd if est.fit_intercept else 0.0
    columns, class_ptr = column_classes(cdata, crows, cptr, n)
    present = np.sort(columns)
    # a feature without data keeps the value 0 and stays out of the priors
    absent = np.setdiff1d(np.arange(d), present)
    est.w_[absent] = 0
    est.V_[absent] = 0

    group = _feature_groups(est.feature_groups, cdata, crows, cptr, n, d)
    members = [present[group[present] == g] for g in range(group.max() + 1)]
    lam = np.ones((len(members), k + 1))
    mu = np.zeros((len(members), k + 1))
    pred = np.empty(n, dtype=dtype)
    q = np.zeros((n, k), dtype=dtype)
    stopper = None
    relational = None
    if blocks:
        if validation is not None or probit:
            raise ValueError("relational blocks need a regression without early stopping.")
        relational = BlockSampler(blocks, n, k, dtype, est.init_std, rng, n_threads)
    if validation is not None:
        X_val, y_val, w_val = validation
        val_sum = np.zeros(X_val.shape[0])
        val_out = np.empty(X_val.shape[0])
        # no parameters to restore: the kept draws are the model
        stopper = EarlyStopping(lambda: (), est.tol or 0.0, est.n_iter_no_change)

    w0_sum, alpha_sum, w_sum, draws = 0.0, 0.0, np.zeros(d), []
    linear_draws = []  # (w0, w) of each kept draw, for the probit predictive
    est.loss_curve_ = []
    est.validation_scores_ = est.best_iteration_ = None
    seeds = rng.integers(0, 2**63, size=est.max_iter, dtype=np.uint64)
    with EpochProgress(est.verbose, est.max_iter, unit="sweep",
                       desc=type(est).__name__) as progress:
        for sweep in range(1, est.max_iter + 1):
            if (sweep - 1) % _REFRESH_EVERY == 0:
                _fm_fast.predict_cache(
                    Xt.data, Xt.indices, Xt.indptr, float(est._w0[0]), est.w_, est.V_,
                    pred, q, n_threads, rows_major=True)
                if relational is not None:
                    relational.add_to_caches(pred, q)
            if probit:
                draw_probit_latent(pred.astype(np.float64), labels, weights, rng, yt)
                alpha = 1.0  # fixed: it sets the scale of the latent score
            else:
                sse = 2.0 * _fm_fast.objective(pred, yt, swt, 0)
                alpha = rng.gamma((_ALPHA_SHAPE + sum_w) / 2.0, 2.0 / (_ALPHA_RATE + sse))
            theta = np.column_stack([est.w_, est.V_]).astype(np.float64)
            for g, cols in enumerate(members):
                if len(cols):
                    mu[g], lam[g] = sample_prior(theta[cols], lam[g], rng)
            if relational is not None:
                relational.sample_priors(sample_prior, rng)
            n_bad = _fm_mcmc_fast.gibbs_sweep(
                cdata, crows, cptr, yt, swt, est._w0, est.w_, est.V_, pred, q,
                columns, class_ptr, alpha, 0.0, group, lam, mu, est.fit_intercept,
                int(seeds[sweep - 1]), n_threads,
            )
            if relational is not None and not n_bad:
                n_bad = relational.sweep(yt, swt, pred, q, alpha, int(seeds[sweep - 1]))
            if n_bad or not np.isfinite(est._w0[0]):
                raise FloatingPointError(
                    f"The mcmc solver failed in sweep {sweep}: a posterior draw was not "
                    "finite. Scale the features (e.g. StandardScaler for numeric "
                    "columns) or use dtype=np.float64."
                )
            if probit:  # log-loss of the current draw
                data_loss = -float(np.dot(weights if weights is not None else np.ones(n),
                                          log_ndtr(labels * pred)))
                metrics = {"log-loss": data_loss / sum_w}
            else:  # half the squared error of the current draw
                data_loss = _fm_fast.objective(pred, yt, swt, 0) * y_sd**2
                metrics = {"mean loss": data_loss / sum_w, "noise sd": y_sd * alpha**-0.5}
            est.loss_curve_.append(float(data_loss / sum_w))
            est.n_iter_ = sweep
            stop = False
            if sweep > burn:
                w0_sum += float(est._w0[0])
                alpha_sum += alpha
                w_sum += est.w_
                draws.append(est.V_.copy())
                if relational is not None:
                    relational.keep_draw()
                if probit:
                    linear_draws.append((float(est._w0[0]), est.w_.copy()))
                if stopper is not None:
                    _fm_fast.predict(X_val.data, X_val.indices, X_val.indptr,
                                     float(est._w0[0]), est.w_, est.V_, val_out, n_threads)
                    val_sum += val_out
                    val_pred = y_mean + y_sd * (val_sum / len(draws))
                    if probit:
                        score = -float(np.average(log_ndtr(y_val * val_pred),
                                                  weights=w_val))
                        metrics["validation log-loss (posterior mean)"] = score
                    else:
                        score = float(np.sqrt(np.average((val_pred - y_val) ** 2,
                                                         weights=w_val)))
                        metrics["validation RMSE (posterior mean)"] = score
                    stop = stopper.update(sweep, score)
            progress.update(sweep, metrics)
            if stop:
                break
    if stopper is not None:
        stopper.report_to(est)
    n_kept = len(draws)
    est.n_samples_ = n_kept
    est._w0[0] = y_mean + y_sd * w0_sum / n_kept if est.fit_intercept else 0.0
    est.w_[...] = y_sd * w_sum / n_kept
    est.V_ = np.ascontiguousarray(
        np.concatenate(draws, axis=1) * np.sqrt(y_sd / n_kept), dtype=dtype
    )
    est.intercept_ = float(est._w0[0])
    if probit:
        # P(y = 1 | x) averages Phi over the draws, which needs each draw's
        # linear part (the latent vectors are the blocks of V_)
        est._w0_draws = np.array([w0 for w0, _ in linear_draws])
        est._w_draws = np.array([w for _, w in linear_draws], dtype=dtype)
    else:
        est.noise_precision_ = alpha_sum / n_kept / y_sd**2
    return None if relational is None else relational.posterior_means(y_sd)
