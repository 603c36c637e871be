"""
===========
Quick start
===========

Fit :class:`~sklearn_mf.MatrixFactorization` to movie ratings, measure its
error on held-out ratings, and recommend films.  The data are MovieLens 100K
when a local copy is found, synthetic ratings otherwise (the script prints
which).
"""

# %%
# Load the ratings
# ----------------
# Each row of ``X`` is one rating: user id, item id, timestamp.  ``y`` is the
# rating (1 to 5 stars).
import matplotlib.pyplot as plt
import numpy as np
from _data import load_ratings
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.model_selection import train_test_split

from sklearn_mf import MatrixFactorization

data = load_ratings()
print("Data:", data.source)
X, y = data.X, data.y
print(f"{len(y)} ratings by {X['user'].nunique()} users on {X['item'].nunique()} items")
X.head()

# %%
# Fit and evaluate
# ----------------
# Hold out 20 % of the ratings at random.  The baseline predicts the mean
# training rating for everybody.
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

model = MatrixFactorization(
    n_factors=50, n_epochs=30, learning_rate=0.01, regularization=0.05, random_state=0
)
model.fit(X_train, y_train)
pred = model.predict(X_test)

baseline = np.full(len(y_test), y_train.mean())
print(
    f"global mean:          RMSE {root_mean_squared_error(y_test, baseline):.3f}  "
    f"MAE {mean_absolute_error(y_test, baseline):.3f}"
)
print(
    f"matrix factorization: RMSE {root_mean_squared_error(y_test, pred):.3f}  "
    f"MAE {mean_absolute_error(y_test, pred):.3f}"
)

# %%
# The predictions follow the true ratings: higher stars get higher predicted
# ratings, with the usual shrinkage towards the mean.
fig, ax = plt.subplots(figsize=(6, 4))
stars = np.sort(np.unique(y_test))
ax.boxplot([pred[np.asarray(y_test) == s] for s in stars], showfliers=False)
ax.set_xticks(range(1, len(stars) + 1), [f"{s:g}" for s in stars])
ax.set_xlabel("true rating")
ax.set_ylabel("predicted rating")
ax.set_title("Held-out ratings")
fig.tight_layout()

# %%
# Recommend
# ---------
# ``recommend`` ranks the whole catalogue for several users in one call and
# leaves out what each already rated.  Ids are the dataset's own ids.
users = X_train["user"].unique()[:3]
recs = model.recommend(users, n=5)
table = recs.to_frame()
table["title"] = data.titles.reindex(table["item"]).to_numpy()
table

# %%
# A user the model has never seen is served the most popular items, and the
# ``fallback`` flag says so.
print(model.recommend(["new-user"], n=5).to_frame())

# %%
# Nearest neighbours in factor space
# ----------------------------------
# Items whose factor vectors point the same way are liked by the same
# people.  Here are the neighbours of the most rated item.
most_rated = X_train["item"].value_counts().index[0]
neighbours, similarity = model.similar_items([most_rated], n=5)
print("Most rated:", data.titles.get(most_rated, most_rated))
for item, sim in zip(neighbours[0], similarity[0]):
    print(f"  {sim:.2f}  {data.titles.get(item, item)}")
