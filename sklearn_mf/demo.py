"""The main job, end to end: ``python -m sklearn_mf.demo [MOVIELENS_PATH]``.

Fits :class:`~sklearn_mf.MatrixFactorization`, tunes it with
:class:`~sklearn.model_selection.GridSearchCV`, prints test RMSE/MAE and the
top-10 recommendations of a few users.  Without a path it runs on built-in
synthetic ratings (:func:`sklearn_mf.datasets.make_ratings`, the size of
MovieLens 100K); with the path of a local MovieLens copy (any layout
:func:`sklearn_mf.datasets.load_movielens` reads) it runs on real data and
shows movie titles.
"""

import argparse
import time

import numpy as np
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold, train_test_split

from sklearn_mf import MatrixFactorization
from sklearn_mf.datasets import load_movielens, make_ratings


def _load(path):
    if path is None:
        X, y = make_ratings(
            n_users=943, n_items=1682, n_ratings=100_000, noise=0.9, random_state=0, as_frame=True
        )
        return X, y, None, "built-in synthetic ratings (make_ratings, 943 x 1682, 100k)"
    data = load_movielens(path)
    titles = None
    if data.movies is not None and "title" in data.movies:
        titles = data.movies.set_index("item")["title"]
    return data.X, data.y, titles, f"MovieLens from {path} ({len(data.y):,} ratings)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help="directory of a MovieLens copy (default: built-in data)",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="threads per fit")
    args = parser.parse_args(argv)

    X, y, titles, what = _load(args.path)
    print(f"Data: {what}")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

    grid = GridSearchCV(
        MatrixFactorization(n_epochs=40, random_state=0, n_jobs=args.n_jobs),
        param_grid={
            "n_factors": [20, 100],
            "regularization": [0.02, 0.08],
            "learning_rate": [0.005, 0.01],
        },
        scoring="neg_root_mean_squared_error",
        cv=KFold(3, shuffle=True, random_state=0),
    )
    tic = time.perf_counter()
    grid.fit(X_train, y_train)
    print(
        f"GridSearchCV: {len(grid.cv_results_['params'])} candidates x 3 folds "
        f"in {time.perf_counter() - tic:.1f} s"
    )
    print(f"best parameters: {grid.best_params_}  (CV RMSE {-grid.best_score_:.4f})")

    model = grid.best_estimator_
    pred = model.predict(X_test)
    print(
        f"test RMSE {root_mean_squared_error(y_test, pred):.4f}   "
        f"test MAE {mean_absolute_error(y_test, pred):.4f}   "
        f"(predicting the mean: RMSE "
        f"{root_mean_squared_error(y_test, np.full(len(y_test), np.mean(y_train))):.4f})"
    )

    users = model.users_[:3]
    rec = model.recommend(users, n=10)
    for user, items, scores in zip(rec.query, rec.items, rec.scores):
        print(f"\nTop 10 for user {user}:")
        for rank, (item, score) in enumerate(zip(items, scores), 1):
            label = titles.get(item, item) if titles is not None else f"item {item}"
            print(f"  {rank:2d}. {label}  ({score:.2f})")


if __name__ == "__main__":
    main()
