"""Explicit ALS: MatrixFactorization(solver="als") vs Spark ALS and cmfrec, side by side.

Every library fits the same training ratings in the same run, each in a fresh
subprocess, with the same rank, number of iterations, threads and
regularisation, and is scored by RMSE on the same held-out 20% of ratings
(random split, seed 0; test pairs whose user or item is missing from training
are predicted by each library's own fallback: sklearn_mf global mean plus the
known bias, Spark drops them (``coldStartStrategy="drop"``), cmfrec its
global mean).

* sklearn_mf: weighted-lambda ALS with user and item biases, float32.
* Spark ``pyspark.ml.recommendation.ALS`` (local mode, ``local[threads]``):
  weighted-lambda ALS without biases, float32.  Seconds include the
  DataFrame-to-RDD work of ``fit`` but not the JVM start-up.
* cmfrec ``CMF(method="als", scale_lam=True)``: weighted-lambda ALS with
  biases, float64.

Peer libraries are optional: a library that is not installed is skipped.

Run::

    pip install pyspark cmfrec      # peer libraries, benchmark only (Spark needs Java)
    python benchmarks/bench_als_explicit.py --sizes 100k,1M
"""

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

SIZES = {"1M": (60_000, 12_000, 1_000_000), "10M": (400_000, 40_000, 10_000_000)}


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def load(name, data_path):
    from sklearn.model_selection import train_test_split

    if name == "100k":
        from sklearn_mf.datasets import load_movielens

        r = load_movielens(data_path).ratings
        X, y = r[["user", "item"]].to_numpy(), r["rating"].to_numpy().astype(float)
    else:
        from sklearn_mf.datasets import make_ratings

        n_users, n_items, n_ratings = SIZES[name]
        X, y = make_ratings(n_users=n_users, n_items=n_items, n_ratings=n_ratings, random_state=0)
        X = X[:, :2]
    return train_test_split(X, y, test_size=0.2, random_state=0)


def _fit_sklearn_mf(Xtr, ytr, Xte, p):
    from sklearn_mf import MatrixFactorization

    model = MatrixFactorization(
        n_factors=p["factors"],
        solver="als",
        regularization=p["reg"],
        max_iter=p["iterations"],
        tol=0,
        n_jobs=p["threads"],
        random_state=0,
    )
    tic = time.perf_counter()
    model.fit(Xtr, ytr)
    secs = time.perf_counter() - tic
    return secs, model.predict(Xte), np.ones(len(Xte), dtype=bool)


def _fit_spark(Xtr, ytr, Xte, p):
    import pandas as pd
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(f"local[{p['threads']}]")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    train = spark.createDataFrame(
        pd.DataFrame({"user": Xtr[:, 0].astype(int), "item": Xtr[:, 1].astype(int), "rating": ytr})
    )
    test_pd = pd.DataFrame(
        {"user": Xte[:, 0].astype(int), "item": Xte[:, 1].astype(int), "row": np.arange(len(Xte))}
    )
    test = spark.createDataFrame(test_pd)
    train.cache().count()
    als = ALS(
        rank=p["factors"],
        maxIter=p["iterations"],
        regParam=p["reg"],
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        coldStartStrategy="drop",
        seed=0,
    )
    tic = time.perf_counter()
    model = als.fit(train)
    model.userFactors.count()
    secs = time.perf_counter() - tic
    pred = model.transform(test).select("row", "prediction").toPandas()
    out = np.full(len(Xte), np.nan)
    out[pred["row"].to_numpy()] = pred["prediction"].to_numpy()
    spark.stop()
    return secs, out, np.isfinite(out)


def _fit_cmfrec(Xtr, ytr, Xte, p):
    import pandas as pd
    from cmfrec import CMF

    model = CMF(
        k=p["factors"],
        lambda_=p["reg"],
        niter=p["iterations"],
        method="als",
        scale_lam=True,
        use_cg=False,
        user_bias=True,
        item_bias=True,
        nthreads=p["threads"],
        verbose=False,
        random_state=0,
    )
    df = pd.DataFrame({"UserId": Xtr[:, 0], "ItemId": Xtr[:, 1], "Rating": ytr})
    tic = time.perf_counter()
    model.fit(df)
    secs = time.perf_counter() - tic
    out = np.asarray(model.predict(Xte[:, 0], Xte[:, 1]), dtype=float)
    return secs, out, np.isfinite(out)


FITTERS = {"sklearn_mf": _fit_sklearn_mf, "spark": _fit_spark, "cmfrec": _fit_cmfrec}


def _child(lib, name, data_path, params, queue):
    try:
        Xtr, Xte, ytr, yte = load(name, data_path)
        rss0 = _rss_kb("VmRSS")
        secs, pred, ok = FITTERS[lib](Xtr, ytr, Xte, params)
        peak = (_rss_kb("VmHWM") - rss0) / 1024
        rmse = float(np.sqrt(np.mean((np.clip(pred[ok], 1, 5) - yte[ok]) ** 2)))
        queue.put(dict(secs=secs, mem_mb=peak, rmse=rmse, covered=float(ok.mean()), nnz=len(ytr)))
    except ImportError as exc:
        queue.put(dict(skipped=str(exc)))


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
    ap.add_argument("--libraries", default="sklearn_mf,spark,cmfrec")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--reg", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    params = dict(
        factors=args.factors, iterations=args.iterations, reg=args.reg, threads=args.threads
    )
    print(f"k={args.factors} iterations={args.iterations} reg={args.reg} threads={args.threads}")
    print(
        f"{'data':>5} {'library':>10} {'nnz':>10} {'s/iter':>8} {'ratio':>6} "
        f"{'peak MB':>8} {'RMSE':>7} {'covered':>7}"
    )
    for name in args.sizes.split(","):
        res = {}
        for lib in args.libraries.split(","):
            res[lib] = run(lib, name, args.data, params)
        base = res.get("sklearn_mf", {}).get("secs")
        for lib, r in res.items():
            if "skipped" in r:
                print(f"{name:>5} {lib:>10}  skipped ({r['skipped']})")
                continue
            ratio = r["secs"] / base if base else float("nan")
            mem = "n/a(JVM)" if lib == "spark" else f"{r['mem_mb']:8.0f}"
            print(
                f"{name:>5} {lib:>10} {r['nnz']:>10} {r['secs'] / args.iterations:8.3f} "
                f"{ratio:6.2f} {mem:>8} {r['rmse']:7.4f} {r['covered']:7.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
