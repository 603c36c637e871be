"""ALS on a Dask cluster (sklearn_mf.dask) vs Spark MLlib ALS and the local estimator.

Every library fits the same training ratings (read from the same Parquet
files) with the same rank, iterations, regularisation and cores, each in a
fresh subprocess, and is scored on the same held-out ratings:

* ``dask``: ``sklearn_mf.dask.MatrixFactorization`` (weighted-lambda ALS with
  biases) or ``ImplicitALS`` on a ``LocalCluster`` of ``--threads`` worker
  processes with one thread each, bound to loopback; data read with
  ``dask.dataframe.read_parquet``.
* ``spark``: ``pyspark.ml.recommendation.ALS`` in ``local[threads]`` mode
  (weighted-lambda, no biases; ``implicitPrefs`` for the implicit task), with
  the loopback settings of ``shared/PEERS.md``; data read with
  ``spark.read.parquet``.
* ``local``: ``sklearn_mf.MatrixFactorization(solver="als")`` /
  ``ImplicitALS`` with ``n_jobs=threads`` on the same rows in memory.

Seconds per iteration: Dask's are the median of ``seconds_per_iteration_``
(the one-off shuffle is reported apart); Spark's and the local estimator's
are marginal, ``(t(iterations) - t(1)) / (iterations - 1)`` of two fits in
one session.  Bytes per iteration: Dask's workers' own
``transfer_outgoing_bytes_total`` counters (and the formula from
``message_rows_``); Spark's shuffle read bytes from its status REST API
(bound to 127.0.0.1), marginal in the same way.  Accuracy: RMSE on the held-out
ratings (explicit) or NDCG@10 against the held-out positives (implicit).

Data: synthetic power-law ratings of a planted low-rank model, generated
partition by partition (``--sizes 10M,30M``), written once to Parquet under
``--workdir``.

Run (peers in a benchmark virtualenv, never dependencies of the package)::

    pip install pyspark pyarrow "dask[distributed,dataframe]"
    apt-get install libopenblas0-pthread        # Spark's native BLAS
    PYTHONPATH=. python benchmarks/bench_dask.py --sizes 10M,30M

and the run on workers smaller than the data (no peer; peak memory per worker)::

    PYTHONPATH=. python benchmarks/bench_dask.py --sizes 30M --libraries dask \\
        --workers 4 --memory-limit 512MB
"""

import argparse
import json
import logging
import multiprocessing as mp
import os
import time
import urllib.request

import numpy as np

# name: (users, items, interactions, partitions)
SIZES = {
    "1M": (50_000, 10_000, 1_000_000, 4),
    "10M": (400_000, 40_000, 10_000_000, 20),
    "30M": (1_000_000, 100_000, 30_000_000, 60),
}
TEST_EVERY = 50  # one row in 50 is held out


def make_partition(p, n_users, n_items, n_rows, seed=0):
    """Rows of partition ``p``: Zipf-like users and items, a planted rank-8 rating.

    Deterministic in ``(p, seed)``, so every library reads the same rows.
    """
    import pandas as pd

    rng = np.random.default_rng([seed, p])
    u = np.minimum((rng.pareto(1.2, n_rows) * n_users / 20).astype(np.int64), n_users - 1)
    i = np.minimum((rng.pareto(1.0, n_rows) * n_items / 50).astype(np.int64), n_items - 1)
    # scatter the popular ids over the id range
    u = (u * 2654435761) % n_users
    i = (i * 40503) % n_items
    f = np.arange(1, 9)
    signal = (np.cos(np.outer(u, f) * 0.37) * np.cos(np.outer(i, f) * 0.53)).sum(1)
    r = np.clip(np.rint(3.6 + 0.6 * signal + rng.normal(0, 0.6, n_rows)), 1, 5)
    test = ((u * 31 + i * 17 + p) % TEST_EVERY) == 0
    return pd.DataFrame({"user": u, "item": i, "rating": r, "test": test})


def write_data(name, workdir):
    """Write the dataset as Parquet (one file per partition) unless it is there."""
    path = os.path.join(workdir, f"ratings-{name}")
    if os.path.isdir(path) and len(os.listdir(path)) == SIZES[name][3]:
        return path
    os.makedirs(path, exist_ok=True)
    n_users, n_items, n, P = SIZES[name]
    for p in range(P):
        make_partition(p, n_users, n_items, n // P).to_parquet(
            os.path.join(path, f"part.{p:04d}.parquet"), index=False
        )
    return path


def _rss_mb():
    with open("/proc/self/status") as f:
        return {
            ln.split(":")[0]: int(ln.split()[1]) / 1024
            for ln in f
            if ln.startswith(("VmRSS", "VmHWM"))
        }


def _ndcg(model_recommend, test, k=10):
    """Mean NDCG@10 of held-out positives (rating >= 4), binary gain."""
    pos = test[test.rating >= 4]
    users = pos.user.unique()
    items = model_recommend(users)
    truth = pos.groupby("user").item.apply(set)
    disc = 1 / np.log2(np.arange(2, k + 2))
    out = []
    for u, rec in zip(users, items):
        t = truth[u]
        dcg = sum(disc[j] for j, it in enumerate(rec[:k]) if it in t)
        out.append(dcg / disc[: min(k, len(t))].sum())
    return float(np.mean(out))


def _read_pandas(path):
    import pandas as pd

    df = pd.read_parquet(path)
    return df[~df.test], df[df.test]


# ---------------------------------------------------------------- libraries
def fit_dask(path, p):
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import sklearn_mf.dask as smd
    from sklearn_mf.dask import _estimators

    for name, value in p.get("switches", {}).items():
        setattr(_estimators, name, value)

    one = p.get("one_process", False)  # one worker process with every thread
    cluster = LocalCluster(
        n_workers=1 if one else p["workers"],
        threads_per_worker=p["workers"] if one else 1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit=p["memory_limit"],
        silence_logs=logging.WARNING,
    )
    client = Client(cluster)
    pids0 = client.run(os.getpid)
    df = dd.read_parquet(path)
    train = df[~df.test][["user", "item", "rating"]]
    if p["task"] == "implicit":
        train = train[train.rating >= 4][["user", "item"]]
        est = smd.ImplicitALS(
            n_factors=p["factors"],
            max_iter=p["iterations"],
            regularization=p["reg"],
            alpha=p["alpha"],
            random_state=0,
            n_blocks=p["n_blocks"],
        )
    else:
        est = smd.MatrixFactorization(
            n_factors=p["factors"],
            max_iter=p["iterations"],
            regularization=p["reg"],
            tol=0,
            random_state=0,
            n_blocks=p["n_blocks"],
            als_solver=p.get("als_solver", "cholesky"),
            cg_steps=p["cg_steps"],
        )
    from distributed import get_task_stream

    tic = time.perf_counter()
    with get_task_stream(client) as stream:
        est.fit(train)
    total = time.perf_counter() - tic
    if p.get("dump_stream"):
        with open(p["dump_stream"], "w") as f:
            json.dump({"uid": est._uid, "home": est._home, "records": stream.data}, f, default=str)
    peak = client.run(lambda: _rss_mb()["VmHWM"])
    # a worker that exceeded its memory limit was restarted by its nanny
    restarted = len(set(pids0.values()) - set(client.run(os.getpid).values()))
    out = dict(
        secs_iter=float(np.median(est.seconds_per_iteration_)),
        shuffle_secs=total - sum(est.seconds_per_iteration_),
        bytes_iter=float(np.median(est.bytes_per_iteration_)),
        formula_bytes=(est.message_rows_["to_users"] + est.message_rows_["to_items"])
        * (p["factors"] + (p["task"] == "explicit"))
        * 4,
        worker_peak_mb=sorted(round(v) for v in peak.values()),
        workers_restarted=restarted,
        blocks=est.n_blocks_,
        profile=_iteration_profile(stream.data, est, p["workers"]),
        last_solves=_last_solves(client, est),
    )
    if p["score"]:
        local = est.to_local()
        out.update(_score(local, path, p))
    client.close()
    cluster.close()
    return out


def _iteration_profile(records, est, workers):
    """Seconds per iteration by task kind and action, from Dask's task stream.

    ``solve``/``msg``/``other`` compute time and the time spent transferring
    inputs or reading spilled data, summed over the workers, and ``idle``:
    worker-seconds of the iterations not covered by any of these (scheduler
    round-trips, waiting for the window, load imbalance).
    """
    import re

    # keys mf-<kind>-<uid>-<it>-... (before session 7: mf-<uid>-<it>-...-<kind>-...)
    pattern = re.compile(rf"^mf-(?:([a-z]+)-)?{est._uid}-(\d+)-")
    out = {}
    for rec in records:
        key = str(rec["key"])
        m = pattern.match(key)
        if m is None or m.group(2) == "0":
            continue  # only the iterations
        kind = m.group(1) or ("solve" if "-solve-" in key else "msg" if "-msg-" in key else "")
        kind = kind if kind in ("solve", "msg") else "other"
        for ss in rec.get("startstops", ()):
            action = ss["action"]
            name = f"{kind}_{action}" if action == "compute" else action
            out[name] = out.get(name, 0.0) + ss["stop"] - ss["start"]
    n = max(est.n_iter_, 1)
    out = {k: round(v / n, 3) for k, v in sorted(out.items())}
    busy = sum(out.values())
    out["idle"] = round(workers * float(np.sum(est.seconds_per_iteration_)) / n - busy, 3)
    return out


def _last_solves(client, est):
    """The solves of the last iteration: their seconds gathering rows, in
    all (wall) and on the CPU (the task's thread), summed over the blocks,
    and the interactions of each worker's blocks (the balance), per side."""
    from operator import getitem

    from sklearn_mf.dask import _blocks

    out = {}
    for side, facs, blocks in (
        ("u", est._user_factors, est._user_blocks),
        ("i", est._item_factors, est._item_blocks),
    ):
        stats = client.gather([client.submit(getitem, f, 2) for f in facs])
        if any("seconds" not in s for s in stats):
            return {}  # a version without the solves' timings
        nnz = client.gather([client.submit(_blocks.block_nnz, blk) for blk in blocks])
        for key in ("gather", "wall", "cpu"):
            out[f"{side}_{key}"] = round(sum(s["seconds"][key] for s in stats), 3)
        per_worker = {}
        for blk, n in zip(blocks, nnz):
            w = est._home[blk.key]
            per_worker[w] = per_worker.get(w, 0) + n["nnz"]
        out[f"{side}_worker_nnz"] = sorted(per_worker.values())
    return out


def _score(model, path, p):
    import pandas as pd

    df = pd.read_parquet(path, filters=[("test", "==", True)])
    if p["task"] == "implicit":
        return {"ndcg10": _ndcg(lambda us: model.recommend(us, n=10).items, df)}
    pred = model.predict(df[["user", "item"]])
    return {"rmse": float(np.sqrt(np.mean((pred - df.rating.to_numpy()) ** 2)))}


def fit_local(path, p):
    from sklearn_mf import ImplicitALS, MatrixFactorization

    train, _ = _read_pandas(path)
    if p["task"] == "implicit":
        train = train[train.rating >= 4]

    def fit(iters):
        if p["task"] == "implicit":
            est = ImplicitALS(
                n_factors=p["factors"],
                max_iter=iters,
                regularization=p["reg"],
                alpha=p["alpha"],
                n_jobs=p["workers"],
                random_state=0,
            )
            args = (train[["user", "item"]],)
        else:
            est = MatrixFactorization(
                solver="als",
                n_factors=p["factors"],
                max_iter=iters,
                regularization=p["reg"],
                tol=0,
                n_jobs=p["workers"],
                random_state=0,
                als_solver=p.get("als_solver", "cholesky"),
                cg_steps=p["cg_steps"],
            )
            args = (train[["user", "item"]], train["rating"])
        tic = time.perf_counter()
        est.fit(*args)
        return time.perf_counter() - tic, est

    t1, _ = fit(1)
    tn, est = fit(p["iterations"])
    out = dict(secs_iter=(tn - t1) / (p["iterations"] - 1), peak_mb=round(_rss_mb()["VmHWM"]))
    if p["score"]:
        out.update(_score(est, path, p))
    return out


def _spark_shuffle_bytes(spark):
    """Shuffle read bytes of every stage so far, from Spark's own status API."""
    sc = spark.sparkContext
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages"
    stages = json.load(urllib.request.urlopen(url))
    return sum(s.get("shuffleReadBytes", 0) for s in stages)


def fit_spark(path, p):
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    spark = (
        SparkSession.builder.master(f"local[{p['workers']}]")
        .config("spark.driver.memory", p["spark_memory"])
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "true")
        .config("spark.ui.port", "4077")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(path)
    train = df.filter(~df.test).select("user", "item", "rating")
    implicit = p["task"] == "implicit"
    if implicit:
        train = train.filter(train.rating >= 4).withColumn("rating", train.rating * 0 + 1)
    train = train.cache()
    train.count()

    def fit(iters):
        als = ALS(
            rank=p["factors"],
            maxIter=iters,
            regParam=p["reg"],
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            implicitPrefs=implicit,
            alpha=p["alpha"],
            coldStartStrategy="drop",
            seed=0,
        )
        b0 = _spark_shuffle_bytes(spark)
        tic = time.perf_counter()
        model = als.fit(train)
        model.userFactors.count()
        return time.perf_counter() - tic, _spark_shuffle_bytes(spark) - b0, model

    t1, b1, _ = fit(1)
    tn, bn, model = fit(p["iterations"])
    out = dict(
        secs_iter=(tn - t1) / (p["iterations"] - 1), bytes_iter=(bn - b1) / (p["iterations"] - 1)
    )
    if p["score"]:
        import pandas as pd

        test = pd.read_parquet(path, filters=[("test", "==", True)])
        if implicit:
            users = spark.createDataFrame(pd.DataFrame({"user": test.user.unique()}))
            recs = model.recommendForUserSubset(users, 10).toPandas()
            by_user = {r.user: [x.item for x in r.recommendations] for r in recs.itertuples()}
            out["ndcg10"] = _ndcg(lambda us: [by_user.get(u, []) for u in us], test)
        else:
            t = spark.createDataFrame(test[["user", "item", "rating"]])
            pred = model.transform(t).toPandas()
            err = np.clip(pred.prediction.to_numpy(), 1, 5) - pred.rating.to_numpy()
            out["rmse"] = float(np.sqrt(np.mean(err**2)))
            out["covered"] = len(pred) / len(test)
    spark.stop()
    return out


FITTERS = {"dask": fit_dask, "spark": fit_spark, "local": fit_local}
# variants: (fitter, parameter overrides); "-cg" rows use the explicit CG solver,
# "dask-cg-1p" one worker process with every thread (no inter-process transfer)
VARIANTS = {
    "dask-cg": ("dask", {"als_solver": "cg"}),
    "local-cg": ("local", {"als_solver": "cg"}),
    "dask-cg-1p": ("dask", {"als_solver": "cg", "one_process": True}),
    "dask-1p": ("dask", {"one_process": True}),
    # ablations of the session-7 changes (switches of sklearn_mf.dask._estimators)
    "dask-cg-per-block-msg": ("dask", {"als_solver": "cg", "switches": {"_GROUP_MESSAGES": False}}),
    "dask-cg-no-in-place": ("dask", {"als_solver": "cg", "switches": {"_READ_IN_PLACE": False}}),
    "dask-cg-round-robin": ("dask", {"als_solver": "cg", "switches": {"_PLACE_BY_NNZ": False}}),
    "dask-cg-no-ahead": ("dask", {"als_solver": "cg", "switches": {"_AHEAD": False}}),
    # all four off (the Cholesky solver, as the memory-limited runs)
    "dask-no-s7": (
        "dask",
        {
            "switches": {
                "_GROUP_MESSAGES": False,
                "_READ_IN_PLACE": False,
                "_PLACE_BY_NNZ": False,
                "_AHEAD": False,
            }
        },
    ),
}


def _child(lib, path, params, queue):
    if params.get("dump_stream"):  # one file per library
        params = {**params, "dump_stream": f"{params['dump_stream']}.{lib}.json"}
    if lib.endswith("@base"):  # the same fit from another checkout (before/after)
        import sys

        lib = lib[: -len("@base")]
        sys.path.insert(0, params["baseline"])
        os.environ["PYTHONPATH"] = params["baseline"]  # for the worker processes
    fitter, extra = VARIANTS.get(lib, (lib, {}))
    try:
        queue.put(FITTERS[fitter](path, {**params, **extra}))
    except ImportError as exc:
        queue.put(dict(skipped=str(exc)))


def run(lib, path, params):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(lib, path, params, q))
    proc.start()
    out = q.get()
    proc.join()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10M,30M")
    ap.add_argument(
        "--libraries",
        default="dask,local,spark",
        help="of dask, local, spark, dask-cg, local-cg, dask-cg-1p, dask-1p",
    )
    ap.add_argument("--cg-steps", type=int, default=3, help="of the -cg rows")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the libraries, interleaved")
    ap.add_argument("--task", default="explicit", choices=["explicit", "implicit"])
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2, help="Dask workers = Spark/local threads")
    ap.add_argument("--memory-limit", default="auto", help="per Dask worker, e.g. 512MB")
    ap.add_argument("--n-blocks", type=int, default=None, help="Dask blocks per side")
    ap.add_argument("--spark-memory", default="4g")
    ap.add_argument("--no-score", action="store_true")
    ap.add_argument("--workdir", default="/tmp/sklearn_mf_bench_dask")
    ap.add_argument(
        "--baseline",
        default=None,
        help="a checkout of sklearn_mf for the libraries suffixed @base (e.g. dask-cg@base)",
    )
    ap.add_argument(
        "--dump-stream",
        default=None,
        help="write dask's task stream here (JSON, PATH.<library>.json)",
    )
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    params = dict(
        factors=args.factors,
        iterations=args.iterations,
        reg=args.reg,
        alpha=args.alpha,
        workers=args.workers,
        memory_limit=args.memory_limit,
        n_blocks=args.n_blocks,
        spark_memory=args.spark_memory,
        task=args.task,
        score=not args.no_score,
        cg_steps=args.cg_steps,
        dump_stream=args.dump_stream,
        baseline=args.baseline,
    )
    print(json.dumps(params), "load", os.getloadavg(), flush=True)
    for name in args.sizes.split(","):
        path = write_data(name, args.workdir)
        libs = args.libraries.split(",")
        times = {lib: [] for lib in libs}
        for rnd in range(args.repeat):
            base = None
            for lib in libs:
                r = run(lib, path, params)
                if lib == libs[0]:
                    base = r.get("secs_iter")
                if "secs_iter" in r and base:
                    r[f"ratio_to_{libs[0]}"] = round(r["secs_iter"] / base, 2)
                    times[lib].append(r["secs_iter"])
                print(name, lib, rnd, json.dumps(r), "load", os.getloadavg(), flush=True)
        med = {lib: float(np.median(t)) for lib, t in times.items() if t}
        print(name, "median s/iter", json.dumps({k: round(v, 3) for k, v in med.items()}))
        if "spark" in med:
            print(
                name,
                "spark / x",
                json.dumps({k: round(med["spark"] / v, 2) for k, v in med.items()}),
                flush=True,
            )


if __name__ == "__main__":
    main()
