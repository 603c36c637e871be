"""Implicit ALS: sklearn_mf.ImplicitALS vs the ``implicit`` package, side by side.

Both libraries fit the same user-item matrix in the same run, each in a fresh
subprocess (so that peak memory is measured per fit), with the same number of
factors, iterations, threads, regularisation and confidence, float32, the
conjugate-gradient solver (3 steps) and no training-loss computation in
``implicit`` (sklearn_mf always records ``loss_curve_``; its cost is included).

Confidence: sklearn_mf uses ``c = 1 + alpha * y``; ``implicit`` uses
``c = alpha_implicit * y`` (for binary data ``alpha_implicit = 1 + alpha``).
The benchmark passes ``alpha_implicit = 1 + alpha`` so the models agree.

Datasets:

* ``ml-100k``: positives = rating >= 4; each user's latest 20% of positives
  (by timestamp) held out; users with fewer than 5 positives not evaluated.
  Reports NDCG@10 and Precision@10 (whole catalogue ranked, training items
  excluded, binary relevance).
* ``1M`` / ``10M``: ``sklearn_mf.datasets.make_ratings`` interactions (every
  rating is an interaction), same per-user temporal hold-out; metrics over at
  most 2000 test users.

Reported per fit: seconds per iteration (whole ``fit`` divided by the number
of iterations, setup included for both), the ratio sklearn_mf / implicit
(< 1 means sklearn_mf is faster), the extra peak resident memory of the fit,
and the ranking metrics.

Run::

    pip install implicit            # peer library, benchmark only
    python benchmarks/bench_als.py --data ../shared/data/ml-100k --sizes 100k,1M
    python benchmarks/bench_als.py --sizes 10M --iterations 5
"""

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

SIZES = {"1M": (60_000, 12_000, 1_000_000), "10M": (400_000, 40_000, 10_000_000)}


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def temporal_split(frame, test_fraction=0.2, min_interactions=5):
    """Per-user latest ``test_fraction`` held out (users with >= min_interactions)."""
    frame = frame.sort_values(["user", "timestamp"], kind="stable")
    n = frame.groupby("user")["item"].transform("size").to_numpy()
    rank = frame.groupby("user").cumcount().to_numpy()
    test = (n >= min_interactions) & (rank >= n - np.floor(test_fraction * n))
    return (frame[~test][["user", "item"]].to_numpy(), frame[test][["user", "item"]].to_numpy())


def load(name, data_path):
    if name == "100k":
        from sklearn_mf.datasets import load_movielens

        r = load_movielens(data_path).ratings
        return temporal_split(r[r["rating"] >= 4])
    from sklearn_mf.datasets import make_ratings

    n_users, n_items, n_ratings = SIZES[name]
    X, _ = make_ratings(n_users=n_users, n_items=n_items, n_ratings=n_ratings, random_state=0)
    frame = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "timestamp": X[:, 2]})
    return temporal_split(frame)


def ranking_metrics(recs, test, k=10):
    truth = pd.DataFrame(test, columns=["u", "i"]).groupby("u")["i"].agg(set)
    disc = 1 / np.log2(np.arange(2, k + 2))
    ndcg, prec = [], []
    for u, rec in recs.items():
        rel = truth[u]
        g = np.array([x in rel for x in rec[:k]], dtype=float)
        ndcg.append(g @ disc[: len(g)] / disc[: min(k, len(rel))].sum())
        prec.append(g.sum() / k)
    return float(np.mean(ndcg)), float(np.mean(prec))


def _child(lib, name, data_path, params, queue):
    train, test = load(name, data_path)
    users = np.unique(test[:, 0])
    if len(users) > 2000:
        users = np.random.default_rng(0).choice(users, 2000, replace=False)
        test = test[np.isin(test[:, 0], users)]
    rss0 = _rss_kb("VmRSS")
    if lib == "sklearn_mf":
        from sklearn_mf import ImplicitALS

        model = ImplicitALS(
            n_factors=params["factors"],
            alpha=params["alpha"],
            regularization=params["reg"],
            max_iter=params["iterations"],
            solver="cg",
            cg_steps=3,
            n_jobs=params["threads"],
            random_state=0,
        )
        tic = time.perf_counter()
        model.fit(train)
        secs = time.perf_counter() - tic
        items = model.recommend(users, n=10).items
        recs = dict(zip(users, items.tolist()))
    else:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        tic = time.perf_counter()
        u_ids, u = np.unique(train[:, 0], return_inverse=True)
        i_ids, i = np.unique(train[:, 1], return_inverse=True)
        m = sp.csr_matrix(
            (np.ones(len(u), dtype=np.float32), (u, i)), shape=(len(u_ids), len(i_ids))
        )
        model = AlternatingLeastSquares(
            factors=params["factors"],
            regularization=params["reg"],
            alpha=1.0 + params["alpha"],
            iterations=params["iterations"],
            use_cg=True,
            calculate_training_loss=False,
            num_threads=params["threads"],
            random_state=0,
        )
        with threadpool_limits(1, "blas"):
            model.fit(m, show_progress=False)
        secs = time.perf_counter() - tic
        codes = np.searchsorted(u_ids, users)
        ids, _ = model.recommend(codes, m[codes], N=10, filter_already_liked_items=True)
        recs = dict(zip(users, i_ids[ids].tolist()))
    peak = _rss_kb("VmHWM")
    ndcg, prec = ranking_metrics(recs, test)
    queue.put(dict(secs=secs, mem_mb=(peak - rss0) / 1024, ndcg=ndcg, prec=prec, nnz=len(train)))


def run(lib, name, data_path, params):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(lib, name, data_path, params, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-100k"),
    )
    ap.add_argument("--sizes", default="100k,1M", help="comma list of 100k, 1M, 10M")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument(
        "--alpha", type=float, default=4.0, help="sklearn_mf alpha (implicit gets 1 + alpha)"
    )
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    # both libraries call BLAS from their own threads: keep BLAS single-threaded
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    params = dict(
        factors=args.factors,
        iterations=args.iterations,
        alpha=args.alpha,
        reg=args.reg,
        threads=args.threads,
    )
    print(
        f"k={args.factors} iterations={args.iterations} alpha={args.alpha} "
        f"(implicit {1 + args.alpha}) reg={args.reg} threads={args.threads} float32 CG(3)"
    )
    print(
        f"{'data':>5} {'library':>10} {'nnz':>10} {'s/iter':>8} {'ratio':>6} "
        f"{'peak MB':>8} {'NDCG@10':>8} {'P@10':>7}"
    )
    for name in args.sizes.split(","):
        res = {lib: run(lib, name, args.data, params) for lib in ("implicit", "sklearn_mf")}
        base = res["implicit"]["secs"]
        for lib, r in res.items():
            print(
                f"{name:>5} {lib:>10} {r['nnz']:>10} {r['secs'] / args.iterations:8.3f} "
                f"{r['secs'] / base:6.2f} {r['mem_mb']:8.0f} {r['ndcg']:8.4f} "
                f"{r['prec']:7.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
