"""Lazy vs stored UserKNN(n_history_neighbors=20) similarities, interleaved in one
process (fit, recommend for every test user, identical results checked).

``n_neighbors=None`` is the lazy path (no users x users matrix at fit);
``n_neighbors=10**6`` stores every similarity at fit (main's path before).

    PYTHONPATH=. python benchmarks/bench_userknn_lazy.py
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_neighbours import implicit_task  # noqa: E402

from sklearn_mf import UserKNN  # noqa: E402

DATA = "/work/shared/data"


def main(repeats=5):
    print(os.popen("uptime").read().strip())
    for name in ["ml-100k", "amazon"]:
        train, test = implicit_task(name, DATA)
        users = np.unique(test[:, 0])
        res = {"lazy": [], "stored": []}
        for _ in range(repeats):
            for label, nn in (("lazy", None), ("stored", 10**6)):
                m = UserKNN(n_neighbors=nn, n_history_neighbors=20, shrinkage=0.0, n_jobs=2)
                tic = time.perf_counter()
                m.fit(train)
                fit = time.perf_counter() - tic
                tic = time.perf_counter()
                rec = m.recommend(users, n=10)
                res[label].append((fit, time.perf_counter() - tic, rec))
        same = all(
            (a[2].items == b[2].items).all() and (a[2].scores == b[2].scores).all()
            for a, b in zip(res["lazy"], res["stored"])
        )
        for label, nn in (("lazy", "None"), ("stored", "10**6")):
            fit = np.median([x[0] for x in res[label]])
            rec = np.median([x[1] for x in res[label]])
            print(
                f"{name:8s} UserKNN(n_neighbors={nn}, n_history_neighbors=20) [{label}]  "
                f"fit {fit:.4f} s  rec {rec:.3f} s"
            )
        print(f"{name:8s} recommend identical lazy vs stored: {same}  ({len(users)} users)")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
