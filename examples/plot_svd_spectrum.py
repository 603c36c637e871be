"""
=======================================================
Singular-value spectrum and explained variance
=======================================================

:class:`~sklearn_mf.TruncatedSVDRecommender` fills the missing cells of the
rating matrix (here with each item's mean rating), centres it, and keeps its
best rank-``k`` approximation with :func:`scipy.sparse.linalg.svds`, without
ever building the dense matrix.  This example plots the leading singular
values, the cumulative share of variance the factors explain, and the test
RMSE as the rank grows, next to :class:`~sklearn_mf.MatrixFactorization`,
which fits the observed ratings only.

The data are MovieLens 100K when a local copy is found, synthetic ratings
otherwise (the script prints which).
"""

# %%
# Spectrum of the imputed, centred rating matrix
# ----------------------------------------------
import matplotlib.pyplot as plt
import numpy as np
from _data import load_ratings
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split

from sklearn_mf import MatrixFactorization, TruncatedSVDRecommender

data = load_ratings()
print("Data:", data.source)
X_train, X_test, y_train, y_test = train_test_split(data.X, data.y, test_size=0.2, random_state=0)
svd = TruncatedSVDRecommender(n_factors=50, impute="item_mean", random_state=0)
svd.fit(X_train, y_train)
print("leading singular values:", np.round(svd.singular_values_[:5], 1))
print(f"variance explained by 50 factors: {svd.explained_variance_ratio_.sum():.1%}")

# %%
# Test error against the rank
# ---------------------------
# A few factors capture the broad structure; beyond that the SVD spends its
# rank on the values invented by the imputation, and the test error stops
# improving.  Matrix factorization, fitted on the observed ratings only, is
# better at every rank.
ranks = [2, 5, 10, 20, 50]
svd_rmse = [
    root_mean_squared_error(
        y_test,
        TruncatedSVDRecommender(n_factors=k, random_state=0).fit(X_train, y_train).predict(X_test),
    )
    for k in ranks
]
mf_rmse = [
    root_mean_squared_error(
        y_test,
        MatrixFactorization(n_factors=k, random_state=0).fit(X_train, y_train).predict(X_test),
    )
    for k in ranks
]
for k, a, b in zip(ranks, svd_rmse, mf_rmse):
    print(f"rank {k:3d}: truncated SVD RMSE {a:.4f}   MatrixFactorization RMSE {b:.4f}")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
axes[0].plot(np.arange(1, len(svd.singular_values_) + 1), svd.singular_values_, marker=".")
axes[0].set(xlabel="component", ylabel="singular value", title="Spectrum")
axes[1].plot(np.arange(1, 51), np.cumsum(svd.explained_variance_ratio_), marker=".")
axes[1].set(
    xlabel="number of factors", ylabel="share of variance", title="Cumulative explained variance"
)
axes[2].plot(ranks, svd_rmse, marker="o", label="truncated SVD (item-mean fill)")
axes[2].plot(ranks, mf_rmse, marker="o", label="MatrixFactorization (observed only)")
axes[2].set(xscale="log", xlabel="rank", ylabel="test RMSE", title="Test error")
axes[2].legend()
fig.tight_layout()
plt.show()
