"""Biased matrix factorization for explicit ratings: ``MatrixFactorization``."""

import numbers
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_mf import _setup_fast, _sgd_fast
from sklearn_mf._als import (
    explicit_ratings,
    explicit_targets,
    grow_rows,
    partial_fit_explicit_als,
    run_explicit_als,
)
from sklearn_mf._base import RatingRegressorMixin
from sklearn_mf._convert import csr_from_arrays
from sklearn_mf._fold_in import FoldInMixin, ridge_fold_in
from sklearn_mf._latent import DotProductMixin, LatentFactorMixin
from sklearn_mf._online import (
    PARTIAL_FIT_PASSES,
    PARTIAL_FIT_REPLAY,
    grow_and_replay,
    grow_ids,
    merge_interactions,
    online_rng,
    widened_range,
)
from sklearn_mf._progress import SetupTimer
from sklearn_mf._training import (
    EarlyStopping,
    FittedLoopMixin,
    LoopResult,
    TrainingLoop,
    rating_predictions,
    sgd_hint,
    undo_validation_on_error,
    weighted_rmse,
)
from sklearn_mf._utils import (
    check_dtype,
    check_finite_fit,
    effective_n_threads,
    make_rng,
    naming_target_overflow,
    seeds_from,
)
from sklearn_mf._validation import check_als_regularization, check_interactions


def _overflow_stand_in(rating_range, n):
    """What ``naming_target_overflow`` and ``check_finite_fit`` read of the
    ratings (their number and largest absolute value), as a read-only array
    of no memory, so that ``fit`` can drop the ratings themselves."""
    peak = max(abs(v) for v in rating_range)
    return np.broadcast_to(np.float64(peak), n)


class BlockedRatings(NamedTuple):
    """The training ratings of the parallel SGD grid (:func:`block_schedule`)."""

    users: np.ndarray  # int32 working codes, block by block
    items: np.ndarray
    ratings: np.ndarray  # in the factors' dtype
    weights: np.ndarray  # empty: all ones
    block_ptr: np.ndarray  # intp, (n_blocks**2 + 1,)
    schedule: np.ndarray  # intp, (n_blocks, n_blocks)
    user_order: np.ndarray  # row j of the working factors is user user_order[j]
    item_order: np.ndarray


def block_schedule(
    user_codes,
    item_codes,
    ratings,
    weights,
    n_users,
    n_items,
    n_blocks,
    rng,
    *,
    rows=None,
    dtype=np.float64,
    n_threads=1,
    out=None,
):
    """Partition ratings into an ``n_blocks x n_blocks`` grid for parallel SGD.

    Users (and items) are shuffled by a random permutation, which balances the
    blocks under power-law activity, and then cut into ``n_blocks`` contiguous
    ranges of that order.  Training works on copies of the factors stored in
    that order, so that the rows a block updates are contiguous in memory: a
    thread never writes a cache line that holds another thread's rows, and a
    block's rows stay together in cache.  Stratum ``s`` holds the blocks
    ``(b, (b + s) % n_blocks)``: no two of them share a user or an item.

    The ratings ``rows`` (None: all) are written block by block, in their
    input order inside a block, by one parallel counting sort
    (:func:`~sklearn_mf._setup_fast.block_arrange`): the working codes, the
    ratings and the weights (None: unweighted) in ``dtype``, and nothing else
    of the size of the ratings is allocated.  ``out``, when given, holds the
    arrays for the working user codes, the item codes and the ratings
    (:func:`blocked_outputs`), otherwise they are new.

    Returns
    -------
    blocked : BlockedRatings
    """
    B = n_blocks
    user_order = rng.permutation(n_users)
    item_order = rng.permutation(n_items)
    user_pos = np.empty(n_users, dtype=np.int32)
    user_pos[user_order] = np.arange(n_users, dtype=np.int32)
    item_pos = np.empty(n_items, dtype=np.int32)
    item_pos[item_order] = np.arange(n_items, dtype=np.int32)
    user_codes = np.ascontiguousarray(user_codes, dtype=np.int32)
    item_codes = np.ascontiguousarray(item_codes, dtype=np.int32)
    ratings = np.ascontiguousarray(ratings)
    if ratings.dtype not in (np.float32, np.float64):
        ratings = ratings.astype(np.float64)
    n = len(ratings) if rows is None else len(rows)
    rows = np.zeros(0, dtype=np.intp) if rows is None else np.asarray(rows, dtype=np.intp)
    if weights is None:
        weights, out_w = np.zeros(0, dtype=dtype), np.zeros(0, dtype=dtype)
    else:
        weights, out_w = weights.astype(dtype, copy=False), np.empty(n, dtype=dtype)
    if out is None:
        out = blocked_outputs(n, dtype)
    out_u, out_i, out_r = out
    if not (len(out_u) == len(out_i) == len(out_r) == n and out_r.dtype == dtype):
        raise ValueError(f"out must hold three arrays of {n} entries, the last of {dtype}.")
    block_ptr = _setup_fast.block_arrange(
        user_codes,
        item_codes,
        ratings,
        np.ascontiguousarray(weights),
        rows,
        user_pos,
        item_pos,
        B,
        out_u,
        out_i,
        out_r,
        out_w,
        n_threads,
    )
    b = np.arange(B)
    schedule = np.array([b * B + (b + s) % B for s in range(B)], dtype=np.intp)
    return BlockedRatings(out_u, out_i, out_r, out_w, block_ptr, schedule, user_order, item_order)


def blocked_outputs(n, dtype):
    """New arrays for the :func:`block_schedule` of ``n`` ratings: working
    user codes, item codes (int32) and ratings (``dtype``)."""
    return np.empty(n, dtype=np.int32), np.empty(n, dtype=np.int32), np.empty(n, dtype=dtype)


# Target size of the user and item factor rows one block touches: about half
# of a typical per-core L2 cache, so that a block's updates stay in cache.
_BLOCK_BYTES = 256 * 1024


def _n_blocks(n_threads, n_ratings, n_rows, n_factors, itemsize):
    """Side of the square grid of rating blocks.

    Large enough that the factor rows of one block (``n_rows`` users and items
    in total, split ``B`` ways) fit in ``_BLOCK_BYTES``, and at least two blocks
    per thread on each axis so that dynamic scheduling evens out unequal
    blocks; small enough that a block holds about 1000 ratings or more.  Tiny
    problems use one block: plain shuffled SGD.
    """
    if n_ratings < 10_000:
        return 1
    by_cache = -(-n_rows * n_factors * itemsize // _BLOCK_BYTES)
    by_threads = 2 * n_threads if n_threads > 1 else 1
    cap = max(1, int(np.sqrt(n_ratings / 1000)))
    return int(max(1, min(max(by_cache, by_threads), cap)))


class SGDResult(NamedTuple):
    """What :func:`run_sgd` computed."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    loop: LoopResult


def sgd_ratings(
    u,
    i,
    y,
    sample_weight,
    train,
    user_factors,
    item_factors,
    rng,
    n_threads,
    verbose=0,
    out=None,
):
    """The training rows ``train`` (None: all) of the ratings ``y`` of codes
    ``u``, ``i``, stored block by block for :func:`run_sgd` (one
    :func:`block_schedule` on a grid sized by :func:`_n_blocks`, into the
    arrays ``out`` when given), in the factors' dtype.  Draws the user and
    item permutations from ``rng``."""
    n_users, n_items = len(user_factors), len(item_factors)
    n_train = len(y) if train is None else len(train)
    if n_train >= np.iinfo(np.int32).max:
        raise ValueError(f"At most 2**31 - 2 training ratings, got {n_train}.")
    timer = SetupTimer(verbose)
    B = _n_blocks(
        n_threads, n_train, n_users + n_items, user_factors.shape[1], user_factors.itemsize
    )
    blocked = block_schedule(
        u,
        i,
        y,
        sample_weight,
        n_users,
        n_items,
        B,
        rng,
        rows=train,
        dtype=user_factors.dtype.type,
        n_threads=n_threads,
        out=out,
    )
    timer.lap(f"block schedule ({B}x{B} blocks)")
    return blocked


# Average ratings per row block of the SGD grid up to which its CSR is built
# row block by row block (blocked_csr) rather than by coo_to_csr.  At 100M
# ratings (316 x 316 blocks, 316k ratings per row block) blocked_csr was the
# faster of the two in fits on a quiet machine (user-item stage 1.69-1.77 s
# against 1.90-1.96 s, interleaved), so coo_to_csr is never chosen by default.
_BLOCKED_CSR_ROW_BLOCK = 1 << 40


def blocked_seen_matrix(blocked, n_users, n_items, n_threads, reuse=None):
    """:func:`~sklearn_mf._training.seen_matrix` of block-ordered ratings
    (before any epoch shuffled them): the same CSR and popularity counts as
    from the codes in input order (duplicates of a (user, item) pair share a
    block and keep their input order there), without relabelled copies.

    Each row block of the grid holds all the ratings of its users and is
    sorted on its own (:func:`~sklearn_mf._setup_fast.blocked_csr`) while it
    is small enough for the cache; past ``_BLOCKED_CSR_ROW_BLOCK`` ratings
    per row block, the parallel :func:`~sklearn_mf._setup_fast.coo_to_csr`
    reads the working codes through the orders instead (the same matrix;
    slower at 100M ratings, see ``_BLOCKED_CSR_ROW_BLOCK``).

    ``reuse``: two int32 arrays of one entry per rating that the caller no
    longer needs (its codes), which become the CSR's indices and data (the
    second viewed as float32) instead of new arrays: they are paged in
    already (see :func:`~sklearn_mf._setup_fast.touch_pages`).  Ignored
    unless both are writeable, C-contiguous and of that length.
    """
    B = len(blocked.schedule)
    user_order = blocked.user_order.astype(np.int32)
    item_order = blocked.item_order.astype(np.int32)
    n = len(blocked.ratings)
    indices_out = data_out = None
    if reuse is not None and all(
        a.dtype == np.int32 and len(a) == n and a.flags.c_contiguous and a.flags.writeable
        for a in reuse
    ):
        indices_out, data_out = reuse[0], reuse[1].view(np.float32)
    if n <= B * _BLOCKED_CSR_ROW_BLOCK:
        indptr, indices, data, popularity = _setup_fast.blocked_csr(
            blocked.users,
            blocked.items,
            blocked.ratings,
            blocked.block_ptr,
            B,
            user_order,
            item_order,
            n_threads,
            indices_out=indices_out,
            data_out=data_out,
        )
    else:
        indptr, indices, data, popularity = _setup_fast.coo_to_csr(
            blocked.users,
            blocked.items,
            blocked.ratings,
            n_users,
            n_items,
            n_threads,
            row_map=user_order,
            col_map=item_order,
            return_col_counts=True,
        )
    return csr_from_arrays(indptr, indices, data, n_users, n_items), popularity


def run_sgd(
    blocked,
    validation,
    user_factors,
    item_factors,
    user_bias,
    item_bias,
    *,
    global_mean,
    learning_rate,
    regularization,
    bias_regularization,
    biased,
    n_epochs,
    tol,
    n_iter_no_change,
    clip_range,
    rng,
    n_threads,
    verbose=0,
    desc=None,
    reuse_factors=False,
):
    """SGD epochs of ``MatrixFactorization`` on the block-ordered ratings
    ``blocked`` (:func:`sgd_ratings`; their order is shuffled in place).

    Trains from the given factors and biases (not modified, unless
    ``reuse_factors``: then the trained factors are written into the given
    factor arrays, which ``fit`` no longer needs, rather than into new ones;
    the biases are left as they are when ``biased=False``) and stops early
    on the validation RMSE of ``validation = (user_codes, item_codes, y,
    sample_weight)`` (None: no early stopping; the best epoch's parameters
    are kept).  The working copies of the factors in block order and the
    final scatter back are parallel row copies
    (:func:`~sklearn_mf._setup_fast.take_rows`, ``put_rows``).

    Returns
    -------
    result : SGDResult
        New parameter arrays and the loop's curve; ``loop.loss_curve`` holds
        the weighted mean squared error observed during each epoch.
    """
    dtype = user_factors.dtype.type
    n_users, n_items = len(user_factors), len(item_factors)
    tu, ti, tr, tw, block_ptr, schedule, user_order, item_order = blocked
    B = len(schedule)
    sum_w = float(len(tr)) if len(tw) == 0 else float(tw.sum())
    block_loss = np.zeros(B * B, dtype=np.float64)
    reg_b = regularization if bias_regularization is None else bias_regularization
    # working copies of the parameters in block order (see block_schedule)
    user_order = np.ascontiguousarray(user_order, dtype=np.intp)
    item_order = np.ascontiguousarray(item_order, dtype=np.intp)
    P = _setup_fast.take_rows(np.ascontiguousarray(user_factors), user_order, n_threads)
    Q = _setup_fast.take_rows(np.ascontiguousarray(item_factors), item_order, n_threads)
    empty = np.zeros(0, dtype=dtype)
    bu = user_bias[user_order] if biased else empty
    bi = item_bias[item_order] if biased else empty

    def step(epoch):
        # fresh random order: strata, blocks within a stratum, ratings within a block
        strata = schedule[rng.permutation(B)][:, rng.permutation(B)]
        n_bad = _sgd_fast.sgd_epoch(
            tu,
            ti,
            tr,
            tw,
            block_ptr,
            np.ascontiguousarray(strata),
            P,
            Q,
            bu,
            bi,
            global_mean,
            learning_rate,
            regularization,
            reg_b,
            biased,
            block_loss,
            n_threads,
            seeds_from(rng, B * B),
        )
        loss = block_loss.sum() / sum_w
        return loss, n_bad, {"train MSE": float(loss)}

    stopper = score = None
    if validation is not None:
        u_v, i_v, y_v, w_v = validation
        user_pos = np.empty(n_users, dtype=np.int32)
        user_pos[user_order] = np.arange(n_users, dtype=np.int32)
        item_pos = np.empty(n_items, dtype=np.int32)
        item_pos[item_order] = np.arange(n_items, dtype=np.int32)
        u_v, i_v = user_pos[u_v], item_pos[i_v]

        def score(epoch):
            pred = rating_predictions(
                u_v,
                i_v,
                P,
                Q,
                bu if biased else None,
                bi if biased else None,
                global_mean,
                clip_range,
                n_threads,
            )
            return weighted_rmse(pred, y_v, w_v)

        stopper = EarlyStopping(lambda: (P, Q, bu, bi), tol, n_iter_no_change)
    loop = TrainingLoop(
        n_epochs, hint=sgd_hint(learning_rate), early_stopping=stopper, verbose=verbose, desc=desc
    )
    result = loop.run(step, score=score, score_name="validation RMSE")
    if reuse_factors and all(
        a.flags.c_contiguous and a.flags.writeable for a in (user_factors, item_factors)
    ):
        P_out, Q_out = user_factors, item_factors
    else:
        P_out, Q_out = np.empty_like(user_factors), np.empty_like(item_factors)
    _setup_fast.put_rows(P_out, user_order, P, n_threads)
    _setup_fast.put_rows(Q_out, item_order, Q, n_threads)
    if biased:
        bu_out, bi_out = np.empty_like(user_bias), np.empty_like(item_bias)
        bu_out[user_order], bi_out[item_order] = bu, bi
    else:
        bu_out, bi_out = user_bias, item_bias
    return SGDResult(P_out, Q_out, bu_out, bi_out, result)


class MatrixFactorization(
    FittedLoopMixin,
    DotProductMixin,
    FoldInMixin,
    LatentFactorMixin,
    RatingRegressorMixin,
    BaseEstimator,
):
    r"""Matrix factorization for explicit ratings, trained by SGD.

    The model predicts the rating of user :math:`u` for item :math:`i` as

    .. math::

        \hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i

    with global mean :math:`\mu`, user and item biases :math:`b_u, b_i` and
    ``n_factors``-dimensional embeddings :math:`p_u, q_i` (``biased=False``
    drops :math:`\mu, b_u, b_i`).  It minimises the regularised squared error
    over the observed ratings only,

    .. math::

        \sum_{(u,i)} w_{ui} \big[(r_{ui} - \hat r_{ui})^2
            + \lambda (\lVert p_u\rVert^2 + \lVert q_i\rVert^2)
            + \lambda_b (b_u^2 + b_i^2)\big],

    by stochastic gradient descent (Funk 2006; Koren, Bell & Volinsky 2009): for
    each rating, in a fresh random order every epoch, with
    :math:`e = r_{ui} - \hat r_{ui}` and step :math:`\eta w_{ui}`,

    .. math::

        b_u &\leftarrow b_u + \eta w_{ui} (e - \lambda_b b_u), \qquad
        b_i \leftarrow b_i + \eta w_{ui} (e - \lambda_b b_i), \\
        p_u &\leftarrow p_u + \eta w_{ui} (e\, q_i - \lambda p_u), \qquad
        q_i \leftarrow q_i + \eta w_{ui} (e\, p_u - \lambda q_i).

    With more than one thread the ratings are split into a grid of user-blocks
    by item-blocks and the blocks that share no user and no item are updated in
    parallel (as in DSGD / FPSGD); the result is reproducible for a given
    ``random_state`` and ``n_jobs``.

    ``solver="als"`` minimises the same objective by alternating least squares
    (weighted-:math:`\lambda` ALS, Zhou et al. 2008): with the items fixed,
    each user's :math:`x_u = (p_u, b_u)` is the exact ridge solution

    .. math::

        \big(\textstyle\sum_i w_{ui} z_i z_i^\top + n_u \operatorname{diag}(\lambda,
            \dots, \lambda, \lambda_b)\big)\, x_u
            = \textstyle\sum_i w_{ui} (r_{ui} - \mu - b_i)\, z_i,
        \qquad z_i = (q_i, 1),

    with :math:`n_u = \sum_i w_{ui}` (the number of ratings when unweighted;
    ``regularization_scaling="none"`` uses 1 instead), then the same for the items.
    The biases are learned inside the alternation, the objective never
    increases, and the rows are solved in parallel (Cholesky, LAPACK).  ALS
    needs no learning rate and converges in a few iterations; SGD is cheaper
    per pass and scales to more factors.

    Parameters
    ----------
    n_factors : int, default=100
        Dimension of the user and item embeddings.
    solver : {"sgd", "als"}, default="sgd"
        Optimisation algorithm: stochastic gradient descent (uses
        ``n_epochs``, ``learning_rate``) or alternating least squares (uses
        ``max_iter``, ``regularization_scaling``).
    n_epochs : int, default=80
        Number of passes over the training ratings (upper bound with
        ``early_stopping``).  The defaults of ``n_epochs``,
        ``learning_rate`` and ``regularization`` were chosen for the best
        worst case over four rating datasets (see :ref:`mf_defaults`): 20
        epochs at 0.007 stopped SGD far from convergence on larger data.
    max_iter : int, default=15
        Maximum number of ALS iterations (a user then an item half-step;
        ``solver="als"`` only).  Iterations stop earlier when the objective
        decreases by less than ``tol`` times its value.
    learning_rate : float, default=0.01
        SGD step size :math:`\eta`.
    regularization : float, default=0.08
        L2 penalty :math:`\lambda` on the embeddings (per rating).
    bias_regularization : float or None, default=None
        L2 penalty :math:`\lambda_b` on the biases; None uses ``regularization``.
    regularization_scaling : {"occurrence", "none"}, default="occurrence"
        ``solver="als"`` and ``fold_in`` only: ``"occurrence"`` multiplies the
        penalties of a user (item) by its number of ratings (sum of weights),
        which is the objective SGD minimises and the weighted-:math:`\lambda`
        ALS of Zhou et al.; ``"none"`` applies them once per user (item).
    als_solver : {"cholesky", "cg"}, default="cholesky"
        ``solver="als"`` only: solve each row's least-squares system (factors
        and bias) exactly by a Cholesky factorisation, or approximately by
        ``cg_steps`` conjugate-gradient steps warm-started from the current
        factors (Takacs et al. 2011), about 3x cheaper at ``n_factors=64``
        for a similar accuracy.  ``fold_in`` and ``partial_fit`` always
        solve exactly.
    cg_steps : int, default=3
        Conjugate-gradient steps per row and half-step (``als_solver="cg"``).
    biased : bool, default=True
        Learn the global mean and the user/item biases.
    init_std : float, default=0.1
        Embeddings are initialised from :math:`\mathcal N(0, \text{init\_std}^2)`.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the factors (float32 halves memory and is as accurate
        for ratings).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the ratings, stop when the
        validation RMSE has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and keep the factors of the best epoch.
    validation_fraction : float, default=0.1
        Fraction of ratings held out for early stopping.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float or None, default=1e-4
        Minimum decrease of the validation RMSE that counts as an improvement;
        with ``solver="als"`` also the relative decrease of the training
        objective below which the iterations stop.  None: no tolerance (any
        improvement counts, and ALS always runs ``max_iter`` iterations).
    clip_predictions : bool, default=True
        Clip ``predict`` to the range of ratings seen in ``fit``.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        What ``predict`` does with a user or item not seen in ``fit``:
        ``"fallback"`` predicts :math:`\mu + b_u` (unknown item),
        :math:`\mu + b_i` (unknown user) or :math:`\mu` (both);
        ``"nan"`` returns NaN; ``"error"`` raises ``ValueError``.
        ``recommend`` serves unknown users from item popularity.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the shuffles and the block partition.
    n_jobs : int or None, default=None
        OpenMP threads; None uses every available core (honouring
        ``OMP_NUM_THREADS`` and threadpoolctl), -1 all cores.
    verbose : int, default=0
        0: silent.  1: one line per epoch (SGD) or iteration (ALS) with the
        training objective, the validation RMSE under early stopping and the
        seconds it took.
        2 or more: a progress bar (``tqdm.auto``) with the same numbers, if
        tqdm is installed (``pip install sklearn_mf[progress]``), otherwise the
        lines of 1 and a note that tqdm is missing.  The fitted model does
        not depend on ``verbose``.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
    item_factors_ : ndarray of shape (n_items, n_factors)
    user_bias_ : ndarray of shape (n_users,)
        Zeros when ``biased=False``.
    item_bias_ : ndarray of shape (n_items,)
    global_mean_ : float
        Weighted mean training rating (0 when ``biased=False``).
    users_ : ndarray of shape (n_users,)
        Raw user ids; position = row of ``user_factors_``.
    items_ : ndarray of shape (n_items,)
        Raw item ids; position = row of ``item_factors_``.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training ratings (used to exclude seen items in ``recommend``).
    item_popularity_ : ndarray of shape (n_items,)
        Training interactions per item (the popularity fallback).
    rating_range_ : tuple of float
        Smallest and largest training rating.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Weighted mean squared training error observed during each epoch
        (``solver="sgd"``), or the regularised objective divided by the total
        weight after each iteration (``solver="als"``; never increases).
    validation_scores_ : list of float or None
        Validation RMSE after each epoch (``early_stopping=True`` only).
    best_iteration_ : int or None
        1-based epoch whose factors were kept (``early_stopping=True`` only).
    n_features_in_ : int
        Number of columns of ``X`` in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a DataFrame with string column names.

    See Also
    --------
    sklearn_mf.datasets.make_ratings : Synthetic ratings to try it on.

    Examples
    --------
    >>> from sklearn_mf import MatrixFactorization
    >>> X = [("alice", "matrix"), ("alice", "up"), ("bob", "matrix"),
    ...      ("bob", "heat"), ("carol", "up"), ("carol", "heat")]
    >>> y = [5.0, 3.0, 4.0, 2.0, 4.0, 1.0]
    >>> mf = MatrixFactorization(n_factors=2, n_epochs=50, random_state=0, n_jobs=1)
    >>> mf.fit(X, y).predict([("alice", "heat")]).shape
    (1,)
    >>> items, scores = mf.recommend(["alice", "bob"], n=1)
    >>> items.tolist()
    [['heat'], ['up']]
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "solver": [StrOptions({"sgd", "als"})],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "regularization_scaling": [StrOptions({"occurrence", "none"})],
        "als_solver": [StrOptions({"cholesky", "cg"})],
        "cg_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "bias_regularization": [Interval(numbers.Real, 0, None, closed="left"), None],
        "biased": ["boolean"],
        "init_std": [Interval(numbers.Real, 0, None, closed="left")],
        "dtype": "no_validation",  # checked by check_dtype
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "clip_predictions": ["boolean"],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_factors=100,
        *,
        solver="sgd",
        n_epochs=80,
        max_iter=15,
        learning_rate=0.01,
        regularization=0.08,
        bias_regularization=None,
        regularization_scaling="occurrence",
        als_solver="cholesky",
        cg_steps=3,
        biased=True,
        init_std=0.1,
        dtype=np.float32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        clip_predictions=True,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.solver = solver
        self.n_epochs = n_epochs
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.regularization_scaling = regularization_scaling
        self.als_solver = als_solver
        self.cg_steps = cg_steps
        self.biased = biased
        self.init_std = init_std
        self.dtype = dtype
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.clip_predictions = clip_predictions
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the factors to the ratings ``y`` of the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            Column 0 user ids, column 1 item ids (any hashable values);
            further columns are ignored.
        y : array-like of shape (n_ratings,)
            Ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weight of each rating in the squared error.

        Returns
        -------
        self : MatrixFactorization
            The fitted estimator.
        """
        check_als_regularization(self)
        if self.solver == "sgd":
            return self._fit_sgd(X, y, sample_weight)
        start = self._start_rating_fit(X, y, sample_weight)
        u, i, y, sample_weight = start.user_codes, start.item_codes, start.y, start.sample_weight
        params = self._solver_params(start.rating_range)
        R_u = None
        if start.val is None:
            # the user-major training ratings replace the codes and y (memory)
            t = explicit_targets(y, start.global_mean, start.user_factors.dtype)
            y = _overflow_stand_in(start.rating_range, len(y))
            start = start._replace(y=None)
            R_u = explicit_ratings(
                u,
                i,
                None,
                sample_weight,
                len(start.users),
                len(start.items),
                None,
                None,
                targets=t,
                n_threads=params["n_threads"],
            )
            del t
            u = i = sample_weight = None
            start = start._replace(user_codes=None, item_codes=None, sample_weight=None)
        with naming_target_overflow(self, y):
            bu, bi = (start.user_bias, start.item_bias) if self.biased else (None, None)
            result = run_explicit_als(
                u,
                i,
                y,
                sample_weight,
                start.train,
                start.val,
                start.user_factors,
                start.item_factors,
                bu,
                bi,
                global_mean=start.global_mean,
                max_iter=self.max_iter,
                ratings=R_u,
                **params,
            )
        self._set_fit_result(start, result, result.ratings)
        check_finite_fit(self, y)
        return self

    def _fit_sgd(self, X, y, sample_weight):
        """``fit`` with ``solver="sgd"``, holding one copy of the ratings.

        Once the training ratings are stored block by block for the epochs,
        the validated codes and ratings are dropped, and the seen-items matrix
        is built from the block-ordered copy (unless early stopping holds
        ratings out: it must list those too); the peak memory is then the
        block-ordered ratings (12 bytes each in float32) plus that matrix (8).
        """
        holdout = bool(self.early_stopping)
        dtype = check_dtype(self.dtype)
        out = None

        def page_in(n_ratings, done):
            # while the factors are drawn (one core), page in the arrays of
            # the block schedule on the other (at 100M ratings 1.2 GB, which
            # the kernel otherwise clears page by page inside block_arrange)
            nonlocal out
            out = blocked_outputs(n_ratings, dtype)
            _setup_fast.touch_pages(out, done)

        # without early stopping the ratings are only read (the block
        # schedule, their range and mean): a float32 y is used as it is
        start = self._start_rating_fit(
            X,
            y,
            sample_weight,
            seen=holdout,
            while_drawing=None if holdout else page_in,
            y_float32=not holdout,
        )
        params = self._solver_params(start.rating_range)
        u, i, y, w, val = (
            start.user_codes,
            start.item_codes,
            start.y,
            start.sample_weight,
            start.val,
        )
        blocked = sgd_ratings(
            u,
            i,
            y,
            w,
            start.train,
            start.user_factors,
            start.item_factors,
            start.rng,
            params["n_threads"],
            self.verbose,
            out=out,
        )
        del out
        validation = None
        if val is not None:
            validation = (u[val], i[val], y[val], None if w is None else w[val])
        y = _overflow_stand_in(start.rating_range, len(y))
        # the codes (private to this fit: check_interactions copies the ids)
        # become the seen-items matrix's indices and data
        codes = (u, i) if start.user_items is None else None
        del u, i, w
        start = start._replace(user_codes=None, item_codes=None, y=None, sample_weight=None)
        if start.user_items is None:
            timer = SetupTimer(self.verbose)
            seen, popularity = blocked_seen_matrix(
                blocked, len(start.users), len(start.items), params["n_threads"], reuse=codes
            )
            start = start._replace(user_items=seen, item_popularity=popularity)
            timer.lap("user-item matrix")
        del codes
        with naming_target_overflow(self, y):
            result = run_sgd(
                blocked,
                validation,
                start.user_factors,
                start.item_factors,
                start.user_bias,
                start.item_bias,
                global_mean=start.global_mean,
                n_epochs=self.n_epochs,
                rng=start.rng,
                reuse_factors=True,  # the initial factors are this fit's own
                **self._sgd_params(),
                **params,
            )
        self._set_fit_result(start, result, None)  # training ratings are kept by ALS only
        check_finite_fit(self, y)
        return self

    def _set_fit_result(self, start, result, als_ratings):
        self._set_rating_start(start)
        self.user_factors_, self.item_factors_ = result.user_factors, result.item_factors
        self.user_bias_ = result.user_bias if self.biased else start.user_bias
        self.item_bias_ = result.item_bias if self.biased else start.item_bias
        self._als_ratings = als_ratings
        self._set_loop_attributes(result.loop)

    def _solver_params(self, rating_range):
        """Keyword arguments shared by the SGD and ALS drivers."""
        return dict(
            regularization=self.regularization,
            bias_regularization=self.bias_regularization,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            clip_range=rating_range if self.clip_predictions else None,
            n_threads=effective_n_threads(self.n_jobs),
            verbose=self.verbose,
            desc=type(self).__name__,
        ) | (
            {
                "scaling": self.regularization_scaling == "occurrence",
                "als_solver": self.als_solver,
                "cg_steps": self.cg_steps,
            }
            if self.solver == "als"
            else {}
        )

    def _sgd_params(self):
        return dict(learning_rate=self.learning_rate, biased=self.biased)

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with new ratings, growing it for unseen ids.

        With ``solver="als"``: the new ratings join the training ratings (a
        new rating of an already rated (user, item) cell replaces the old
        one), users and items never seen before are appended to ``users_`` /
        ``items_``, and the factors and biases of the new items, of every
        user in ``X`` and again of the new items are solved exactly with
        everything else fixed (ALS half-steps restricted to the touched
        rows).  ``global_mean_`` stays fixed.  On an unfitted model this is
        ``fit(X, y, sample_weight)``.

        With ``solver="sgd"``: new users and items are appended (embeddings
        drawn from :math:`\\mathcal N(0, \\text{init\\_std}^2)`, biases 0),
        the ratings are merged into ``user_items_`` the same way, and 5 SGD
        epochs run over the new ratings plus as many old ratings sampled
        uniformly from ``user_items_`` (replay, so that the update does not
        drift away from what was learned).  ``loss_curve_`` and ``n_iter_``
        then describe this update.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            New interactions (user id, item id, ...).
        y : array-like of shape (n_ratings,)
            Their ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weight of each new rating.

        Returns
        -------
        self : MatrixFactorization
            The updated estimator.
        """
        if not hasattr(self, "user_factors_") or (
            self.solver == "als" and getattr(self, "_als_ratings", None) is None
        ):
            return self.fit(X, y, sample_weight)
        users, items, y, sample_weight = check_interactions(
            self, X, y, sample_weight, reset=False, y_required=True
        )
        if self.solver == "sgd":
            self._partial_fit_sgd(users, items, y, sample_weight)
        else:
            self._partial_fit_als(users, items, y, sample_weight)
        return self

    def _partial_fit_sgd(self, users, items, y, sample_weight):
        """SGD update: a few passes over the new ratings plus a replay sample.

        See :mod:`sklearn_mf._online`: new users / items get factor rows from
        N(0, init_std^2) and zero biases, the ratings join ``user_items_``
        (which also holds the old ratings the replay sample is drawn from),
        then ``PARTIAL_FIT_PASSES`` (5) SGD epochs run over the new ratings
        and ``PARTIAL_FIT_REPLAY`` (1) old rating per new one.
        """
        n_calls = getattr(self, "_n_partial_fit_calls", 0) + 1
        rng = online_rng(self.random_state, n_calls)
        batch = grow_and_replay(
            self,
            users,
            items,
            y,
            sample_weight,
            [
                ("user_factors_", "user", "normal"),
                ("item_factors_", "item", "normal"),
                ("user_bias_", "user", "zeros"),
                ("item_bias_", "item", "zeros"),
            ],
            PARTIAL_FIT_REPLAY,
            rng,
        )
        a = batch.arrays
        blocked = sgd_ratings(
            batch.user_codes,
            batch.item_codes,
            batch.y,
            batch.sample_weight,
            None,
            a["user_factors_"],
            a["item_factors_"],
            rng,
            effective_n_threads(self.n_jobs),
        )
        result = run_sgd(
            blocked,
            None,
            a["user_factors_"],
            a["item_factors_"],
            a["user_bias_"],
            a["item_bias_"],
            global_mean=self.global_mean_,
            n_epochs=PARTIAL_FIT_PASSES,
            rng=rng,
            **self._sgd_params(),
            **self._solver_params(batch.rating_range),
        )
        self._set_online_batch(batch)
        self.user_factors_, self.item_factors_ = result.user_factors, result.item_factors
        self.user_bias_, self.item_bias_ = result.user_bias, result.item_bias
        self._n_partial_fit_calls = n_calls
        self._set_loop_attributes(result.loop)

    def _partial_fit_als(self, users, items, y, sample_weight):
        """ALS update of a fitted model: see :func:`~sklearn_mf._als.partial_fit_explicit_als`."""
        n_items_old = len(self.items_)
        u, i, users_, items_, n_new_u, n_new_i = grow_ids(self, users, items)
        rng = make_rng(self.random_state)
        P = grow_rows(self.user_factors_, n_new_u)
        Q = grow_rows(self.item_factors_, n_new_i, rng, self.init_std)
        bu = grow_rows(self.user_bias_, n_new_u)
        bi = grow_rows(self.item_bias_, n_new_i)
        seen, popularity, _, _ = merge_interactions(
            self.user_items_,
            self.item_popularity_,
            u,
            i,
            y,
            len(users_),
            len(items_),
            replace=True,
        )
        ratings = partial_fit_explicit_als(
            self._als_ratings,
            u,
            i,
            y,
            sample_weight,
            n_items_old,
            P,
            Q,
            bu if self.biased else None,
            bi if self.biased else None,
            global_mean=self.global_mean_,
            regularization=self.regularization,
            bias_regularization=self.bias_regularization,
            scaling=self.regularization_scaling == "occurrence",
            n_threads=effective_n_threads(self.n_jobs),
        )
        self._set_ids(users_, items_)
        self.user_items_, self.item_popularity_ = seen, popularity
        self.rating_range_ = widened_range(self.rating_range_, y)
        self.user_factors_, self.item_factors_ = P, Q
        self.user_bias_, self.item_bias_ = bu, bi
        self._als_ratings = ratings

    # -------------------------------------------------------------- fold-in
    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """Explicit-feedback fold-in: one ALS user half-step with items fixed.

        ``prior="model"``: solves, for each new user, :math:`\\min_{p, b}
        \\sum_i (r_{ui} - \\mu - b - b_i - p^\\top q_i)^2 + \\lambda_u
        \\lVert p\\rVert^2 + \\lambda_{b,u} b^2` (the bias only for ``biased``
        models) with the model's regularization, scaled by the user's number
        of ratings as in the SGD objective and weighted-lambda ALS
        (``regularization_scaling="none"`` does not scale).

        ``prior="empirical"``: the same least squares shrunk towards the
        average trained user instead of zero, with fixed penalties
        :math:`\\sigma^2/\\sigma_p^2` and :math:`\\sigma^2/\\sigma_b^2`
        (the residual variance of the training ratings over the variance of
        the trained users' factors and biases): the posterior mean under the
        trained users' empirical distribution as the prior.
        """
        return _explicit_fold_in(
            self,
            indptr,
            indices,
            values,
            prior,
            per_rating=self.regularization_scaling == "occurrence",
        )


def _explicit_fold_in(model, indptr, indices, values, prior, *, per_rating):
    """:func:`ridge_fold_in` with the parameters of a biased rating model
    (``MatrixFactorization``, ``SVDpp``)."""
    mu, bu, bi = model._biases()
    reg = float(model.regularization)
    reg_b = reg if model.bias_regularization is None else float(model.bias_regularization)
    return ridge_fold_in(
        indptr,
        indices,
        values,
        model.item_factors_,
        None if bi is None else bi.astype(np.float64),
        regularization=reg,
        bias_regularization=reg_b,
        per_rating=per_rating,
        fit_bias=model.biased,
        global_offset=mu if model.biased else 0.0,
        prior=model._empirical_prior(model.user_factors_, bu) if prior == "empirical" else None,
        n_threads=effective_n_threads(model.n_jobs),
    )
