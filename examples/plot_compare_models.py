"""
===================================================
Comparing every model of the library on MovieLens
===================================================

One split, every model: the rating models (baseline biases, matrix
factorization with SGD and ALS, SVD++, truncated SVD of the imputed matrix,
a factorization machine on the ids, item-kNN with a KNNBaseline estimate)
are scored on the ratings they predict
(RMSE, MAE), and all models, the implicit-feedback ones and the popularity
baseline included, on the top-10 lists they recommend (Precision@10 and
NDCG@10 with :func:`~sklearn_mf.metrics.evaluate`).  Fit times are measured
on the same machine.

The data are MovieLens 100K when a local copy is found, synthetic ratings
otherwise (the script prints which).
"""

# %%
# Hold out each user's latest ratings
# -----------------------------------
# :class:`~sklearn_mf.model_selection.PerUserTemporalSplit` puts the latest
# 20 % of every user's ratings in the test set, so every test user is known
# to the models and the test is in each user's future.
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _data import load_ratings

from sklearn_mf import (
    BPR,
    EASE,
    BaselineRegressor,
    FMRecommender,
    ImplicitALS,
    ItemKNN,
    MatrixFactorization,
    PopularityRecommender,
    SVDpp,
    TruncatedSVDRecommender,
    UserKNN,
)
from sklearn_mf.metrics import evaluate
from sklearn_mf.model_selection import PerUserTemporalSplit

data = load_ratings()
print("Data:", data.source)
X, y = data.X, data.y
train, test = next(PerUserTemporalSplit(test_size=0.2, min_train=5).split(X))
X_train, y_train, X_test, y_test = X.iloc[train], y.iloc[train], X.iloc[test], y.iloc[test]
print(f"{len(train)} training and {len(test)} test ratings")

# %%
# The models
# ----------
# Settings are reasonable defaults for MovieLens 100K, not tuned on the test
# set.  The implicit-feedback models (:class:`~sklearn_mf.ImplicitALS`,
# :class:`~sklearn_mf.BPR`, the neighbourhood models
# :class:`~sklearn_mf.ItemKNN` and :class:`~sklearn_mf.UserKNN` and the
# closed-form item-item model :class:`~sklearn_mf.EASE`, all three at their
# defaults) and the popularity baseline see *which* items each user rated,
# not the ratings, and predict no ratings.  ``ItemKNN(feedback="explicit")``
# predicts ratings like Surprise's KNNBaseline.
rating_models = {
    "Baseline (biases)": BaselineRegressor(),
    "MF, SGD": MatrixFactorization(n_factors=50, n_epochs=30, regularization=0.05, random_state=0),
    "MF, ALS": MatrixFactorization(
        n_factors=20, solver="als", max_iter=10, regularization=0.1, random_state=0
    ),
    "SVD++": SVDpp(n_factors=20, n_epochs=20, random_state=0),
    "Truncated SVD": TruncatedSVDRecommender(n_factors=15, random_state=0),
    "FM (ids)": FMRecommender(n_factors=8, random_state=0),
    "ItemKNN, ratings": ItemKNN(n_neighbors=300, feedback="explicit"),
}
ranking_models = {
    "Popularity": PopularityRecommender(),
    "ImplicitALS": ImplicitALS(n_factors=32, max_iter=10, random_state=0),
    "BPR": BPR(n_factors=32, n_epochs=30, random_state=0),
    "ItemKNN": ItemKNN(),
    "UserKNN": UserKNN(),
    "EASE": EASE(),
}

# %%
# Fit, predict, rank
# ------------------
# A rating counts as relevant for the ranking metrics when it is 4 or more;
# each model ranks the whole catalogue minus the user's training items.
rows = []
for name, model in {**rating_models, **ranking_models}.items():
    start = time.perf_counter()
    model.fit(X_train, y_train if name in rating_models else None)
    fit_time = time.perf_counter() - start
    row = {"model": name, "fit time (s)": fit_time}
    if name in rating_models:
        err = model.predict(X_test) - y_test.to_numpy()
        row["RMSE"] = np.sqrt(np.mean(err**2))
        row["MAE"] = np.mean(np.abs(err))
    table = evaluate(
        model, X_test, y_test, k=10, metrics=["precision", "ndcg"], relevance_threshold=4
    )
    at10 = table.set_index("metric")["value"]
    row["P@10"], row["NDCG@10"] = at10["precision"], at10["ndcg"]
    rows.append(row)

results = pd.DataFrame(rows).set_index("model")
with pd.option_context("display.float_format", "{:.3f}".format):
    print(results)

# %%
# Plot
# ----
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
rated = results.dropna(subset=["RMSE"])
pos = np.arange(len(rated))
axes[0].barh(pos - 0.2, rated["RMSE"], height=0.4, label="RMSE")
axes[0].barh(pos + 0.2, rated["MAE"], height=0.4, label="MAE")
axes[0].set_yticks(pos, rated.index)
axes[0].set_xlim(0.6, max(1.05, rated["RMSE"].max() + 0.02))
axes[0].set_title("Rating error (lower is better)")
axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
pos = np.arange(len(results))
axes[1].barh(pos - 0.2, results["P@10"], height=0.4, label="Precision@10")
axes[1].barh(pos + 0.2, results["NDCG@10"], height=0.4, label="NDCG@10")
axes[1].set_yticks(pos, results.index)
axes[1].set_title("Top-10 quality (higher is better)")
axes[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
axes[2].barh(pos, results["fit time (s)"], color="tab:gray")
axes[2].set_yticks(pos, results.index)
axes[2].set_title("Fit time (s)")
for ax in axes:
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
fig.tight_layout()

# %%
# Reading the table
# -----------------
# On MovieLens 100K (numbers of one run; fit times depend on the machine
# and its load) every factorization fitted on the observed ratings predicts
# them better than the bias-only baseline (RMSE about 0.97 against 1.00 on
# each user's *future* ratings, a harder test than a random split), SVD++,
# which also uses *which* items a user rated, at the front.  The truncated SVD
# of the imputed matrix is worse than the baseline itself: filling the
# missing cells distorts what it factorizes.  The ranking columns tell
# another story: a model trained to predict ratings ranks by *predicted
# rating*, which favours rarely rated items a few users loved, and loses to
# the plain popularity list; the implicit-feedback models, trained on what
# users choose to rate, beat it by more than half (NDCG@10 0.17 and 0.15
# against 0.10), and the neighbourhood models, fitted in a fraction of a
# second without a single iteration, are as good (NDCG@10 0.17); EASE is
# ahead of every factorization on this data (0.18), as in the
# reproducibility studies of Dacrema et al. (2019).  Pick the model for the
# metric you serve.  At 1M interactions (20,000 users x 5,000 items, two
# threads, ``benchmarks/bench_neighbours.py``) ``ItemKNN()`` fits in about
# 1.4 s and ``UserKNN()`` in 2.8 s, while EASE's dense Cholesky inverse of
# the 5,000 x 5,000 matrix takes about 30 s and grows as the cube of the
# catalogue: the "which model when" table of the models guide has the
# measured figures side by side.
plt.show()
