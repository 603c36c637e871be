"""
==================================================
Factorization machines with user and item features
==================================================

Matrix factorization sees only who rated what.  A factorization machine (FM)
models every pair of features through latent vectors, so user age, gender and
occupation, the genres of a movie and the time of the rating can all inform a
prediction.  This example compares, on MovieLens 100K (synthetic ratings with
planted side features when no local copy is found):

* :class:`~sklearn_mf.MatrixFactorization` (ids only, default parameters);
* :class:`~sklearn_mf.FMRecommender` with ids only, and with the user and item
  side tables, fitted by ALS (penalty tuned) and as a Bayesian FM by Gibbs
  sampling (``solver="mcmc"``, nothing to tune);
* a ``Pipeline(ColumnTransformer(OneHotEncoder ...), FactorizationMachineRegressor())``
  that also sees the month of each rating, tuned with ``GridSearchCV``;

overall, for users with few training ratings, for users never seen in
training (user-disjoint folds) who only have a profile, and for movies never
seen in training that only have genres.
"""

# %%
# Data and side tables
# --------------------
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _data import find_movielens_100k
from sklearn.compose import ColumnTransformer
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import GridSearchCV, ShuffleSplit, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from sklearn_mf import FactorizationMachineRegressor, FMRecommender, MatrixFactorization
from sklearn_mf.datasets import load_movielens, make_ratings
from sklearn_mf.model_selection import UserDisjointKFold

path = find_movielens_100k()
if path is not None:
    ml = load_movielens(path)
    ratings = ml.ratings
    users = ml.users.set_index("user")[["age", "gender", "occupation"]]
    users = users.assign(age=pd.cut(users["age"], [0, 18, 25, 35, 45, 50, 56, 100]).astype(str))
    movies = ml.movies.set_index("item")
    items = movies["genres"].str.get_dummies("|")
    decade = movies["year"].str[:3] + "0s"
    print("Data: MovieLens 100K", path)
else:
    X, y, truth = make_ratings(
        n_users=943,
        n_items=1682,
        n_ratings=100_000,
        as_frame=True,
        return_truth=True,
        random_state=0,
    )
    ratings = X.assign(rating=y.to_numpy())
    users = truth.user_features.assign(age=lambda d: (d["age"] // 10).astype(str))
    items = pd.get_dummies(truth.item_features["genre"]).astype(float)
    decade = (truth.item_features["year"] // 10 * 10).astype(str) + "s"
    print("Data: synthetic ratings (no MovieLens 100K copy found)")
print(users.head(3), items.iloc[:3, :6], sep="\n\n")

# Genres are 0/1 columns used as given; the other side columns are one-hot
# encoded by FMRecommender.
train, test = train_test_split(ratings, test_size=0.2, random_state=0)
ui = ["user", "item"]


def rmse(model, frame):
    return root_mean_squared_error(frame["rating"], model.predict(frame[ui]))


# %%
# Fit the models on a random 80/20 split
# --------------------------------------
# MF keeps its defaults; each FM gets its penalty from a small
# ``GridSearchCV`` on the training ratings, validated on a 10 % holdout (with
# 2-fold CV each candidate would see only half the ratings and the search
# would favour too strong a penalty for the final fit).
fm_params = dict(n_factors=10, max_iter=15, tol=None, random_state=0)
reg_grid = {"regularization": [0.1, 0.15, 0.2]}
holdout = ShuffleSplit(n_splits=1, test_size=0.1, random_state=0)


def tuned(model):
    return GridSearchCV(model, reg_grid, cv=holdout, scoring="neg_root_mean_squared_error")


models = {
    "MF (ids)": MatrixFactorization(random_state=0),
    "FM (ids)": tuned(FMRecommender(**fm_params)),
    "FM (ids + side)": tuned(FMRecommender(user_features=users, item_features=items, **fm_params)),
    # the Bayesian FM learns its own shrinkage: no search
    "Bayesian FM (ids + side)": FMRecommender(
        n_factors=10,
        solver="mcmc",
        max_iter=150,
        user_features=users,
        item_features=items,
        random_state=0,
    ),
}
for name, model in models.items():
    tic = time.perf_counter()
    model.fit(train[ui], train["rating"])
    if isinstance(model, GridSearchCV):
        print(f"{name}: regularization={model.best_params_['regularization']}")
        models[name] = model = model.best_estimator_
    print(f"{name:16s} test RMSE {rmse(model, test):.4f}  ({time.perf_counter() - tic:.1f} s)")


# %%
# A Pipeline that also uses the time of the rating
# ------------------------------------------------
# ``FactorizationMachineRegressor`` takes any feature matrix, so context such
# as the month of the rating (which a user-item split cannot express) goes
# through a ``ColumnTransformer``.  ``GridSearchCV`` tunes the penalty.
def with_context(frame):
    out = frame.join(users, on="user").join(items, on="item")
    out["month"] = pd.to_datetime(out["timestamp"], unit="s").dt.strftime("%Y-%m")
    return out


categorical = ["user", "item", "age", "gender", "occupation", "month"]
categorical = [c for c in categorical if c in with_context(train.head(1))]
pipe = Pipeline(
    [
        (
            "features",
            ColumnTransformer(
                [
                    ("onehot", OneHotEncoder(handle_unknown="ignore"), categorical),
                    ("genres", "passthrough", list(items.columns)),
                ]
            ),
        ),
        ("fm", FactorizationMachineRegressor(n_factors=10, max_iter=15, tol=None, random_state=0)),
    ]
)
search = GridSearchCV(
    pipe,
    {"fm__regularization": [0.1, 0.15, 0.2]},
    cv=holdout,
    scoring="neg_root_mean_squared_error",
)
search.fit(with_context(train), train["rating"])
print("best", search.best_params_)
pipe_rmse = root_mean_squared_error(test["rating"], search.predict(with_context(test)))
print(f"{'FM pipeline (+ month)':16s} test RMSE {pipe_rmse:.4f}")

# %%
# Accuracy by user activity
# -------------------------
# Users are grouped by their number of training ratings.  Side features help
# most where the ids carry little information.
counts = train["user"].value_counts()
bins = [0, 10, 20, 50, 100, np.inf]
labels = ["1-10", "11-20", "21-50", "51-100", ">100"]
group = pd.cut(test["user"].map(counts).fillna(0), bins, labels=labels)
by_group = {}
for name, model in models.items():
    err = (model.predict(test[ui]) - test["rating"].to_numpy()) ** 2
    by_group[name] = pd.Series(err).groupby(group.to_numpy(), observed=True).mean() ** 0.5
err = (search.predict(with_context(test)) - test["rating"].to_numpy()) ** 2
by_group["FM pipeline (+ month)"] = (
    pd.Series(err).groupby(group.to_numpy(), observed=True).mean() ** 0.5
)
by_group = pd.DataFrame(by_group)
by_group["test ratings"] = group.value_counts().reindex(by_group.index)
print(by_group.round(4).to_string())

# %%
# Users and items without any training rating
# -------------------------------------------
# User cold start: hold out all ratings of 20 % of the users, five times
# (user-disjoint folds).  MF can only fall back to the global mean plus the
# item bias; the FM scores them from their profile.  ``user_id_dropout``
# leaves the user id out of a share of the training rows so that the model
# also learns to score from the profile alone.  Item cold start: the same
# with 300 held-out movies, scored from their genres (and decade).

cold_params = dict(
    n_factors=10,
    max_iter=15,
    tol=None,
    random_state=0,
    regularization=models["FM (ids + side)"].regularization,
)
mcmc_params = dict(n_factors=10, solver="mcmc", max_iter=150, random_state=0)
user_cold = {"MF (ids)": [], "FM (ids)": [], "FM (ids + side)": [], "Bayesian FM (ids + side)": []}
for tr, te in UserDisjointKFold(n_splits=5, shuffle=True, random_state=0).split(ratings):
    warm, cold = ratings.iloc[tr], ratings.iloc[te]
    fold_models = {
        "MF (ids)": MatrixFactorization(n_factors=10, random_state=0),
        "FM (ids)": FMRecommender(**cold_params),
        "FM (ids + side)": FMRecommender(
            user_features=users, item_features=items, user_id_dropout=0.3, **cold_params
        ),
        "Bayesian FM (ids + side)": FMRecommender(
            user_features=users, item_features=items, user_id_dropout=0.3, **mcmc_params
        ),
    }
    for name, model in fold_models.items():
        user_cold[name].append(rmse(model.fit(warm[ui], warm["rating"]), cold))
user_cold = pd.DataFrame(user_cold)
print("cold users, RMSE per fold:")
print(user_cold.round(4).to_string())
print("mean", user_cold.mean().round(4).to_dict())
new_user = fold_models["FM (ids + side)"]
recs = new_user.recommend(cold["user"].unique()[:2], n=5)
print(recs.to_frame())

item_table = items.assign(decade=decade)
cold_items = np.random.default_rng(0).choice(ratings["item"].unique(), size=300, replace=False)
is_cold = ratings["item"].isin(cold_items)
warm, cold = ratings[~is_cold], ratings[is_cold]
item_cold = {
    "MF (ids)": rmse(
        MatrixFactorization(n_factors=10, random_state=0).fit(warm[ui], warm["rating"]), cold
    ),
    "FM (ids)": rmse(FMRecommender(**cold_params).fit(warm[ui], warm["rating"]), cold),
    "FM (ids + side)": rmse(
        FMRecommender(item_features=item_table, item_id_dropout=0.3, **cold_params).fit(
            warm[ui], warm["rating"]
        ),
        cold,
    ),
    "Bayesian FM (ids + side)": rmse(
        FMRecommender(item_features=item_table, item_id_dropout=0.3, **mcmc_params).fit(
            warm[ui], warm["rating"]
        ),
        cold,
    ),
}
print("cold items, RMSE:", {k: round(v, 4) for k, v in item_cold.items()})

# %%
# Plot
# ----
fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), gridspec_kw={"width_ratios": [3, 1, 1]})
table = by_group.drop(columns="test ratings")
table.plot.bar(ax=axes[0], rot=0)
axes[0].set_xlabel("training ratings of the user")
axes[0].set_ylabel("test RMSE")
axes[0].set_ylim(0.8, table.to_numpy().max() + 0.05)
axes[0].set_title("Random 80/20 split")
panels = (
    (axes[1], user_cold.mean().to_dict(), "Users unseen in training\n(mean of 5 folds)"),
    (axes[2], item_cold, "300 movies unseen in training"),
)
for ax, values, title in panels:
    ax.bar(range(len(values)), list(values.values()), color=[f"C{i}" for i in range(len(values))])
    ax.set_xticks(range(len(values)), list(values), rotation=30, ha="right")
    ax.set_ylim(min(values.values()) - 0.05, max(values.values()) + 0.02)
    ax.set_title(title)
fig.tight_layout()
plt.show()
