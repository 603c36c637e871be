"""Rating accuracy on MovieLens 100K: 5-fold cross-validated RMSE and MAE.

* ``MatrixFactorization`` with its default parameters;
* ``MatrixFactorization`` tuned by a *nested* search: on each outer training
  fold a 3-fold ``GridSearchCV`` picks the parameters, which are then scored on
  the outer test fold (so the reported RMSE never saw the data it was tuned on);
* scikit-surprise's ``SVD`` with its defaults, on the same five folds, when it
  is installed.

Usage: ``python benchmarks/accuracy_ml100k.py [--quick]``
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from sklearn_mf import MatrixFactorization
from sklearn_mf.datasets import load_movielens

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SKLEARN_MF_DATA", HERE.parents[1] / "shared" / "data"))

GRID = {
    "n_factors": [100, 200],
    "learning_rate": [0.007, 0.01],
    "regularization": [0.08, 0.12],
    "bias_regularization": [0.01],
    "n_epochs": [80],
}


def surprise_cv(X, y, folds):
    try:
        import pandas as pd
        from surprise import SVD, Dataset, Reader, accuracy
    except ImportError:
        return None
    rmses, maes = [], []
    reader = Reader(rating_scale=(1, 5))
    for train, test in folds:
        frame = pd.DataFrame({"u": X[train, 0], "i": X[train, 1], "r": y[train]})
        trainset = Dataset.load_from_df(frame, reader).build_full_trainset()
        algo = SVD(random_state=0).fit(trainset)
        preds = algo.test(list(zip(X[test, 0], X[test, 1], y[test])))
        rmses.append(accuracy.rmse(preds, verbose=False))
        maes.append(accuracy.mae(preds, verbose=False))
    return np.mean(rmses), np.mean(maes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    args = parser.parse_args()
    data = load_movielens(DATA / "ml-100k")
    X, y = data.X.to_numpy(), data.y.to_numpy()
    cv = KFold(5, shuffle=True, random_state=0)
    scoring = ["neg_root_mean_squared_error", "neg_mean_absolute_error"]

    tic = time.perf_counter()
    res = cross_validate(MatrixFactorization(random_state=0), X, y, cv=cv, scoring=scoring)
    print(f"MatrixFactorization defaults      RMSE "
          f"{-res['test_neg_root_mean_squared_error'].mean():.4f}  MAE "
          f"{-res['test_neg_mean_absolute_error'].mean():.4f}  "
          f"({time.perf_counter() - tic:.0f} s for 5 folds)", flush=True)

    grid = {k: v[:1] for k, v in GRID.items()} if args.quick else GRID
    search = GridSearchCV(MatrixFactorization(random_state=0), grid,
                          scoring="neg_root_mean_squared_error",
                          cv=KFold(3, shuffle=True, random_state=1))
    tic = time.perf_counter()
    res = cross_validate(search, X, y, cv=cv, scoring=scoring, return_estimator=True)
    chosen = [e.best_params_ for e in res["estimator"]]
    print(f"MatrixFactorization nested-tuned  RMSE "
          f"{-res['test_neg_root_mean_squared_error'].mean():.4f}  MAE "
          f"{-res['test_neg_mean_absolute_error'].mean():.4f}  "
          f"({time.perf_counter() - tic:.0f} s)", flush=True)
    for params in chosen:
        print(f"    chosen: {params}")

    tic = time.perf_counter()
    sur = surprise_cv(X, y, list(cv.split(X)))
    if sur is None:
        print("scikit-surprise not installed: skipped")
    else:
        print(f"surprise SVD defaults             RMSE {sur[0]:.4f}  MAE {sur[1]:.4f}  "
              f"({time.perf_counter() - tic:.0f} s)")


if __name__ == "__main__":
    main()
