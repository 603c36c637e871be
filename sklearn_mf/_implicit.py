"""Recommenders for implicit feedback (clicks, plays, purchases): ``ImplicitALS``."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_mf._als import (
    csr_to_rowmatrix,
    gram,
    grow_rows,
    implicit_confidences,
    implicit_half_step,
    partial_fit_implicit_als,
    run_implicit_als,
    sum_duplicates_csr,
)
from sklearn_mf._base import ImplicitRecommenderMixin
from sklearn_mf._fold_in import FoldInMixin
from sklearn_mf._ids import factorize_ids
from sklearn_mf._latent import LatentFactorMixin
from sklearn_mf._online import grow_ids, merge_interactions
from sklearn_mf._progress import SetupTimer
from sklearn_mf._training import (
    FittedLoopMixin,
    check_strengths,
    seen_matrix,
    undo_validation_on_error,
)
from sklearn_mf._utils import (
    check_dtype,
    check_finite_fit,
    effective_n_threads,
    make_rng,
    naming_target_overflow,
    normal_factors_in_background,
)


class ImplicitALS(
    FittedLoopMixin, FoldInMixin, LatentFactorMixin, ImplicitRecommenderMixin, BaseEstimator
):
    r"""Matrix factorization for implicit feedback by alternating least squares.

    The model of Hu, Koren & Volinsky (2008).  Every (user, item) pair gets a
    preference :math:`p_{ui} = 1` when the user interacted with the item
    (strength :math:`y_{ui} > 0`, summed over repeated rows) and :math:`0`
    otherwise, with confidence :math:`c_{ui} = 1 + \alpha\, y_{ui}` (so 1 for
    every unobserved pair).  The factors minimise, over *all* pairs,

    .. math::

        \sum_{u,i} c_{ui} (p_{ui} - x_u^\top y_i)^2
            + \lambda \Big(\sum_u \lVert x_u\rVert^2 + \sum_i \lVert y_i\rVert^2\Big).

    Alternating least squares fixes the items and solves every user exactly,

    .. math::

        x_u = (Y^\top Y + Y^\top (C^u - I) Y + \lambda I)^{-1} Y^\top C^u p_u,

    then the reverse.  :math:`Y^\top Y` is computed once per half-step, so a
    half-step costs :math:`O(\text{nnz}\,k^2 + n\,k^3)` with the Cholesky
    solver, or :math:`O(\text{cg\_steps}\,(\text{nnz}\,k + n\,k^2))` with the
    conjugate-gradient solver (Takács, Pilászy & Tikk 2011), which starts
    from the previous factors and never forms the matrix: the work grows with
    the number of interactions, not with users times items.  The CG kernel
    advances blocks of 32 rows together, so their products with
    :math:`Y^\top Y` are one matrix product, and gathers each block's item
    factors once so that the sparse part is two matrix-vector products per
    row and step.  Rows are solved in parallel (OpenMP, ``n_jobs`` threads).

    A fitted model also folds in new users without refitting
    (:meth:`fold_in`, :meth:`recommend_new`: the exact confidence-weighted
    solve with the items fixed) and takes new interactions with
    :meth:`partial_fit`.

    Parameters
    ----------
    n_factors : int, default=64
        Dimension of the user and item embeddings.
    alpha : float, default=1.0
        Confidence scale :math:`\alpha > 0`: an interaction of strength
        :math:`y` weighs :math:`1 + \alpha y` against the weight 1 of every
        unobserved pair.  Larger values trust observed interactions more.
    regularization : float, default=0.05
        L2 penalty :math:`\lambda` on the embeddings.
    max_iter : int, default=15
        Number of ALS iterations (a user half-step then an item half-step).
    solver : {"cg", "cholesky"}, default="cg"
        ``"cg"``: ``cg_steps`` conjugate-gradient steps per row, warm-started;
        ``"cholesky"``: exact solve of each row's normal equations.
    cg_steps : int, default=3
        Conjugate-gradient steps per row and half-step (``solver="cg"``).
    tol : float or None, default=None
        Stop when the objective decreased by at most ``tol`` times its value
        over one iteration (None runs all ``max_iter`` iterations).
    init_std : float, default=0.01
        Embeddings are initialised from :math:`\mathcal N(0, \text{init\_std}^2)`.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the factors.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        What ``predict`` does with a user or item not seen in ``fit``:
        ``"fallback"`` scores the pair 0 (no evidence of a preference),
        ``"nan"`` returns NaN, ``"error"`` raises ``ValueError``.
        ``recommend`` serves unknown users from item popularity (flagged in
        ``Recommendations.fallback``).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation.
    n_jobs : int or None, default=None
        OpenMP threads; None uses every available core (honouring
        ``OMP_NUM_THREADS`` and threadpoolctl), -1 all cores.
    verbose : int, default=0
        0: silent.  1: one line per iteration with the objective and the
        seconds it took.
        2 or more: a progress bar (``tqdm.auto``) with the same numbers, if
        tqdm is installed (``pip install sklearn_mf[progress]``), otherwise the
        lines of 1 and a note that tqdm is missing.  The fitted model does
        not depend on ``verbose``.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
    item_factors_ : ndarray of shape (n_items, n_factors)
    users_ : ndarray of shape (n_users,)
        Raw user ids; position = row of ``user_factors_``.
    items_ : ndarray of shape (n_items,)
        Raw item ids; position = row of ``item_factors_``.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Summed interaction strengths seen in ``fit`` / ``partial_fit``.
    item_popularity_ : ndarray of shape (n_items,)
        Training interactions per item (the popularity fallback).
    n_iter_ : int
        Iterations run.
    loss_curve_ : list of float
        The objective above (data term plus penalty) after each iteration;
        computed from the sparse interactions and :math:`Y^\top Y`, never from
        a dense matrix.  It never increases.
    n_features_in_ : int
        Number of columns of ``X`` in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` is a DataFrame with string column names.

    See Also
    --------
    MatrixFactorization : Explicit ratings (SGD or ALS).

    Notes
    -----
    ``score(X, y=None)`` is NDCG@10 of the model's recommendations (items seen
    in ``fit`` excluded) against the interactions of ``X``, so that
    ``GridSearchCV`` ranks hyper-parameters without a ``scoring`` argument.

    References
    ----------
    Y. Hu, Y. Koren and C. Volinsky, "Collaborative filtering for implicit
    feedback datasets", ICDM 2008.
    G. Takács, I. Pilászy and D. Tikk, "Applications of the conjugate gradient
    method for implicit feedback collaborative filtering", RecSys 2011.

    Examples
    --------
    >>> from sklearn_mf import ImplicitALS
    >>> X = [("ann", "jazz"), ("ann", "blues"), ("bob", "jazz"), ("bob", "blues"),
    ...      ("bob", "soul"), ("cat", "rock"), ("cat", "metal"), ("dan", "rock")]
    >>> model = ImplicitALS(n_factors=2, max_iter=10, random_state=0, n_jobs=1).fit(X)
    >>> items, scores = model.recommend(["ann", "dan"], n=1)
    >>> items.tolist()
    [['soul'], ['metal']]
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "alpha": [Interval(numbers.Real, 0, None, closed="neither")],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "solver": [StrOptions({"cg", "cholesky"})],
        "cg_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left"), None],
        "init_std": [Interval(numbers.Real, 0, None, closed="left")],
        "dtype": "no_validation",  # checked by check_dtype
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    _fold_in_requires_y = False

    def __init__(
        self,
        n_factors=64,
        *,
        alpha=1.0,
        regularization=0.05,
        max_iter=15,
        solver="cg",
        cg_steps=3,
        tol=None,
        init_std=0.01,
        dtype=np.float32,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.alpha = alpha
        self.regularization = regularization
        self.max_iter = max_iter
        self.solver = solver
        self.cg_steps = cg_steps
        self.tol = tol
        self.init_std = init_std
        self.dtype = dtype
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def fit(self, X, y=None):
        """Fit the factors to the interactions ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids (any hashable values); further
            columns are ignored.  Repeated (user, item) rows add up.
        y : array-like of shape (n_interactions,), default=None
            Non-negative interaction strengths (counts, durations); None means
            1 for every row.  A strength of 0 is no preference.

        Returns
        -------
        self : ImplicitALS
            The fitted estimator.
        """
        dtype = check_dtype(self.dtype)
        timer = SetupTimer(self.verbose)
        users, items, y = check_strengths(self, X, y, reset=True)
        timer.lap("validate")
        u, users_ = factorize_ids(users, copy=False)
        i, items_ = factorize_ids(items, copy=False)
        del users, items  # only the codes are used from here on (memory)
        timer.lap("encode ids")
        rng = make_rng(self.random_state)
        k = self.n_factors
        # drawn on another thread while the matrices are built (same values)
        factors = normal_factors_in_background(
            rng, [(len(users_), k), (len(items_), k)], self.init_std, dtype
        )
        seen, popularity = seen_matrix(u, i, y, len(users_), len(items_))
        # the seen matrix holds the data now; its summed strengths name an
        # overflow as well as y did (memory: y is 4-8 bytes per rating)
        del u, i, y
        y = seen.data
        timer.lap("user-item matrix")
        R_u, R_i = implicit_confidences(
            seen, self.alpha, dtype, n_threads=effective_n_threads(self.n_jobs)
        )
        P, Q = factors()
        timer.lap("confidence matrices")
        with naming_target_overflow(self, y, scale=self.alpha, what="interaction strengths"):
            loop = run_implicit_als(
                R_u,
                R_i,
                P,
                Q,
                regularization=self.regularization,
                solver=self.solver,
                cg_steps=self.cg_steps,
                max_iter=self.max_iter,
                tol=self.tol,
                n_threads=effective_n_threads(self.n_jobs),
                verbose=self.verbose,
                desc=type(self).__name__,
            )
        self._set_ids(users_, items_)
        self.user_items_, self.item_popularity_ = seen, popularity
        self.user_factors_, self.item_factors_ = P, Q
        self._set_loop_attributes(loop, early_stopping=False)
        check_finite_fit(self, y, scale=self.alpha, what="interaction strengths")
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def partial_fit(self, X, y=None):
        """Add interactions to a fitted model without refitting it.

        The new rows are added to ``user_items_`` (strengths of a repeated
        (user, item) pair add up).  Users and items never seen before are
        appended to ``users_`` / ``items_``.  Then the factors of the new items,
        of every user in ``X`` and again of the new items are solved exactly
        (Cholesky) with everything else fixed: the same solves as ALS
        half-steps restricted to the touched rows.  On an unfitted model this
        is ``fit(X, y)``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            New interactions (user id, item id, ...).
        y : array-like of shape (n_interactions,), default=None
            Non-negative strengths; None means 1.

        Returns
        -------
        self : ImplicitALS
            The updated estimator.
        """
        if not hasattr(self, "user_factors_"):
            return self.fit(X, y)
        users, items, y = check_strengths(self, X, y, reset=False)
        n_items_old = len(self.items_)
        u, i, users_, items_, n_new_u, n_new_i = grow_ids(self, users, items)
        rng = make_rng(self.random_state)
        P = grow_rows(self.user_factors_, n_new_u)
        Q = grow_rows(self.item_factors_, n_new_i, rng, self.init_std)
        seen, popularity, _, _ = merge_interactions(
            self.user_items_,
            self.item_popularity_,
            u,
            i,
            y,
            len(users_),
            len(items_),
            replace=False,
        )
        R_u, R_i = implicit_confidences(seen, self.alpha, P.dtype)
        partial_fit_implicit_als(
            R_u,
            R_i,
            np.unique(u),
            np.arange(n_items_old, len(items_)),
            P,
            Q,
            regularization=self.regularization,
            n_threads=effective_n_threads(self.n_jobs),
        )
        self._set_ids(users_, items_)
        self.user_items_, self.item_popularity_ = seen, popularity
        self.user_factors_, self.item_factors_ = P, Q
        return self

    # -------------------------------------------------------------- predict
    def _predict_codes(self, user_codes, item_codes):
        known = (user_codes >= 0) & (item_codes >= 0)
        out = np.zeros(len(user_codes), dtype=np.float64)
        uc, ic = user_codes[known], item_codes[known]
        out[known] = np.einsum(
            "ij,ij->i", self.user_factors_[uc], self.item_factors_[ic], dtype=np.float64
        )
        return out

    _fold_in_priors = ("model",)

    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """Confidence-weighted exact solve for new users (one user half-step)."""
        m = sum_duplicates_csr(indptr, indices, values, len(self.items_))
        R = csr_to_rowmatrix(m, cw=(self.alpha * m.data).astype(self.item_factors_.dtype))
        out = np.zeros((m.shape[0], self.n_factors), dtype=self.item_factors_.dtype)
        implicit_half_step(
            R,
            self.item_factors_,
            out,
            self.regularization,
            "cholesky",
            0,
            effective_n_threads(self.n_jobs),
            G=gram(self.item_factors_),
        )
        return out, None
