"""Top-N for every user in one batched call: users per second.

Setting (issue 5): 100k users x 20k items, k = 64 factors, n = 10 items per
user, the items each user interacted with excluded (``exclude_seen=True``).
The interactions are ``make_ratings(100_000, 20_000, 2_000_000)``; the
factors come from one ALS iteration of :class:`sklearn_mf.ImplicitALS` (real
factors, no bias terms, so the scores are plain dot products).

The same factors and the same seen-items matrix are given to the ``implicit``
package (``AlternatingLeastSquares.recommend`` with a batch of user ids and
``filter_already_liked_items=True``), when it is installed, and the two
top-10 lists are compared.

For each ``n_jobs`` the estimator's OpenMP threads *and* the BLAS threads are
limited to that number (``threadpoolctl``), and ``implicit`` gets
``num_threads=n_jobs``.  Every timing is the best of ``--repeat`` runs over
all users.  The machine's load average is printed with the results: on a
shared machine it matters.

Run::

    python benchmarks/bench_recommend.py                  # 100k x 20k, n_jobs 1 and 2
    python benchmarks/bench_recommend.py --users 20000 --items 5000 --ratings 400000
"""

import argparse
import os
import platform
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import sklearn_mf
from sklearn_mf import ImplicitALS
from sklearn_mf.datasets import make_ratings


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--ratings", type=int, default=2_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    print(
        f"sklearn_mf {sklearn_mf.__version__}, numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    t = time.perf_counter()
    X, _ = make_ratings(
        n_users=args.users, n_items=args.items, n_ratings=args.ratings, random_state=0
    )
    print(
        f"data: {args.users} users x {args.items} items, {len(X)} interactions "
        f"({time.perf_counter() - t:.1f} s to generate)"
    )
    t = time.perf_counter()
    model = ImplicitALS(args.factors, max_iter=1, random_state=0).fit(X)
    print(f"factors: one ALS iteration, k={args.factors} ({time.perf_counter() - t:.1f} s)")
    users = model.users_
    seen = model.user_items_
    print(f"seen items per user: mean {seen.getnnz(axis=1).mean():.1f}")

    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        AlternatingLeastSquares = None
        print("implicit is not installed: sklearn_mf only")

    rows = []
    for n_jobs in [int(j) for j in args.jobs.split(",")]:
        model.set_params(n_jobs=n_jobs)
        with threadpool_limits(limits=n_jobs, user_api="blas"):
            sec, recs = best_of(
                lambda: model.recommend(users, n=args.n, exclude_seen=True), args.repeat
            )
        rows.append(("sklearn_mf", n_jobs, sec))
        if AlternatingLeastSquares is None:
            continue
        with warnings.catch_warnings():  # BLAS threads are limited below anyway
            warnings.simplefilter("ignore", RuntimeWarning)
            peer = AlternatingLeastSquares(factors=args.factors, num_threads=n_jobs, random_state=0)
        peer.user_factors = np.ascontiguousarray(model.user_factors_, dtype=np.float32)
        peer.item_factors = np.ascontiguousarray(model.item_factors_, dtype=np.float32)
        ids = np.arange(len(users))
        with threadpool_limits(limits=n_jobs, user_api="blas"):
            sec, (p_items, p_scores) = best_of(
                lambda: peer.recommend(ids, seen, N=args.n, filter_already_liked_items=True),
                args.repeat,
            )
        rows.append(("implicit", n_jobs, sec))
        ours = model._item_codes(recs.items.ravel()).reshape(recs.items.shape)
        same_lists = np.mean([set(a) == set(b) for a, b in zip(ours, p_items)])
        score_gap = np.abs(np.sort(recs.scores, axis=1) - np.sort(p_scores, axis=1)).max()
        print(
            f"n_jobs={n_jobs}: identical top-{args.n} sets for {same_lists:.2%} of users, "
            f"max score difference {score_gap:.2e}"
        )

    print(f"\nload average now {os.getloadavg()[0]:.1f}")
    print(f"{'library':<12}{'n_jobs':>7}{'seconds':>10}{'users/s':>12}")
    for lib, n_jobs, sec in rows:
        print(f"{lib:<12}{n_jobs:>7}{sec:>10.2f}{len(users) / sec:>12,.0f}")


if __name__ == "__main__":
    main()
