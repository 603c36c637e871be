"""Bayesian Personalised Ranking for implicit feedback: ``BPR``."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from sklearn_mf import _bpr_fast
from sklearn_mf._base import ImplicitRecommenderMixin
from sklearn_mf._fold_in import FoldInMixin
from sklearn_mf._ids import factorize_ids
from sklearn_mf._latent import DotProductMixin, LatentFactorMixin
from sklearn_mf._online import PARTIAL_FIT_PASSES, PARTIAL_FIT_REPLAY, grow_and_replay, online_rng
from sklearn_mf._progress import SetupTimer
from sklearn_mf._training import (
    FittedLoopMixin,
    TrainingLoop,
    seen_matrix,
    sgd_hint,
    undo_validation_on_error,
)
from sklearn_mf._utils import (
    check_dtype,
    check_finite_fit,
    effective_n_threads,
    make_rng,
    seeds_from,
)
from sklearn_mf._validation import check_interactions


def _block_schedule(rng, indptr, indices, n_users, n_items, n_blocks, positions=None):
    """A random blocking of users and items for one epoch of ``bpr_epoch_blocked``.

    Users and items are shuffled and cut into ``n_blocks`` near-equal blocks;
    the positives of the CSR ``(indptr, indices)`` are grouped by (user
    block, item block) by a stable counting sort in the kernel
    (``_bpr_fast.group_by_block``): O(nnz) time and no memory beyond the two
    grouped int32 arrays (8 bytes per positive).

    Returns
    -------
    block_users, block_items : int32 arrays of shape (n_positives,)
    block_ptr : intp array of shape (n_blocks**2 + 1,)
    item_perm : int32 array of shape (n_items,)
    item_ptr : intp array of shape (n_blocks + 1,)

    ``positions`` (ascending intp, into ``indices``) restricts the positives
    sampled to those (``partial_fit``: the new and replayed ones); the kernel
    still checks negatives against the users' whole rows.
    """
    T = n_blocks
    positions = np.zeros(0, np.intp) if positions is None else np.asarray(positions, np.intp)
    n_pos = len(positions) if len(positions) else len(indices)
    if T == 1:  # one block: every item, nothing to shuffle
        user_block = np.zeros(n_users, dtype=np.int32)
        item_perm = np.arange(n_items, dtype=np.int32)
        item_block = np.zeros(n_items, dtype=np.int32)
        ranks = np.zeros(n_items, dtype=np.intp)
    else:
        user_block = np.empty(n_users, dtype=np.int32)
        user_block[rng.permutation(n_users)] = np.arange(n_users) * T // n_users
        item_perm = rng.permutation(n_items).astype(np.int32)
        item_block = np.empty(n_items, dtype=np.int32)
        ranks = np.arange(n_items) * T // n_items  # block of each position of item_perm
        item_block[item_perm] = ranks
    block_users = np.empty(n_pos, dtype=np.int32)
    block_items = np.empty(n_pos, dtype=np.int32)
    block_ptr = np.empty(T * T + 1, dtype=np.intp)
    _bpr_fast.group_by_block(
        indptr, indices, positions, user_block, item_block, T, block_users, block_items, block_ptr
    )
    item_ptr = np.zeros(T + 1, dtype=np.intp)
    np.cumsum(np.bincount(ranks, minlength=T), out=item_ptr[1:])
    return block_users, block_items, block_ptr, item_perm, item_ptr


def _run_epoch(
    rng,
    states,
    indptr,
    indices,
    n_users,
    P,
    Q,
    bias,
    lr,
    reg,
    reg_b,
    skip_seen,
    n_threads,
    stats,
    update_items=True,
    positions=None,
):
    """One epoch of the block-scheduled kernel with a fresh random blocking
    (one block per thread); returns the number of diverging samples."""
    schedule = _block_schedule(rng, indptr, indices, n_users, Q.shape[0], len(states), positions)
    block_users, block_items, block_ptr, item_perm, item_ptr = schedule
    del schedule  # the kernel call below holds the only references (memory)
    return _bpr_fast.bpr_epoch_blocked(
        block_users,
        block_items,
        indptr,
        indices,
        block_ptr,
        item_perm,
        item_ptr,
        P,
        Q,
        bias,
        float(lr),
        float(reg),
        float(reg_b),
        skip_seen,
        states,
        n_threads,
        stats,
        update_items,
    )


class BPR(
    FittedLoopMixin,
    DotProductMixin,
    FoldInMixin,
    LatentFactorMixin,
    ImplicitRecommenderMixin,
    BaseEstimator,
):
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

    Threads follow a block schedule redrawn every epoch: users and items are
    shuffled into one block per thread, and in each of the schedule's stages
    every thread samples the positives of its own user block against its own
    item block, from its own generator seeded from ``random_state``.  No two
    threads ever update the same user or item at once (unlike the lock-free
    updates of the ``implicit`` package), so a fit is reproducible for a given
    ``random_state`` and ``n_jobs``, at the same speed (MovieLens 100K, 2
    threads, quiet machine: 4.3 ms per epoch against 4.5 ms lock-free,
    ``benchmarks/results/bpr_block_schedule_ab.txt``).

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
    @undo_validation_on_error
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
        u, users_ = factorize_ids(users, copy=False)
        i, items_ = factorize_ids(items, copy=False)
        del users, items  # only the codes are used from here on (memory)
        timer.lap("encode ids")
        n_samples = len(u)
        n_users, n_items, k = len(users_), len(items_), self.n_factors
        if n_items < 2:
            raise ValueError(
                f"BPR needs at least 2 items to sample negatives; got {n_items} item "
                f"in {n_samples} sample(s)."
            )
        m, popularity = seen_matrix(u, i, y, n_users, n_items)
        del u, i, y  # the seen matrix holds the data now
        timer.lap("user-item matrix")
        rng = make_rng(self.random_state)
        P = rng.normal(0, self.init_std, (n_users, k)).astype(dtype)
        Q = rng.normal(0, self.init_std, (n_items, k)).astype(dtype)
        item_bias = np.zeros(n_items, dtype=dtype)

        m.sort_indices()  # binary search of seen negatives needs sorted rows
        loop, accuracy = self._run_epochs(rng, m, P, Q, item_bias, self.n_epochs)
        self._set_ids(users_, items_)
        self.user_items_, self.item_popularity_ = m, popularity
        self.user_factors_, self.item_factors_, self.item_bias_ = P, Q, item_bias
        self._set_loop_attributes(loop, early_stopping=False)
        self.accuracy_curve_ = accuracy
        check_finite_fit(self)
        return self

    def _run_epochs(self, rng, m, P, Q, item_bias, n_epochs, new_pairs=None):
        """``n_epochs`` block-scheduled BPR epochs on the training loop over the
        positives of the seen matrix ``m`` (sorted rows), or only those of the
        ``new_pairs`` codes ``(u, i)`` (``partial_fit``; negatives are still
        checked against whole rows).  ``P``, ``Q`` and ``item_bias`` are
        updated in place; returns the loop's result and the accuracy curve."""
        indptr = m.indptr.astype(np.int32)
        indices = m.indices.astype(np.int32, copy=False)
        n_users, n_items = m.shape
        positions = None
        if new_pairs is not None:
            pos_users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
            keys = pos_users * n_items + indices
            u, i = new_pairs
            positions = np.unique(np.searchsorted(keys, u.astype(np.int64) * n_items + i))
        n_threads = effective_n_threads(self.n_jobs)
        reg_b = (
            self.regularization if self.bias_regularization is None else self.bias_regularization
        )
        bias = item_bias if self.biased else np.zeros(0, dtype=Q.dtype)
        states = seeds_from(rng, n_threads)  # one generator per block
        stats = np.zeros(4)
        accuracy = []

        def step(epoch):
            n_bad = _run_epoch(
                rng,
                states,
                indptr,
                indices,
                n_users,
                P,
                Q,
                bias,
                self.learning_rate,
                self.regularization,
                reg_b,
                self.skip_seen_negatives,
                n_threads,
                stats,
                positions=positions,
            )
            n_upd = max(stats[2], 1.0)
            accuracy.append(float(stats[1] / n_upd))
            loss = float(stats[0] / n_upd)
            return (
                loss,
                n_bad,
                {"BPR loss": loss, "ordered": accuracy[-1], "skipped": int(stats[3])},
            )

        loop = TrainingLoop(
            n_epochs,
            hint=sgd_hint(self.learning_rate),
            verbose=self.verbose,
            desc=type(self).__name__,
        ).run(step)
        return loop, accuracy

    # ----------------------------------------------------------- online
    @_fit_context(prefer_skip_nested_validation=True)
    @undo_validation_on_error
    def partial_fit(self, X, y=None):
        r"""Update the model with new interactions, growing it for unseen ids.

        As for the other SGD models (:mod:`sklearn_mf._online`): new users
        and items are appended (embeddings from
        :math:`\mathcal N(0, \text{init\_std}^2)`, item biases 0), the new
        positives join ``user_items_``, and 5 epochs of BPR updates run with
        positives drawn from the new positives plus as many old ones sampled
        uniformly (replay), negatives from the whole catalogue and, with
        ``skip_seen_negatives``, checked against every known positive of the
        user.  ``loss_curve_`` and ``accuracy_curve_`` then describe this
        update.  On an unfitted model this is ``fit``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_interactions, n_columns)
            New interactions (user id, item id, ...).
        y : array-like of shape (n_interactions,), default=None
            Non-negative strengths; rows with ``y == 0`` are not positives.

        Returns
        -------
        self : BPR
            The updated estimator.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_mf import BPR
        >>> X = np.array([[u, (u * 7 + j) % 30] for u in range(40) for j in range(5)])
        >>> model = BPR(n_factors=4, n_epochs=5, random_state=0).fit(X)
        >>> model = model.partial_fit([[100, 3], [100, 4], [0, 29]])
        >>> 100 in model.users_
        True
        """
        if not hasattr(self, "user_factors_"):
            return self.fit(X, y)
        users, items, y, _ = check_interactions(self, X, y, None, reset=False, y_nonnegative=True)
        y = np.ones(len(users)) if y is None else y
        positive = y > 0
        if not positive.any():
            return self  # nothing positive to learn from
        n_calls = getattr(self, "_n_partial_fit_calls", 0) + 1
        rng = online_rng(self.random_state, n_calls)
        batch = grow_and_replay(
            self,
            users[positive],
            items[positive],
            y[positive],
            None,
            [
                ("user_factors_", "user", "normal"),
                ("item_factors_", "item", "normal"),
                ("item_bias_", "item", "zeros"),
            ],
            PARTIAL_FIT_REPLAY,
            rng,
        )
        a = batch.arrays
        P, Q, item_bias = a["user_factors_"], a["item_factors_"], a["item_bias_"]
        m = batch.user_items.copy()
        m.sort_indices()
        loop, accuracy = self._run_epochs(
            rng,
            m,
            P,
            Q,
            item_bias,
            PARTIAL_FIT_PASSES,
            new_pairs=(batch.user_codes, batch.item_codes),
        )
        self._set_ids(batch.users, batch.items)
        self.user_items_, self.item_popularity_ = m, batch.item_popularity
        self.user_factors_, self.item_factors_, self.item_bias_ = P, Q, item_bias
        self._n_partial_fit_calls = n_calls
        self._set_loop_attributes(loop, early_stopping=False)
        self.accuracy_curve_ = accuracy
        check_finite_fit(self)
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
        m = sp.csr_matrix(
            (np.asarray(values), np.asarray(indices), np.asarray(indptr)),
            shape=(n_rows, Q.shape[0]),
            copy=True,
        )
        m.sum_duplicates()
        m.eliminate_zeros()
        m.sort_indices()
        ip, ix = m.indptr.astype(np.int32), m.indices.astype(np.int32)
        rng = make_rng(self.random_state)
        P = rng.normal(0, self.init_std, (n_rows, Q.shape[1])).astype(dtype)
        if m.nnz == 0:
            return np.zeros_like(P), None
        bias = (
            np.require(self.item_bias_, requirements=["C", "W"])
            if self.biased
            else np.zeros(0, dtype=dtype)
        )
        reg_b = (
            self.regularization if self.bias_regularization is None else self.bias_regularization
        )
        n_threads = effective_n_threads(self.n_jobs)
        stats = np.zeros(4)
        states = seeds_from(rng, n_threads)
        for _ in range(self.n_epochs):
            _run_epoch(
                rng,
                states,
                ip,
                ix,
                n_rows,
                P,
                Q,
                bias,
                self.learning_rate,
                self.regularization,
                reg_b,
                self.skip_seen_negatives,
                n_threads,
                stats,
                update_items=False,
            )
        P[np.diff(ip) == 0] = 0  # users without a positive: no information
        return P, None

    # -------------------------------------------------------------- predict
    def _biases(self):
        """The dot-product prediction with mu = 0, no user bias."""
        return 0.0, None, (self.item_bias_ if self.biased else None)
