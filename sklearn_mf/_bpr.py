"""Bayesian Personalised Ranking for implicit feedback: ``BPR``."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sklearn_mf import _bpr_fast, _sgd_fast
from sklearn_mf._base import RecommenderMixin
from sklearn_mf._progress import EpochProgress, SetupTimer
from sklearn_mf._utils import check_dtype, effective_n_threads, seeds_from
from sklearn_mf._validation import check_interactions


class BPR(RecommenderMixin, BaseEstimator):
    r"""Bayesian Personalised Ranking (Rendle et al. 2009) for implicit feedback.

    Every interaction of ``X`` (with a positive ``y`` when ``y`` is given) is
    a positive; everything else is unobserved.  The model scores
    :math:`\hat x_{ui} = p_u^\top q_i + b_i` and maximises the likelihood that
    a user ranks an item she interacted with above one she did not:

    .. math::

        \max \sum_{(u,i,j)} \ln \sigma(\hat x_{ui} - \hat x_{uj})
            - \lambda (\lVert p_u\rVert^2 + \lVert q_i\rVert^2
            + \lVert q_j\rVert^2) - \lambda_b (b_i^2 + b_j^2).

    Each epoch draws as many triples as there are positives: a positive
    :math:`(u, i)` uniformly among the user-item pairs and a negative item
    :math:`j` uniformly from the catalogue.  With
    :math:`x = \hat x_{ui} - \hat x_{uj}` and :math:`g = \sigma(-x)` the SGD
    step is

    .. math::

        p_u &\leftarrow p_u + \eta\,(g\,(q_i - q_j) - \lambda p_u), \\
        q_i &\leftarrow q_i + \eta\,(g\,p_u - \lambda q_i), \qquad
        q_j \leftarrow q_j + \eta\,(-g\,p_u - \lambda q_j), \\
        b_i &\leftarrow b_i + \eta\,(g - \lambda_b b_i), \qquad
        b_j \leftarrow b_j + \eta\,(-g - \lambda_b b_j).

    A sampled negative equal to the positive is skipped; with
    ``skip_seen_negatives=True`` so is any negative the user interacted with
    (checked by binary search in her sorted row of ``user_items_``), so that
    the model is never pushed to rank a known positive low.

    Threads update the shared factors lock-free (Hogwild, like the
    ``implicit`` package), each thread drawing its samples from its own
    generator seeded from ``random_state``: results are bit-reproducible with
    ``n_jobs=1`` and statistically equivalent otherwise.

    Parameters
    ----------
    n_factors : int, default=64
        Dimension of the embeddings.
    n_epochs : int, default=100
        Number of epochs (each of ``n_positives`` samples).
    learning_rate : float, default=0.05
        SGD step size :math:`\eta`.
    regularization : float, default=0.002
        L2 penalty :math:`\lambda` on the embeddings (per update).
    bias_regularization : float or None, default=None
        Penalty :math:`\lambda_b` on the item biases; None uses
        ``regularization``.
    biased : bool, default=True
        Learn an item bias :math:`b_i` (a popularity term).
    init_std : float, default=0.01
        Embeddings start from :math:`\mathcal N(0, \text{init\_std}^2)`.
    skip_seen_negatives : bool, default=True
        Skip sampled negatives the user has interacted with.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the factors.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        ``predict`` for an unseen user or item: ``"fallback"`` scores an
        unknown user by :math:`b_i` and an unknown item 0; ``"nan"`` returns
        NaN; ``"error"`` raises.  ``recommend`` serves unknown users from item
        popularity.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and the samplers.
    n_jobs : int or None, default=None
        OpenMP threads for training and recommendation.
    verbose : int, default=0
        0: silent.  1: one line per epoch with the BPR loss, the fraction of
        correctly ordered sampled pairs, the skipped samples and the seconds
        it took.
        2 or more: a progress bar (``tqdm.auto``) with the same numbers, if
        tqdm is installed (``pip install sklearn_mf[progress]``), otherwise the
        lines of 1 and a note that tqdm is missing.  The fitted model does
        not depend on ``verbose``.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
    item_factors_ : ndarray of shape (n_items, n_factors)
    item_bias_ : ndarray of shape (n_items,)
        Zeros when ``biased=False``.
    users_, items_ : ndarray
        Raw ids; position = row of the factor arrays.
    user_items_ : scipy.sparse.csr_matrix of shape (n_users, n_items)
        The positives (summed ``y``); what ``recommend`` excludes.
    item_popularity_ : ndarray of shape (n_items,)
    n_iter_ : int
    loss_curve_ : list of float
        Mean :math:`-\ln\sigma(x)` over the updates of each epoch (measured
        before each update).
    accuracy_curve_ : list of float
        Fraction of sampled pairs already ordered correctly (:math:`x > 0`).
    n_features_in_ : int

    See Also
    --------
    ImplicitALS : Weighted least squares on all cells for implicit feedback.

    References
    ----------
    S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian
    Personalized Ranking from Implicit Feedback", UAI 2009.

    Examples
    --------
    >>> from sklearn_mf import BPR
    >>> X = [(u, i) for u in range(20) for i in range(10) if (u + i) % 4 == 0]
    >>> model = BPR(n_factors=4, n_epochs=20, random_state=0, n_jobs=1).fit(X)
    >>> items, scores = model.recommend([0, 1], n=3)
    >>> items.shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "regularization": [Interval(numbers.Real, 0, None, closed="left")],
        "bias_regularization": [Interval(numbers.Real, 0, None, closed="left"), None],
        "biased": ["boolean"],
        "init_std": [Interval(numbers.Real, 0, None, closed="left")],
        "skip_seen_negatives": ["boolean"],
        "dtype": "no_validation",  # checked by check_dtype
        "handle_unknown": [StrOptions({"fallback", "nan", "error"})],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_factors=64,
        *,
        n_epochs=100,
        learning_rate=0.05,
        regularization=0.002,
        bias_regularization=None,
        biased=True,
        init_std=0.01,
        skip_seen_negatives=True,
        dtype=np.float32,
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
        self.biased = biased
        self.init_std = init_std
        self.skip_seen_negatives = skip_seen_negatives
        self.dtype = dtype
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the factors from the positive interactions in ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Column 0 user ids, column 1 item ids; further columns are ignored.
            Repeated (user, item) rows count as one positive.
        y : array-like of shape (n_interactions,), default=None
            Non-negative interaction strengths; rows with ``y == 0`` are not
            positives.  Only positivity matters to BPR.

        Returns
        -------
        self : BPR
            The fitted estimator.
        """
        dtype = check_dtype(self.dtype)
        timer = SetupTimer(self.verbose)
        users, items, y, _ = check_interactions(self, X, y, None, reset=True, y_nonnegative=True)
        if y is not None:
            if not (y > 0).any():
                raise ValueError("y holds no positive interaction: BPR needs positives.")
            users, items, y = users[y > 0], items[y > 0], y[y > 0]
        timer.lap("validate")
        u, i = self._fit_ids(users, items)
        del users, items  # only the codes are used from here on (memory)
        timer.lap("encode ids")
        self._set_training_interactions(u, i, y)
        n_samples = len(u)
        del u, i, y  # user_items_ holds the data now
        timer.lap("user-item matrix")
        n_users, n_items, k = len(self.users_), len(self.items_), self.n_factors
        if n_items < 2:
            raise ValueError(
                f"BPR needs at least 2 items to sample negatives; got {n_items} item "
                f"in {n_samples} sample(s)."
            )
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31))
        self.user_factors_ = rng.normal(0, self.init_std, (n_users, k)).astype(dtype)
        self.item_factors_ = rng.normal(0, self.init_std, (n_items, k)).astype(dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)

        m = self.user_items_
        indptr = m.indptr.astype(np.int32)
        m.sort_indices()  # binary search of seen negatives needs sorted rows
        indices = m.indices.astype(np.int32, copy=False)
        pos_users = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(indptr))
        timer.lap("positive pairs")
        n_threads = effective_n_threads(self.n_jobs)
        reg_b = self.regularization if self.bias_regularization is None else self.bias_regularization
        bias = self.item_bias_ if self.biased else np.zeros(0, dtype=dtype)
        empty_pos, empty_neg = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)
        stats = np.zeros(4)
        self.loss_curve_, self.accuracy_curve_ = [], []
        progress = EpochProgress(self.verbose, self.n_epochs, desc=type(self).__name__)
        with progress:
            for epoch in range(1, self.n_epochs + 1):
                n_bad = _bpr_fast.bpr_epoch(
                    pos_users, indptr, indices, empty_pos, empty_neg, len(indices),
                    self.user_factors_, self.item_factors_, bias,
                    float(self.learning_rate), float(self.regularization), float(reg_b),
                    self.skip_seen_negatives, seeds_from(rng, n_threads), n_threads, stats,
                )
                if n_bad or not np.isfinite(stats[0]):
                    raise FloatingPointError(
                        f"BPR diverged in epoch {epoch}: a score became NaN or infinite. "
                        f"Use a smaller learning_rate (now {self.learning_rate}) or a larger "
                        "regularization."
                    )
                n_upd = max(stats[2], 1.0)
                self.loss_curve_.append(float(stats[0] / n_upd))
                self.accuracy_curve_.append(float(stats[1] / n_upd))
                self.n_iter_ = epoch
                progress.update(epoch, {"BPR loss": self.loss_curve_[-1],
                                        "ordered": self.accuracy_curve_[-1],
                                        "skipped": int(stats[3])})
        return self

    # -------------------------------------------------------------- fold-in
    _fold_in_requires_y = False

    _fold_in_priors = ("model",)

    def _fold_in_rows(self, indptr, indices, values, prior="model"):
        """Fold-in by user-only SGD: the BPR updates of :math:`p_u` alone.

        Each new user starts from :math:`\\mathcal N(0, \\text{init\\_std}^2)`
        and takes ``n_epochs`` passes of as many sampled triples as she has
        positives (given items with a positive strength), with the item
        factors and biases fixed.  Seeded from ``random_state``, so the same
        interactions always give the same factors.
        """
        import scipy.sparse as sp

        Q = np.require(self.item_factors_, requirements=["C", "W"])
        dtype = Q.dtype
        n_rows = len(indptr) - 1
        m = sp.csr_matrix((np.asarray(values), np.asarray(indices), np.asarray(indptr)),
                          shape=(n_rows, Q.shape[0]), copy=True)
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        ip, ix = m.indptr.astype(np.int32), m.indices.astype(np.int32)
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31))
        P = rng.normal(0, self.init_std, (n_rows, Q.shape[1])).astype(dtype)
        if m.nnz == 0:
            return np.zeros_like(P), None
        pos_users = np.repeat(np.arange(n_rows, dtype=np.int32), np.diff(ip))
        bias = (np.require(self.item_bias_, requirements=["C", "W"]) if self.biased
                else np.zeros(0, dtype=dtype))
        reg_b = self.regularization if self.bias_regularization is None else self.bias_regularization
        n_threads = effective_n_threads(self.n_jobs)
        stats = np.zeros(4)
        empty_pos, empty_neg = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int32)
        for _ in range(self.n_epochs):
            _bpr_fast.bpr_epoch(
                pos_users, ip, ix, empty_pos, empty_neg, m.nnz, P, Q, bias,
                float(self.learning_rate), float(self.regularization), float(reg_b),
                self.skip_seen_negatives, seeds_from(rng, n_threads), n_threads, stats,
                False,
            )
        P[np.diff(ip) == 0] = 0  # users without a positive: no information
        return P, None

    # -------------------------------------------------------------- predict
    def _predict_codes(self, user_codes, item_codes):
        dtype = self.user_factors_.dtype.type
        out = np.empty(len(user_codes), dtype=dtype)
        bi = self.item_bias_ if self.biased else np.zeros(0, dtype=dtype)
        # the MF prediction kernel with mu = 0 and no user bias
        _sgd_fast.predict(
            np.ascontiguousarray(user_codes, dtype=np.int32),
            np.ascontiguousarray(item_codes, dtype=np.int32),
            self.user_factors_, self.item_factors_,
            np.zeros(len(self.users_) if self.biased else 0, dtype=dtype), bi, 0.0, out,
            effective_n_threads(self.n_jobs),
        )
        return out.astype(np.float64)

    def _item_embeddings(self):
        return self.item_factors_, (self.item_bias_ if self.biased else None)

    # ---------------------------------------------------------------- score
    def score(self, X, y=None):
        """NDCG@10 of the recommendations against held-out interactions ``X``.

        Every test user's 10 best items are ranked among the whole catalogue
        minus the items she had in ``fit``; her relevant items are her rows of
        ``X`` (with ``y > 0`` when ``y`` is given).  Binary relevance, users
        without a relevant item skipped; see
        :func:`sklearn_mf.metrics.make_ranking_scorer`.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            Held-out interactions.
        y : array-like of shape (n_interactions,), default=None
            Strengths; rows with ``y <= 0`` are not relevant.

        Returns
        -------
        score : float
            Mean NDCG@10.
        """
        from sklearn_mf.metrics import make_ranking_scorer

        check_is_fitted(self)
        if y is not None:
            _, _, yy, _ = check_interactions(self, X, y, None, reset=False)
            X = _safe_indexing(X, np.flatnonzero(yy > 0))
        return make_ranking_scorer("ndcg", k=min(10, len(self.items_)))(self, X, None)
