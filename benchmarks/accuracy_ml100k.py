"""Rating accuracy on MovieLens 100K: 5-fold cross-validated RMSE and MAE.

* ``MatrixFactorization`` with its default parameters;
* ``MatrixFactorization`` tuned by a *nested* search: on each outer training
  fold a 3-fold ``GridSearchCV`` picks the parameters, which are then scored on
  the outer test fold (so the reported RMSE never saw the data it was tuned on);
* scikit-surprise's ``SVD`` with its defaults, on the same five folds, when it
  is installed;
* the Bayesian FM (``FMRecommender(solver="mcmc")``, rank 10, 200 sweeps) on the
  ids, with the user's implicit set (Bayesian SVD++) and with both sets
  (flipped), reported per fold: the sets are built from each training fold.

Usage: ``python benchmarks/accuracy_ml100k.py [--quick] [--bayes-only]``
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from sklearn_mf import FMRecommender, MatrixFactorization
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


BAYES = {
    "ids": None,
    "ids + user set (Bayesian SVD++)": "user",
    "ids + both sets (flipped)": "both",
}


def bayesian_cv(X, y, cv, sweeps, n_jobs):
    """Per-fold RMSE of the Bayesian FM with each implicit-feature set."""
    scores = {}
    for label, implicit in BAYES.items():
        model = FMRecommender(
            10,
            solver="mcmc",
            max_iter=sweeps,
            implicit_features=implicit,
            random_state=0,
            n_jobs=n_jobs,
        )
        tic = time.perf_counter()
        res = cross_validate(model, X, y, cv=cv, scoring="neg_root_mean_squared_error")
        scores[label] = -res["test_score"]
        print(
            f"Bayesian FM {label:32s} RMSE {scores[label].mean():.4f}  folds "
            + " ".join(f"{v:.4f}" for v in scores[label])
            + f"  ({time.perf_counter() - tic:.0f} s, fit {res['fit_time'].mean():.1f} s "
            "per fold)",
            flush=True,
        )
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    parser.add_argument("--bayes-only", action="store_true", help="only the Bayesian FM rows")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    data = load_movielens(DATA / "ml-100k")
    X, y = data.X.to_numpy(), data.y.to_numpy()
    cv = KFold(5, shuffle=True, random_state=0)
    scoring = ["neg_root_mean_squared_error", "neg_mean_absolute_error"]
    bayesian_cv(X[:, :2], y, cv, 20 if args.quick else 200, args.n_jobs)
    if args.bayes_only:
        return

    tic = time.perf_counter()
    res = cross_validate(MatrixFactorization(random_state=0), X, y, cv=cv, scoring=scoring)
    print(
        f"MatrixFactorization defaults      RMSE "
        f"{-res['test_neg_root_mean_squared_error'].mean():.4f}  MAE "
        f"{-res['test_neg_mean_absolute_error'].mean():.4f}  "
        f"({time.perf_counter() - tic:.0f} s for 5 folds)",
        flush=True,
    )

    grid = {k: v[:1] for k, v in GRID.items()} if args.quick else GRID
    search = GridSearchCV(
        MatrixFactorization(random_state=0),
        grid,
        scoring="neg_root_mean_squared_error",
        cv=KFold(3, shuffle=True, random_state=1),
    )
    tic = time.perf_counter()
    res = cross_validate(search, X, y, cv=cv, scoring=scoring, return_estimator=True)
    chosen = [e.best_params_ for e in res["estimator"]]
    print(
        f"MatrixFactorization nested-tuned  RMSE "
        f"{-res['test_neg_root_mean_squared_error'].mean():.4f}  MAE "
        f"{-res['test_neg_mean_absolute_error'].mean():.4f}  "
        f"({time.perf_counter() - tic:.0f} s)",
        flush=True,
    )
    for params in chosen:
        print(f"    chosen: {params}")

    tic = time.perf_counter()
    sur = surprise_cv(X, y, list(cv.split(X)))
    if sur is None:
        print("scikit-surprise not installed: skipped")
    else:
        print(
            f"surprise SVD defaults             RMSE {sur[0]:.4f}  MAE {sur[1]:.4f}  "
            f"({time.perf_counter() - tic:.0f} s)"
        )


if __name__ == "__main__":
    main()
