"""
=============================
A map of the item embeddings
=============================

Every item gets a vector of latent factors.  Projected to two dimensions with
PCA, the vectors of :class:`~sklearn_mf.MatrixFactorization` form a map on
which films liked by the same people sit together.  The data are MovieLens
100K when a local copy is found, synthetic ratings otherwise (the script
prints which; synthetic items are labelled by their planted genre).
"""

# %%
# Fit the model
# -------------
import matplotlib.pyplot as plt
import numpy as np
from _data import load_ratings
from sklearn.decomposition import PCA

from sklearn_mf import MatrixFactorization

data = load_ratings()
print("Data:", data.source)
model = MatrixFactorization(
    n_factors=32, n_epochs=40, learning_rate=0.01, regularization=0.05, random_state=0
)
model.fit(data.X, data.y)

# %%
# Project the factors of well-known items
# ---------------------------------------
# Items with few ratings keep factors near their random start (the penalty
# pulls them to zero), so we map the items with at least 100 ratings.
# ``items_`` holds the raw id of each row of ``item_factors_``.
counts = data.X["item"].value_counts()
popular = np.isin(model.items_, counts.index[counts >= 100])
ids = model.items_[popular]
coords = PCA(n_components=2, random_state=0).fit_transform(model.item_factors_[popular])
print(f"{popular.sum()} items with at least 100 ratings")

# %%
# Colour by genre and label a few titles
# --------------------------------------
# The genre is never shown to the model; if films of one genre gather in one
# region, the factors learnt it from the ratings alone.
genre = data.genres.reindex(ids).fillna("").str.split("|").str[0].to_numpy()
top_genres = [
    g for g in data.genres.reindex(ids).fillna("").str.split("|").str[0].value_counts().index if g
][:5]

fig, ax = plt.subplots(figsize=(9, 7))
ax.scatter(coords[:, 0], coords[:, 1], s=8, color="lightgrey", label="other")
for g in top_genres:
    sel = genre == g
    ax.scatter(coords[sel, 0], coords[sel, 1], s=12, label=g)

# label the two ends of each axis and the three most rated items
extremes = np.unique(
    np.concatenate(
        [
            np.argsort(coords[:, 0])[[0, -1]],
            np.argsort(coords[:, 1])[[0, -1]],
            np.flatnonzero(np.isin(ids, counts.index[:3])),
        ]
    )
)
for k in extremes:
    ax.annotate(
        str(data.titles.get(ids[k], ids[k]))[:30],
        coords[k],
        fontsize=8,
        xytext=(3, 3),
        textcoords="offset points",
    )
ax.set_xlabel("first principal component of the item factors")
ax.set_ylabel("second principal component")
ax.set_title("Item embeddings of MatrixFactorization (PCA)")
ax.legend(title="first genre", loc="best", fontsize=8)
fig.tight_layout()

# %%
# Neighbours agree with the map
# -----------------------------
# ``similar_items`` ranks all items by the cosine similarity of their full
# factor vectors (not only the two components drawn above).
query = counts.index[0]
neighbours, sims = model.similar_items([query], n=5)
print("Closest to", data.titles.get(query, query))
for item, s in zip(neighbours[0], sims[0]):
    print(f"  {s:.2f}  {data.titles.get(item, item)}")
