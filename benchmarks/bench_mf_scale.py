"""MatrixFactorization at 10M-100M ratings: SGD epoch, set-up and memory against LIBMF.

One command (from the repository root, in a virtualenv with ``libmf`` 0.9.2;
the cached ratings are those of ``bench_scale.py``)::

    PYTHONPATH=. /work/bench-venvs/scale/bin/python benchmarks/bench_mf_scale.py \\
        --cache-dir /work/bench-venvs/scale-cache --sizes 10M,30M --repeats 3

Every measurement runs in its own process, ours and LIBMF's interleaved, and
the script prints medians over the repeats and our/LIBMF ratios; results go to
``benchmarks/results/mf_scale.json``.  k=64, float32, 2 threads.

- **epoch**: ours from the ``verbose=1`` per-epoch lines of one fit of
  ``--epochs`` epochs (median over the epochs after the first) and, as in
  ``bench_scale.py``, the in-process marginal ``(fit(n) - fit(1)) / (n - 1)``
  of two warm fits; LIBMF's only from the marginal (it prints no times).
- **set-up**: the sum of the ``verbose=1`` set-up stage lines, and (the
  protocol of ``bench_scale.py``) a cold ``fit(1)`` minus one epoch.
- **bytes per rating**: peak RSS of ``fit`` (``VmHWM`` reset just before it)
  beyond the process after loading the caller's arrays (X as an (n, 2) int32
  table and y float32), over the number of ratings.
- ``--rmse``: held-out RMSE (random 10%) of ours and LIBMF at equal epochs.
"""

import argparse
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_scale import THREADS, K, libmf_model, load, peak_bytes, reset_peak  # noqa: E402


def ours(solver, n_iter, verbose=1):
    from sklearn_mf import MatrixFactorization

    if solver == "sgd":
        return MatrixFactorization(
            n_factors=K,
            n_epochs=n_iter,
            learning_rate=0.005,
            regularization=0.02,
            random_state=0,
            n_jobs=THREADS,
            verbose=verbose,
        )
    return MatrixFactorization(
        n_factors=K,
        solver="als",
        max_iter=n_iter,
        regularization=0.05,
        random_state=0,
        n_jobs=THREADS,
        verbose=verbose,
    )


def timed_fit(task, X, y, n_iter):
    """(seconds, peak extra bytes, captured stdout) of one fit."""
    out = io.StringIO()
    base = reset_peak()
    tic = time.perf_counter()
    if task == "libmf":
        data = np.column_stack([X, y]).astype(np.float32)  # the layout LIBMF reads
        libmf_model(n_iter).fit(data)
        del data
    else:
        with contextlib.redirect_stdout(out):
            ours(task.split("_")[1], n_iter).fit(X, y)
    seconds = time.perf_counter() - tic
    return seconds, peak_bytes() - base, out.getvalue()


def parse_verbose(text):
    setup = {m[0].strip(): float(m[1]) for m in re.findall(r"set-up +(.+?) +([\d.]+)s", text)}
    epochs = [float(t) for t in re.findall(r"(?:epoch|iter\w*) +\d+ .* ([\d.]+)s\s*$", text, re.M)]
    return setup, epochs


def worker(task, cache_dir, size, n_iter):
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    u, i, y = load(cache_dir, size)
    X = np.column_stack([u, i])  # the caller's table, as in bench_scale.py
    del u, i
    res = {"task": task, "size": size, "n_ratings": len(y), "n_iter": n_iter}
    if task == "libmf":  # imports are not part of the cold fit
        from libmf import mf  # noqa: F401
    else:
        import sklearn_mf  # noqa: F401
    res["cold_1"], res["bytes_1"], text1 = timed_fit(task, X, y, 1)
    res["warm_1"], _, _ = timed_fit(task, X, y, 1)
    res["warm_n"], res["bytes_n"], text = timed_fit(task, X, y, n_iter)
    res["marginal"] = (res["warm_n"] - res["warm_1"]) / (n_iter - 1)
    res["bytes_per_rating"] = max(res["bytes_1"], res["bytes_n"]) / len(y)
    if task != "libmf":
        setup, epochs = parse_verbose(text)
        res["setup_stages"] = setup
        res["setup_verbose"] = sum(setup.values())
        res["epoch_verbose"] = statistics.median(epochs[1:] or epochs)
        res["epochs"] = epochs
        res["setup_stages_cold"] = parse_verbose(text1)[0]
    epoch = res.get("epoch_verbose", res["marginal"])
    res["setup_protocol"] = res["cold_1"] - epoch
    print(json.dumps(res))


def rmse_worker(task, cache_dir, size, n_iter):
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    u, i, y = load(cache_dir, size)
    test = np.random.default_rng(0).random(len(y)) < 0.1
    X = np.column_stack([u, i])
    if task == "libmf":
        model = libmf_model(n_iter)
        model.fit(np.column_stack([X[~test], y[~test]]).astype(np.float32))
        pred = model.predict(X[test].astype(np.float32))
    else:
        model = ours(task.split("_")[1], n_iter, verbose=0).fit(X[~test], y[~test])
        pred = model.predict(X[test])
    rmse = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
    print(json.dumps({"task": task, "size": size, "n_iter": n_iter, "rmse": rmse}))


def run(kind, task, cache_dir, size, n_iter):
    cmd = [sys.executable, __file__, "--worker", kind, task, "--cache-dir", cache_dir]
    cmd += ["--sizes", size, "--epochs", str(n_iter)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default="/work/bench-venvs/scale-cache")
    ap.add_argument("--sizes", default="10M,30M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--tasks", default="ours_sgd,libmf,ours_als")
    ap.add_argument("--rmse", action="store_true", help="held-out RMSE at --rmse-epochs")
    ap.add_argument("--rmse-epochs", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "mf_scale.json"))
    ap.add_argument("--table-from", help="only rewrite the .rst table of this results JSON")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table_from:
        with open(args.table_from) as f:
            saved = json.load(f)
        table = rst_table(saved["summary"], saved["runs"], saved["meta"])
        with open(os.path.splitext(args.out)[0] + ".rst", "w") as f:
            f.write(table)
        return print(table)
    if args.worker:
        kind, task = args.worker
        fn = worker if kind == "time" else rmse_worker
        return fn(task, args.cache_dir, args.sizes, args.epochs)
    tasks = args.tasks.split(",")
    rows = []
    load_before = os.getloadavg()
    for size in args.sizes.split(","):
        for rep in range(args.repeats):
            for task in tasks if rep % 2 == 0 else tasks[::-1]:  # interleaved
                n_iter = args.epochs if task != "ours_als" else 3
                r = run("time", task, args.cache_dir, size, n_iter)
                if r:
                    r["load"] = os.getloadavg()[0]
                    rows.append(r)
                    epoch = r.get("epoch_verbose", r["marginal"])
                    print(
                        f"{size} {task:9s} rep {rep}: epoch {epoch:.3f} s"
                        f" (marginal {r['marginal']:.3f}), set-up {r['setup_protocol']:.2f} s"
                        f", {r['bytes_per_rating']:.1f} B/rating, load {r['load']:.1f}",
                        flush=True,
                    )
        if args.rmse:
            for task in ("ours_sgd", "libmf"):
                r = run("rmse", task, args.cache_dir, size, args.rmse_epochs)
                if r:
                    rows.append(r)
                    print(f"{size} {task:9s} held-out RMSE {r['rmse']:.4f} at {r['n_iter']} epochs")
    summary = {}
    for size in args.sizes.split(","):
        for task in tasks:
            sel = [r for r in rows if r["size"] == size and r["task"] == task and "cold_1" in r]
            if not sel:
                continue
            med = lambda key: statistics.median(r[key] for r in sel if key in r)  # noqa: E731
            summary[f"{size}/{task}"] = {
                "epoch": med("epoch_verbose") if task != "libmf" else med("marginal"),
                "marginal": med("marginal"),
                "setup_protocol": med("setup_protocol"),
                "setup_verbose": med("setup_verbose") if task != "libmf" else None,
                "bytes_per_rating": med("bytes_per_rating"),
            }
        a, b = summary.get(f"{size}/ours_sgd"), summary.get(f"{size}/libmf")
        if a and b:
            summary[f"{size}/ratio"] = {
                "epoch_ours_over_libmf": a["epoch"] / b["epoch"],
                "marginal_ours_over_libmf": a["marginal"] / b["marginal"],
                "setup_in_epochs": a["setup_protocol"] / a["epoch"],
            }
    print(json.dumps(summary, indent=1))
    meta = {"load_before": load_before, "load_after": os.getloadavg(), "argv": sys.argv}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "summary": summary, "runs": rows}, f, indent=1)
    table = rst_table(summary, rows, meta)
    print(table)
    with open(os.path.splitext(args.out)[0] + ".rst", "w") as f:
        f.write(table)


def rst_table(summary, rows, meta):
    """The docs table of the medians (``benchmarks/results/mf_scale.rst``)."""

    def cell(size, task, key, fmt):
        value = summary.get(f"{size}/{task}", {}).get(key)
        return "--" if value is None else fmt.format(value)

    def rmse(size, task):
        sel = [r["rmse"] for r in rows if r["size"] == size and r["task"] == task and "rmse" in r]
        return f"{sel[0]:.4f}" if sel else "--"

    def throughput(size):
        ratio = summary.get(f"{size}/ratio", {}).get("epoch_ours_over_libmf")
        return "--" if ratio is None else f"{1 / ratio:.2f}x"

    sizes = sorted({k.split("/")[0] for k in summary}, key=lambda z: float(z[:-1]))
    lines = [
        ("SGD s/epoch, ours", lambda z: cell(z, "ours_sgd", "epoch", "{:.3f}")),
        ("SGD s/epoch, LIBMF", lambda z: cell(z, "libmf", "epoch", "{:.3f}")),
        ("throughput ours / LIBMF", throughput),
        ("SGD set-up, s", lambda z: cell(z, "ours_sgd", "setup_protocol", "{:.2f}")),
        ("SGD set-up, epochs", lambda z: cell(z, "ratio", "setup_in_epochs", "{:.1f}")),
        ("bytes/rating, SGD", lambda z: cell(z, "ours_sgd", "bytes_per_rating", "{:.1f}")),
        ("bytes/rating, ALS", lambda z: cell(z, "ours_als", "bytes_per_rating", "{:.1f}")),
        ("bytes/rating, LIBMF", lambda z: cell(z, "libmf", "bytes_per_rating", "{:.1f}")),
        ("held-out RMSE, ours", lambda z: rmse(z, "ours_sgd")),
        ("held-out RMSE, LIBMF", lambda z: rmse(z, "libmf")),
    ]
    w0 = max(len(name) for name, _ in lines)
    widths = [max(10, len(z)) for z in sizes]
    rule = "  ".join(["=" * w0] + ["=" * w for w in widths])
    head = "  ".join([" " * w0] + [z.ljust(w) for z, w in zip(sizes, widths)]).rstrip()
    out = [rule, head, rule]
    for name, fn in lines:
        cells = [name.ljust(w0)] + [fn(z).ljust(w) for z, w in zip(sizes, widths)]
        out.append("  ".join(cells).rstrip())
    out.append(rule)
    load = meta["load_before"][0], meta["load_after"][0]
    out.append("")
    out.append(f"Load average {load[0]:.1f} before, {load[1]:.1f} after the run.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
