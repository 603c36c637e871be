"""Reference models: ``BaselineRegressor``, ``PopularityRecommender`` and
``TruncatedSVDRecommender``."""

import numbers

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_mf import _baselines_fast
from sklearn_mf._base import RatingRegressorMixin, RecommenderMixin
from sklearn_mf._fold_in import FoldInMixin
from sklearn_mf._ids import factorize_ids
from sklearn_mf._latent import LatentFactorMixin
from sklearn_mf._training import (
    FittedLoopMixin,
    TrainingLoop,
    seen_matrix,
    sgd_hint,
    undo_validation_on_error,
)
from sklearn_mf._utils import check_finite_fit, make_rng
from sklearn_mf._validation import check_interactions


def _weighted_sums(codes, values, weights, size):
    """``(sum w * values, sum w)`` per code."""
    w = np.ones(len(codes)) if weights is None else weights
    return (
        np.bincount(codes, weights=w * values, minlength=size),
        np.bincount(codes, weights=w, minlength=size),
    )


class _NoFactorsMixin:
    """Ranking hooks for models that score an item independently of factors.

    Their ranking score is a per-item score (``_item_embeddings`` returns it
    with one zero column of vectors) plus a per-user offset; they have no
    ``similar_items`` / ``similar_users`` (no :class:`LatentFactorMixin`).
    Fold-in (``recommend_new``) solves only the new user's bias, if any.
    """

    _fold_in_priors = ("model",)

    def _user_embeddings(self, user_codes):
        return np.zeros((len(user_codes), 1))

    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """No factors to solve: zero factors, and with biases the user bias of
        one ALS step with the item biases fixed, ``sum(r - mu - b_i) / (n + lambda)``."""
        n = len(indptr) - 1
        P = np.zeros((n, 1))
        if not hasattr(self, "user_bias_"):
            return P, None
        rows = np.repeat(np.arange(n), np.diff(indptr))
        resid = np.asarray(values, dtype=np.float64) - self.global_mean_
        resid -= self.item_bias_[indices]
        s, c = _weighted_sums(rows, resid, None, n)
        return P, s / (c + float(self.regularization))


class BaselineRegressor(
    FittedLoopMixin,
    _NoFactorsMixin,
    FoldInMixin,
    RecommenderMixin,
    RatingRegressorMixin,
    BaseEstimator,
):
    r"""Global mean plus user and item biases: the baseline every model must beat.

    The model predicts

    .. math::

        \hat r_{ui} = \mu + b_u + b_i

    where :math:`\mu` is the (weighted) mean training rating and the biases
    minimise

    .. math::

        \sum_{(u,i)} w_{ui} (r_{ui} - \mu - b_u - b_i)^2
            + \lambda \Big(\sum_u b_u^2 + \sum_i b_i^2\Big).

    The penalty is per bias, not per rating, so a user with few ratings is
    shrunk towards zero more than a user with many (Koren 2010, "factor in the
    neighbors").  Two solvers minimise the same objective:

    * ``"als"`` alternates the exact minimisations
      :math:`b_i = \sum_u w_{ui}(r_{ui}-\mu-b_u) / (\lambda + \sum_u w_{ui})`
      and the same for :math:`b_u`, until the largest change is below ``tol``;
    * ``"sgd"`` visits the ratings in a random order and steps
      :math:`b_u \leftarrow b_u + \eta w_{ui}(e_{ui} - \tfrac{\lambda}{W_u} b_u)`
      (and likewise for :math:`b_i`), with :math:`W_u = \sum_i w_{ui}`, so
      that the penalties seen over an epoch add up to :math:`\lambda b_u^2`.

    Parameters
    ----------
    solver : {"als", "sgd"}, default="als"
        Optimisation algorithm.
    regularization : float, default=10.0
        Penalty :math:`\lambda` on each bias (acts like :math:`\lambda` pseudo
        ratings at the global mean).
    max_iter : int, default=10
        Maximum number of ALS sweeps (``solver="als"``).
    n_epochs : int, default=20
        Number of SGD passes (``solver="sgd"``).
    learning_rate : float, default=0.005
        SGD step size :math:`\eta`.
    tol : float or None, default=1e-5
        ALS stops when no bias changes by more than ``tol`` in a sweep (None:
        run every sweep).
    clip_predictions : bool, default=True
        Clip ``predict`` to the range of ratings seen in ``fit``.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for an unseen user or item: ``"fallback"`` drops the unknown
        bias (:math:`\mu + b_i`, :math:`\mu + b_u` or :math:`\mu`), ``"nan"``
        returns NaN, ``"error"`` raises ``ValueError``.
    random_state : int, RandomState instance or None, default=None
        Seeds the SGD shuffles.
    n_jobs : int or None, default=None
        Threads for ``recommend``'s top-n selection.
    verbose : int, default=0
        0: silent.  1: one line per ALS sweep (objective, largest bias change)
        or SGD epoch (training MSE, seconds).
        2 or more: a progress bar (``tqdm.auto``) with the same numbers, if
        tqdm is installed (``pip install sklearn_mf[progress]``), otherwise the
        lines of 1 and a note that tqdm is missing.  The fitted model does
        not depend on ``verbose``.

    Attributes
    ----------
    global_mean_ : float
    user_bias_ : ndarray of shape (n_users,)
    item_bias_ : ndarray of shape (n_items,)
    users_, items_ : ndarray
        Raw ids; position = index into the bias arrays.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training ratings.
    item_popularity_ : ndarray of shape (n_items,)
        Training interactions per item.
    rating_range_ : tuple of float
    n_iter_ : int
        ALS sweeps or SGD epochs run.
    loss_curve_ : list of float
        Objective divided by the total weight after each sweep (ALS) or the
        weighted mean squared error seen during each epoch (SGD).
    n_features_in_ : int

    See Also
    --------
    MatrixFactorization : Adds user and item embeddings to this model.
    PopularityRecommender : The same ranking for everyone.

    Examples
    --------
    >>> from sklearn_mf import BaselineRegressor
    >>> X = [(1, "a"), (1, "b"), (2, "a"), (2, "c"), (3, "b")]
    >>> y = [5.0, 3.0, 4.0, 2.0, 4.0]
    >>> model = BaselineRegressor(regularization=1.0).fit(X, y)
    >>> round(model.global_mean_, 2)
    3.6
    >>> model.predict([(1, "a"), (9, "a")]).round(2)
    array([4.41, 4.32])
    """

    _parameter_constraints: dict = {
        "solver": [StrOptions({"als", "sgd"})],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "clip_predictions": ["boolean"],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        solver="als",
        *,
        regularization=10.0,
        max_iter=10,
        n_epochs=20,
        learning_rate=0.005,
        tol=1e-5,
        clip_predictions=True,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.solver = solver
        self.regularization = regularization
        self.max_iter = max_iter
        self.n_epochs = n_epochs
        self.learning_rate = learning_rate
        self.tol = tol
        self.clip_predictions = clip_predictions
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the biases to the ratings ``y`` of the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
        y : array-like of shape (n_ratings,)
            Ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weight of each rating.

        Returns
        -------
        self : BaselineRegressor
            The fitted estimator.
        """
        users, items, y, w = check_interactions(
            self, X, y, sample_weight, reset=True, y_required=True
        )
        u, users_ = factorize_ids(users)
        i, items_ = factorize_ids(items)
        n_users, n_items = len(users_), len(items_)
        mu = float(np.average(y, weights=w))
        lam = float(self.regularization)
        bu = np.zeros(n_users)
        bi = np.zeros(n_items)
        _, w_u = _weighted_sums(u, y, w, n_users)
        _, w_i = _weighted_sums(i, y, w, n_items)
        if (w_u + lam <= 0).any() or (w_i + lam <= 0).any():
            raise ValueError(
                "A user or item has zero total sample_weight and regularization=0: "
                "its bias is undefined. Use regularization > 0."
            )
        if self.solver == "als":
            loop = self._fit_als(u, i, y, w, mu, bu, bi, w_u, w_i, lam)
        else:
            loop = self._fit_sgd(u, i, y, w, mu, bu, bi, w_u, w_i, lam)
        self._set_ids(users_, items_)
        self.user_items_, self.item_popularity_ = seen_matrix(u, i, y, n_users, n_items)
        self.rating_range_ = (float(y.min()), float(y.max()))
        self.global_mean_ = mu
        self.user_bias_, self.item_bias_ = bu, bi
        self._set_loop_attributes(loop, early_stopping=False)
        check_finite_fit(self, y)
        return self

    @staticmethod
    def _objective(u, i, y, w, mu, bu, bi, lam):
        e = y - mu - bu[u] - bi[i]
        sw = len(y) if w is None else w.sum()
        return float((np.average(e**2, weights=w) * sw + lam * (bu @ bu + bi @ bi)) / sw)

    def _fit_als(self, u, i, y, w, mu, bu, bi, w_u, w_i, lam):
        """Exact alternating bias updates, in place; returns the loop's result."""
        resid = y - mu
        change = np.inf

        def step(it):
            nonlocal change
            num_i, _ = _weighted_sums(i, resid - bu[u], w, len(bi))
            new_bi = num_i / (lam + w_i)
            num_u, _ = _weighted_sums(u, resid - new_bi[i], w, len(bu))
            new_bu = num_u / (lam + w_u)
            change = max(np.abs(new_bi - bi).max(), np.abs(new_bu - bu).max())
            bi[:], bu[:] = new_bi, new_bu
            obj = self._objective(u, i, y, w, mu, bu, bi, lam)
            return obj, 0, {"objective": obj, "max change": f"{change:.2e}"}

        loop = TrainingLoop(
            self.max_iter,
            hint=f"Use a larger regularization (now {lam}).",
            solver="als",
            verbose=self.verbose,
            desc=type(self).__name__,
            unit="sweep",
        )
        return loop.run(
            step, converged=(None if self.tol is None else lambda curve: change <= self.tol)
        )

    def _fit_sgd(self, u, i, y, w, mu, bu, bi, w_u, w_i, lam):
        """SGD epochs on the biases, in place; returns the loop's result."""
        rng = make_rng(self.random_state)
        with np.errstate(divide="ignore"):
            reg_u = np.where(w_u > 0, lam / np.maximum(w_u, 1e-300), 0.0)
            reg_i = np.where(w_i > 0, lam / np.maximum(w_i, 1e-300), 0.0)
        uu, ii = u.astype(np.int32), i.astype(np.int32)
        ww = np.zeros(0) if w is None else w
        sum_w = len(y) if w is None else float(w.sum())

        def step(epoch):
            order = rng.permutation(len(y)).astype(np.intp)
            sse, n_bad = _baselines_fast.bias_sgd_epoch(
                uu,
                ii,
                y,
                ww,
                order,
                bu,
                bi,
                reg_u,
                reg_i,
                mu,
                float(self.learning_rate),
            )
            return sse / sum_w, n_bad, {"train MSE": sse / sum_w}

        loop = TrainingLoop(
            self.n_epochs,
            hint=sgd_hint(self.learning_rate),
            verbose=self.verbose,
            desc=type(self).__name__,
        )
        return loop.run(step)

    def _predict_codes(self, user_codes, item_codes):
        out = np.full(len(user_codes), self.global_mean_)
        ku, ki = user_codes >= 0, item_codes >= 0
        out[ku] += self.user_bias_[user_codes[ku]]
        out[ki] += self.item_bias_[item_codes[ki]]
        return self._clip_predictions(out)

    def _item_embeddings(self):
        return np.zeros((len(self.items_), 1)), self.item_bias_

    def _user_offsets(self, user_codes):
        return self.global_mean_ + self.user_bias_[user_codes]


class PopularityRecommender(_NoFactorsMixin, FoldInMixin, RecommenderMixin, BaseEstimator):
    r"""Recommend the most popular items: the cold-start fallback of every model.

    Each item gets one score, the same for every user:

    * ``by="count"``: the number of training interactions (the sum of
      ``sample_weight`` when given);
    * ``by="rating"``: the damped mean rating
      :math:`s_i = (\sum_u w_{ui} r_{ui} + m\,\mu) / (\sum_u w_{ui} + m)`, which
      pulls items with few ratings towards the global mean :math:`\mu` with the
      weight of ``damping`` = :math:`m` pseudo ratings (an item seen once with a
      5 does not outrank an item with hundreds of 4.5s).

    ``recommend`` returns the best-scored items a user has not seen (with
    ``exclude_seen=True``); users unknown to the model get the same list,
    flagged as ``fallback``.  The latent-factor models serve unknown users the
    same way from their own ``item_popularity_``.

    Parameters
    ----------
    by : {"count", "rating"}, default="count"
        Popularity criterion (``"rating"`` requires ``y``).
    damping : float, default=10.0
        Number :math:`m` of pseudo ratings at the global mean for ``by="rating"``.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for an unseen item: ``"fallback"`` scores it 0 (count) or
        :math:`\mu` (rating), ``"nan"`` returns NaN, ``"error"`` raises.
    n_jobs : int or None, default=None
        Threads for ``recommend``'s top-n selection.

    Attributes
    ----------
    item_scores_ : ndarray of shape (n_items,)
        The popularity score of each item.
    global_mean_ : float or None
        Mean training rating (``by="rating"`` only).
    users_, items_ : ndarray
        Raw ids.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training interactions (for ``exclude_seen``).
    item_popularity_ : ndarray of shape (n_items,)
        Training interactions per item.
    n_features_in_ : int

    See Also
    --------
    BaselineRegressor : Popularity with user biases, for ratings.

    Examples
    --------
    >>> from sklearn_mf import PopularityRecommender
    >>> X = [(1, "a"), (2, "a"), (3, "a"), (1, "b"), (2, "b"), (3, "c")]
    >>> pop = PopularityRecommender().fit(X)
    >>> pop.item_scores_.tolist()
    [3.0, 2.0, 1.0]
    >>> items, scores = pop.recommend([1, "new-user"], n=1)
    >>> items.tolist()
    [['c'], ['a']]
    """

    _fold_in_requires_y = False

    _parameter_constraints: dict = {
        "by": [StrOptions({"count", "rating"})],
        "damping": [Interval(numbers.Real, 0, None, closed="left")],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, by="count", *, damping=10.0, handle_unknown="fallback", n_jobs=None):
        self.by = by
        self.damping = damping
        self.handle_unknown = handle_unknown
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y=None, sample_weight=None):
        """Count (or average) the interactions of each item.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids.
        y : array-like of shape (n_interactions,), default=None
            Ratings; required for ``by="rating"``, ignored for ``by="count"``.
        sample_weight : array-like of shape (n_interactions,), default=None
            Weight of each interaction.

        Returns
        -------
        self : PopularityRecommender
            The fitted estimator.
        """
        users, items, y, w = check_interactions(
            self, X, y, sample_weight, reset=True, y_required=self.by == "rating"
        )
        u, i = self._fit_ids(users, items)
        self._set_training_interactions(u, i, y)
        n_items = len(self.items_)
        ones = np.ones(len(u))
        if self.by == "count":
            self.global_mean_ = None
            _, self.item_scores_ = _weighted_sums(i, ones, w, n_items)
        else:
            if w is not None and w.sum() <= 0:
                raise ValueError("sample_weight sums to zero: no rating to average.")
            self.global_mean_ = float(np.average(y, weights=w))
            s, n = _weighted_sums(i, y, w, n_items)
            m = float(self.damping)
            with np.errstate(invalid="ignore", divide="ignore"):
                scores = (s + m * self.global_mean_) / (n + m)
            # an item with zero total weight and no damping: no evidence either way
            self.item_scores_ = np.where(n + m > 0, scores, self.global_mean_)
        return self

    def score(self, X, y=None):
        """NDCG@10 of the popularity lists against held-out interactions ``X``.

        The same ranking score as :meth:`ImplicitALS.score`, so that a
        ``GridSearchCV`` over ``by`` / ``damping`` works without ``scoring=``:
        each user's 10 most popular unseen items, her rows of ``X`` (with
        ``y > 0`` when ``y`` is given) as the relevant items, binary relevance,
        users without a relevant item skipped (see
        :func:`sklearn_mf.metrics.make_ranking_scorer`).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Held-out interactions (user id, item id, ...).
        y : array-like of shape (n_interactions,), default=None
            Ratings or strengths; rows with ``y <= 0`` are not relevant.

        Returns
        -------
        score : float
            Mean NDCG@10 in [0, 1].

        Examples
        --------
        >>> from sklearn_mf import PopularityRecommender
        >>> X = [(0, "a"), (1, "a"), (1, "b"), (2, "c")]
        >>> pop = PopularityRecommender().fit(X)
        >>> pop.score([(0, "b"), (2, "a")])  # both get their best unseen item
        1.0
        """
        from sklearn_mf.metrics._scorer import ranking_score

        return ranking_score(self, X, y)

    def _predict_codes(self, user_codes, item_codes):
        default = 0.0 if self.global_mean_ is None else self.global_mean_
        known = item_codes >= 0
        out = np.full(len(item_codes), default)
        out[known] = self.item_scores_[item_codes[known]]
        return out

    def _item_embeddings(self):
        return np.zeros((len(self.items_), 1)), self.item_scores_

    def _fallback_item_scores(self):
        return self.item_scores_


class TruncatedSVDRecommender(FoldInMixin, LatentFactorMixin, RatingRegressorMixin, BaseEstimator):
    r"""Rank-k SVD of the rating matrix after filling its missing cells.

    The classic pre-Netflix-prize approach (Sarwar et al. 2000): fill every
    unobserved cell, centre, and keep the best rank-``n_factors``
    approximation in the least-squares sense.  With global mean :math:`\mu`,
    the matrix factorised is

    .. math::

        A_{ui} = \begin{cases} r_{ui} - \mu & (u,i)\ \text{observed} \\
                               f_u + g_i & \text{otherwise} \end{cases}
        \qquad A \approx U_k \Sigma_k V_k^\top,

    where the fill is the user's mean (:math:`f_u = \bar r_u - \mu`, ``impute=
    "user_mean"``), the item's mean (:math:`g_i = \bar r_i - \mu`,
    ``"item_mean"``) or the global mean (zero after centring, ``"zero"``).
    Prediction is :math:`\hat r_{ui} = \mu + (U_k\Sigma_k)_u \cdot (V_k)_i`.

    A large matrix is never formed: :math:`A = S + f\mathbf 1^\top + \mathbf 1 g^\top`
    with :math:`S` sparse (observed cells minus the fill), so
    ``scipy.sparse.linalg.svds`` runs on a ``LinearOperator`` whose products
    cost :math:`O(\text{nnz} + n_\text{users} + n_\text{items})`.  Small
    matrices (at most 50,000 cells) are filled densely and decomposed
    exactly by LAPACK.

    .. warning::

        Imputation distorts.  Most cells of a rating matrix are missing (94% on
        MovieLens 100K), so the SVD spends its rank explaining the made-up
        fill values rather than the ratings, and the residual structure of the
        observed ratings is damped towards the fill.  This is why
        :class:`MatrixFactorization` (SGD or ALS) fits the observed ratings
        only.  On MovieLens 100K (random 80/20 split, ``random_state=0``) the
        best test RMSE of this model over ranks 2-50 is 0.983 (``k=10``,
        user- or item-mean fill; 1.042 with the zero fill), worse than the
        bias-only :class:`BaselineRegressor` (0.944) and than
        :class:`MatrixFactorization` with its defaults (0.924); more factors
        make it worse (0.998 at ``k=50``), as they fit the fill more closely.

    Parameters
    ----------
    n_factors : int, default=20
        Rank :math:`k`; at most the smaller of the numbers of users and items
        (strictly smaller for matrices above 50,000 cells).
    impute : {"item_mean", "user_mean", "zero"}, default="item_mean"
        Value assumed for the missing cells (before centring).
    tol : float, default=0.0
        Relative accuracy of the singular values (0 = machine precision), passed
        to ``svds`` (large matrices only).
    clip_predictions : bool, default=True
        Clip ``predict`` to the range of ratings seen in ``fit``.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for an unseen user or item: ``"fallback"`` returns the fill
        value that is known (:math:`\mu + f_u + g_i` with the unknown term
        dropped), ``"nan"`` returns NaN, ``"error"`` raises.
    random_state : int, RandomState instance or None, default=None
        Seeds the Lanczos starting vector (large matrices only).
    n_jobs : int or None, default=None
        Threads for ``recommend``'s top-n selection.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
        :math:`U_k \Sigma_k`.
    item_factors_ : ndarray of shape (n_items, n_factors)
        :math:`V_k` (orthonormal columns).
    singular_values_ : ndarray of shape (n_factors,)
        Largest singular values of :math:`A`, in decreasing order.
    explained_variance_ : ndarray of shape (n_factors,)
        Variance (over users) of each column of :math:`U_k\Sigma_k`, as in
        :class:`sklearn.decomposition.TruncatedSVD` with users as samples.
    explained_variance_ratio_ : ndarray of shape (n_factors,)
        ``explained_variance_`` divided by the total variance of the columns of
        :math:`A` (computed without forming :math:`A`).
    global_mean_ : float
    user_offset_ : ndarray of shape (n_users,)
        :math:`f_u` (zeros unless ``impute="user_mean"``).
    item_offset_ : ndarray of shape (n_items,)
        :math:`g_i` (zeros unless ``impute="item_mean"``).
    users_, items_ : ndarray
    user_items_ : scipy.sparse.csr_matrix
    item_popularity_ : ndarray of shape (n_items,)
    rating_range_ : tuple of float
    n_features_in_ : int

    See Also
    --------
    MatrixFactorization : Fits the observed ratings only.
    sklearn.decomposition.TruncatedSVD : The same decomposition for a given matrix.

    Examples
    --------
    >>> from sklearn_mf import TruncatedSVDRecommender
    >>> X = [(u, i) for u in range(4) for i in range(5) if (u + i) % 3]
    >>> y = [1.0 + (u * i) % 5 for u, i in X]
    >>> svd = TruncatedSVDRecommender(n_factors=2, random_state=0).fit(X, y)
    >>> svd.singular_values_.shape
    (2,)
    >>> bool(svd.singular_values_[0] >= svd.singular_values_[1])
    True
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "impute": [StrOptions({"item_mean", "user_mean", "zero"})],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "clip_predictions": ["boolean"],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(
        self,
        n_factors=20,
        *,
        impute="item_mean",
        tol=0.0,
        clip_predictions=True,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
    ):
        self.n_factors = n_factors
        self.impute = impute
        self.tol = tol
        self.clip_predictions = clip_predictions
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs

    # Matrices with at most this many cells are filled densely and decomposed
    # by LAPACK; larger ones go through svds on a LinearOperator.
    _dense_max_cells = 50_000

    def _operator(self, S, f, g):
        """``A = S + f 1^T + 1 g^T`` as a LinearOperator (never densified)."""
        n_users, n_items = S.shape
        ST = S.T.tocsr()

        def matvec(x):
            x = np.ravel(x)
            return S @ x + f * x.sum() + g @ x

        def rmatvec(y):
            y = np.ravel(y)
            return ST @ y + f @ y + g * y.sum()

        def matmat(X):
            return S @ X + np.outer(f, X.sum(axis=0)) + (g @ X)[None, :]

        def rmatmat(Y):
            return ST @ Y + (f @ Y)[None, :] + np.outer(g, Y.sum(axis=0))

        return LinearOperator(
            (n_users, n_items),
            matvec=matvec,
            rmatvec=rmatvec,
            matmat=matmat,
            rmatmat=rmatmat,
            dtype=np.float64,
        )

    @staticmethod
    def _total_variance(S, f, g):
        """Sum over items of the variance (over users) of the columns of A."""
        n = S.shape[0]
        col_sum_s = np.asarray(S.sum(axis=0)).ravel()
        col_sq_s = np.asarray(S.multiply(S).sum(axis=0)).ravel()
        st_f = S.T @ f
        F, F2 = f.sum(), f @ f
        col_sum = col_sum_s + F + n * g
        col_sq = col_sq_s + F2 + n * g**2 + 2 * st_f + 2 * g * col_sum_s + 2 * g * F
        return float(np.sum(col_sq / n - (col_sum / n) ** 2))

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y):
        """Fill, centre and factorise the rating matrix.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
        y : array-like of shape (n_ratings,)
            Ratings.  A (user, item) pair that appears several times is
            represented by its mean rating.  There is no ``sample_weight``:
            a truncated SVD weights every cell of the matrix equally.
        Returns
        -------
        self : TruncatedSVDRecommender
            The fitted estimator.
        """
        users, items, y, _ = check_interactions(self, X, y, reset=True, y_required=True)
        u, i = self._fit_ids(users, items)
        self._set_training_interactions(u, i, y)
        self.rating_range_ = (float(y.min()), float(y.max()))
        n_users, n_items = len(self.users_), len(self.items_)
        k = self.n_factors
        dense = n_users * n_items <= self._dense_max_cells
        if k > min(n_users, n_items) or (not dense and k >= min(n_users, n_items)):
            raise ValueError(
                f"n_factors={k} must be smaller than both the number of users "
                f"({n_users}) and of items ({n_items}) for a truncated SVD "
                f"(fit on {len(y)} sample(s))."
            )
        # one value per cell: the mean of duplicated (user, item) ratings
        counts = sp.csr_matrix((np.ones(len(u)), (u, i)), shape=(n_users, n_items))
        sums = sp.csr_matrix((y, (u, i)), shape=(n_users, n_items))
        counts.sum_duplicates()
        sums.sum_duplicates()
        cell = sums.copy()
        cell.data = sums.data / counts.data
        coo = cell.tocoo()
        r, cu, ci = coo.data, coo.row, coo.col

        mu = float(r.mean())
        f = np.zeros(n_users)
        g = np.zeros(n_items)
        if self.impute == "user_mean":
            f = (
                np.bincount(cu, weights=r, minlength=n_users) / np.bincount(cu, minlength=n_users)
                - mu
            )
        elif self.impute == "item_mean":
            g = (
                np.bincount(ci, weights=r, minlength=n_items) / np.bincount(ci, minlength=n_items)
                - mu
            )
        S = sp.csr_matrix((r - mu - f[cu] - g[ci], (cu, ci)), shape=(n_users, n_items))

        if dense:  # small: LAPACK on the filled matrix is exact and fast
            full = S.toarray() + f[:, None] + g[None, :]
            U, s, Vt = np.linalg.svd(full, full_matrices=False)
            U, s, Vt = U[:, :k], s[:k], Vt[:k]
        else:  # large: Lanczos on the implicit operator, A is never formed
            A = self._operator(S, f, g)
            rng = check_random_state(self.random_state)
            v0 = rng.uniform(-1, 1, min(n_users, n_items))
            U, s, Vt = svds(A, k=k, tol=self.tol, v0=v0)
            order = np.argsort(s)[::-1]
            U, s, Vt = U[:, order], s[order], Vt[order]
        # deterministic signs: the largest |entry| of each right vector is positive
        sign = np.sign(Vt[np.arange(k), np.abs(Vt).argmax(axis=1)])
        sign[sign == 0] = 1
        U, Vt = U * sign, Vt * sign[:, None]

        self.global_mean_ = mu
        self.user_offset_, self.item_offset_ = f, g
        self.singular_values_ = s
        self.user_factors_ = U * s
        self.item_factors_ = np.ascontiguousarray(Vt.T)
        self.explained_variance_ = self.user_factors_.var(axis=0)
        total = self._total_variance(S, f, g)
        # a matrix with constant columns has no variance to explain
        self.explained_variance_ratio_ = (
            self.explained_variance_ / total if total > 0 else np.zeros(k)
        )
        check_finite_fit(self, y)
        return self

    def _predict_codes(self, user_codes, item_codes):
        out = np.full(len(user_codes), self.global_mean_)
        ku, ki = user_codes >= 0, item_codes >= 0
        both = ku & ki
        out[ku] += self.user_offset_[user_codes[ku]]
        out[ki] += self.item_offset_[item_codes[ki]]
        out[both] = self.global_mean_ + np.einsum(
            "ij,ij->i",
            self.user_factors_[user_codes[both]],
            self.item_factors_[item_codes[both]],
        )
        return self._clip_predictions(out)

    def _user_offsets(self, user_codes):
        return np.full(len(user_codes), self.global_mean_)

    _fold_in_priors = ("model",)

    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """SVD fold-in: each new user's row, filled and centred as in ``fit``,
        projected on the item factors, :math:`p = a V` (for a training user this
        gives back its row of ``user_factors_``).  Repeated items count once,
        with their mean rating; a user without a known item gets zeros."""
        V = self.item_factors_
        n, n_items = len(indptr) - 1, V.shape[0]
        rows = np.repeat(np.arange(n), np.diff(indptr))
        counts = sp.csr_matrix((np.ones(len(rows)), (rows, indices)), shape=(n, n_items))
        sums = sp.csr_matrix(
            (np.asarray(values, dtype=np.float64), (rows, indices)), shape=(n, n_items)
        )
        counts.sum_duplicates()
        sums.sum_duplicates()
        r = sums.data / counts.data
        cell_rows = np.repeat(np.arange(n), np.diff(sums.indptr))
        n_known = np.bincount(cell_rows, minlength=n)
        f = np.zeros(n)
        if self.impute == "user_mean":
            f = np.bincount(cell_rows, weights=r, minlength=n) / np.maximum(n_known, 1)
            f = np.where(n_known > 0, f - self.global_mean_, 0.0)
        g = self.item_offset_
        S = sp.csr_matrix(
            (r - self.global_mean_ - f[cell_rows] - g[sums.indices], sums.indices, sums.indptr),
            shape=(n, n_items),
        )
        P = S @ V + f[:, None] * V.sum(axis=0)[None, :] + (g @ V)[None, :]
        P[n_known == 0] = 0.0
        return np.ascontiguousarray(P, dtype=V.dtype), None
