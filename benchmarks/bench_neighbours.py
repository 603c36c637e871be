"""ItemKNN, UserKNN and EASE against implicit, LensKit and Surprise, side by side.

Every model is fitted in a fresh subprocess (so that peak memory is its own) on
the same training data, in the same run:

* implicit 0.7 item-item recommenders: ``CosineRecommender``,
  ``TFIDFRecommender`` (cosine of TF-IDF weighted vectors), ``BM25Recommender``
  (dot product of BM25 weighted vectors), ``num_threads`` = ``--threads``.
  implicit counts an item among its own K neighbours, so the same formula
  is our ``n_neighbors = K - 1``;
* LensKit 2025: ``ItemKNNScorer``, ``UserKNNScorer`` (``feedback="implicit"``)
  and ``EASEScorer`` (``LK_EASE_SOLVER=scipy``; batch recommendation with
  ``n_jobs=1``, one process: LensKit parallelises by processes).  LensKit's
  ``max_nbrs`` picks, per target item, the k most similar items of the user's
  history (users who have the item) from all saved similarities: the same
  formula is ours with ``n_history_neighbors=k, n_neighbors=None`` (the rows
  "hist k=.. all"); our ``n_neighbors=k`` alone is implicit's formula;
* Surprise ``KNNBaseline`` (ratings; single-threaded; ``k`` as LensKit's
  ``max_nbrs``, ``pearson_baseline`` with shrinkage 100: ours
  ``n_history_neighbors=k, n_neighbors=None, similarity="pearson_baseline",
  shrinkage=100``; its baseline is 10 ALS sweeps with reg_u=15, reg_i=10,
  ours one ``baseline_regularization=10`` for both);
* ours: ``ItemKNN``, ``UserKNN``, ``EASE`` with the peers' settings (same
  formula) and with their defaults (``n_jobs`` = ``--threads``).

Implicit task (as ``bench_als.py``): positives = rating >= 4; each user's
latest 20 % of positives held out; users with fewer than 5 positives not
evaluated; the whole catalogue ranked with training items excluded; NDCG@10
and P@10 (hits / 10).  On ``ml-100k`` and on the Amazon 2014 Musical
Instruments 5-core reviews (``amazon``) and on 1M synthetic ratings
(``synthetic-1M``, ``make_ratings``, timestamps as given).  Rating task: ml-100k, random
80/20 split (seed 0), RMSE.

Reported per model: fit seconds and recommend seconds (top-10 for every test
user; median and minimum of ``--repeats`` runs inside the subprocess, after
``--warmup`` untimed fits, each followed by a recommend for 50 test users,
the same for every library: a subprocess's first fit pays for cold caches,
lazy imports and thread-pool start-up, which at a few milliseconds per fit
outweighs the fit itself), the extra peak
resident memory of the subprocess over its state after loading the data, and
the metrics.

Run (peer libraries in a separate environment; ours from the source tree)::

    pip install implicit lenskit scikit-surprise
    PYTHONPATH=. python benchmarks/bench_neighbours.py --threads 2 --repeats 5
    # a few models only, results also as JSON
    PYTHONPATH=. python benchmarks/bench_neighbours.py --no-ratings --only EASE --json ease.json
    # the size where fit time matters (1M synthetic ratings, 20k x 5k; the
    # LensKit scorers recommend user by user, hence a sample of test users)
    PYTHONPATH=. python benchmarks/bench_neighbours.py --threads 2 --repeats 3 \
        --datasets synthetic-1M --no-ratings --max-users 2000
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")
sys.path.insert(0, HERE)
from bench_als import _rss_kb, ranking_metrics, temporal_split  # noqa: E402  (same protocol)

# synthetic tier where fit time matters: (users, items, ratings) of make_ratings
SYNTHETIC = {"synthetic-1M": (20_000, 5_000, 1_000_000)}


def load_ratings(name, data_dir):
    if name in SYNTHETIC:
        sys.path.insert(0, os.path.join(HERE, ".."))
        from sklearn_mf.datasets import make_ratings

        n_users, n_items, n_ratings = SYNTHETIC[name]
        X, y = make_ratings(n_users=n_users, n_items=n_items, n_ratings=n_ratings, random_state=0)
        return pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "rating": y, "timestamp": X[:, 2]})
    if name == "ml-100k":
        sys.path.insert(0, os.path.join(HERE, ".."))
        from sklearn_mf.datasets import load_movielens

        return load_movielens(os.path.join(data_dir, "ml-100k")).ratings
    path = os.path.join(
        data_dir, "amazon-2014-musical-instruments-5core", "Musical_Instruments_5.json.xz"
    )
    raw = pd.read_json(path, lines=True)
    users = pd.factorize(raw["reviewerID"])[0]
    items = pd.factorize(raw["asin"])[0]
    return pd.DataFrame(
        {"user": users, "item": items, "rating": raw["overall"], "timestamp": raw["unixReviewTime"]}
    )


def implicit_task(name, data_dir):
    r = load_ratings(name, data_dir)
    return temporal_split(r[r["rating"] >= 4])


def rating_task(data_dir):
    r = load_ratings("ml-100k", data_dir)
    test = np.random.default_rng(0).random(len(r)) < 0.2
    X, y = r[["user", "item"]].to_numpy(), r["rating"].to_numpy(dtype=float)
    return X[~test], y[~test], X[test], y[test]


# ---------------------------------------------------------------- the models
def _ours(kind, params, threads):
    import sklearn_mf

    return getattr(sklearn_mf, kind)(n_jobs=threads, **params)


def _fit_recommend_ours(kind, params, threads, train, users):
    model = _ours(kind, params, threads)
    tic = time.perf_counter()
    model.fit(train)
    fit = time.perf_counter() - tic
    tic = time.perf_counter()
    items = model.recommend(users, n=10).items
    rec = time.perf_counter() - tic
    return fit, rec, dict(zip(users.tolist(), items.tolist()))


def _fit_recommend_implicit(kind, params, threads, train, users):
    from implicit import nearest_neighbours as nn
    from threadpoolctl import threadpool_limits

    cls = {
        "cosine": nn.CosineRecommender,
        "tfidf": nn.TFIDFRecommender,
        "bm25": nn.BM25Recommender,
    }[kind]
    tic = time.perf_counter()
    u_ids, u = np.unique(train[:, 0], return_inverse=True)
    i_ids, i = np.unique(train[:, 1], return_inverse=True)
    m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(len(u_ids), len(i_ids)))
    m.sum_duplicates()
    model = cls(num_threads=threads, **params)
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    with threadpool_limits(1, "blas"):
        model.fit(m, show_progress=False)
    fit = time.perf_counter() - tic
    tic = time.perf_counter()
    codes = np.searchsorted(u_ids, users)
    ids, _ = model.recommend(codes, m[codes], N=10, filter_already_liked_items=True)
    rec = time.perf_counter() - tic
    return fit, rec, dict(zip(users.tolist(), i_ids[ids].tolist()))


def _fit_recommend_lenskit(kind, params, threads, train, users):
    os.environ.setdefault("LK_EASE_SOLVER", "scipy")
    import torch
    from lenskit.batch import recommend
    from lenskit.data import from_interactions_df
    from lenskit.knn import EASEScorer, ItemKNNScorer, UserKNNScorer
    from lenskit.pipeline import topn_pipeline

    torch.set_num_threads(threads)
    cls = {"ItemKNN": ItemKNNScorer, "UserKNN": UserKNNScorer, "EASE": EASEScorer}[kind]
    tic = time.perf_counter()
    df = pd.DataFrame({"user_id": train[:, 0], "item_id": train[:, 1]})
    ds = from_interactions_df(df, user_col="user_id", item_col="item_id")
    pipe = topn_pipeline(cls(**params), n=10)
    pipe.train(ds)
    fit = time.perf_counter() - tic
    tic = time.perf_counter()
    out = recommend(pipe, users.tolist(), n=10, n_jobs=1)
    rec = time.perf_counter() - tic
    recs = {}
    for key, il in out:
        recs[key.user_id] = il.ids().tolist()
    return fit, rec, recs


def _import(lib):
    """Import the library before the memory baseline (imports are not the fit's)."""
    if lib == "ours":
        import sklearn_mf  # noqa: F401
    elif lib == "implicit":
        import implicit.nearest_neighbours  # noqa: F401
    elif lib == "lenskit":
        import lenskit.knn  # noqa: F401
        import torch  # noqa: F401
    else:
        import surprise  # noqa: F401


def _child_implicit(lib, kind, params, name, data_dir, threads, repeats, warmup, max_users, queue):
    train, test = implicit_task(name, data_dir)
    users = np.unique(test[:, 0])
    if max_users and len(users) > max_users:
        # the same random sample of test users for every model (slow peers)
        users = np.sort(np.random.default_rng(0).choice(users, max_users, replace=False))
        test = test[np.isin(test[:, 0], users)]
    _import(lib)
    rss0 = _rss_kb("VmRSS")
    run = {
        "ours": _fit_recommend_ours,
        "implicit": _fit_recommend_implicit,
        "lenskit": _fit_recommend_lenskit,
    }[lib]
    for _ in range(warmup):  # untimed, the same for every library
        run(kind, params, threads, train, users[:50])
    fits, recs_t = [], []
    for _ in range(repeats):
        fit, rec, recs = run(kind, params, threads, train, users)
        fits.append(fit)
        recs_t.append(rec)
    ndcg, prec = ranking_metrics(recs, test)
    queue.put(
        dict(
            fit=float(np.median(fits)),
            fit_min=float(np.min(fits)),
            rec=float(np.median(recs_t)),
            rec_min=float(np.min(recs_t)),
            mem_mb=(_rss_kb("VmHWM") - rss0) / 1024,
            ndcg=ndcg,
            prec=prec,
            n_users=len(users),
            nnz=len(train),
        )
    )


def _child_rating(lib, kind, params, data_dir, threads, repeats, warmup, queue):
    Xtr, ytr, Xte, yte = rating_task(data_dir)
    _import(lib)
    rss0 = _rss_kb("VmRSS")
    fits = []
    for rep in range(warmup + repeats):
        if lib == "ours":
            model = _ours(kind, params, threads)
            tic = time.perf_counter()
            model.fit(Xtr, ytr)
            fits.append(time.perf_counter() - tic)
            if rep < warmup:
                model.predict(Xte[:50])
                continue
            tic = time.perf_counter()
            pred = model.predict(Xte)
            pred_t = time.perf_counter() - tic
        else:
            from surprise import Dataset, KNNBaseline, Reader

            tic = time.perf_counter()
            frame = pd.DataFrame({"u": Xtr[:, 0], "i": Xtr[:, 1], "r": ytr})
            data = Dataset.load_from_df(frame, Reader(rating_scale=(1, 5)))
            trainset = data.build_full_trainset()
            model = KNNBaseline(verbose=False, **params)
            model.fit(trainset)
            fits.append(time.perf_counter() - tic)
            if rep < warmup:
                [model.predict(u, i) for u, i in Xte[:50]]
                continue
            tic = time.perf_counter()
            pred = np.array([model.predict(u, i).est for u, i in Xte])
            pred_t = time.perf_counter() - tic
    rmse = float(np.sqrt(np.mean((np.clip(pred, 1, 5) - yte) ** 2)))
    fits = fits[warmup:]
    queue.put(
        dict(
            fit=float(np.median(fits)),
            fit_min=float(np.min(fits)),
            rec=pred_t,
            mem_mb=(_rss_kb("VmHWM") - rss0) / 1024,
            rmse=rmse,
        )
    )


def run(target, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def implicit_models(k, lam):
    """(label, library, kind, params, group): the same formula shares a group."""
    none = dict(weighting=None, shrinkage=0.0)
    return [
        (f"implicit Cosine K={k}", "implicit", "cosine", dict(K=k), "cosine"),
        (f"ItemKNN cosine k={k - 1}", "ours", "ItemKNN", dict(n_neighbors=k - 1, **none), "cosine"),
        (f"implicit TFIDF K={k}", "implicit", "tfidf", dict(K=k), "tfidf"),
        (
            f"ItemKNN tfidf cosine k={k - 1}",
            "ours",
            "ItemKNN",
            dict(n_neighbors=k - 1, weighting="tfidf", shrinkage=0.0),
            "tfidf",
        ),
        (f"implicit BM25 K={k}", "implicit", "bm25", dict(K=k, K1=100.0, B=0.8), "bm25"),
        (
            f"ItemKNN bm25 dot k={k - 1}",
            "ours",
            "ItemKNN",
            dict(n_neighbors=k - 1, similarity="dot", weighting="bm25", shrinkage=0.0),
            "bm25",
        ),
        (
            f"LensKit ItemKNN k={k}",
            "lenskit",
            "ItemKNN",
            dict(max_nbrs=k, feedback="implicit"),
            "lk-item",
        ),
        (f"ItemKNN cosine k={k}", "ours", "ItemKNN", dict(n_neighbors=k, **none), "lk-item"),
        (
            f"ItemKNN cosine hist k={k} all",
            "ours",
            "ItemKNN",
            dict(n_neighbors=None, n_history_neighbors=k, **none),
            "lk-item",
        ),
        (
            f"LensKit UserKNN k={k}",
            "lenskit",
            "UserKNN",
            dict(max_nbrs=k, feedback="implicit"),
            "lk-user",
        ),
        (f"UserKNN cosine k={k}", "ours", "UserKNN", dict(n_neighbors=k, **none), "lk-user"),
        (
            f"UserKNN cosine hist k={k} all",
            "ours",
            "UserKNN",
            dict(n_neighbors=None, n_history_neighbors=k, **none),
            "lk-user",
        ),
        (f"LensKit EASE l={lam:g}", "lenskit", "EASE", dict(regularization=lam), "ease"),
        (f"EASE l={lam:g}", "ours", "EASE", dict(regularization=lam), "ease"),
        ("ItemKNN() defaults", "ours", "ItemKNN", {}, "defaults"),
        ("UserKNN() defaults", "ours", "UserKNN", {}, "defaults"),
        ("EASE() defaults", "ours", "EASE", {}, "defaults"),
    ]


# Surprise's KNNBaseline settings: every similarity stored, the k most similar
# rated neighbours chosen per prediction, pearson_baseline with shrinkage 100
HIST = dict(n_neighbors=None, feedback="explicit")
PEARSON = dict(similarity="pearson_baseline", shrinkage=100.0)

RATING_MODELS = [
    (
        "Surprise KNNBaseline item k=40",
        "surprise",
        None,
        dict(k=40, sim_options={"name": "pearson_baseline", "user_based": False}),
    ),
    ("ItemKNN explicit k=40", "ours", "ItemKNN", dict(n_neighbors=40, feedback="explicit")),
    ("ItemKNN explicit k=300", "ours", "ItemKNN", dict(n_neighbors=300, feedback="explicit")),
    ("ItemKNN explicit hist k=40 all", "ours", "ItemKNN", dict(HIST, n_history_neighbors=40)),
    (
        "ItemKNN pearson_bsl hist k=40",
        "ours",
        "ItemKNN",
        dict(HIST, n_history_neighbors=40, **PEARSON),
    ),
    (
        "Surprise KNNBaseline user k=40",
        "surprise",
        None,
        dict(k=40, sim_options={"name": "pearson_baseline", "user_based": True}),
    ),
    ("UserKNN explicit k=300", "ours", "UserKNN", dict(n_neighbors=300, feedback="explicit")),
    ("UserKNN explicit hist k=40 all", "ours", "UserKNN", dict(HIST, n_history_neighbors=40)),
    (
        "UserKNN pearson_bsl hist k=40",
        "ours",
        "UserKNN",
        dict(HIST, n_history_neighbors=40, **PEARSON),
    ),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed fits (each with a recommend for 50 users) before the timed ones",
    )
    ap.add_argument("--k", type=int, default=20, help="neighbours at the peers' setting")
    ap.add_argument("--lam", type=float, default=300.0, help="EASE regularization")
    ap.add_argument("--datasets", default="ml-100k,amazon")
    ap.add_argument("--no-ratings", action="store_true")
    ap.add_argument(
        "--max-users",
        type=int,
        default=None,
        help="recommend for this random sample of the test users (all by default)",
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument(
        "--only", default=None, help="run only the models whose label contains this text"
    )
    args = ap.parse_args()
    # BLAS keeps its default threads: only the EASE solves use it (both libraries)
    os.environ.setdefault("LK_EASE_SOLVER", "scipy")
    results = []
    print(
        f"threads={args.threads} repeats={args.repeats} warmup={args.warmup} "
        f"(median and min of the repeats) load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for name in args.datasets.split(","):
        print(f"\n{name}: implicit task", flush=True)
        print(
            f"{'model':32} {'fit s':>8} {'fit min':>8} {'rec s':>8} {'rec min':>8} "
            f"{'peak MB':>8} {'NDCG@10':>8} {'P@10':>7}",
            flush=True,
        )
        for label, lib, kind, params, group in implicit_models(args.k, args.lam):
            if args.only and args.only not in label:
                continue
            try:
                r = run(
                    _child_implicit,
                    lib,
                    kind,
                    params,
                    name,
                    args.data,
                    args.threads,
                    args.repeats,
                    args.warmup,
                    args.max_users,
                )
            except Exception as exc:  # a peer failing must not stop the others
                print(f"{label:32} failed: {exc}", flush=True)
                continue
            r.update(data=name, model=label, library=lib, group=group, task="implicit")
            results.append(r)
            print(
                f"{label:32} {r['fit']:8.4f} {r['fit_min']:8.4f} {r['rec']:8.3f} "
                f"{r['rec_min']:8.3f} {r['mem_mb']:8.0f} {r['ndcg']:8.4f} {r['prec']:7.4f}",
                flush=True,
            )
    if not args.no_ratings:
        print("\nml-100k: ratings, random 80/20", flush=True)
        print(
            f"{'model':32} {'fit s':>8} {'fit min':>8} {'pred s':>8} {'peak MB':>8} {'RMSE':>8}",
            flush=True,
        )
        for label, lib, kind, params in RATING_MODELS:
            r = run(
                _child_rating,
                lib,
                kind,
                params,
                args.data,
                args.threads,
                1 if lib == "surprise" else args.repeats,
                args.warmup,
            )
            r.update(data="ml-100k", model=label, library=lib, task="rating")
            results.append(r)
            print(
                f"{label:32} {r['fit']:8.4f} {r['fit_min']:8.4f} {r['rec']:8.3f} "
                f"{r['mem_mb']:8.0f} {r['rmse']:8.4f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
