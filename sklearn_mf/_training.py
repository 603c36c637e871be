"""Pieces of the training loop shared by the iterative estimators.

Every iterative model (SGD and ALS matrix factorization, SVD++, factorization
machines) holds out a validation set the same way, keeps the parameters of its
best epoch the same way and reports divergence the same way; this module is
that one implementation.
"""

import numpy as np
from sklearn.utils import check_random_state

from sklearn_mf._progress import SetupTimer
from sklearn_mf._utils import check_dtype
from sklearn_mf._validation import check_interactions


def start_rating_fit(est, X, y, sample_weight, *, extra_item_factors=()):
    """The common start of ``fit`` for the biased rating models (MF, SVD++).

    Validates and encodes the ratings, stores what ``RecommenderMixin`` needs
    (``users_``, ``items_``, ``user_items_``, ``item_popularity_``), sets
    ``rating_range_``, draws ``user_factors_``, ``item_factors_`` and each
    attribute named in ``extra_item_factors`` from N(0, init_std^2) (in that
    order, from one generator seeded by ``random_state``), zeroes the biases,
    holds out the early-stopping validation set and sets ``global_mean_``
    from the training part.

    Returns
    -------
    u, i : ndarray of int32
        User and item codes of every rating.
    y, sample_weight : ndarray of float64 (sample_weight may be None)
    train, val : ndarray of intp or None
        Rows used for training and for validation; both None when nothing is
        held out (every row trains).
    rng : numpy.random.Generator
        The generator, to be used for the rest of the fit.
    """
    dtype = check_dtype(est.dtype)
    timer = SetupTimer(est.verbose)
    users, items, y, sample_weight = check_interactions(
        est, X, y, sample_weight, reset=True, y_required=True
    )
    timer.lap("validate")
    u, i = est._fit_ids(users, items)
    del users, items  # only the codes are used from here on (memory)
    timer.lap("encode ids")
    est._set_training_interactions(u, i, y)
    timer.lap("user-item matrix")
    est.rating_range_ = (float(y.min()), float(y.max()))
    rng = np.random.default_rng(check_random_state(est.random_state).randint(2**31))

    n_users, n_items, k = len(est.users_), len(est.items_), est.n_factors
    est.user_factors_ = rng.normal(0, est.init_std, (n_users, k)).astype(dtype)
    est.item_factors_ = rng.normal(0, est.init_std, (n_items, k)).astype(dtype)
    for name in extra_item_factors:
        setattr(est, name, rng.normal(0, est.init_std, (n_items, k)).astype(dtype))
    est.user_bias_ = np.zeros(n_users, dtype=dtype)
    est.item_bias_ = np.zeros(n_items, dtype=dtype)

    train = val = None
    if est.early_stopping:
        train, val = holdout_split(len(y), est.validation_fraction, rng)
    sub = slice(None) if train is None else train
    w = None if sample_weight is None else sample_weight[sub]
    est.global_mean_ = float(np.average(y[sub], weights=w)) if est.biased else 0.0
    timer.lap("initialise")
    return u, i, y, sample_weight, train, val, rng


def holdout_split(n, validation_fraction, rng):
    """Random (train, validation) index split for early stopping, both sorted.

    Raises a ``ValueError`` naming the numbers when nothing would be left to train on.
    """
    n_val = max(1, int(round(validation_fraction * n)))
    if n_val >= n:
        raise ValueError(
            f"validation_fraction={validation_fraction} leaves no training "
            f"rows out of {n}."
        )
    shuffled = rng.permutation(n)
    return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])


def validation_rmse(model, u, i, y, sample_weight):
    """Weighted RMSE of ``model._predict_codes`` on held-out (user, item) codes."""
    pred = model._predict_codes(u.astype(np.int32), i.astype(np.int32))
    return float(np.sqrt(np.average((pred - y) ** 2, weights=sample_weight)))


def raise_if_diverged(epoch, n_bad, loss, learning_rate):
    """Stop a run whose prediction errors became NaN or infinite."""
    if n_bad or not np.isfinite(loss):
        raise FloatingPointError(
            f"SGD diverged in epoch {epoch}: the prediction error became NaN or "
            f"infinite. Use a smaller learning_rate (now {learning_rate}) "
            "or a larger regularization."
        )


class EarlyStopping:
    """Track a validation score to minimise; keep a copy of the best parameters.

    Parameters
    ----------
    state : callable
        Returns the arrays that make up the model's parameters (updated in
        place by training); they are copied at each new best epoch and written
        back by :meth:`restore`.
    tol : float
        Minimum decrease of the score that counts as an improvement.
    patience : int
        Stop after this many epochs without improvement.

    Attributes
    ----------
    scores : list of float
        The score after each epoch.
    best_iteration : int or None
        1-based epoch of the best score.
    """

    def __init__(self, state, tol, patience):
        self.state = state
        self.tol = tol
        self.patience = patience
        self.scores = []
        self.best_iteration = None
        self._best = np.inf
        self._best_state = None
        self._no_improve = 0

    def update(self, epoch, score):
        """Record the score of ``epoch``; return True when training should stop."""
        self.scores.append(score)
        if score < self._best - self.tol:
            self._best, self._no_improve, self.best_iteration = score, 0, epoch
            self._best_state = [a.copy() for a in self.state()]
        else:
            self._no_improve += 1
        return self._no_improve >= self.patience

    def report_to(self, est):
        """Set ``est.validation_scores_`` and ``est.best_iteration_``."""
        est.validation_scores_ = self.scores
        est.best_iteration_ = self.best_iteration

    def restore(self):
        """Write the best epoch's parameters back; True if there was one."""
        if self._best_state is None:
            return False
        for dst, src in zip(self.state(), self._best_state):
            dst[...] = src
        return True
