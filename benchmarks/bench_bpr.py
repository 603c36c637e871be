"""BPR: sklearn_mf vs the ``implicit`` package on MovieLens 100K, side by side.

Protocol (implicit feedback from explicit ratings):

* positives are ratings >= 4;
* for every user, the latest 20% of her positives (by timestamp, at least one)
  are held out; users with fewer than 5 positives are skipped;
* both models are trained on the same training positives, with the same
  number of factors, epochs, learning rate and regularisation, and rank the
  whole catalogue minus the user's training items;
* reported: NDCG@10 and Precision@10 over the test users (binary relevance)
  and training seconds per epoch (median of ``--repeats`` fits).

Run::

    pip install implicit            # optional peer library
    python benchmarks/bench_bpr.py --data ../shared/data/ml-100k
"""

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp

from sklearn_mf import BPR
from sklearn_mf.datasets import load_movielens


def implicit_split(ratings, threshold=4, test_fraction=0.2, min_positives=5):
    """Train/test positives of the protocol above, as (user, item) arrays."""
    pos = ratings[ratings["rating"] >= threshold]
    counts = pos.groupby("user")["item"].transform("size")
    pos = pos[counts >= min_positives].sort_values(["user", "timestamp", "item"], kind="stable")
    rank = pos.groupby("user").cumcount(ascending=False)  # 0 = latest
    n_test = np.maximum(1, np.round(test_fraction * pos.groupby("user")["item"].transform("size")))
    test = rank < n_test
    return pos[~test][["user", "item"]].to_numpy(), pos[test][["user", "item"]].to_numpy()


def ranking_metrics(recommended, train, test, k=10):
    """Mean NDCG@k and Precision@k, binary relevance, over users with test items."""
    truth = {}
    for u, i in test:
        truth.setdefault(u, set()).add(i)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, prec = [], []
    for u, rec in recommended.items():
        rel = truth.get(u)
        if not rel:
            continue
        gains = np.array([1.0 if i in rel else 0.0 for i in rec[:k]])
        ideal = disc[: min(len(rel), k)].sum()
        ndcg.append(float(gains @ disc[: len(gains)]) / ideal)
        prec.append(gains.sum() / k)
    return float(np.mean(ndcg)), float(np.mean(prec))


def run_sklearn_mf(train, test_users, params, n_jobs, seed):
    model = BPR(
        n_factors=params["factors"],
        n_epochs=params["epochs"],
        learning_rate=params["lr"],
        regularization=params["reg"],
        random_state=seed,
        n_jobs=n_jobs,
    )
    tic = time.perf_counter()
    model.fit(train)
    secs = time.perf_counter() - tic
    items, _ = model.recommend(test_users, n=10)
    return dict(zip(test_users, items.tolist())), secs


def run_implicit(train, test_users, params, n_jobs, seed):
    from implicit.bpr import BayesianPersonalizedRanking

    u_ids, u = np.unique(train[:, 0], return_inverse=True)
    i_ids, i = np.unique(train[:, 1], return_inverse=True)
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(len(u_ids), len(i_ids)))
    model = BayesianPersonalizedRanking(
        factors=params["factors"],
        learning_rate=params["lr"],
        regularization=params["reg"],
        iterations=params["epochs"],
        num_threads=n_jobs,
        random_state=seed,
    )
    tic = time.perf_counter()
    model.fit(m, show_progress=False)
    secs = time.perf_counter() - tic
    codes = np.searchsorted(u_ids, test_users)
    ids, _ = model.recommend(codes, m[codes], N=10, filter_already_liked_items=True)
    return {u: i_ids[row].tolist() for u, row in zip(test_users, ids)}, secs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-100k"),
    )
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--reg", type=float, default=0.002)
    parser.add_argument(
        "--implicit-lr", type=float, default=None, help="learning rate for implicit (default: --lr)"
    )
    parser.add_argument("--implicit-reg", type=float, default=None)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    data = load_movielens(args.data)
    train, test = implicit_split(data.ratings)
    test_users = np.unique(test[:, 0])
    print(
        f"MovieLens 100K implicit: {len(train)} train / {len(test)} test positives, "
        f"{len(test_users)} test users; factors={args.factors} epochs={args.epochs} "
        f"n_jobs={args.n_jobs}"
    )
    ours = dict(factors=args.factors, epochs=args.epochs, lr=args.lr, reg=args.reg)
    theirs = dict(ours, lr=args.implicit_lr or args.lr, reg=args.implicit_reg or args.reg)
    runners = [("sklearn_mf.BPR", run_sklearn_mf, ours)]
    try:
        import implicit  # noqa: F401

        runners.append(("implicit BPR", run_implicit, theirs))
    except ImportError:
        print("implicit is not installed: comparing against nothing")
    rows = []
    for name, run, params in runners:
        scores, times = [], []
        for rep in range(args.repeats):
            recs, secs = run(train, test_users, params, args.n_jobs, rep)
            scores.append(ranking_metrics(recs, train, test))
            times.append(secs / params["epochs"])
        ndcg = np.mean([s[0] for s in scores])
        prec = np.mean([s[1] for s in scores])
        rows.append((name, ndcg, np.std([s[0] for s in scores]), prec, np.median(times)))
    print(f"{'model':16s} {'NDCG@10':>16s} {'P@10':>8s} {'s/epoch':>9s}")
    for name, ndcg, sd, prec, t in rows:
        print(f"{name:16s} {ndcg:9.4f} ± {sd:.4f} {prec:8.4f} {t * 1e3:7.2f}ms")
    if len(rows) == 2:
        print(
            f"speed ratio (implicit / sklearn_mf seconds per epoch): {rows[1][4] / rows[0][4]:.2f}"
        )


if __name__ == "__main__":
    main()
