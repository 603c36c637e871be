"""SVD++: matrix factorization with the implicit feedback of who rated what."""

import numbers
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sklearn_mf import _svdpp_fast
from sklearn_mf._base import RatingRegressorMixin
from sklearn_mf._fold_in import FoldInMixin
from sklearn_mf._latent import DotProductMixin, LatentFactorMixin
from sklearn_mf._mf import _explicit_fold_in
from sklearn_mf._online import (
    PARTIAL_FIT_PASSES,
    PARTIAL_FIT_REPLAY,
    check_online_params,
    grow_and_replay,
    online_rng,
)
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
from sklearn_mf._utils import check_finite_fit, effective_n_threads, seeds_from
from sklearn_mf._validation import check_interactions


def implicit_sets(seen, dtype):
    """CSR (indptr, indices) of every user's rated items N(u), and the matrix
    of the indicators scaled by :math:`|N(u)|^{-1/2}` (``dtype``)."""
    counts = np.diff(seen.indptr)
    scale = np.zeros(len(counts))
    scale[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
    norm = sp.csr_matrix(
        (np.repeat(scale, counts).astype(dtype), seen.indices, seen.indptr), shape=seen.shape
    )
    return seen.indptr.astype(np.int32), seen.indices.astype(np.int32), norm


def implicit_user_factors(norm, Y):
    """:math:`z_u = |N(u)|^{-1/2} \\sum_{j \\in N(u)} y_j` for every user."""
    return np.ascontiguousarray(norm @ Y, dtype=Y.dtype)


class SVDppResult(NamedTuple):
    """What :func:`run_svdpp` computed (the parameter arrays it updated)."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    implicit_item_factors: np.ndarray
    implicit_user_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    loop: LoopResult


def run_svdpp(
    u,
    i,
    y,
    sample_weight,
    train,
    val,
    P,
    Q,
    Y,
    user_bias,
    item_bias,
    seen,
    *,
    global_mean,
    learning_rate,
    regularization,
    bias_regularization,
    implicit_regularization,
    biased,
    n_epochs,
    tol,
    n_iter_no_change,
    clip_range,
    rng,
    n_threads,
    verbose=0,
    desc=None,
):
    """SVD++ SGD epochs on the ratings ``y[train]`` of codes ``u``, ``i``.

    ``P``, ``Q``, ``Y`` (implicit item factors) and the biases are updated in
    place; ``seen`` (the seen-items CSR) defines the implicit sets N(u).
    Early stopping on the validation RMSE of the rows ``val`` (None: none)
    keeps the best epoch's parameters.

    Returns
    -------
    result : SVDppResult
        ``loop.loss_curve`` holds the weighted mean squared error observed
        during each epoch.
    """
    dtype = P.dtype.type
    n_users = len(P)
    by_user = train[np.argsort(u[train], kind="stable")]
    ti = np.ascontiguousarray(i[by_user], dtype=np.int32)
    tr = np.ascontiguousarray(y[by_user], dtype=dtype)
    tw = (
        np.zeros(0, dtype=dtype)
        if sample_weight is None
        else np.ascontiguousarray(sample_weight[by_user], dtype=dtype)
    )
    sum_w = float(len(tr)) if sample_weight is None else float(tw.sum())
    rating_ptr = np.zeros(n_users + 1, dtype=np.intp)
    np.cumsum(np.bincount(u[train], minlength=n_users), out=rating_ptr[1:])
    order = np.arange(len(tr), dtype=np.intp)
    n_indptr, n_indices, norm = implicit_sets(seen, dtype)
    reg = float(regularization)
    reg_b = reg if bias_regularization is None else float(bias_regularization)
    reg_y = reg if implicit_regularization is None else float(implicit_regularization)
    bu = user_bias if biased else np.zeros(0, dtype=dtype)
    bi = item_bias if biased else np.zeros(0, dtype=dtype)

    def step(epoch):
        user_order = rng.permutation(n_users).astype(np.intp)
        sse, n_bad = _svdpp_fast.svdpp_epoch(
            ti,
            tr,
            tw,
            rating_ptr,
            order,
            seeds_from(rng, 1)[0],
            user_order,
            n_indptr,
            n_indices,
            P,
            Q,
            Y,
            bu,
            bi,
            global_mean,
            float(learning_rate),
            reg,
            reg_b,
            reg_y,
            biased,
        )
        return sse / sum_w, n_bad, {"train MSE": sse / sum_w}

    def score(epoch):
        E = np.ascontiguousarray(P + implicit_user_factors(norm, Y))
        pred = rating_predictions(
            u[val],
            i[val],
            E,
            Q,
            bu if biased else None,
            bi if biased else None,
            global_mean,
            clip_range,
            n_threads,
        )
        return weighted_rmse(pred, y[val], None if sample_weight is None else sample_weight[val])

    stopper = (
        None
        if val is None
        else EarlyStopping(lambda: (P, Q, Y, user_bias, item_bias), tol, n_iter_no_change)
    )
    loop = TrainingLoop(
        n_epochs, hint=sgd_hint(learning_rate), early_stopping=stopper, verbose=verbose, desc=desc
    )
    result = loop.run(step, score=score, score_name="validation RMSE")
    return SVDppResult(P, Q, Y, implicit_user_factors(norm, Y), user_bias, item_bias, result)


class SVDpp(
    FittedLoopMixin,
    DotProductMixin,
    FoldInMixin,
    LatentFactorMixin,
    RatingRegressorMixin,
    BaseEstimator,
):
    r"""SVD++ (Koren 2008): biased matrix factorization plus implicit feedback.

    Which items a user chose to rate says something about her taste, whatever
    the ratings were.  SVD++ adds to the user's embedding the normalised sum of
    an implicit factor :math:`y_j` of every item she rated:

    .. math::

        \hat r_{ui} = \mu + b_u + b_i
            + q_i^\top \Big(p_u + |N(u)|^{-1/2} \sum_{j \in N(u)} y_j\Big)

    where :math:`N(u)` is the set of items user :math:`u` has in the training
    data (all of ``X`` passed to ``fit``, including the ratings held out for
    early stopping: the *fact* of rating is known, its value is not used).
    The regularised squared error on the observed ratings is minimised by SGD:
    with :math:`e = r_{ui} - \hat r_{ui}`, step :math:`\eta w_{ui}`,
    :math:`z_u = |N(u)|^{-1/2}\sum_{j\in N(u)} y_j`,

    .. math::

        b_u &\leftarrow b_u + \eta w (e - \lambda_b b_u), \qquad
        b_i \leftarrow b_i + \eta w (e - \lambda_b b_i), \\
        p_u &\leftarrow p_u + \eta w (e\, q_i - \lambda p_u), \qquad
        q_i \leftarrow q_i + \eta w \big(e\, (p_u + z_u) - \lambda q_i\big), \\
        y_j &\leftarrow y_j + \eta w \big(e\, |N(u)|^{-1/2} q_i - \lambda_y y_j\big)
            \quad \text{for all } j \in N(u).

    Each epoch visits the users in a random order and each user's ratings in
    a random order.  The :math:`y_j` update is the same affine map for every
    :math:`j \in N(u)`, so it is accumulated over the user's ratings and
    applied once per user: :math:`O(k)` per rating and :math:`O(|N(u)|\,k)`
    per user instead of :math:`O(|N(u)|\,k)` per rating, with exactly the same
    iterates as the rating-by-rating rule.  The epoch is sequential (all users
    share the :math:`y_j`); ``n_jobs`` parallelises prediction and
    recommendation.

    Parameters
    ----------
    n_factors : int, default=100
        Dimension of :math:`p_u, q_i, y_j`.
    n_epochs : int, default=80
        Number of SGD passes (upper bound with ``early_stopping``).  The
        defaults of ``n_factors``, ``n_epochs`` and ``regularization`` were
        chosen for the best worst case over four rating datasets (see
        :ref:`mf_defaults`); the former 20 factors and 20 epochs underfit
        larger data, which is why ``SVDpp()`` lost to
        ``MatrixFactorization()`` there.
    learning_rate : float, default=0.007
        SGD step size :math:`\eta`.
    regularization : float, default=0.08
        L2 penalty :math:`\lambda` on :math:`p_u, q_i` (per rating).
    bias_regularization : float or None, default=None
        Penalty :math:`\lambda_b` on the biases; None uses ``regularization``.
    implicit_regularization : float or None, default=None
        Penalty :math:`\lambda_y` on the implicit factors; None uses
        ``regularization``.
    biased : bool, default=True
        Learn :math:`\mu, b_u, b_i`.
    init_std : float, default=0.1
        :math:`p_u, q_i, y_j` start from :math:`\mathcal N(0, \text{init\_std}^2)`.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the parameters.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the ratings and stop when their RMSE
        has not improved by ``tol`` for ``n_iter_no_change`` epochs, keeping
        the parameters of the best epoch.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=5
    tol : float or None, default=1e-4
        Minimum decrease of the validation RMSE that counts as an
        improvement (None: any decrease).
    clip_predictions : bool, default=True
        Clip ``predict`` to the range of ratings seen in ``fit``.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for an unseen user or item: ``"fallback"`` uses what is
        known (:math:`\mu + b_u`, :math:`\mu + b_i` or :math:`\mu`), ``"nan"``
        returns NaN, ``"error"`` raises ``ValueError``.  ``recommend`` serves
        unknown users from item popularity.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the visiting orders and the validation split.
    n_jobs : int or None, default=None
        OpenMP threads for prediction and recommendation (training is
        sequential, see above).
    verbose : int, default=0
        0: silent.  1: one line per epoch with the training MSE, the
        validation RMSE under early stopping and the seconds it took.
        2 or more: a progress bar (``tqdm.auto``) with the same numbers, if
        tqdm is installed (``pip install sklearn_mf[progress]``), otherwise the
        lines of 1 and a note that tqdm is missing.  The fitted model does
        not depend on ``verbose``.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
        :math:`p_u`.
    item_factors_ : ndarray of shape (n_items, n_factors)
        :math:`q_i`.
    implicit_item_factors_ : ndarray of shape (n_items, n_factors)
        :math:`y_j`.
    implicit_user_factors_ : ndarray of shape (n_users, n_factors)
        :math:`z_u = |N(u)|^{-1/2}\sum_{j\in N(u)} y_j` (derived, kept up to
        date by ``fit`` and ``partial_fit``).
    user_bias_, item_bias_ : ndarray
    global_mean_ : float
    users_, items_ : ndarray
        Raw ids; position = row of the factor arrays.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training ratings; its sparsity pattern is :math:`N(u)`.
    item_popularity_ : ndarray of shape (n_items,)
    rating_range_ : tuple of float
    n_iter_ : int
    loss_curve_ : list of float
        Weighted mean squared training error seen during each epoch.
    validation_scores_ : list of float or None
    best_iteration_ : int or None
    n_features_in_ : int

    See Also
    --------
    MatrixFactorization : The same model without the implicit term.

    References
    ----------
    Y. Koren, "Factorization meets the neighborhood: a multifaceted
    collaborative filtering model", KDD 2008.

    Examples
    --------
    >>> from sklearn_mf import SVDpp
    >>> X = [("alice", "matrix"), ("alice", "up"), ("bob", "matrix"),
    ...      ("bob", "heat"), ("carol", "up"), ("carol", "heat")]
    >>> y = [5.0, 3.0, 4.0, 2.0, 4.0, 1.0]
    >>> model = SVDpp(n_factors=2, n_epochs=30, random_state=0).fit(X, y)
    >>> model.predict([("alice", "heat")]).shape
    (1,)
    >>> model.implicit_item_factors_.shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "bias_regularization": [Interval(numbers.Real, 0, None, closed="left"), None],
        "implicit_regularization": [Interval(numbers.Real, 0, None, closed="left"), None],
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
        n_epochs=80,
        learning_rate=0.007,
        regularization=0.08,
        bias_regularization=None,
        implicit_regularization=None,
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
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.implicit_regularization = implicit_regularization
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
        """Fit the model to the ratings ``y`` of the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
        y : array-like of shape (n_ratings,)
            Ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weight of each rating in the squared error.

        Returns
        -------
        self : SVDpp
            The fitted estimator.
        """
        start = self._start_rating_fit(X, y, sample_weight, n_extra_item_factors=1)
        train = np.arange(len(start.y)) if start.train is None else start.train
        result = run_svdpp(
            start.user_codes,
            start.item_codes,
            start.y,
            start.sample_weight,
            train,
            start.val,
            start.user_factors,
            start.item_factors,
            start.extra_item_factors[0],
            start.user_bias,
            start.item_bias,
            start.user_items,
            global_mean=start.global_mean,
            rng=start.rng,
            **self._sgd_params(start.rating_range, self.n_epochs),
        )
        self._set_rating_start(start)
        self._set_result(result)
        check_finite_fit(self, start.y)
        return self

    def _sgd_params(self, rating_range, n_epochs):
        return dict(
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            bias_regularization=self.bias_regularization,
            implicit_regularization=self.implicit_regularization,
            biased=self.biased,
            n_epochs=n_epochs,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            clip_range=rating_range if self.clip_predictions else None,
            n_threads=effective_n_threads(self.n_jobs),
            verbose=self.verbose,
            desc=type(self).__name__,
        )

    def _set_result(self, result):
        self.user_factors_, self.item_factors_ = result.user_factors, result.item_factors
        self.implicit_item_factors_ = result.implicit_item_factors
        self.implicit_user_factors_ = result.implicit_user_factors
        self.user_bias_, self.item_bias_ = result.user_bias, result.item_bias
        self._set_loop_attributes(result.loop)

    # ----------------------------------------------------------- online
    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def partial_fit(
        self,
        X,
        y,
        sample_weight=None,
        *,
        n_passes=PARTIAL_FIT_PASSES,
        replay_ratio=PARTIAL_FIT_REPLAY,
    ):
        """Update the model with new ratings (online learning).

        New users and items are appended to the model (embeddings from
        :math:`\\mathcal N(0, \\text{init\\_std}^2)`, biases 0), the ratings
        join ``user_items_`` (so they also extend the implicit sets
        :math:`N(u)`), and ``n_passes`` SGD epochs run over the new ratings
        plus ``replay_ratio`` times as many old ratings sampled uniformly from
        ``user_items_``.  The global mean is kept.  ``loss_curve_`` and
        ``n_iter_`` then describe this update.  On an unfitted model this is
        ``fit``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            New interactions (same columns as in ``fit``).
        y : array-like of shape (n_ratings,)
            Their ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weights of the new ratings (replayed ratings get weight 1).
        n_passes : int, default=5
            SGD epochs over the new and replayed ratings.
        replay_ratio : float, default=1.0
            Old ratings replayed per new rating (0 disables replay).

        Returns
        -------
        self : SVDpp
            The updated estimator.
        """
        if not hasattr(self, "user_factors_"):
            return self.fit(X, y, sample_weight)
        check_online_params(n_passes, replay_ratio)
        users, items, y, sample_weight = check_interactions(
            self, X, y, sample_weight, reset=False, y_required=True
        )
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
                ("implicit_item_factors_", "item", "normal"),
                ("user_bias_", "user", "zeros"),
                ("item_bias_", "item", "zeros"),
            ],
            replay_ratio,
            rng,
        )
        a = batch.arrays
        result = run_svdpp(
            batch.user_codes,
            batch.item_codes,
            batch.y,
            batch.sample_weight,
            np.arange(len(batch.y)),
            None,
            a["user_factors_"],
            a["item_factors_"],
            a["implicit_item_factors_"],
            a["user_bias_"],
            a["item_bias_"],
            batch.user_items,
            global_mean=self.global_mean_,
            rng=rng,
            **self._sgd_params(batch.rating_range, n_passes),
        )
        self._set_online_batch(batch)
        self._set_result(result)
        self._n_partial_fit_calls = n_calls
        return self

    # -------------------------------------------------------------- fold-in
    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """Fold-in with the implicit term: :math:`z_u` exactly, then :math:`p_u, b_u`.

        The given items are the new user's :math:`N(u)`, so
        :math:`z_u = |N(u)|^{-1/2}\\sum_{j\\in N(u)} y_j` needs no fitting; the
        explicit part is the ridge solve of the other latent-factor models on
        the residuals :math:`r_{ui} - q_i^\\top z_u`.  Returns the effective
        vectors :math:`p_u + z_u` (what ranking uses) and the biases.
        """
        import scipy.sparse as sp

        indptr = np.asarray(indptr)
        indices = np.asarray(indices)
        n_rows = len(indptr) - 1
        pattern = sp.csr_matrix(
            (np.ones(len(indices)), indices, indptr), shape=(n_rows, len(self.items_)), copy=True
        )
        pattern.sum_duplicates()
        counts = np.diff(pattern.indptr)
        scale = np.zeros(n_rows)
        scale[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
        pattern.data = np.repeat(scale, counts)
        Y = self.implicit_item_factors_
        z = np.asarray(pattern @ Y, dtype=Y.dtype)
        rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        resid = np.asarray(values, dtype=np.float64) - np.einsum(
            "ij,ij->i", self.item_factors_[indices].astype(np.float64), z[rows]
        )
        P, b = _explicit_fold_in(self, indptr, indices, resid, prior, per_rating=True)
        return (P + z).astype(Y.dtype), b

    # -------------------------------------------------------------- predict
    def _user_embeddings(self, user_codes):
        """Effective user vectors :math:`p_u + z_u`."""
        check_is_fitted(self)
        return np.ascontiguousarray(
            self.user_factors_[user_codes] + self.implicit_user_factors_[user_codes]
        )
