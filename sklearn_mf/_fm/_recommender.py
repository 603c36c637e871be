"""``FMRecommender``: a factorization machine over user and item side tables."""

import copy
import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sklearn_mf._base import RatingRegressorMixin
from sklearn_mf._fm._estimators import FactorizationMachineRegressor
from sklearn_mf._fold_in import FoldInMixin, empirical_prior, ridge_fold_in
from sklearn_mf._ids import factorize_ids
from sklearn_mf._latent import LatentFactorMixin
from sklearn_mf._training import seen_matrix, undo_validation_on_error
from sklearn_mf._utils import check_finite_fit, effective_n_threads, make_rng
from sklearn_mf._validation import check_interactions
from sklearn_mf.model_selection import get_timestamps

# The parameters FMRecommender hands to its FactorizationMachineRegressor,
# with the regressor's constraints (clip_predictions is FMRecommender's own:
# the inner model never clips, ranking needs the raw scores).
FM_FORWARDED_PARAMS = (
    "n_factors",
    "solver",
    "n_epochs",
    "max_iter",
    "burn_in",
    "learning_rate",
    "learning_rate_schedule",
    "power_t",
    "regularization",
    "bias_regularization",
    "regularization_w0",
    "regularization_scaling",
    "fit_intercept",
    "init_std",
    "dtype",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "feature_groups",
    "sampler",
    "random_state",
    "n_jobs",
    "verbose",
)


def _encode_table(table, what):
    """Encode a side table (DataFrame indexed by raw id) as a CSR matrix.

    Numeric and boolean columns are used as given; any other column is one-hot
    encoded (one column per distinct value).  Returns ``(ids, matrix,
    feature_names)``.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"{what}_features must be a pandas DataFrame indexed by raw {what} id, "
            f"got {type(table).__name__}."
        )
    if not table.index.is_unique:
        dup = table.index[table.index.duplicated()][:5]
        raise ValueError(f"{what}_features has duplicated ids in its index, e.g. {list(dup)}.")
    blocks, names = [], []
    for col in table.columns:
        s = table[col]
        if s.isna().any():
            raise ValueError(
                f"{what}_features column {col!r} has {int(s.isna().sum())} missing value(s); "
                "fill or drop them first."
            )
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            vals = s.to_numpy(dtype=np.float64)
            if not np.all(np.isfinite(vals)):
                raise ValueError(f"{what}_features column {col!r} has infinite values.")
            blocks.append(sp.csr_matrix(vals[:, None]))
            names.append(f"{what}:{col}")
        else:
            codes, cats = pd.factorize(s.astype(str), sort=True)
            m = sp.csr_matrix(
                (np.ones(len(codes)), (np.arange(len(codes)), codes)),
                shape=(len(codes), len(cats)),
            )
            blocks.append(m)
            names.extend(f"{what}:{col}={c}" for c in cats)
    if blocks:
        M = sp.hstack(blocks, format="csr")
    else:
        M = sp.csr_matrix((len(table), 0))
    M.eliminate_zeros()
    return table.index.to_numpy(), M, names


class FMRecommender(FoldInMixin, LatentFactorMixin, RatingRegressorMixin, BaseEstimator):
    r"""Recommender on a factorization machine over user and item side features.

    Each rating of user :math:`u` for item :math:`i` becomes the feature vector
    :math:`x = [\,e_u;\ a_u;\ e_i;\ b_i\,]`: one-hot user and item ids
    (``use_ids=True``), the user's row :math:`a_u` of ``user_features`` and the
    item's row :math:`b_i` of ``item_features``.  A
    :class:`FactorizationMachineRegressor` is fitted on these vectors.
    Because every feature belongs either to the user block :math:`U` or to the
    item block :math:`I`, the FM score splits exactly into

    .. math::

        \hat r_{ui} = w_0 + c_u + c_i + \langle p_u, q_i \rangle, \qquad
        p_u = \sum_{j \in U} v_j x_j, \quad q_i = \sum_{j \in I} v_j x_j,

    with :math:`c_u = \sum_{j\in U} w_j x_j + \sum_{j<l \in U} \langle v_j,
    v_l\rangle x_j x_l` (and :math:`c_i` alike).  The embeddings :math:`p_u`,
    :math:`q_i` and offsets :math:`c_u`, :math:`c_i` are computed once per user
    and item after ``fit``, so ``recommend`` ranks the whole catalogue with a
    matrix product and a partial sort, like :class:`MatrixFactorization`.

    Users known only by a few ratings given after ``fit`` are served by
    :meth:`fold_in` / :meth:`recommend_new`: the item side is fixed and the
    new user's id weight and latent vector are solved in closed form (the
    ALS subproblem of a user-id column).

    Cold start comes for free: a user listed in ``user_features`` but absent
    from the training ratings has no id column, so :math:`p_u` and :math:`c_u`
    come from the profile alone; the same holds for an item listed in
    ``item_features`` without ratings.  Such users and items are part of
    ``users_`` / ``items_``, get scores from ``predict`` and ``recommend``, and
    items without ratings are ranked among the candidates.

    Parameters
    ----------
    n_factors : int, default=8
        Dimension of the latent vectors.
    user_features : DataFrame or None, default=None
        One row per user, indexed by raw user id.  Numeric and boolean columns
        are used as given (scale them, e.g. 0/1 indicators, standardised
        values or bins); other columns are one-hot encoded.  Users without a
        row have an all-zero profile.  NaN raises ``ValueError``.
    item_features : DataFrame or None, default=None
        The same for items (e.g. genre indicators).
    use_ids : bool, default=True
        Include one-hot user and item ids (without them the model is a pure
        content model).
    user_id_dropout : float in [0, 1), default=0.0
        Fraction of training rows in which the user id is left out of the
        feature vector, as in DropoutNet (Volkovs et al. 2017).  These rows
        teach the model to score from the profile alone, which is how a user
        without ratings is scored; useful when user cold start matters.  Only
        acts on users that have a ``user_features`` row.
    item_id_dropout : float in [0, 1), default=0.0
        The same for item ids (item cold start).
    solver : {"als", "sgd", "mcmc"}, default="als"
        See :class:`FactorizationMachineRegressor`.  ``"mcmc"`` (Bayesian FM
        by Gibbs sampling) needs no penalty: the ``regularization*``
        parameters are not used, and :meth:`fold_in` shrinks a new user
        towards the average trained user: the mean and variance of the
        trained users' id weights and latent vectors serve as its prior,
        against the model's noise variance (empirical Bayes), so that one
        or two ratings move it only a little.
    n_epochs : int, default=100
        Maximum epochs of ``"sgd"``.
    implicit_features : {None, "user", "item", "both"}, default=None
        ``solver="mcmc"`` only: implicit-feedback blocks.  ``"user"`` adds to
        every rating of user :math:`u` the set :math:`N(u)` of items she rated,
        with weights :math:`|N(u)|^{-1/2}` and a prior group of its own:
        Bayesian SVD++ (Rendle, Zhang & Koren 2019), whose user embedding is
        :math:`p_u = v_u + |N(u)|^{-1/2}\sum_{j\in N(u)} y_j`.  ``"item"``
        adds the set of users who rated the item (the "flipped" form),
        ``"both"`` both.  The sets come from the training interactions only
        (with positive weight), never from the rows passed to ``predict``, so
        that cross-validated scores are honest (myfm's example script builds
        them from all the ratings, test set included, by default).  The
        sampler treats each set as a relational block (per-user sums), so a
        sweep stays linear in the number of ratings.
    time_bins : int or None, default=None
        ``solver="mcmc"`` only: time effects from the ``timestamp`` column of
        ``X`` (a DataFrame column named ``timestamp``, else column 2): the
        training time range is cut into ``time_bins`` equal-width bins, and
        every rating gets two one-hot features, its bin and its (item, bin)
        pair (as timeSVD++'s :math:`b_{i,\mathrm{Bin}(t)}`), each group with
        its own prior; both also carry a latent vector, so items' biases and
        interactions drift by bin.  ``predict`` places each row in its bin
        (times outside the training range go to the first or last bin);
        ``recommend`` ranks for the last bin (the present).
    max_iter : int, default=100
        Maximum sweeps of ``"als"``; the sweeps of ``"mcmc"``.
    burn_in : int or float, default=0.05
        ``"mcmc"`` only: sweeps discarded before averaging (a float is a
        fraction of ``max_iter``).  With ``"mcmc"``, every block of the
        design matrix (user ids, item ids, each one-hot side column) gets
        its own prior (``feature_groups="auto"`` of the regressor).
    learning_rate : float, default=0.01
        SGD step size (unused by ALS).
    learning_rate_schedule : {"constant", "invscaling"}, default="constant"
        SGD step schedule; see :class:`FactorizationMachineRegressor`.
    power_t : float, default=0.5
        Exponent of the ``"invscaling"`` schedule.
    regularization : float, default=0.1
        L2 penalty on the latent vectors (per occurrence by default: 0.1
        suits MovieLens-like ratings with the ALS solver).
    bias_regularization : float or None, default=None
        L2 penalty on the linear weights (the user and item biases); None
        uses ``regularization``.
    regularization_w0 : float, default=0.0
        L2 penalty on the intercept.
    regularization_scaling : {"occurrence", "none"}, default="occurrence"
        Penalty per occurrence of a feature or once per parameter; see
        :class:`FactorizationMachineRegressor`.
    fit_intercept : bool, default=True
        Learn the intercept :math:`w_0` (else it is 0).
    init_std : float, default=0.1
        Standard deviation of the initial latent vectors.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the parameters.
    early_stopping : bool, default=False
        Early stopping on a held-out fraction of the ratings.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    n_iter_no_change : int, default=5
        Patience of the stopping criteria.
    tol : float or None, default=1e-4
        Stopping tolerance (see :class:`FactorizationMachineRegressor`).
    feature_groups : "auto", array-like of int or None, default="auto"
        ``"mcmc"`` only: the prior groups of the design-matrix columns (see
        :class:`FactorizationMachineRegressor`); ``"auto"`` gives the user
        ids, the item ids and each one-hot side column their own prior.
    sampler : {"mixed", "blocked", "coordinate"}, default="mixed"
        ``"mcmc"`` only: joint or one-at-a-time draws (see
        :class:`FactorizationMachineRegressor`); ``"mixed"`` draws the id
        and side columns jointly and the ``implicit_features`` blocks
        coordinate by coordinate (O(ratings k) per sweep).
    clip_predictions : bool, default=True
        Clip ``predict`` to the range of training ratings (``recommend``
        returns the unclipped scores).
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for a user (item) neither rated in ``fit`` nor listed in
        the side table: ``"fallback"`` scores it as an all-zero feature block,
        i.e. :math:`w_0 + c_i` (:math:`w_0 + c_u`; :math:`w_0` for both),
        ``"nan"`` returns NaN, ``"error"`` raises.  ``recommend`` serves such
        users from item popularity.
    random_state : int, RandomState instance or None, default=None
        Seeds the FM's initialisation and order.
    n_jobs : int or None, default=None
        Threads for prediction and ranking.
    verbose : int, default=0
        Per-epoch progress of the FM.

    Attributes
    ----------
    fm_ : FactorizationMachineRegressor
        The fitted model on the design matrix.
    feature_names_ : list of str
        Names of the design-matrix columns (``user=<id>``, ``user:<col>``, ...).
    user_embeddings_ : ndarray of shape (n_users, n_factors)
        :math:`p_u` for every user of ``users_``.
    user_offsets_ : ndarray of shape (n_users,)
        :math:`c_u`.
    item_embeddings_ : ndarray of shape (n_items, n_factors)
        :math:`q_i` for every item of ``items_``.
    item_offsets_ : ndarray of shape (n_items,)
        :math:`c_i`.
    intercept_ : float
        :math:`w_0`.
    users_ : ndarray of shape (n_users,)
        Raw user ids: those of the training ratings and of ``user_features``.
    items_ : ndarray of shape (n_items,)
        Raw item ids: those of the training ratings and of ``item_features``.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training ratings (excluded by ``recommend(exclude_seen=True)``).
    item_popularity_ : ndarray of shape (n_items,)
        Training ratings per item (0 for feature-only items).
    rating_range_ : tuple of float
        Smallest and largest training rating.
    n_iter_ : int
        Epochs run by the FM.
    loss_curve_ : list of float
        The FM's objective per epoch.
    n_features_in_ : int
        Number of columns of the interaction table ``X``.

    See Also
    --------
    FactorizationMachineRegressor : The FM on an arbitrary feature matrix.
    MatrixFactorization : The ids-only special case, trained by SGD.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn_mf import FMRecommender
    >>> users = pd.DataFrame({"age_group": ["young", "young", "old", "old"]},
    ...                      index=["ann", "bob", "cat", "dan"])
    >>> items = pd.DataFrame({"kids": [1, 1, 0, 0]}, index=["up", "cars", "heat", "jaws"])
    >>> X = [("ann", "up"), ("ann", "heat"), ("bob", "cars"), ("cat", "heat"),
    ...      ("cat", "up")]
    >>> y = [5, 1, 5, 5, 1]
    >>> rec = FMRecommender(n_factors=2, user_features=users, item_features=items,
    ...                     regularization=0.01, random_state=0,
    ...                     tol=None, max_iter=30).fit(X, y)
    >>> items, scores = rec.recommend(["dan"], n=4)   # profile only, no ratings
    >>> items.shape
    (1, 4)
    """

    _parameter_constraints: dict = {
        "user_features": [pd.DataFrame, None],
        "item_features": [pd.DataFrame, None],
        "use_ids": ["boolean"],
        "user_id_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "item_id_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        **{
            name: FactorizationMachineRegressor._parameter_constraints[name]
            for name in FM_FORWARDED_PARAMS
        },
        "implicit_features": [StrOptions({"user", "item", "both"}), None],
        "time_bins": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "clip_predictions": ["boolean"],
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
    }

    def __init__(
        self,
        n_factors=8,
        *,
        user_features=None,
        item_features=None,
        use_ids=True,
        user_id_dropout=0.0,
        item_id_dropout=0.0,
        solver="als",
        n_epochs=100,
        implicit_features=None,
        time_bins=None,
        max_iter=100,
        burn_in=0.05,
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
        feature_groups="auto",
        sampler="mixed",
        clip_predictions=True,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.user_features = user_features
        self.item_features = item_features
        self.use_ids = use_ids
        self.user_id_dropout = user_id_dropout
        self.item_id_dropout = item_id_dropout
        self.solver = solver
        self.n_epochs = n_epochs
        self.implicit_features = implicit_features
        self.time_bins = time_bins
        self.max_iter = max_iter
        self.burn_in = burn_in
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
        self.feature_groups = feature_groups
        self.sampler = sampler
        self.clip_predictions = clip_predictions
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _block(self, n_all, train_codes, table, codes_of_table, ids, what):
        """Feature block (n_all x n_cols) of users or items, and column names."""
        parts, names = [], []
        if self.use_ids:
            seen = np.unique(train_codes)
            col = np.full(n_all, -1, dtype=np.intp)
            col[seen] = np.arange(len(seen))
            rows = np.flatnonzero(col >= 0)
            parts.append(
                sp.csr_matrix((np.ones(len(rows)), (rows, col[rows])), shape=(n_all, len(seen)))
            )
            names.extend(f"{what}={ids[c]}" for c in seen)
        if table is not None:
            M = table[1]
            # rows of the table in code order; users without a row get zeros
            P = sp.csr_matrix(
                (np.ones(len(codes_of_table)), (codes_of_table, np.arange(len(codes_of_table)))),
                shape=(n_all, M.shape[0]),
            )
            parts.append((P @ M).tocsr())
            names.extend(table[2])
        if not parts:
            return sp.csr_matrix((n_all, 0)), names
        return sp.hstack(parts, format="csr"), names

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the FM to the ratings ``y`` of the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
        y : array-like of shape (n_ratings,)
            Ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weights of the ratings in the squared error.

        Returns
        -------
        self : FMRecommender
            The fitted estimator.
        """
        users, items, y, sample_weight = check_interactions(
            self, X, y, sample_weight, reset=True, y_required=True
        )
        if not self.use_ids and self.user_features is None and self.item_features is None:
            raise ValueError("use_ids=False needs user_features and/or item_features.")
        for name in ("implicit_features", "time_bins"):
            if getattr(self, name) is not None and self.solver != "mcmc":
                raise ValueError(
                    f"{name}={getattr(self, name)!r} needs solver='mcmc', "
                    f"got solver={self.solver!r}."
                )
        if self.implicit_features is not None and self.early_stopping:
            raise ValueError(
                "implicit_features does not support early_stopping=True "
                "(the sampler keeps every draw after burn_in)."
            )
        utab = None if self.user_features is None else _encode_table(self.user_features, "user")
        itab = None if self.item_features is None else _encode_table(self.item_features, "item")
        n = len(users)
        all_users = (
            users
            if utab is None
            else np.concatenate([users.astype(object), utab[0].astype(object)])
        )
        all_items = (
            items
            if itab is None
            else np.concatenate([items.astype(object), itab[0].astype(object)])
        )
        u_all, users_ = factorize_ids(_uniform(all_users))
        i_all, items_ = factorize_ids(_uniform(all_items))
        u, i = u_all[:n], i_all[:n]
        n_users, n_items = len(users_), len(items_)
        # id columns for users/items with positively weighted ratings only
        pos = slice(None) if sample_weight is None else sample_weight > 0
        Bu, un = self._block(
            n_users, u[pos], utab, None if utab is None else u_all[n:], users_, "user"
        )
        Bi, inames = self._block(
            n_items, i[pos], itab, None if itab is None else i_all[n:], items_, "item"
        )
        n_uid = sum(name.startswith("user=") for name in un)
        n_iid = sum(name.startswith("item=") for name in inames)
        parts = [Bu[u], Bi[i]]
        if self.time_bins is not None:
            parts.append(self._fit_time_features(X, i))
        design = sp.hstack(parts, format="csr")
        if (self.user_id_dropout > 0 or self.item_id_dropout > 0) and self.use_ids:
            design = self._drop_ids(
                design,
                u,
                i,
                u_all[n:] if utab else None,
                i_all[n:] if itab else None,
                n_uid,
                Bu.shape[1],
                n_iid,
            )
        implicit = self._implicit_sets(u[pos], i[pos], n_users, n_items)
        fm = FactorizationMachineRegressor(
            **{name: getattr(self, name) for name in FM_FORWARDED_PARAMS},
            clip_predictions=False,
        )
        if implicit:
            fm._validate_params()
            fm._fit_regression(
                design,
                y,
                sample_weight,
                blocks=[(u if side == "user" else i, B) for side, B in implicit.items()],
            )
        else:
            fm.fit(design, y, sample_weight=sample_weight)
        k = Bu.shape[1]
        # fitted: set the attributes
        self._set_ids(users_, items_)
        self.user_items_, self.item_popularity_ = seen_matrix(u, i, y, n_users, n_items)
        self.rating_range_ = (float(y.min()), float(y.max()))
        self.feature_names_ = un + inames
        self._n_user_id_cols, self._n_item_id_cols, self._n_user_cols = n_uid, n_iid, k
        self.fm_ = fm
        self.n_iter_ = fm.n_iter_
        self.loss_curve_ = fm.loss_curve_
        self.intercept_ = fm.intercept_
        self._set_blocks(Bu, Bi, implicit)
        self._fold_in_prior = (
            self._id_block_prior(1.0 / fm.noise_precision_)
            if self.solver == "mcmc" and self.use_ids
            else None
        )
        check_finite_fit(self)
        return self

    def _set_blocks(self, Bu, Bi, implicit=None):
        """Keep the feature blocks and the per-user / per-item terms of the FM
        (with the implicit-feedback sets and the time block, when fitted)."""
        implicit = implicit or {}
        ku, ki = self._n_user_cols, Bi.shape[1]
        w, V = self.fm_.w_.astype(np.float64), self.fm_.V_.astype(np.float64)
        # the implicit sets are user (item) features: the same terms as a side table
        self._implicit = {
            side: (B, wb.astype(np.float64), Vb.astype(np.float64))
            for (side, B), (wb, Vb) in zip(
                implicit.items(), getattr(self.fm_, "_relational", None) or ()
            )
        }
        sides = {"user": (Bu, w[:ku], V[:ku]), "item": (Bi, w[ku : ku + ki], V[ku : ku + ki])}
        for side, (B, wb, Vb) in self._implicit.items():
            Bs, ws, Vs = sides[side]
            sides[side] = (
                sp.hstack([Bs, B], format="csr"),
                np.concatenate([ws, wb]),
                np.vstack([Vs, Vb]),
            )
        self.user_embeddings_, self.user_offsets_ = _block_terms(*sides["user"])
        self.item_embeddings_, self.item_offsets_ = _block_terms(*sides["item"])
        self._time_params = (w[ku + ki :], V[ku + ki :])
        self._user_block, self._item_block = Bu, Bi

    # ------------------------------------------------------------ online
    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def partial_fit(self, X, y, sample_weight=None):
        r"""Update the model with new ratings, growing it for unseen ids.

        As for the other SGD models (:mod:`sklearn_mf._online`): users and
        items never seen before are appended to ``users_`` / ``items_`` and
        get a new id feature (weight 0, factors from
        :math:`\mathcal N(0, 	ext{init\_std}^2)`; no side features, since
        the side tables were read in ``fit``), the ratings join
        ``user_items_``, and 5 SGD epochs of the factorization machine run
        over the new ratings plus as many old ones replayed, whatever the
        solver of ``fit`` (``learning_rate`` is the step).  The Bayesian
        solver keeps posterior draws, which SGD cannot update:
        ``solver="mcmc"`` refuses (refit, or serve new users with
        :meth:`recommend_new`).  With ``use_ids=False`` new users and items
        have no feature at all and only old ones move.  On an unfitted model
        this is ``fit``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_ratings, n_columns)
            New interactions (user id, item id, ...).
        y : array-like of shape (n_ratings,)
            Their ratings.
        sample_weight : array-like of shape (n_ratings,), default=None
            Weights of the new ratings (replayed ratings get weight 1).

        Returns
        -------
        self : FMRecommender
            The updated estimator.

        Examples
        --------
        >>> from sklearn_mf import FMRecommender
        >>> from sklearn_mf.datasets import make_ratings
        >>> X, y = make_ratings(n_users=40, n_items=30, n_ratings=400, random_state=0)
        >>> fm = FMRecommender(4, solver="sgd", max_iter=5, random_state=0).fit(X, y)
        >>> fm = fm.partial_fit([[1000, X[0, 1]], [1000, X[1, 1]]], [5.0, 1.0])
        >>> 1000 in fm.users_
        True
        """
        from sklearn_mf._fm import _fm_fast
        from sklearn_mf._fm._estimators import _LOSS
        from sklearn_mf._online import (
            PARTIAL_FIT_PASSES,
            PARTIAL_FIT_REPLAY,
            grow_and_replay,
            online_rng,
        )

        if not hasattr(self, "fm_"):
            return self.fit(X, y, sample_weight)
        if self.solver == "mcmc":
            raise ValueError(
                "FMRecommender(solver='mcmc') keeps posterior draws, which partial_fit "
                "cannot update: refit, or serve new users with recommend_new."
            )
        users, items, y, sample_weight = check_interactions(
            self, X, y, sample_weight, reset=False, y_required=True
        )
        n_calls = getattr(self, "_n_partial_fit_calls", 0) + 1
        rng = online_rng(self.random_state, n_calls)
        batch = grow_and_replay(self, users, items, y, sample_weight, [], PARTIAL_FIT_REPLAY, rng)
        u, i, yy, w, n_new = (
            batch.user_codes,
            batch.item_codes,
            batch.y,
            batch.sample_weight,
            batch.n_new,
        )
        self._set_ids(batch.users, batch.items)
        self.user_items_, self.item_popularity_ = batch.user_items, batch.item_popularity
        self.rating_range_ = batch.rating_range
        self._n_partial_fit_calls = n_calls
        fm = copy.copy(self.fm_)  # the update replaces its arrays: self.fm_ stays intact
        fm._w0 = fm._w0.copy()
        # rated users / items without an id column (new, or known from a side
        # table only) get one
        need_u = self._without_id_column(u[:n_new], self._user_block, self._n_user_id_cols)
        need_i = self._without_id_column(i[:n_new], self._item_block, self._n_item_id_cols)
        add_u, add_i = len(need_u), len(need_i)
        Bu, Bi = self._grow_blocks(need_u, need_i)
        # new id columns: after the old ids of their block
        ku, kui = self._n_user_cols, self._n_user_id_cols
        kii = self._n_item_id_cols
        old_cols = np.r_[
            np.arange(kui),
            kui + add_u + np.arange(ku - kui),
            ku + add_u + np.arange(kii),
            ku + add_u + kii + add_i + np.arange(fm.w_.shape[0] - ku - kii),
        ]
        d = fm.w_.shape[0] + add_u + add_i
        w_new = np.zeros(d, dtype=fm.w_.dtype)
        V_new = rng.normal(0, self.init_std, (d, fm.V_.shape[1])).astype(fm.V_.dtype)
        w_new[old_cols], V_new[old_cols] = fm.w_, fm.V_
        fm.w_, fm.V_ = w_new, np.ascontiguousarray(V_new)
        fm.n_features_in_ = d
        self._n_user_id_cols += add_u
        self._n_item_id_cols += add_i
        self._n_user_cols += add_u
        self.feature_names_ = (
            self.feature_names_[:kui]
            + [f"user={v}" for v in self.users_[need_u]]
            + self.feature_names_[kui : ku + kii]
            + [f"item={v}" for v in self.items_[need_i]]
            + self.feature_names_[ku + kii :]
        )

        design = sp.hstack([Bu[u], Bi[i]], format="csr", dtype=fm.w_.dtype)
        design.indices = design.indices.astype(np.intp)
        design.indptr = design.indptr.astype(np.intp)
        dtype = fm.w_.dtype.type
        counts = np.bincount(design.indices, minlength=d).astype(np.float64)
        occurrence = fm.regularization_scaling == "occurrence"
        with np.errstate(divide="ignore", invalid="ignore"):
            row_scale = np.where(counts > 0, (1.0 if occurrence else 1.0 / counts), 0.0)
        n = design.shape[0]
        swt = np.zeros(0, dtype=dtype) if w is None else w.astype(dtype)
        reg_w = fm.regularization if fm.bias_regularization is None else fm.bias_regularization
        q = np.zeros(fm.V_.shape[1], dtype=dtype)
        self.loss_curve_ = []
        for epoch in range(1, PARTIAL_FIT_PASSES + 1):
            order = rng.permutation(n).astype(np.intp)
            loss, n_bad = _fm_fast.sgd_epoch(
                design.data,
                design.indices,
                design.indptr,
                yy.astype(dtype),
                swt,
                order,
                fm._w0,
                fm.w_,
                fm.V_,
                row_scale.astype(dtype),
                1.0 if occurrence else 1.0 / n,
                fm.regularization_w0,
                reg_w,
                fm.regularization,
                self.learning_rate,
                _LOSS[fm._loss_name],
                fm.fit_intercept,
                q,
            )
            if n_bad:
                raise FloatingPointError(
                    f"FMRecommender.partial_fit diverged in epoch {epoch}; use a smaller "
                    f"learning_rate (now {self.learning_rate})."
                )
            self.loss_curve_.append(float(loss / (n if w is None else w.sum())))
        self.n_iter_ = PARTIAL_FIT_PASSES
        fm.intercept_ = self.intercept_ = float(fm._w0[0])
        self.fm_ = fm
        self._set_blocks(Bu, Bi)
        check_finite_fit(self)
        return self

    def _without_id_column(self, codes, B, n_ids):
        """Distinct ``codes`` whose row of block ``B`` has no id feature."""
        if not self.use_ids:
            return np.zeros(0, dtype=np.intp)
        codes = np.unique(codes)
        has = np.zeros(len(codes), dtype=bool)
        inside = codes < B.shape[0]
        has[inside] = np.diff(sp.csr_matrix(B[:, :n_ids]).indptr)[codes[inside]] > 0
        return codes[~has].astype(np.intp)

    def _grow_blocks(self, need_u, need_i):
        """User and item feature blocks with rows for the ids appended by
        ``partial_fit`` and a new id column for each of ``need_u`` / ``need_i``
        (after the old id columns)."""
        out = []
        for B, n_ids, need, n_rows in (
            (self._user_block, self._n_user_id_cols, need_u, len(self.users_)),
            (self._item_block, self._n_item_id_cols, need_i, len(self.items_)),
        ):
            B = sp.csr_matrix(B)
            n_new_rows = n_rows - B.shape[0]
            ids, rest = B[:, :n_ids], B[:, n_ids:]
            eye = sp.csr_matrix(
                (np.ones(len(need)), (need, np.arange(len(need)))), shape=(n_rows, len(need))
            )
            grown = sp.hstack(
                [
                    sp.vstack([ids, sp.csr_matrix((n_new_rows, n_ids))]),
                    eye,
                    sp.vstack([rest, sp.csr_matrix((n_new_rows, rest.shape[1]))]),
                ],
                format="csr",
            )
            out.append(grown)
        return out

    def _implicit_sets(self, u, i, n_users, n_items):
        """The implicit-feedback blocks of ``implicit_features`` from the
        training pairs ``(u, i)``: {"user": B (n_users x n_items), "item": B
        (n_items x n_users)}, each row the normalised set of its partners."""
        sides = {"user": ("user",), "item": ("item",), "both": ("user", "item"), None: ()}[
            self.implicit_features
        ]
        out = {}
        for side in sides:
            rows, cols, shape = (
                (u, i, (n_users, n_items)) if side == "user" else (i, u, (n_items, n_users))
            )
            out[side] = normalised_sets(rows, cols, shape, np.dtype(self.dtype))
        return out

    # ------------------------------------------------------------- time
    def _fit_time_features(self, X, item_codes):
        """The time block of the training rows (bin and (item, bin) one-hots)."""
        t = get_timestamps(X)[0].astype(np.float64)
        self._time_range = (float(t.min()), float(t.max()))
        bins = self._time_bin(t)
        self._item_bins = np.unique(item_codes * self.time_bins + bins)
        return self._time_design(bins, item_codes)

    def _time_bin(self, t):
        lo, hi = self._time_range
        width = (hi - lo) / self.time_bins
        if not width > 0:
            return np.zeros(len(t), dtype=np.intp)
        return np.clip(np.floor((t - lo) / width), 0, self.time_bins - 1).astype(np.intp)

    def _time_columns(self, bins, item_codes):
        """Column of each row's bin and of its (item, bin) pair (-1 if unseen)
        in the time block."""
        pairs = item_codes * self.time_bins + bins
        pos = np.minimum(np.searchsorted(self._item_bins, pairs), len(self._item_bins) - 1)
        found = (item_codes >= 0) & (self._item_bins[pos] == pairs)
        return bins, np.where(found, self.time_bins + pos, -1)

    def _time_design(self, bins, item_codes):
        cb, cib = self._time_columns(bins, item_codes)
        has = np.flatnonzero(cib >= 0)
        rows = np.concatenate([np.arange(len(bins)), has])
        cols = np.concatenate([cb, cib[has]])
        return sp.csr_matrix(
            (np.ones(len(rows)), (rows, cols)),
            shape=(len(bins), self.time_bins + len(self._item_bins)),
        )

    def _time_terms(self, bins, item_codes, emb):
        """The time block's share of the rows' scores, given each row's other
        factor sums ``emb`` (p_u + q_i), and its factor sums."""
        w, V = self._time_params
        cb, cib = self._time_columns(bins, item_codes)
        has = cib >= 0
        ci = np.where(has, cib, 0)
        Vib = V[ci] * has[:, None]
        z = V[cb] + Vib
        lin = w[cb] + np.where(has, w[ci], 0.0)
        return lin + np.einsum("ij,ij->i", V[cb], Vib) + np.einsum("ij,ij->i", z, emb), z

    def _present_items(self):
        """Item embeddings and offsets (with w0) for ranking: with time
        effects, at the last training bin."""
        Q, off = self.item_embeddings_, self.item_offsets_ + self.intercept_
        if self.time_bins is None:
            return Q, off
        codes = np.arange(len(self.items_))
        extra, z = self._time_terms(np.full(len(codes), self.time_bins - 1), codes, Q)
        return Q + z, off + extra

    def _drop_ids(self, design, u, i, u_tab_codes, i_tab_codes, n_uid, n_user_cols, n_iid):
        """Zero the id column in a random ``user_id_dropout`` (``item_id_dropout``)
        fraction of the rows, for users (items) that have a side-table row."""
        rng = make_rng(self.random_state)
        n = design.shape[0]
        drop_cols = []
        for codes, tab_codes, lo, n_ids, frac in (
            (u, u_tab_codes, 0, n_uid, self.user_id_dropout),
            (i, i_tab_codes, n_user_cols, n_iid, self.item_id_dropout),
        ):
            if tab_codes is None or frac == 0:
                continue
            has_profile = np.zeros(codes.max() + 1, dtype=bool)
            tab_codes = tab_codes[tab_codes <= codes.max()]
            has_profile[tab_codes] = True
            rows = rng.random(n) < frac
            drop_cols.append((rows & has_profile[codes], lo, lo + n_ids))
        design = design.tocsr(copy=True)
        row_of = np.repeat(np.arange(n), np.diff(design.indptr))
        kill = np.zeros(design.nnz, dtype=bool)
        for rows, lo, hi in drop_cols:
            kill |= rows[row_of] & (design.indices >= lo) & (design.indices < hi)
        design.data[kill] = 0
        design.eliminate_zeros()
        return design

    # ------------------------------------------------------------ scoring
    def predict(self, X):
        """Score each (user, item) row of ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids; with ``time_bins``, the
            timestamps too (as in ``fit``); other columns are ignored.

        Returns
        -------
        y_pred : ndarray of shape (n_interactions,)
            Predictions; unknown ids follow ``handle_unknown``.  A row's
            score depends on that row only (the implicit sets are those of
            ``fit``).
        """
        if self.time_bins is None:
            return super().predict(X)
        check_is_fitted(self)
        users, items, _, _ = check_interactions(self, X, reset=False)
        u, i = self._user_codes(users), self._item_codes(items)
        self._check_unknown(u, i)
        bins = self._time_bin(get_timestamps(X)[0].astype(np.float64))
        pred = self._predict_codes(u, i, bins)
        if self.handle_unknown == "nan":
            pred[(u < 0) | (i < 0)] = np.nan
        return pred

    def _predict_codes(self, user_codes, item_codes, bins=None):
        ku, ki = user_codes >= 0, item_codes >= 0
        uc, ic = np.where(ku, user_codes, 0), np.where(ki, item_codes, 0)
        out = (
            self.intercept_
            + np.where(ku, self.user_offsets_[uc], 0.0)
            + np.where(ki, self.item_offsets_[ic], 0.0)
        )
        # in row blocks: the gathered embeddings of a block stay small even
        # when they are wide (an MCMC model keeps n_factors x n_samples_)
        step = max(1, (1 << 22) // max(self.user_embeddings_.shape[1], 1))
        for lo in range(0, len(out), step):
            sl = slice(lo, lo + step)
            both = ku[sl] & ki[sl]
            out[sl][both] += np.einsum(
                "ij,ij->i", self.user_embeddings_[uc[sl][both]], self.item_embeddings_[ic[sl][both]]
            )
            if bins is not None:
                emb = (
                    self.user_embeddings_[uc[sl]] * ku[sl, None]
                    + self.item_embeddings_[ic[sl]] * ki[sl, None]
                )
                out[sl] += self._time_terms(bins[sl], np.where(ki[sl], ic[sl], -1), emb)[0]
        return self._clip_predictions(out)

    def _user_embeddings(self, user_codes):
        return self.user_embeddings_[user_codes]

    def _item_embeddings(self):
        return self._present_items()

    def _user_offsets(self, user_codes):
        return self.user_offsets_[user_codes]

    # ------------------------------------------------------------ fold-in
    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        r"""A new user is a fresh user-id feature (no profile), items fixed.

        ALS and SGD: solves, per user, :math:`\min_{w, v} \sum_i (r_{ui} - w_0
        - c_i - w - \langle v, q_i\rangle)^2 + m (\lambda_w w^2 + \lambda_V
        \lVert v\rVert^2)` with :math:`m` the user's number of ratings
        (``regularization_scaling="occurrence"``) or 1 (``"none"``): exactly the
        subproblem ALS solves for a user-id column.

        MCMC, or ``prior="empirical"``: the same least squares with an
        empirical-Bayes prior instead of the penalty:
        :math:`v \sim N(\bar v, \sigma_v^2 I)` and
        :math:`w \sim N(\bar w, \sigma_w^2)`, the mean and variance of the
        trained users' id parameters, against the noise variance (the MCMC
        model's :math:`1/\alpha`, else the mean squared training residual);
        the posterior mean is a ridge regression towards
        the average user with penalties :math:`1/(\alpha \sigma^2)` that do
        not shrink with the number of ratings, so that one or two ratings
        move the user only a little.
        """
        eb = getattr(self, "_fold_in_prior", None)
        if eb is None and prior == "empirical":
            eb = self._id_block_prior(self._training_noise_variance())
            if eb is None:
                raise ValueError("prior='empirical' needs user ids in the model (use_ids=True).")
        Q, offset = self._present_items()
        Q = np.ascontiguousarray(Q, dtype=self.fm_.V_.dtype)
        implicit_user = "user" in self._implicit
        if implicit_user:
            # the history is the new user's implicit set: its terms (s, T)
            # move the targets and are added to the solved id parameters
            s_new, T_new = _set_terms(indptr, indices, Q.shape[0], *self._implicit["user"][1:])
            rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            values = (
                np.asarray(values, dtype=np.float64)
                - T_new[rows]
                - np.einsum("ij,ij->i", s_new[rows], Q[indices].astype(np.float64))
            )
        reg = self.regularization
        P, b = ridge_fold_in(
            indptr,
            indices,
            values,
            Q,
            offset,
            regularization=reg,
            bias_regularization=(
                reg if self.bias_regularization is None else self.bias_regularization
            ),
            per_rating=self.regularization_scaling == "occurrence",
            fit_bias=True,
            prior=eb,
            n_threads=effective_n_threads(self.n_jobs),
        )
        if implicit_user:
            P += s_new.astype(P.dtype)
            b += T_new.astype(b.dtype)
        return P, b

    def _id_block_prior(self, noise_var):
        """Mean and precision (relative to ``noise_var``) of the trained users'
        id parameters, for the empirical-Bayes fold-in; None without ids."""
        n_ids = self._n_user_id_cols
        if n_ids < 2:
            return None
        return empirical_prior(self.fm_.V_[:n_ids], self.fm_.w_[:n_ids], noise_var)

    def _new_user_offsets(self, biases):
        # item offsets already hold w0; the folded-in linear weight is the rest
        return biases.astype(np.float64)

    def design_matrix(self, X):
        """The FM feature matrix of interaction rows ``X`` (as used in ``fit``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids.

        Returns
        -------
        design : scipy.sparse.csr_matrix of shape (n_interactions, len(feature_names_))
            Unknown users or items give all-zero blocks.  The implicit sets
            (``implicit_features``) and time features (``time_bins``) are
            not part of it: the sets are kept per user and item, never as
            rows.
        """
        check_is_fitted(self)
        users, items, _, _ = check_interactions(self, X, reset=False)
        u, i = self._user_codes(users), self._item_codes(items)
        Bu = self._user_block[np.where(u >= 0, u, 0)].multiply((u >= 0)[:, None])
        Bi = self._item_block[np.where(i >= 0, i, 0)].multiply((i >= 0)[:, None])
        return sp.hstack([Bu, Bi], format="csr")


def _uniform(values):
    """Give an object array of ids one dtype when all ids share one."""
    arr = np.asarray(values)
    if arr.dtype != object or len(arr) == 0:
        return arr
    if pd.api.types.infer_dtype(arr, skipna=False) not in ("integer", "floating", "string"):
        return arr  # mixed types (1 and "1") stay distinct objects
    try:
        typed = np.asarray(arr.tolist())
    except (TypeError, ValueError):
        return arr
    if typed.dtype.kind in "iufUSb" and typed.shape == arr.shape:
        return typed
    return arr


def normalised_sets(rows, cols, shape, dtype):
    """CSR of shape ``shape`` with row r holding the distinct ``cols`` paired
    with r, each weighted ``1 / sqrt(count)`` (SVD++'s normalisation)."""
    M = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
    M.sum_duplicates()
    counts = np.diff(M.indptr)
    M.data = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts).astype(dtype)
    return M


def _set_terms(indptr, indices, n_cols, w, V):
    """``(s, T)`` of new rows of a block: the normalised sets of the distinct
    ``indices`` of each CSR row, their factor sums and scalar terms."""
    indptr = np.asarray(indptr)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    B = normalised_sets(rows, np.asarray(indices), (len(indptr) - 1, n_cols), np.float64)
    s, T = _block_terms(B, w, V)
    return s, T


def _block_terms(B, w, V):
    """Per-row factor sums and within-block terms of a feature block."""
    B = sp.csr_matrix(B, dtype=np.float64)
    P = np.asarray(B @ V)
    sq = np.asarray(B.multiply(B) @ (V * V)).sum(axis=1)
    offset = np.asarray(B @ w).ravel() + 0.5 * ((P * P).sum(axis=1) - sq)
    return np.ascontiguousarray(P), offset
