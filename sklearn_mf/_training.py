"""Pieces of the training loop shared by the iterative estimators.

Every iterative model (SGD and ALS matrix factorization, SVD++, factorization
machines) holds out a validation set the same way, keeps the parameters of its
best epoch the same way and reports divergence the same way; this module is
that one implementation.
"""

import numpy as np


def holdout_split(n, validation_fraction, rng):
    """Random (train, validation) index split for early stopping, both sorted.

    Raises a ``ValueError`` naming the numbers when nothing would be left to train on.
    """
    n_val = max(1, int(round(validation_fraction * n)))
    if n_val >= n:
        raise ValueError(
            f"validation_fraction={validation_fraction} leaves no training "
            f"ratings out of {n}."
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

    def restore(self):
        """Write the best epoch's parameters back; True if there was one."""
        if self._best_state is None:
            return False
        for dst, src in zip(self.state(), self._best_state):
            dst[...] = src
        return True
