"""Biased matrix factorization for explicit ratings: ``MatrixFactorization``."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_mf import _sgd_fast
from sklearn_mf._als import partial_fit_explicit_als, run_explicit_als
from sklearn_mf._base import RatingRegressorMixin, RecommenderMixin
from sklearn_mf._online import (
    PARTIAL_FIT_PASSES,
    PARTIAL_FIT_REPLAY,
    grow_and_replay,
    online_rng,
)
from sklearn_mf._progress import EpochProgress
from sklearn_mf._training import (
    EarlyStopping,
    raise_if_diverged,
    start_rating_fit,
    validation_rmse,
)
from sklearn_mf._utils import effective_n_threads, seeds_from


def block_schedule(user_codes, item_codes, n_users, n_items, n_blocks, rng):
    """Partition ratings into an ``n_blocks x n_blocks`` grid for parallel SGD.

    Users (and items) are shuffled by a random permutation, which balances the
    blocks under power-law activity, and then cut into ``n_blocks`` contiguous
    ranges of that order.  Training works on copies of the factors stored in
    that order, so that the rows a block updates are contiguous in memory: a
    thread never writes a cache line that holds another thread's rows, and a
    block's rows stay together in cache.  Stratum ``s`` holds the blocks
    ``(b, (b + s) % n_blocks)``: no two of them share a user or an item.

    Returns
    -------
    perm : ndarray of intp
        Ratings reordered so that each block is contiguous.
    block_ptr : ndarray of intp of shape (n_blocks**2 + 1,)
    schedule : ndarray of intp of shape (n_blocks, n_blocks)
        Row ``s`` lists the block ids of stratum ``s``.
    user_order, item_order : ndarray of intp
        Row ``j`` of the working factors holds user ``user_order[j]`` (item
        ``item_order[j]``).
    work_users, work_items : ndarray of int32
        The ratings' user and item codes in the working order.
    """
    B = n_blocks
    user_order = rng.permutation(n_users)
    item_order = rng.permutation(n_items)
    work_users = np.empty(n_users, dtype=np.int32)
    work_users[user_order] = np.arange(n_users, dtype=np.int32)
    work_items = np.empty(n_items, dtype=np.int32)
    work_items[item_order] = np.arange(n_items, dtype=np.int32)
    work_users = work_users[user_codes]
    work_items = work_items[item_codes]
    # block coordinates: contiguous ranges of the working order
    block = ((work_users.astype(np.int64) * B) // n_users).astype(np.int32)
    block *= B
    block += ((work_items.astype(np.int64) * B) // n_items).astype(np.int32)
    # numpy's stable sort of 16-bit keys is a radix sort
    perm = np.argsort(block.astype(np.uint16) if B * B <= 65536 else block, kind="stable")
    counts = np.bincount(block, minlength=B * B)
    del block
    block_ptr = np.zeros(B * B + 1, dtype=np.intp)
    np.cumsum(counts, out=block_ptr[1:])
    b = np.arange(B)
    schedule = np.array([b * B + (b + s) % B for s in range(B)], dtype=np.intp)
    return perm, block_ptr, schedule, user_order, item_order, work_users, work_items


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


class MatrixFactorization(RecommenderMixin, RatingRegressorMixin, BaseEstimator):
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
    ``als_regularization="plain"`` uses 1 instead), then the same for the items.
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
        ``max_iter``, ``als_regularization``).
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
    als_regularization : {"weighted", "plain"}, default="weighted"
        ``solver="als"`` and ``fold_in`` only: ``"weighted"`` multiplies the
        penalties of a user (item) by its number of ratings (sum of weights),
        which is the objective SGD minimises and the weighted-:math:`\lambda`
        ALS of Zhou et al.; ``"plain"`` applies them once per user (item).
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
    tol : float, default=1e-4
        Minimum decrease of the validation RMSE that counts as an improvement;
        with ``solver="als"`` also the relative decrease of the training
        objective below which the iterations stop.
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
        "als_regularization": [StrOptions({"weighted", "plain"})],
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
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
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
        als_regularization="weighted",
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
        self.als_regularization = als_regularization
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
        u, i, y, sample_weight, train, val, rng = start_rating_fit(
            self, X, y, sample_weight
        )
        if self.solver == "als":
            if train is None:
                train = np.arange(len(y))
            run_explicit_als(self, u, i, y, sample_weight, train, val)
        else:
            self._als_ratings = None  # training ratings are kept by ALS only
            self._run_sgd(u, i, y, sample_weight, train, val, self.n_epochs, rng)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
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
        if self.solver == "sgd":
            return self._partial_fit_sgd(X, y, sample_weight)
        if getattr(self, "_als_ratings", None) is None:
            return self.fit(X, y, sample_weight)
        return partial_fit_explicit_als(self, X, y, sample_weight)

    def _partial_fit_sgd(self, X, y, sample_weight):
        """SGD update: a few passes over the new ratings plus a replay sample.

        See :mod:`sklearn_mf._online`: new users / items get factor rows from
        N(0, init_std^2) and zero biases, the ratings join ``user_items_``
        (which also holds the old ratings the replay sample is drawn from),
        then ``PARTIAL_FIT_PASSES`` (5) SGD epochs run over the new ratings
        and ``PARTIAL_FIT_REPLAY`` (1) old rating per new one.
        """
        if not hasattr(self, "user_factors_"):
            return self.fit(X, y, sample_weight)
        rng = online_rng(self)
        u, i, yy, w, _ = grow_and_replay(
            self, X, y, sample_weight,
            [("user_factors_", "user", "normal"), ("item_factors_", "item", "normal"),
             ("user_bias_", "user", "zeros"), ("item_bias_", "item", "zeros")],
            PARTIAL_FIT_REPLAY, rng,
        )
        self._run_sgd(u, i, yy, w, None, None, PARTIAL_FIT_PASSES, rng)
        return self

    def _run_sgd(self, u, i, y, sample_weight, train, val, n_epochs, rng):
        """Epoch loop shared by ``fit`` (and, later, ``partial_fit``)."""
        dtype = self.user_factors_.dtype.type
        n_threads = effective_n_threads(self.n_jobs)
        if train is not None:
            u_t, i_t, y_t = u[train], i[train], y[train]
            w_t = None if sample_weight is None else sample_weight[train]
        else:  # no copies: the gathers below make the block-ordered arrays
            u_t, i_t, y_t, w_t = u, i, y, sample_weight
        if len(y_t) >= np.iinfo(np.int32).max:
            raise ValueError(f"At most 2**31 - 2 training ratings, got {len(y_t)}.")
        B = _n_blocks(n_threads, len(y_t), len(self.users_) + len(self.items_),
                      self.user_factors_.shape[1], self.user_factors_.itemsize)
        perm, block_ptr, schedule, user_order, item_order, wu, wi = block_schedule(
            u_t, i_t, len(self.users_), len(self.items_), B, rng
        )
        # ratings stored block by block, so that a block's data is contiguous
        tu, ti = wu[perm], wi[perm]
        tr = y_t.astype(dtype)[perm]
        tw = np.zeros(0, dtype=dtype) if w_t is None else w_t.astype(dtype)[perm]
        del perm, wu, wi, u_t, i_t, y_t, w_t
        sum_w = float(len(tr)) if sample_weight is None else float(tw.sum())
        order = np.arange(len(tr), dtype=np.int32)
        block_loss = np.zeros(B * B, dtype=np.float64)
        reg_b = self.regularization if self.bias_regularization is None else self.bias_regularization
        # working copies of the parameters in block order (see block_schedule)
        P, Q = self.user_factors_[user_order], self.item_factors_[item_order]
        empty = np.zeros(0, dtype=dtype)
        bu = self.user_bias_[user_order] if self.biased else empty
        bi = self.item_bias_[item_order] if self.biased else empty

        def write_back():
            self.user_factors_[user_order] = P
            self.item_factors_[item_order] = Q
            if self.biased:
                self.user_bias_[user_order] = bu
                self.item_bias_[item_order] = bi

        self.loss_curve_ = []
        self.validation_scores_ = self.best_iteration_ = None
        stopper = (None if val is None
                   else EarlyStopping(self._state, self.tol, self.n_iter_no_change))
        with EpochProgress(self.verbose, n_epochs, desc=type(self).__name__) as progress:
            for epoch in range(1, n_epochs + 1):
                # fresh random order: strata, blocks within a stratum, ratings within a block
                strata = schedule[rng.permutation(B)][:, rng.permutation(B)]
                n_bad = _sgd_fast.sgd_epoch(
                    tu, ti, tr, tw, order, block_ptr, np.ascontiguousarray(strata),
                    P, Q, bu, bi,
                    self.global_mean_, self.learning_rate, self.regularization, reg_b,
                    self.biased, block_loss, n_threads, seeds_from(rng, B * B),
                )
                raise_if_diverged(epoch, n_bad, block_loss.sum(), self.learning_rate)
                self.loss_curve_.append(float(block_loss.sum() / sum_w))
                self.n_iter_ = epoch
                metrics = {"train MSE": self.loss_curve_[-1]}
                stop = False
                if stopper is not None:
                    write_back()
                    rmse = validation_rmse(self, u[val], i[val], y[val],
                                           None if sample_weight is None else sample_weight[val])
                    metrics["validation RMSE"] = rmse
                    stop = stopper.update(epoch, rmse)
                progress.update(epoch, metrics)
                if stop:
                    break
        write_back()
        if stopper is not None:
            stopper.report_to(self)
            stopper.restore()

    def _state(self):
        return (self.user_factors_, self.item_factors_, self.user_bias_, self.item_bias_)

    # -------------------------------------------------------------- predict
    def _predict_codes(self, user_codes, item_codes):
        dtype = self.user_factors_.dtype.type
        out = np.empty(len(user_codes), dtype=dtype)
        bu = self.user_bias_ if self.biased else np.zeros(0, dtype=dtype)
        bi = self.item_bias_ if self.biased else np.zeros(0, dtype=dtype)
        _sgd_fast.predict(
            np.ascontiguousarray(user_codes, dtype=np.int32),
            np.ascontiguousarray(item_codes, dtype=np.int32),
            self.user_factors_, self.item_factors_, bu, bi, self.global_mean_, out,
            effective_n_threads(self.n_jobs),
        )
        out = out.astype(np.float64)
        if self.clip_predictions:
            np.clip(out, *self.rating_range_, out=out)
        return out

    def _item_embeddings(self):
        return self.item_factors_, (self.item_bias_ if self.biased else None)

    def _user_offsets(self, user_codes):
        if not self.biased:
            return None
        return self.global_mean_ + self.user_bias_[user_codes]
