"""The held-out MovieLens protocol of issue 16 on the MovieLens data we have.

The issue's targets are for MovieLens 1M/10M (90/10 random split: the best
model at most 0.822 RMSE within 10 minutes of fitting on 2 cores, and
``SVDpp()`` defaults ahead of ``MatrixFactorization()`` defaults, which
should be at most 0.850).  Neither dataset is on this machine (see
``../shared/data/README.md``), so this script runs the same protocol on
MovieLens 100K and ml-latest-small as a *proxy*: for each of ``--seeds``
random 90/10 splits, the Bayesian FM with both implicit-feedback sets
(``FMRecommender(10, solver="mcmc", max_iter=200, implicit_features="both")``),
``SVDpp()`` and ``MatrixFactorization()`` with their defaults; RMSE on the
held-out 10 % and fit time.

Usage::

    python benchmarks/heldout_proxy.py [--seeds 3] [--n-jobs 2] [--sweeps 200]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from sklearn_mf import FMRecommender, MatrixFactorization, SVDpp
from sklearn_mf.datasets import load_movielens

DATA = Path(
    os.environ.get("SKLEARN_MF_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--sweeps", type=int, default=200)
    args = parser.parse_args()
    models = {
        "Bayesian FM ids + both sets": lambda: FMRecommender(
            10,
            solver="mcmc",
            max_iter=args.sweeps,
            implicit_features="both",
            random_state=0,
            n_jobs=args.n_jobs,
        ),
        "SVDpp() defaults": lambda: SVDpp(random_state=0, n_jobs=args.n_jobs),
        "MatrixFactorization() defaults": lambda: MatrixFactorization(
            random_state=0, n_jobs=args.n_jobs
        ),
    }
    print(f"{'dataset':16s} {'model':32s} {'seed':>4s} {'rmse':>7s} {'fit_s':>7s}")
    for name in ("ml-100k", "ml-latest-small"):
        data = load_movielens(DATA / name)
        X, y = data.X[["user", "item"]].to_numpy(), data.y.to_numpy(float)
        for label, make in models.items():
            scores = []
            for seed in range(args.seeds):
                Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.1, random_state=seed)
                tic = time.perf_counter()
                model = make().fit(Xtr, ytr)
                fit_s = time.perf_counter() - tic
                scores.append(float(np.sqrt(np.mean((model.predict(Xte) - yte) ** 2))))
                print(
                    f"{name:16s} {label:32s} {seed:4d} {scores[-1]:7.4f} {fit_s:7.1f}", flush=True
                )
            print(f"{name:16s} {label:32s} mean {np.mean(scores):7.4f} (sd {np.std(scores):.4f})")


if __name__ == "__main__":
    main()
