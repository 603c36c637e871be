"""
============================================
Tuning with GridSearchCV, random vs temporal
============================================

:class:`~sklearn_mf.MatrixFactorization` is a scikit-learn regressor whose
samples are ratings, so :class:`~sklearn.model_selection.GridSearchCV` tunes
it with no adapter.  This example searches the number of factors and the
regularization twice: with random cross-validation folds, and with a
temporal split that trains on the past and tests on the future, which is how
a deployed model is used.  The data are MovieLens 100K when a local copy is
found, synthetic ratings otherwise (the script prints which).
"""

# %%
# Hold out the most recent ratings
# --------------------------------
# The final test set is the latest 20 % of the ratings
# (:class:`~sklearn_mf.model_selection.TemporalSplit` reads the ``timestamp``
# column of ``X``); the search only sees the ratings before it.
import matplotlib.pyplot as plt
import pandas as pd
from _data import load_ratings
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_mf import MatrixFactorization
from sklearn_mf.metrics import make_ranking_scorer
from sklearn_mf.model_selection import TemporalSplit

data = load_ratings()
print("Data:", data.source)
X, y = data.X, data.y
train, test = next(TemporalSplit(test_size=0.2).split(X))
X_train, y_train, X_test, y_test = X.iloc[train], y.iloc[train], X.iloc[test], y.iloc[test]
print(f"{len(train)} ratings before the cutoff, {len(test)} after")

# %%
# Search with random folds
# ------------------------
# ``n_jobs=-1`` fits candidates in parallel processes.  The estimator's own
# ``n_jobs`` stays at None, so each worker uses its share of the cores
# (joblib sets ``OMP_NUM_THREADS`` in the workers) and threads do not
# oversubscribe the machine.
param_grid = {"n_factors": [10, 50], "regularization": [0.01, 0.03, 0.1]}
model = MatrixFactorization(n_epochs=20, learning_rate=0.01, random_state=0)

random_search = GridSearchCV(
    model,
    param_grid,
    scoring="neg_root_mean_squared_error",
    cv=KFold(n_splits=2, shuffle=True, random_state=0),
    n_jobs=-1,
).fit(X_train, y_train)
print("random folds:  ", random_search.best_params_, f"CV RMSE {-random_search.best_score_:.4f}")

# %%
# Search with temporal folds and two metrics
# ------------------------------------------
# ``TemporalSplit(n_splits=2)`` makes expanding windows: each fold trains on
# everything before a cutoff and tests on the next slice of time.  Next to
# RMSE we score the top-10 lists with NDCG@10 (ratings of 4 and more are
# relevant; the scorer ranks the whole catalogue for every test user).
# ``refit="rmse"`` chooses the model by RMSE.
scoring = {
    "rmse": "neg_root_mean_squared_error",
    "ndcg@10": make_ranking_scorer("ndcg", k=10, relevance_threshold=4),
}
temporal_search = GridSearchCV(
    model,
    param_grid,
    scoring=scoring,
    refit="rmse",
    cv=TemporalSplit(n_splits=2),
    n_jobs=-1,
).fit(X_train, y_train)
print(
    "temporal folds:", temporal_search.best_params_, f"CV RMSE {-temporal_search.best_score_:.4f}"
)

# %%
# Which estimate was honest?
# --------------------------
# Both searches refit their best candidate on all the training ratings.  On
# the future ratings, the error is closer to the temporal estimate: random
# folds let the model use a user's later ratings to predict earlier ones, so
# they are optimistic.
for name, search in [("random", random_search), ("temporal", temporal_search)]:
    rmse = root_mean_squared_error(y_test, search.predict(X_test))
    print(
        f"{name:9s} folds: CV RMSE {-search.best_score_:.4f}   "
        f"RMSE on the latest ratings {rmse:.4f}"
    )

# %%
# All candidates
# --------------
# The RMSE and the ranking metric need not agree on the best candidate: a
# model can predict stars well and still rank poorly, and the other way round.
results = pd.DataFrame(temporal_search.cv_results_)
table = pd.DataFrame(
    {
        "n_factors": results["param_n_factors"],
        "regularization": results["param_regularization"],
        "RMSE": -results["mean_test_rmse"],
        "NDCG@10": results["mean_test_ndcg@10"],
    }
)
print(table.round(4).to_string(index=False))

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
for k in param_grid["n_factors"]:
    rows = table[table["n_factors"] == k]
    axes[0].plot(rows["regularization"], rows["RMSE"], marker="o", label=f"n_factors={k}")
    axes[1].plot(rows["regularization"], rows["NDCG@10"], marker="o", label=f"n_factors={k}")
for ax, metric in zip(
    axes, ["temporal CV RMSE (lower is better)", "temporal CV NDCG@10 (higher is better)"]
):
    ax.set_xscale("log")
    ax.set_xticks(param_grid["regularization"], [str(r) for r in param_grid["regularization"]])
    ax.minorticks_off()
    ax.set_xlabel("regularization")
    ax.set_title(metric, fontsize=10)
axes[0].legend()
fig.tight_layout()
