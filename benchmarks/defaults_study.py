"""How the defaults of ``MatrixFactorization`` and ``SVDpp`` were chosen.

Every configuration of a small grid is fitted on a 90/10 random split of each
rating dataset we have (MovieLens 100K, MovieLens latest-small, Amazon 2014
Musical Instruments 5-core, and 1M synthetic ratings from ``make_ratings``),
and the held-out RMSE is written, one line per fit, to a CSV file.  A default
should be good everywhere, so configurations are compared by their *worst*
ratio to the best RMSE on each dataset (see ``summarise``).

Usage: ``python benchmarks/defaults_study.py [--out results/defaults.csv]
[--model mf|svdpp|both] [--summary]``
"""

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from sklearn_mf import MatrixFactorization, SVDpp
from sklearn_mf.datasets import load_movielens, make_ratings

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SKLEARN_MF_DATA", HERE.parents[1] / "shared" / "data"))

MF_GRID = {
    "n_factors": [50, 100, 200],
    "n_epochs": [20, 40, 80],
    "learning_rate": [0.005, 0.01],
    "regularization": [0.05, 0.08, 0.12],
}
SVDPP_GRID = {
    "n_factors": [20, 50, 100],
    "n_epochs": [20, 40],
    "learning_rate": [0.005, 0.007],
    "regularization": [0.05, 0.1],
    "implicit_regularization": [None, 0.2],
}
# Round 2: the best of round 1 by worst ratio (and neighbours with more
# epochs), measured on every dataset including the 1M synthetic ratings,
# where round 1's SVDpp grid was cut short.
MF_ROUND2 = [
    dict(n_factors=100, learning_rate=0.01, n_epochs=80, regularization=0.08),
    dict(n_factors=200, learning_rate=0.01, n_epochs=80, regularization=0.08),
    dict(n_factors=100, learning_rate=0.01, n_epochs=60, regularization=0.06),
    dict(n_factors=100, learning_rate=0.01, n_epochs=80, regularization=0.06),
]
SVDPP_ROUND2 = [
    dict(
        n_factors=20,
        learning_rate=0.007,
        n_epochs=40,
        regularization=0.05,
        implicit_regularization=0.2,
    ),
    dict(
        n_factors=50,
        learning_rate=0.007,
        n_epochs=60,
        regularization=0.06,
        implicit_regularization=0.2,
    ),
    dict(n_factors=100, learning_rate=0.007, n_epochs=40, regularization=0.08),
    dict(
        n_factors=20,
        learning_rate=0.007,
        n_epochs=60,
        regularization=0.06,
        implicit_regularization=0.2,
    ),
    dict(
        n_factors=50,
        learning_rate=0.01,
        n_epochs=40,
        regularization=0.08,
        implicit_regularization=0.2,
    ),
    dict(
        n_factors=100,
        learning_rate=0.007,
        n_epochs=60,
        regularization=0.06,
        implicit_regularization=0.2,
    ),
    # round 2b: the best on the MovieLens sets, with the epochs the 1M set needs
    dict(n_factors=100, learning_rate=0.007, n_epochs=80, regularization=0.08),
    dict(n_factors=100, learning_rate=0.01, n_epochs=60, regularization=0.08),
]


def datasets():
    """(name, X, y) of every rating dataset available here."""
    out = []
    for name in ("ml-100k", "ml-latest-small"):
        d = load_movielens(DATA / name)
        out.append((name, d.X[["user", "item"]].to_numpy(), d.y.to_numpy(float)))
    amazon = DATA / "amazon-2014-musical-instruments-5core" / "Musical_Instruments_5.json.xz"
    if amazon.exists():
        a = pd.read_json(amazon, lines=True)
        out.append(
            (
                "amazon-musical-5core",
                a[["reviewerID", "asin"]].to_numpy(),
                a["overall"].to_numpy(float),
            )
        )
    X, y = make_ratings(n_users=20_000, n_items=5_000, n_ratings=1_000_000, random_state=0)
    out.append(("synthetic-1M", X, np.asarray(y, float)))
    return out


def grid(spec):
    keys = list(spec)
    for values in itertools.product(*(spec[k] for k in keys)):
        yield dict(zip(keys, values))


def run(model, out, round2=False):
    est_cls, spec = {"mf": (MatrixFactorization, MF_GRID), "svdpp": (SVDpp, SVDPP_GRID)}[model]
    round2 = {"mf": MF_ROUND2, "svdpp": SVDPP_ROUND2}[model] if round2 else None
    done = set()
    if out.exists():
        prev = pd.read_csv(out)
        done = set(zip(prev["model"], prev["dataset"], prev["params"]))
    for name, X, y in datasets():
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.1, random_state=0)
        configs = list(grid(spec)) if round2 is None else list(round2)
        configs.insert(0, {})  # the current defaults
        for params in configs:
            key = json.dumps(params, sort_keys=True)
            if (model, name, key) in done:
                continue
            est = est_cls(random_state=0, n_jobs=1, **params)
            tic = time.perf_counter()
            est.fit(Xtr, ytr)
            fit_s = time.perf_counter() - tic
            rmse = float(np.sqrt(np.mean((est.predict(Xte) - yte) ** 2)))
            row = pd.DataFrame(
                [dict(model=model, dataset=name, params=key, rmse=rmse, fit_s=fit_s)]
            )
            row.to_csv(out, mode="a", header=not out.exists(), index=False)
            print(model, name, key, f"{rmse:.4f}", f"{fit_s:.1f}s", flush=True)


def summarise(out):
    t = pd.read_csv(out)
    t["best"] = t.groupby(["model", "dataset"])["rmse"].transform("min")
    t["ratio"] = t["rmse"] / t["best"]
    for model, g in t.groupby("model"):
        wide = g.pivot_table(index="params", columns="dataset", values="rmse")
        wide["worst_ratio"] = g.groupby("params")["ratio"].max()
        wide = wide.sort_values("worst_ratio")
        print(f"\n{model}: best 10 by worst ratio to the best RMSE per dataset")
        print(wide.head(10).to_string(float_format=lambda v: f"{v:.4f}"))
        if "{}" in wide.index:
            print("current defaults:")
            print(wide.loc[["{}"]].to_string(float_format=lambda v: f"{v:.4f}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results" / "defaults_study.csv"))
    parser.add_argument("--model", default="both", choices=["mf", "svdpp", "both"])
    parser.add_argument("--summary", action="store_true", help="only print the summary")
    parser.add_argument(
        "--round2", action="store_true", help="only the round-2 candidates (on every dataset)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    if not args.summary:
        for model in ["mf", "svdpp"] if args.model == "both" else [args.model]:
            run(model, out, args.round2)
    summarise(out)


if __name__ == "__main__":
    main()
