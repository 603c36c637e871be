"""SGD matrix factorization: sklearn_mf against scikit-surprise and LIBMF.

Every library trains on the same ratings in the same run.  What is compared is
the *marginal* epoch time, ``(t(E2 epochs) - t(E1 epochs)) / (E2 - E1)``, which
removes one-off set-up costs (Surprise builds a Python-dict trainset; LIBMF and
sklearn_mf build their block grids).  Each measurement runs in a fresh
subprocess so that its peak resident memory (``ru_maxrss``) is its own; the
figure includes the ratings array itself.  Medians over ``--repeats`` runs.

Usage::

    python benchmarks/bench_sgd.py                       # all datasets
    python benchmarks/bench_sgd.py --datasets ml-100k synth-1m --repeats 3

The peers are benchmark-only dependencies (``pip install -e .[bench]``).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
DATA = Path(os.environ.get("SKLEARN_MF_DATA", HERE.parents[1] / "shared" / "data"))
K = 64
EPOCHS = {"ml-100k": (1, 41), "synth-1m": (1, 11), "synth-10m": (1, 5)}

DATASETS = {
    # name: (description, loader)
    "ml-100k": "MovieLens 100K (943 users x 1,682 items, 100k ratings)",
    "synth-1m": "make_ratings 20k users x 5k items, 1M ratings",
    "synth-10m": "make_ratings 100k users x 20k items, 10M ratings",
}


def dataset(name):
    """(users, items, ratings) as int32/int32/float32, cached in benchmarks/.cache."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{name}.npz"
    if not path.exists():
        if name == "ml-100k":
            from sklearn_mf.datasets import load_movielens

            r = load_movielens(DATA / "ml-100k").ratings
            u, i, y = r["user"].to_numpy(), r["item"].to_numpy(), r["rating"].to_numpy()
        else:
            from sklearn_mf.datasets import make_ratings

            shape = {
                "synth-1m": (20_000, 5_000, 1_000_000),
                "synth-10m": (100_000, 20_000, 10_000_000),
            }[name]
            X, y = make_ratings(*shape, random_state=0)
            u, i = X[:, 0], X[:, 1]
        # contiguous 0-based ids, as LIBMF needs them
        u = np.unique(u, return_inverse=True)[1]
        i = np.unique(i, return_inverse=True)[1]
        np.savez(path, u=u.astype(np.int32), i=i.astype(np.int32), y=y.astype(np.float32))
    d = np.load(path)
    return d["u"], d["i"], d["y"]


# ----------------------------------------------------------------- workers
def run_sklearn_mf(u, i, y, epochs, threads):
    from sklearn_mf import MatrixFactorization

    X = np.column_stack([u, i])
    model = MatrixFactorization(
        n_factors=K,
        n_epochs=epochs,
        learning_rate=0.005,
        regularization=0.02,
        random_state=0,
        n_jobs=threads,
    )
    tic = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - tic


def run_surprise(u, i, y, epochs, threads):
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    frame = pd.DataFrame({"u": u, "i": i, "r": y.astype(float)})
    data = Dataset.load_from_df(frame, Reader(rating_scale=(float(y.min()), float(y.max()))))
    trainset = data.build_full_trainset()  # not timed: a one-off conversion
    algo = SVD(n_factors=K, n_epochs=epochs, lr_all=0.005, reg_all=0.02, random_state=0)
    tic = time.perf_counter()
    algo.fit(trainset)
    return time.perf_counter() - tic


def run_libmf(u, i, y, epochs, threads):
    from libmf import mf

    data = np.column_stack([u, i, y]).astype(np.float32)
    model = mf.MF(
        k=K,
        nr_threads=threads,
        nr_iters=epochs,
        eta=0.05,
        lambda_p2=0.02,
        lambda_q2=0.02,
        lambda_p1=0.0,
        lambda_q1=0.0,
        quiet=True,
    )
    tic = time.perf_counter()
    model.fit(data)
    return time.perf_counter() - tic


RUNNERS = {"sklearn_mf": run_sklearn_mf, "surprise": run_surprise, "libmf": run_libmf}


def worker(lib, name, epochs, threads):
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    u, i, y = dataset(name)
    seconds = RUNNERS[lib](u, i, y, epochs, threads)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def measure(lib, name, epochs, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, __file__, "--worker", lib, name, str(epochs), str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{lib} on {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def versions():
    import importlib.metadata as md

    found = {}
    for pkg in ("sklearn_mf", "scikit-surprise", "libmf", "numpy", "scikit-learn"):
        try:
            found[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            found[pkg] = "not installed"
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--libs", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--epochs",
        nargs=2,
        type=int,
        default=None,
        metavar=("E1", "E2"),
        help="epoch counts whose time difference is measured "
        "(default: per dataset, enough for a second or more)",
    )
    parser.add_argument("--out", default=str(HERE / "results" / "sgd.json"))
    args = parser.parse_args()

    rows = []
    print(
        f"# SGD MF benchmark, k={K}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    print(f"# versions: {versions()}")
    print(f"# load average at start: {os.getloadavg()}")
    for name in args.datasets:
        dataset(name)  # build the cache outside the timings
        e1, e2 = args.epochs or EPOCHS[name]
        for lib in args.libs:
            for threads in args.threads:
                if lib == "surprise" and threads > 1:
                    continue  # single-threaded library
                per_epoch, peaks = [], []
                for _ in range(args.repeats):
                    a = measure(lib, name, e1, threads)
                    b = measure(lib, name, e2, threads)
                    per_epoch.append((b["seconds"] - a["seconds"]) / (e2 - e1))
                    peaks.append(b["peak_mb"])
                n = len(dataset(name)[2])
                row = dict(
                    dataset=name,
                    lib=lib,
                    threads=threads,
                    epoch_s=statistics.median(per_epoch),
                    epoch_s_all=per_epoch,
                    peak_mb=statistics.median(peaks),
                    ratings_per_s=n / statistics.median(per_epoch),
                )
                rows.append(row)
                print(
                    f"{name:10s} {lib:11s} threads={threads}  epoch {row['epoch_s']:.3f}s "
                    f"(runs {', '.join(f'{x:.3f}' for x in per_epoch)})  "
                    f"peak RSS {row['peak_mb']:.0f} MB",
                    flush=True,
                )

    print(
        "\n| dataset | threads | sklearn_mf s/epoch | surprise s/epoch | libmf s/epoch "
        "| speed-up vs surprise | vs libmf | peak MB (ours / surprise / libmf) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    get = {(r["dataset"], r["lib"], r["threads"]): r for r in rows}
    for name in args.datasets:
        sur = get.get((name, "surprise", 1))
        for threads in args.threads:
            ours = get.get((name, "sklearn_mf", threads))
            lm = get.get((name, "libmf", threads))
            if ours is None:
                continue
            f = lambda r: f"{r['epoch_s']:.3f}" if r else "-"  # noqa: E731
            ratio = lambda r: f"{r['epoch_s'] / ours['epoch_s']:.1f}x" if r else "-"  # noqa: E731
            mem = " / ".join(f"{r['peak_mb']:.0f}" if r else "-" for r in (ours, sur, lm))
            print(
                f"| {name} | {threads} | {f(ours)} | {f(sur)} | {f(lm)} | {ratio(sur)} "
                f"| {ratio(lm)} | {mem} |"
            )
    Path(args.out).parent.mkdir(exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(
            {
                "k": K,
                "date": f"{datetime.now(timezone.utc):%Y-%m-%d}",
                "versions": versions(),
                "rows": rows,
            },
            fh,
            indent=1,
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
