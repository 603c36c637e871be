"""
==============================
Tuning with GridSearchCV
==============================

:class:`~sklearn_mf.MatrixFactorization` is a scikit-learn regressor whose
samples are ratings, so :class:`~sklearn.model_selection.GridSearchCV` tunes
it with no adapter.  This example searches the number of factors and the
regularization with RMSE as the score.  The data are MovieLens 100K when a
local copy is found, synthetic ratings otherwise (the script prints which).

The split here is random, which is the simplest setting and fine for
comparing hyperparameters; a deployed model predicts the future from the past,
and the evaluation example of this gallery shows the same search with a
temporal split.
"""

# %%
# Hold out a test set and search on the rest
# -------------------------------------------
# Each candidate is refitted on every cross-validation fold; ``n_jobs=-1``
# fits candidates in parallel processes.  Leaving the estimator's own
# ``n_jobs`` at None lets each worker use its share of the cores (joblib sets
# ``OMP_NUM_THREADS`` in the workers), so threads do not oversubscribe the
# machine.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _data import load_ratings
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold, train_test_split

from sklearn_mf import MatrixFactorization

data = load_ratings()
print("Data:", data.source)
X_train, X_test, y_train, y_test = train_test_split(data.X, data.y, test_size=0.2,
                                                    random_state=0)

param_grid = {"n_factors": [10, 50], "regularization": [0.01, 0.05, 0.1]}
search = GridSearchCV(
    MatrixFactorization(n_epochs=20, learning_rate=0.01, random_state=0),
    param_grid,
    scoring="neg_root_mean_squared_error",
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    n_jobs=-1,
)
search.fit(X_train, y_train)
print("best parameters:", search.best_params_)
print(f"cross-validated RMSE {-search.best_score_:.4f}")

# %%
# The refitted best model on the held-out ratings
# ------------------------------------------------
# ``refit=True`` (the default) retrains the best candidate on all the
# training ratings; its test RMSE should be close to the cross-validated one.
test_rmse = root_mean_squared_error(y_test, search.predict(X_test))
print(f"test RMSE {test_rmse:.4f}")

# %%
# All candidates
# --------------
# With few factors the penalty matters little; with many, too little
# regularization overfits.
results = pd.DataFrame(search.cv_results_)
table = results.pivot(index="param_regularization", columns="param_n_factors",
                      values="mean_test_score").mul(-1)
print(table.round(4))

fig, ax = plt.subplots(figsize=(6, 4))
for k in param_grid["n_factors"]:
    rows = results[results["param_n_factors"] == k]
    ax.errorbar(rows["param_regularization"].astype(float), -rows["mean_test_score"],
                yerr=rows["std_test_score"], marker="o", capsize=3, label=f"n_factors={k}")
ax.set_xscale("log")
ax.set_xlabel("regularization")
ax.set_ylabel("cross-validated RMSE")
ax.set_title("GridSearchCV over MatrixFactorization")
ax.legend()
fig.tight_layout()
