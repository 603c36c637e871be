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

from typing import NamedTuple

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

from sklearn_mf._fm import _fm_fast
from sklearn_mf._fm import _mcmc_fast as _fm_mcmc_fast
from sklearn_mf._fm._blocks import BlockSampler
from sklearn_mf._training import EarlyStopping, LoopResult, TrainingLoop

# Hyperprior constants (libFM's defaults): Gamma(shape, rate) priors on the
# noise precision and on the prior precisions, and the weight gamma_0 of the
# prior mean's own prior N(0, 1 / (gamma_0 lam)).
_ALPHA_SHAPE = _ALPHA_RATE = 1.0
_LAM_SHAPE = _LAM_RATE = 1.0
_GAMMA_0 = 1.0
# Refresh the cached predictions and factor sums from scratch this often
# (the kernel updates them incrementally; refreshing stops float32 drift).
_REFRESH_EVERY = 10
# sampler="mixed": the blocks' coordinate draws by one fused kernel call
# (``BlockSampler.fused_coordinate_sweep``) rather than ``coordinate_draws``;
# the same draws bit for bit (the tests switch it off to compare).
_FUSED_MIXED = True


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
        rows = crows[cptr[j] : cptr[j + 1]] if j < d else None
        binary = j < d and bool(np.all(cdata[cptr[j] : cptr[j + 1]] == 1))
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


def training_row_order(Xt, blocks=None):
    """The order in which the sampler keeps the training rows, or None to
    keep theirs: sorted (stably) by the first block's block row, or without
    blocks by each row's first feature (the user's id column of
    ``FMRecommender``).  A column's rows then sit together in the caches:
    the threads drawing two users' columns write apart, and a block's walk
    over the rows sums each block row's run in registers."""
    n = Xt.shape[0]
    if n < 2:
        return None
    if blocks:
        key = np.asarray(blocks[0][0])
    else:
        lengths = np.diff(Xt.indptr)
        key = np.where(lengths > 0, Xt.indices[np.minimum(Xt.indptr[:-1], len(Xt.indices) - 1)], -1)
    if np.all(key[1:] >= key[:-1]):
        return None
    return np.argsort(key, kind="stable").astype(np.intp)


def _permute_rows(order, Xt, yt, swt, csc, blocks):
    """The training rows in ``order``.  The CSC parts keep their entries'
    order (only the row numbers change), so each column's sums run over its
    rows as before."""
    inv = np.empty(len(order), dtype=np.intp)
    inv[order] = np.arange(len(order), dtype=np.intp)
    cdata, crows, cptr = csc
    csc = (cdata, np.ascontiguousarray(inv[crows]), cptr)
    Xt = Xt[order]
    Xt.indices = np.ascontiguousarray(Xt.indices, dtype=np.intp)
    Xt.indptr = np.ascontiguousarray(Xt.indptr, dtype=np.intp)
    yt = np.ascontiguousarray(yt[order])
    swt = np.ascontiguousarray(swt[order]) if len(swt) else swt
    if blocks:
        blocks = [(np.asarray(row_of)[order], B) for row_of, B in blocks]
    return Xt, yt, swt, csc, blocks


def sample_prior(theta, lam, rng):
    """Draw the prior means and precisions of the columns of ``theta``.

    ``theta`` (n_params, n_coords) holds one parameter per row; each column
    has its own normal prior whose mean and precision get the conjugate
    Normal-Gamma update given the current parameters.  ``lam`` is the
    current precision (the mean is drawn given it, then the precision given
    the new mean).  Returns ``(mu, lam)``.
    """
    p = theta.shape[0]
    mu = rng.normal(theta.sum(axis=0) / (p + _GAMMA_0), 1.0 / np.sqrt((p + _GAMMA_0) * lam))
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


def coordinate_draws(
    csc, yt, swt, w0, w, V, pred, q, columns, class_ptr, group, lam, mu, alpha, seed,
    n_threads, relational, *, columns_too, fit_intercept,
):  # fmt: skip
    """The coordinate draws of one sweep in libFM's order: ``w0`` and each
    column's ``w_j`` (``columns_too``), each block's ``w``, then factor by
    factor the columns' (``columns_too``) and the blocks' ``v_jf``.

    Arguments as the kernels' (``_mcmc_fast.coordinate_pass``), with
    ``relational`` the :class:`BlockSampler` or None; ``pred`` and ``q``
    hold the caches of the current parameters and are kept up to date.
    Returns the number of failed draws.
    """
    k = V.shape[1]
    e = yt - pred  # the residuals, kept up to date by the passes
    if columns_too and fit_intercept:
        if _fm_mcmc_fast.intercept_draw(e, swt, w0, alpha, 0.0, seed):
            return 1
    for a in range(k + 1):
        qf = np.ascontiguousarray(q[:, a - 1]) if a else e[:0]
        n_bad = 0
        if columns_too:
            n_bad = _fm_mcmc_fast.coordinate_pass(
                *csc, swt, e, qf, V[:, a - 1] if a else w, columns, class_ptr, group,
                lam, mu, a, k, alpha, seed, n_threads,
            )  # fmt: skip
        if relational is not None and not n_bad:
            n_bad = relational.coordinate_pass(swt, e, qf, a, alpha, seed)
        if n_bad:
            return n_bad
        if a:
            q[:, a - 1] = qf
    pred[...] = yt - e
    return 0


class FMFit(NamedTuple):
    """What a factorization machine's solver computed (``run_mcmc`` and the
    estimators' ALS and SGD solvers)."""

    w0: np.ndarray  # shape (1,): the intercept
    w: np.ndarray
    V: np.ndarray
    loop: LoopResult
    extra: dict  # further fitted attributes (the sampler's), by name


def run_mcmc(
    Xt,
    csc,
    yt,
    swt,
    sum_w,
    rng,
    validation,
    w0,
    w,
    V,
    *,
    max_iter,
    burn_in,
    fit_intercept,
    feature_groups,
    tol,
    n_iter_no_change,
    n_threads,
    verbose=0,
    desc=None,
    probit=False,
    init_std=0.0,
    blocks=None,
    sampler="mixed",
):
    """Gibbs-sample a factorization machine on the training rows:
    CSR ``Xt``, its CSC parts ``csc = (data, rows, indptr)``, targets ``yt``
    and weights ``swt`` (empty: unweighted) of total ``sum_w``.

    ``probit=True`` (the classifier): ``yt`` holds labels -1/+1 and the model
    is ``P(y = 1 | x) = Phi(yhat(x))``, sampled with a latent Gaussian target
    drawn every sweep (Albert and Chib, 1993) of unit noise precision.

    ``validation`` is None or ``(X_val, y_val, w_val)`` (CSR of the model's
    dtype, float64 targets, weights or None) for early stopping.  Starts from
    the intercept ``w0`` (shape (1,)), the weights ``w`` and the latent
    vectors ``V`` (all updated in place by the sweeps).

    Returns
    -------
    fit : FMFit
        The posterior-mean FM (``V`` holds the kept draws side by side, see
        the module docstring), the loop's curve, and in ``extra`` the
        sampler's attributes: ``n_samples_`` and ``noise_precision_``
        (regression) or the kept linear parts ``_w0_draws``, ``_w_draws``
        (probit); with ``blocks``, ``_relational``: the blocks' posterior-mean
        ``(w, V)``, one pair per block.

    ``blocks`` (regression without validation only): relational blocks
    ``[(row_of, B), ...]`` sampled with the columns of ``Xt`` (see
    ``_blocks``), their latent vectors drawn from N(0, init_std^2).

    ``sampler``: ``"blocked"`` draws each column's ``(w_j, v_j)`` jointly
    (``gibbs_sweep``, ``block_sweep``: O(nnz k^2) a sweep); ``"coordinate"``
    every parameter from its scalar conditional in libFM's order (w0, every
    w_j, then factor by factor; ``coordinate_pass``,
    ``block_coordinate_pass``: O(nnz k)); ``"mixed"`` the columns of ``Xt``
    jointly and the blocks coordinate by coordinate.
    """
    dtype = w.dtype.type
    n, d = Xt.shape
    k = V.shape[1]
    burn = n_burn_in(burn_in, max_iter)
    cdata, crows, cptr = csc
    weights = None if len(swt) == 0 else swt
    if probit:
        labels = np.asarray(yt, dtype=np.float64)
        y_mean, y_sd = 0.0, 1.0
        if fit_intercept:  # the probit of the base rate
            rate = np.average(labels > 0, weights=weights)
            w0[0] = ndtri(min(max(rate, 1e-6), 1 - 1e-6))
        yt = np.empty(n, dtype=dtype)  # the latent target, drawn each sweep
    else:
        y_mean = float(np.average(yt, weights=weights)) if fit_intercept else 0.0
        y_sd = float(
            np.sqrt(np.average((yt.astype(np.float64) - y_mean) ** 2, weights=weights))
        )  # float32 squares overflow
        if not y_sd > 0:
            y_sd = 1.0
        yt = np.ascontiguousarray((yt - y_mean) / y_sd, dtype=dtype)
        w0[0] = (w0[0] - y_mean) / y_sd if fit_intercept else 0.0
    if not probit:  # (the probit's latent draws follow the rows' order)
        order = training_row_order(Xt, blocks)
        if order is not None:
            Xt, yt, swt, csc, blocks = _permute_rows(order, Xt, yt, swt, csc, blocks)
            cdata, crows, cptr = csc
    columns, class_ptr = column_classes(cdata, crows, cptr, n)
    present = np.sort(columns)
    # a feature without data keeps the value 0 and stays out of the priors
    absent = np.setdiff1d(np.arange(d), present)
    w[absent] = 0
    V[absent] = 0

    group = _feature_groups(feature_groups, cdata, crows, cptr, n, d)
    members = [present[group[present] == g] for g in range(group.max() + 1)]
    lam = np.ones((len(members), k + 1))
    mu = np.zeros((len(members), k + 1))
    pred = np.empty(n, dtype=dtype)
    q = np.zeros((n, k), dtype=dtype)
    stopper = score = None
    relational = None
    if blocks:
        if validation is not None or probit:
            raise ValueError("relational blocks need a regression without early stopping.")
        relational = BlockSampler(blocks, n, k, dtype, init_std, rng, n_threads)
    if validation is not None:
        X_val, y_val, w_val = validation
        val_sum = np.zeros(X_val.shape[0])
        val_out = np.empty(X_val.shape[0])
        # no parameters to restore: the kept draws are the model
        stopper = EarlyStopping(lambda: (), tol, n_iter_no_change)

    w0_sum, alpha_sum, w_sum, draws = 0.0, 0.0, np.zeros(d), []
    linear_draws = []  # (w0, w) of each kept draw, for the probit predictive
    seeds = rng.integers(0, 2**63, size=max_iter, dtype=np.uint64)

    def joint_columns(alpha, seed):
        """w0 and the joint (w_j, v_j) draws of the columns of ``Xt``."""
        return _fm_mcmc_fast.gibbs_sweep(
            cdata, crows, cptr, yt, swt, w0, w, V, pred, q, columns, class_ptr,
            alpha, 0.0, group, lam, mu, fit_intercept, seed, n_threads,
        )  # fmt: skip

    def blocked_sweep(alpha, seed):
        n_bad = joint_columns(alpha, seed)
        if relational is not None and not n_bad:
            n_bad = relational.sweep(yt, swt, pred, q, alpha, seed)
        return n_bad

    def coordinate_sweep(alpha, seed):
        if sampler == "mixed":
            n_bad = joint_columns(alpha, seed)
            if n_bad or relational is None:
                return n_bad
            if _FUSED_MIXED:  # the same draws in one kernel call
                return relational.fused_coordinate_sweep(yt, swt, pred, q, alpha, seed)
        return coordinate_draws(
            csc, yt, swt, w0, w, V, pred, q, columns, class_ptr, group, lam, mu,
            alpha, seed, n_threads, relational,
            columns_too=sampler == "coordinate", fit_intercept=fit_intercept,
        )  # fmt: skip

    def sweep_step(sweep):
        nonlocal w0_sum, alpha_sum, w_sum
        if (sweep - 1) % _REFRESH_EVERY == 0:
            _fm_fast.predict_cache(
                Xt.data,
                Xt.indices,
                Xt.indptr,
                float(w0[0]),
                w,
                V,
                pred,
                q,
                n_threads,
                rows_major=True,
            )
            if relational is not None:
                relational.add_to_caches(pred, q)
        if probit:
            draw_probit_latent(pred.astype(np.float64), labels, weights, rng, yt)
            alpha = 1.0  # fixed: it sets the scale of the latent score
        else:
            sse = 2.0 * _fm_fast.objective(pred, yt, swt, 0)
            alpha = rng.gamma((_ALPHA_SHAPE + sum_w) / 2.0, 2.0 / (_ALPHA_RATE + sse))
        theta = np.column_stack([w, V]).astype(np.float64)
        for g, cols in enumerate(members):
            if len(cols):
                mu[g], lam[g] = sample_prior(theta[cols], lam[g], rng)
        if relational is not None:
            relational.sample_priors(sample_prior, rng)
        if sampler != "blocked":
            n_bad = coordinate_sweep(alpha, int(seeds[sweep - 1]))
        else:
            n_bad = blocked_sweep(alpha, int(seeds[sweep - 1]))
        if n_bad or not np.isfinite(w0[0]):
            return np.nan, max(int(n_bad), 1), {}
        if probit:  # log-loss of the current draw
            data_loss = -float(
                np.dot(weights if weights is not None else np.ones(n), log_ndtr(labels * pred))
            )
            metrics = {"log-loss": data_loss / sum_w}
        else:  # half the squared error of the current draw
            data_loss = _fm_fast.objective(pred, yt, swt, 0) * y_sd**2
            metrics = {"mean loss": data_loss / sum_w, "noise sd": y_sd * alpha**-0.5}
        if sweep > burn:
            w0_sum += float(w0[0])
            alpha_sum += alpha
            w_sum += w
            draws.append(V.copy())
            if relational is not None:
                relational.keep_draw()
            if probit:
                linear_draws.append((float(w0[0]), w.copy()))
        return float(data_loss / sum_w), 0, metrics

    if validation is not None:

        def score(sweep):
            if sweep <= burn:
                return None
            _fm_fast.predict(
                X_val.data, X_val.indices, X_val.indptr, float(w0[0]), w, V, val_out, n_threads
            )
            val_sum[...] += val_out
            val_pred = y_mean + y_sd * (val_sum / len(draws))
            if probit:
                return -float(np.average(log_ndtr(y_val * val_pred), weights=w_val))
            return float(np.sqrt(np.average((val_pred - y_val) ** 2, weights=w_val)))

    loop = TrainingLoop(
        max_iter,
        solver="mcmc",
        early_stopping=stopper,
        verbose=verbose,
        desc=desc,
        unit="sweep",
        hint="Scale the features (e.g. StandardScaler for numeric columns) or use "
        "dtype=np.float64.",
    )
    from sklearn_mf._als import blas_single_thread  # (import cycle at module level)

    # the sweeps run OpenMP kernels back to back: idle OpenBLAS threads spinning
    # between them would take cores from the kernels' threads
    with blas_single_thread():
        result = loop.run(
            sweep_step,
            score=score,
            score_name=(
                "validation log-loss (posterior mean)"
                if probit
                else "validation RMSE (posterior mean)"
            ),
        )
    n_kept = len(draws)
    w0[0] = y_mean + y_sd * w0_sum / n_kept if fit_intercept else 0.0
    w[...] = y_sd * w_sum / n_kept
    V = np.ascontiguousarray(np.concatenate(draws, axis=1) * np.sqrt(y_sd / n_kept), dtype=dtype)
    extra = {"n_samples_": n_kept}
    if probit:
        # P(y = 1 | x) averages Phi over the draws, which needs each draw's
        # linear part (the latent vectors are the blocks of V_)
        extra["_w0_draws"] = np.array([w0 for w0, _ in linear_draws])
        extra["_w_draws"] = np.array([w for _, w in linear_draws], dtype=dtype)
    else:
        extra["noise_precision_"] = alpha_sum / n_kept / y_sd**2
    if relational is not None:
        extra["_relational"] = relational.posterior_means(y_sd)
    return FMFit(w0, w, V, result, extra)
