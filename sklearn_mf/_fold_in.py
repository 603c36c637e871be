"""Fold-in: factors of new users from a few interactions, model unchanged.

:class:`FoldInMixin` gives a model ``fold_in`` (the new users' factors) and
``recommend_new`` (their recommendations, ranked by the routine of
:meth:`RecommenderMixin.recommend`).  The item side stays fixed and each new
user's factors are solved alone, so nothing fitted changes.

Hooks a model implements:

``_fold_in_rows(indptr, indices, values, prior)``
    The factors (n_rows, k) and biases (n_rows,) or None of the users whose
    interactions with fitted items are the CSR rows ``(indptr, indices,
    values)`` (duplicates allowed; a row may be empty: zero factors).
``_fold_in_requires_y`` (class attribute, default True)
    Whether ``y`` is required (ratings) or optional (implicit strengths).
``_fold_in_priors`` (class attribute, default ``("model", "empirical")``)
    The ``prior`` values ``fold_in`` accepts.
``_new_user_offsets(biases)`` (optional)
    Per-user additive ranking score of folded-in users, default
    ``global_mean_ + biases`` (None without biases).
``_new_user_scorer(m, cand, prior)`` (optional)
    How ``recommend_new`` scores the new users of the CSR ``m``: by default
    folded in and scored like trained users; models that score a user
    straight from a history (``ItemKNN``, ``UserKNN``, ``EASE``) return their
    own scores instead.

Rating models implement ``_fold_in_rows`` with :func:`ridge_fold_in`, one ALS
user half-step parameterised by the model's item factors, offsets, penalties
and, for ``prior="empirical"``, the prior of :func:`empirical_prior`.
"""

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from sklearn_mf._als import RowMatrix, explicit_half_step
from sklearn_mf._base import Recommendations
from sklearn_mf._ids import factorize_ids
from sklearn_mf._validation import check_interactions, check_n


class FoldIn(NamedTuple):
    """Result of :meth:`FoldInMixin.fold_in`: factors of new users."""

    users: np.ndarray
    user_factors: np.ndarray
    user_bias: np.ndarray | None


def empirical_prior(factors, biases, noise_var):
    """The empirical-Bayes prior of ``fold_in(prior="empirical")``.

    The trained users' ``factors`` (and ``biases``, or None) give the prior
    means and variances; against ``noise_var`` they make the ridge penalties
    noise / variance.  Returns ``(mean factors, factor penalty, mean bias,
    bias penalty)`` (the bias terms 0 without biases).
    """
    P = np.asarray(factors, dtype=np.float64)
    p_mean = P.mean(axis=0)
    reg_p = noise_var / max(float(((P - p_mean) ** 2).mean()), 1e-12)
    if biases is None:
        return p_mean, reg_p, 0.0, 0.0
    bias = np.asarray(biases, dtype=np.float64)
    return p_mean, reg_p, float(bias.mean()), noise_var / max(float(bias.var()), 1e-12)


def add_prior_mean(P, b, indptr, p_mean, b_mean):
    """Move fold-in solutions found around the prior mean back to absolute
    values, in place; users without a known item keep zeros."""
    has_items = np.diff(np.asarray(indptr)) > 0
    P[has_items] += p_mean.astype(P.dtype)
    if b is not None:
        b[has_items] += b.dtype.type(b_mean)


def ridge_fold_in(
    indptr,
    indices,
    values,
    item_factors,
    item_offset=None,
    *,
    regularization,
    bias_regularization,
    per_rating,
    fit_bias,
    global_offset=0.0,
    prior=None,
    n_threads=1,
):
    r"""Explicit fold-in: one ALS user half-step with the items fixed.

    Solves, for each CSR row (a new user's ratings of fitted items),
    :math:`\min_{p, b} \sum_i (r_{ui} - g - o_i - b - p^\top q_i)^2 +
    m (\lambda \lVert p\rVert^2 + \lambda_b b^2)` with :math:`g` the
    ``global_offset``, :math:`o_i` the ``item_offset``, :math:`m` the user's
    number of ratings (``per_rating``) or 1, and the bias :math:`b` only when
    ``fit_bias``.

    With ``prior=(p_mean, reg_p, b_mean, reg_b)`` (from
    :func:`empirical_prior`) the same least squares is shrunk towards
    ``(p_mean, b_mean)`` instead of zero with the fixed penalties ``reg_p`` and
    ``reg_b`` (which then replace ``regularization``, ``bias_regularization``
    and ``per_rating``).

    Parameters
    ----------
    indptr, indices, values : array-like
        CSR rows of the new users' ratings (item codes; duplicates allowed).
    item_factors : ndarray of shape (n_items, k)
        Fixed item factors; their dtype is that of the result.
    item_offset : ndarray of shape (n_items,), default=None
        Fixed additive score per item (biases, intercepts), or None.
    regularization, bias_regularization : float
        Penalties of the factors and of the bias.
    per_rating : bool
        Scale the penalties by each user's number of ratings.
    fit_bias : bool
        Solve a bias per user.
    global_offset : float, default=0.0
        Subtracted from every rating first (the global mean).
    prior : tuple, default=None
        ``(p_mean, reg_p, b_mean, reg_b)`` of an empirical-Bayes prior.
    n_threads : int, default=1
        OpenMP threads.

    Returns
    -------
    factors : ndarray of shape (n_rows, k)
        Zero for a row without ratings.
    biases : ndarray of shape (n_rows,) or None
        None unless ``fit_bias``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf._fold_in import ridge_fold_in
    >>> Q = np.eye(2)
    >>> P, b = ridge_fold_in([0, 2], [0, 1], [2.0, 4.0], Q, regularization=1.0,
    ...                      bias_regularization=1.0, per_rating=False, fit_bias=False)
    >>> P.round(6).tolist(), b
    ([[1.0, 2.0]], None)
    """
    Q = item_factors
    dtype = Q.dtype
    if prior is not None:
        p_mean, regularization, b_mean, bias_regularization = prior
        shift = Q.astype(np.float64) @ p_mean + b_mean
        item_offset = shift if item_offset is None else item_offset + shift
        per_rating = False
    R = RowMatrix(
        np.asarray(indptr, dtype=np.intp),
        np.asarray(indices, dtype=np.int32),
        {"t": np.asarray(values, dtype=dtype) - dtype.type(global_offset)},
        Q.shape[0],
    )
    P = np.zeros((R.n_rows, Q.shape[1]), dtype=dtype)
    b = np.zeros(R.n_rows, dtype=dtype) if fit_bias else None
    explicit_half_step(
        R,
        Q,
        None if item_offset is None else np.ascontiguousarray(item_offset, dtype=dtype),
        P,
        b,
        regularization,
        bias_regularization,
        per_rating,
        n_threads,
    )
    if prior is not None:
        add_prior_mean(P, b, indptr, p_mean, b_mean)
    return P, b


class RecommendNewMixin:
    """``recommend_new``: recommendations for users not seen in ``fit``, from
    a few given interactions, without refitting and without changing the model.

    A model implements ``_new_user_scorer(m, cand, prior)`` (see the module
    docstring); :class:`FoldInMixin` implements it by folding the users in.
    Models that score a user straight from a history (``ItemKNN``,
    ``UserKNN``, ``EASE``) use this mixin alone: they have no factors, so no
    ``fold_in``.

    Examples
    --------
    >>> from sklearn_mf import EASE, RecommendNewMixin
    >>> X = [(u, i) for u in range(30) for i in range(12) if (u + i) % 3 == 0]
    >>> model = EASE(regularization=10.0).fit(X)
    >>> isinstance(model, RecommendNewMixin), hasattr(model, "fold_in")
    (True, False)
    >>> model.recommend_new([("new", 0), ("new", 3)], n=2).items.shape
    (1, 2)
    """

    _fold_in_requires_y = True
    _fold_in_priors = ("model", "empirical")

    def _fold_in_csr(self, X, y):
        """Validate new users' interactions; CSR (new users x fitted items)."""
        check_is_fitted(self)
        requires_y = self._fold_in_requires_y
        users, items, y, _ = check_interactions(
            self,
            X,
            y,
            reset=False,
            y_required=requires_y,
            y_nonnegative=not requires_y,
        )
        if y is None:
            y = np.ones(len(users), dtype=np.float64)
        u, query = factorize_ids(users)
        i = self._item_codes(items)
        known = i >= 0
        u, i, y = u[known], i[known], y[known]
        order = np.argsort(u, kind="stable")
        indptr = np.zeros(len(query) + 1, dtype=np.int32)
        np.cumsum(np.bincount(u, minlength=len(query)), out=indptr[1:])
        m = sp.csr_matrix(
            (y[order].astype(np.float32), i[order].astype(np.int32), indptr),
            shape=(len(query), len(self.items_)),
        )
        return query, m

    def _check_fold_in_prior(self, prior):
        if prior not in ("model", "empirical"):
            raise ValueError(f"prior must be 'model' or 'empirical', got {prior!r}.")
        if prior not in self._fold_in_priors:
            raise ValueError(
                f"{type(self).__name__}.fold_in supports prior in "
                f"{list(self._fold_in_priors)}; 'empirical' is for rating models."
            )

    def recommend_new(
        self, X, y=None, n=10, *, exclude_seen=True, items=None, exclude_items=None, prior="model"
    ):
        """Top-``n`` items for users described only by the interactions ``X``.

        The users are folded in (see :meth:`fold_in`; the model is not
        changed) and ranked like :meth:`recommend`.  A user none of whose items
        is known to the model gets the popularity fallback, flagged in
        ``fallback``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Interactions (user id, item id, ...) of the users to serve; their
            ids are arbitrary and treated as new users.
        y : array-like of shape (n_interactions,), default=None
            Ratings (explicit models) or strengths (implicit models).
        n : int, default=10
            Number of items per user.
        exclude_seen : bool, default=True
            Remove the items given for each user in ``X``.
        items : array-like of ids, default=None
            Allow-list of candidate items.
        exclude_items : array-like of ids, default=None
            Deny-list of items.
        prior : {"model", "empirical"}, default="model"
            How the users are folded in; see :meth:`fold_in`.

        Returns
        -------
        recommendations : :class:`Recommendations`
            For the distinct users of ``X`` (in the order of
            :meth:`fold_in`).
        """
        self._check_fold_in_prior(prior)
        query, m = self._fold_in_csr(X, y)
        cand = self._candidate_codes(items, exclude_items)
        n = check_n(n, len(cand))
        score_rows = self._new_user_scorer(m, cand, prior)
        empty = np.diff(m.indptr) == 0
        rows = np.where(empty, -1, np.arange(len(query), dtype=np.intp))
        ids, scores = self._rank(
            rows,
            n,
            cand,
            self.items_,
            score_rows=score_rows,
            exclude=m if exclude_seen else None,
            popular=empty,
            dtype=np.float64,
        )
        return Recommendations(query, ids, scores, empty)


class FoldInMixin(RecommendNewMixin):
    """``fold_in`` and ``recommend_new``: new users served without refitting.

    For models whose user side can be solved with the item side fixed; see
    the module docstring of ``sklearn_mf._fold_in`` for the hooks.  Used with
    :class:`~sklearn_mf.LatentFactorMixin` (it ranks with the item
    embeddings).

    Examples
    --------
    >>> from sklearn_mf import FoldInMixin, MatrixFactorization
    >>> from sklearn_mf.datasets import make_ratings
    >>> X, y = make_ratings(n_users=100, n_items=50, n_ratings=2000, random_state=0)
    >>> model = MatrixFactorization(n_factors=4, random_state=0, n_jobs=1).fit(X, y)
    >>> isinstance(model, FoldInMixin)
    True
    >>> new = [["new", X[0, 1], 0], ["new", X[1, 1], 0]]  # user, item, timestamp
    >>> model.fold_in(new, [5.0, 4.0]).user_factors.shape
    (1, 4)
    >>> model.recommend_new(new, [5.0, 4.0], n=3).items.shape
    (1, 3)
    """

    def _training_noise_variance(self):
        """Mean squared residual of the training ratings (``user_items_``)."""
        R = self.user_items_.tocoo()
        if not len(R.data):
            return 1.0
        resid = R.data - self._predict_codes(R.row.astype(np.intp), R.col.astype(np.intp))
        return float(np.mean(resid**2))

    def _new_user_offsets(self, biases):
        """Per-user additive score of folded-in users (explicit: mu + b_u)."""
        if biases is None:
            return None
        return self.global_mean_ + biases.astype(np.float64)

    def _empirical_prior(self, factors, biases):
        """:func:`empirical_prior` of the trained users' ``factors`` and ``biases``."""
        return empirical_prior(factors, biases, self._training_noise_variance())

    def fold_in(self, X, y=None, *, prior="model"):
        """Factors of new users from their interactions, without changing the model.

        The item factors (and biases) stay fixed and each user's factors are
        solved in closed form: the same solve as one ALS user half-step
        (explicit models: a ridge regression of :math:`r_{ui} - \\mu - b_i` on
        the item factors, with a user bias when the model is biased; implicit
        ALS: the confidence-weighted solve).  Nothing fitted is modified.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Interactions of the users to fold in (user id, item id, ...).  The
            user ids are treated as new users whatever their value; items
            unknown to the model are ignored.
        y : array-like of shape (n_interactions,), default=None
            Ratings (required by explicit models) or non-negative strengths
            (implicit models; None means 1).
        prior : {"model", "empirical"}, default="model"
            ``"model"``: the penalty the model was trained with (per rating,
            so a user with one or two ratings is barely shrunk and may be
            predicted worse than by the fallback).  ``"empirical"`` (rating
            models: :class:`MatrixFactorization`, :class:`SVDpp`,
            :class:`FMRecommender`): shrink towards the average trained user,
            with the trained users' spread of factors and biases as the prior
            and the training residual variance as the noise (empirical
            Bayes), which stays better than the fallback from the first
            rating.  See :ref:`cold_start`.

        Returns
        -------
        folded : FoldIn
            Named tuple ``(users, user_factors, user_bias)``: the distinct user
            ids of ``X`` (sorted when comparable), their factors of shape
            (n_users, n_factors) and biases of shape (n_users,) (None for
            unbiased and implicit models).  A user without any known item gets
            zero factors.
        """
        self._check_fold_in_prior(prior)
        query, m = self._fold_in_csr(X, y)
        factors, biases = self._fold_in_rows(m.indptr, m.indices, m.data, prior=prior)
        return FoldIn(query, factors, biases)

    def _new_user_scorer(self, m, cand, prior):
        """``score_rows(rows)``: dense scores of the candidate items ``cand``
        for rows of the new users' CSR ``m``.  The default folds the users in
        (``_fold_in_rows``) and scores them like trained users; a model that
        scores a user directly from a history (kNN, EASE) overrides it."""
        U, b = self._fold_in_rows(m.indptr, m.indices, m.data, prior=prior)
        V, item_off = self._item_embeddings()
        Vc = np.ascontiguousarray(V[cand])
        bc = None if item_off is None else item_off[cand]
        user_off = self._new_user_offsets(b)

        def score_rows(rows):
            S = U[rows] @ Vc.T
            if bc is not None:
                S += bc
            if user_off is not None:
                S += user_off[rows][:, None]
            return np.ascontiguousarray(S)

        return score_rows
