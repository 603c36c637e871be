"""
==================================
Learning curves and early stopping
==================================

Watch the training error and the validation error of
:class:`~sklearn_mf.MatrixFactorization` epoch by epoch, and let early stopping
pick the number of epochs.  The data are MovieLens 100K when a local copy is
found, synthetic ratings otherwise (the script prints which).
"""

# %%
# Fit with early stopping
# -----------------------
# ``early_stopping=True`` holds out ``validation_fraction`` of the ratings,
# records the validation RMSE after every epoch in ``validation_scores_``,
# stops after ``n_iter_no_change`` epochs without an improvement of at least
# ``tol``, and keeps the factors of the best epoch (``best_iteration_``).
# A weakly regularized model with many factors overfits quickly, which makes
# the turning point easy to see.
import matplotlib.pyplot as plt
import numpy as np
from _data import load_ratings

from sklearn_mf import MatrixFactorization

data = load_ratings()
print("Data:", data.source)

model = MatrixFactorization(
    n_factors=100,
    n_epochs=80,
    learning_rate=0.01,
    regularization=0.01,
    early_stopping=True,
    validation_fraction=0.1,
    n_iter_no_change=5,
    random_state=0,
)
model.fit(data.X, data.y)
print(
    f"ran {model.n_iter_} epochs, kept epoch {model.best_iteration_} "
    f"(validation RMSE {min(model.validation_scores_):.4f})"
)

# %%
# Plot both curves
# ----------------
# ``loss_curve_`` is the mean squared error on the training ratings seen during
# each epoch; its square root is comparable with the validation RMSE.  The
# training error keeps falling while the validation error turns up: from
# there on the model learns noise.
epochs = np.arange(1, model.n_iter_ + 1)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(epochs, np.sqrt(model.loss_curve_), label="training RMSE")
ax.plot(epochs, model.validation_scores_, label="validation RMSE")
ax.axvline(
    model.best_iteration_,
    color="grey",
    linestyle="--",
    label=f"best epoch ({model.best_iteration_})",
)
ax.set_xlabel("epoch")
ax.set_ylabel("RMSE")
ax.set_title("Early stopping keeps the best epoch")
ax.legend()
fig.tight_layout()

# %%
# Regularization moves the turning point
# --------------------------------------
# A stronger L2 penalty slows the fall of the training error but delays (or
# removes) the rise of the validation error.
fig, ax = plt.subplots(figsize=(7, 4))
for reg in (0.01, 0.05, 0.1):
    m = MatrixFactorization(
        n_factors=50,
        n_epochs=30,
        learning_rate=0.01,
        regularization=reg,
        early_stopping=True,
        n_iter_no_change=30,
        random_state=0,
    ).fit(data.X, data.y)
    ax.plot(np.arange(1, m.n_iter_ + 1), m.validation_scores_, label=f"regularization={reg}")
ax.set_xlabel("epoch")
ax.set_ylabel("validation RMSE")
ax.legend()
fig.tight_layout()
