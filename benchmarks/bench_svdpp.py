"""SVD++: sklearn_mf vs scikit-surprise on MovieLens 100K, side by side.

Both libraries fit the same random 80/20 split of the ratings with the same
hyperparameters (factors, epochs, learning rate, regularisation, init scale)
in the same process, one after the other, single-threaded (Surprise's SVD++ is
single-threaded; so is sklearn_mf's SVD++ training).  Reported: test RMSE and
MAE, fit seconds, and the speed ratio.  ``MatrixFactorization`` (same split,
its defaults) is listed as the reference without the implicit term.

Surprise's SVD++ recomputes the implicit sum and updates every ``y_j`` of the
user's items after each rating, ``O(|N(u)| k)`` per rating; sklearn_mf does the
identical update sequence in ``O(k)`` per rating plus ``O(|N(u)| k)`` per user
visit (see ``sklearn_mf/_svdpp_fast.pyx``), hence the speed-up.

Run::

    pip install scikit-surprise     # optional peer library
    python benchmarks/bench_svdpp.py --data ../shared/data/ml-100k
"""

import argparse
import os
import time

import numpy as np
from sklearn.model_selection import train_test_split

from sklearn_mf import MatrixFactorization, SVDpp
from sklearn_mf.datasets import load_movielens


def errors(pred, y):
    return float(np.sqrt(np.mean((pred - y) ** 2))), float(np.mean(np.abs(pred - y)))


def run_surprise(train, test, p, seed):
    import pandas as pd
    from surprise import Dataset, Reader
    from surprise import SVDpp as SurpriseSVDpp

    frame = pd.DataFrame(train, columns=["user", "item", "rating"])
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5))).build_full_trainset()
    algo = SurpriseSVDpp(
        n_factors=p["factors"],
        n_epochs=p["epochs"],
        lr_all=p["lr"],
        reg_all=p["reg"],
        init_std_dev=p["init_std"],
        random_state=seed,
        cache_ratings=True,
    )
    tic = time.perf_counter()
    algo.fit(trainset)
    secs = time.perf_counter() - tic
    pred = np.array([algo.predict(u, i).est for u, i, _ in test])
    return pred, secs


def run_ours(train, test, p, seed):
    model = SVDpp(
        p["factors"],
        n_epochs=p["epochs"],
        learning_rate=p["lr"],
        regularization=p["reg"],
        init_std=p["init_std"],
        random_state=seed,
        n_jobs=1,
    )
    tic = time.perf_counter()
    model.fit(train[:, :2], train[:, 2])
    secs = time.perf_counter() - tic
    return model.predict(test[:, :2]), secs


def run_mf(train, test, p, seed):
    model = MatrixFactorization(random_state=seed, n_jobs=1)
    tic = time.perf_counter()
    model.fit(train[:, :2], train[:, 2])
    secs = time.perf_counter() - tic
    return model.predict(test[:, :2]), secs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-100k"),
    )
    parser.add_argument("--factors", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.007)
    parser.add_argument("--reg", type=float, default=0.05)
    parser.add_argument("--init-std", type=float, default=0.1)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fits per library (seeds 0..repeats-1); Surprise takes ~1 min each",
    )
    args = parser.parse_args()

    data = load_movielens(args.data)
    r = data.ratings
    table = np.column_stack([r["user"], r["item"], r["rating"]]).astype(np.int64)
    train, test = train_test_split(table, test_size=0.2, random_state=0)
    y_test = test[:, 2].astype(float)
    p = dict(
        factors=args.factors, epochs=args.epochs, lr=args.lr, reg=args.reg, init_std=args.init_std
    )
    print(f"MovieLens 100K, random 80/20 split: {len(train)} train / {len(test)} test; {p}")
    runners = [("sklearn_mf.SVDpp", run_ours), ("MatrixFactorization", run_mf)]
    try:
        import surprise  # noqa: F401

        runners.append(("surprise.SVDpp", run_surprise))
    except ImportError:
        print("scikit-surprise is not installed: comparing against nothing")
    rows = {}
    for name, run in runners:
        res = []
        for seed in range(args.repeats):
            pred, secs = run(train, test, p, seed)
            res.append((*errors(pred, y_test), secs))
        res = np.array(res)
        rows[name] = res.mean(axis=0)
        print(
            f"{name:20s} RMSE {rows[name][0]:.4f}  MAE {rows[name][1]:.4f}  "
            f"fit {rows[name][2]:8.2f}s",
            flush=True,
        )
    if "surprise.SVDpp" in rows:
        ratio = rows["surprise.SVDpp"][2] / rows["sklearn_mf.SVDpp"][2]
        print(f"speed-up of sklearn_mf.SVDpp over surprise.SVDpp: {ratio:.1f}x")


if __name__ == "__main__":
    main()
