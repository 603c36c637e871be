"""Approximate ``similar_items`` (HNSW index) against exact search: recall@10 and time.

Item factors: :class:`sklearn_mf.ImplicitALS` (k = 64, 10 iterations) fitted
on ``make_ratings(50_000, 20_000, 1_000_000)``, or on MovieLens 100K with
``--data``.  Every item is a query.  Recall@10 = share of the exact ten
nearest neighbours (cosine similarity) that the index returns.  The index is
built once (``M``, ``ef_construction``) and queried with several
``ef_search`` values.

Run::

    pip install hnswlib
    python benchmarks/bench_ann.py
    python benchmarks/bench_ann.py --items 100000 --users 100000 --ratings 3000000
"""

import argparse
import os
import time

import numpy as np

from sklearn_mf import ImplicitALS
from sklearn_mf.datasets import make_ratings


def recall(approx, exact):
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef", default="10,25,50,100,200")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()

    X, _ = make_ratings(
        n_users=args.users, n_items=args.items, n_ratings=args.ratings, random_state=0
    )
    model = ImplicitALS(args.factors, max_iter=10, random_state=0, n_jobs=args.n_jobs).fit(X)
    items = model.items_
    print(
        f"{len(items)} items, k={args.factors}, n_jobs={args.n_jobs}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    t = time.perf_counter()
    exact = model.similar_items(items, n=10, exact=True)
    t_exact = time.perf_counter() - t
    print(f"exact search, all items: {t_exact:.2f} s ({len(items) / t_exact:,.0f} queries/s)")

    t = time.perf_counter()
    model.build_similarity_index(M=args.M, ef_construction=args.ef_construction)
    print(
        f"HNSW build (M={args.M}, ef_construction={args.ef_construction}): "
        f"{time.perf_counter() - t:.2f} s"
    )
    print(f"{'ef_search':>10}{'recall@10':>11}{'seconds':>9}{'queries/s':>12}")
    for ef in [int(e) for e in args.ef.split(",")]:
        model.similarity_index_.params["ef_search"] = ef
        t = time.perf_counter()
        approx = model.similar_items(items, n=10)
        sec = time.perf_counter() - t
        print(
            f"{ef:>10}{recall(approx.items, exact.items):>11.4f}{sec:>9.2f}"
            f"{len(items) / sec:>12,.0f}"
        )


if __name__ == "__main__":
    main()
