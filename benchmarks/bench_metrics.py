"""Speed of the ranking metrics on 100k users, against implicit's evaluation.

Synthetic data: ``--n-users`` users (default 100,000), a catalogue of
``--n-items`` items, about ``--n-truth`` held-out (user, item) interactions
(default 10,000,000) and one top-``k`` list per user (k=10).  About 30% of the
recommended slots are relevant so that every code path is exercised.

Timed (best of ``--repeat`` runs):

* each metric of ``sklearn_mf.metrics`` on the positional form (CSR truth +
  integer item indices), the fast path;
* ``ranking_metrics``: the same metrics with the lists matched once;
* ``ndcg_at_k`` on the keyed form (one array of relevant ids per user + an
  array of ids), which also pays for the id matching;
* ``implicit.evaluation.ranking_metrics_at_k`` (if ``implicit`` is
  installed) on the *same* lists, through a stub model whose ``recommend``
  returns them: it computes precision, MAP, NDCG and AUC in one Cython pass.
  Its NDCG and MAP use the same definitions as ours (binary relevance,
  ``min(k, |relevant|)`` in the ideal DCG / AP denominator) and are checked
  to agree (and so does AUC); its "precision" divides by ``sum(min(k, |relevant|))`` over all
  users (micro average), so it is not compared.

Run: ``python benchmarks/bench_metrics.py [--n-users 100000] [--repeat 3]``.
"""

import argparse
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np
import scipy.sparse as sp

from sklearn_mf import metrics


def make_data(n_users, n_items, n_truth, k, seed=0):
    rng = np.random.default_rng(seed)
    # k distinct items per user: an arithmetic progression modulo a prime catalogue
    start = rng.integers(0, n_items, n_users)[:, None]
    stride = rng.integers(1, n_items, n_users)[:, None]
    rec = ((start + stride * np.arange(k)) % n_items).astype(np.int64)
    # truth: random pairs plus ~30% of the recommended slots
    keys = rng.integers(0, n_users * n_items, n_truth, dtype=np.int64)
    hit = rng.random((n_users, k)) < 0.3
    users = np.repeat(np.arange(n_users, dtype=np.int64), k).reshape(n_users, k)
    keys = np.unique(np.concatenate([keys, (users * n_items + rec)[hit]]))
    T = sp.csr_matrix(
        (np.ones(len(keys), dtype=np.float64), (keys // n_items, keys % n_items)),
        shape=(n_users, n_items),
    )
    return T, rec


def best_time(func, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_implicit(T, rec, k, repeat):
    try:
        from implicit.evaluation import ranking_metrics_at_k
        from implicit.recommender_base import RecommenderBase
    except ImportError:
        return None

    class FixedLists(RecommenderBase):
        """Returns precomputed lists, so only the metric code is timed."""

        def __init__(self, lists):
            super().__init__()
            self.lists = lists.astype(np.int32)

        def recommend(self, userid, user_items, N=10, **kwargs):
            ids = self.lists[userid, :N]
            return ids, np.zeros(ids.shape, dtype=np.float32)

        # abstract methods of RecommenderBase, unused here
        def fit(self, *a, **kw):
            raise NotImplementedError

        def similar_items(self, *a, **kw):
            raise NotImplementedError

        def similar_users(self, *a, **kw):
            raise NotImplementedError

        def save(self, *a, **kw):
            raise NotImplementedError

        def load(self, *a, **kw):
            raise NotImplementedError

        def to_cpu(self):
            return self

        def to_gpu(self):
            raise NotImplementedError

        def partial_fit_users(self, *a, **kw):
            raise NotImplementedError

        def partial_fit_items(self, *a, **kw):
            raise NotImplementedError

        def recalculate_user(self, *a, **kw):
            raise NotImplementedError

        def recalculate_item(self, *a, **kw):
            raise NotImplementedError

    model = FixedLists(rec)
    empty_train = sp.csr_matrix(T.shape, dtype=np.float32)
    Tf = T.astype(np.float32)
    return best_time(
        lambda: ranking_metrics_at_k(
            model, empty_train, Tf, K=k, show_progress=False, num_threads=1
        ),
        repeat,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, default=100_000)
    parser.add_argument("--n-items", type=int, default=20_011)
    parser.add_argument("--n-truth", type=int, default=10_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    k = args.k
    import scipy

    import sklearn_mf

    try:
        import implicit

        implicit_version = implicit.__version__
    except ImportError:
        implicit_version = "not installed"
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}; "
        f"sklearn_mf {sklearn_mf.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, implicit {implicit_version}"
    )

    t0 = time.perf_counter()
    T, rec = make_data(args.n_users, args.n_items, args.n_truth, k)
    print(
        f"data: {T.shape[0]:,} users, {T.shape[1]:,} items, {T.nnz:,} held-out "
        f"interactions, k={k} (built in {time.perf_counter() - t0:.1f} s)"
    )

    results = {}
    for name in (
        "precision_at_k",
        "recall_at_k",
        "ndcg_at_k",
        "map_at_k",
        "mrr_at_k",
        "hit_rate_at_k",
        "auc",
    ):
        func = getattr(metrics, name)
        secs, value = best_time(lambda f=func: f(T, rec, k=k), args.repeat)
        results[name] = value
        print(f"  {name:<16} {secs:7.3f} s   value={value:.5f}")
    pop = np.asarray(T.sum(axis=0)).ravel()
    secs, _ = best_time(lambda: metrics.coverage(rec, T.shape[1], k=k), args.repeat)
    print(f"  {'coverage':<16} {secs:7.3f} s")
    secs, _ = best_time(lambda: metrics.novelty(rec, pop, k=k, n_users=T.shape[0]), args.repeat)
    print(f"  {'novelty':<16} {secs:7.3f} s")
    F = np.random.default_rng(1).normal(size=(T.shape[1], 32))
    secs, _ = best_time(lambda: metrics.intra_list_diversity(rec, F, k=k), args.repeat)
    print(f"  {'intra_list_div.':<16} {secs:7.3f} s   (32-d features)")

    keyed = np.split(T.indices, T.indptr[1:-1])
    secs, value = best_time(lambda: metrics.ndcg_at_k(keyed, rec, k=k), args.repeat)
    assert np.isclose(value, results["ndcg_at_k"])
    print(f"  ndcg_at_k, keyed form (list of id arrays): {secs:.3f} s")

    ours_total, _ = best_time(
        lambda: [
            metrics.precision_at_k(T, rec, k=k),
            metrics.map_at_k(T, rec, k=k),
            metrics.ndcg_at_k(T, rec, k=k),
            metrics.auc(T, rec, k=k),
        ],
        args.repeat,
    )
    four = ["precision", "map", "ndcg", "auc"]
    ours_once, _ = best_time(
        lambda: metrics.ranking_metrics(T, rec, k=k, metrics=four), args.repeat
    )
    all_once, _ = best_time(lambda: metrics.ranking_metrics(T, rec, k=k), args.repeat)
    print(f"  ranking_metrics, all 7 metrics, lists matched once: {all_once:.3f} s")
    imp = bench_implicit(T, rec, k, args.repeat)
    if imp is None:
        print("implicit is not installed: no comparison")
        return
    secs, their = imp
    print("\nsame four metrics (precision, MAP, NDCG, AUC):")
    print(
        f"  sklearn_mf, 4 separate calls:      {ours_total:7.3f} s   -> implicit/ours "
        f"= {secs / ours_total:.2f}"
    )
    print(
        f"  sklearn_mf, ranking_metrics (once): {ours_once:7.3f} s   -> implicit/ours "
        f"= {secs / ours_once:.2f}"
    )
    print(f"  implicit ranking_metrics_at_k:     {secs:7.3f} s")
    print(f"  NDCG  ours {results['ndcg_at_k']:.6f}  implicit {their['ndcg']:.6f}")
    print(f"  MAP   ours {results['map_at_k']:.6f}  implicit {their['map']:.6f}")
    print(f"  AUC   ours {results['auc']:.6f}  implicit {their['auc']:.6f}")


if __name__ == "__main__":
    main()
