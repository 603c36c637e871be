"""Set-up stages of ``MatrixFactorization(solver="sgd")`` at 10M-100M, old against new.

One process per fit (the cached ratings of ``bench_scale.py``, X an (n, 2)
int32 table, y float32, k=64, float32, 2 threads, ``n_epochs=2``): the
``verbose=1`` set-up stage lines, their sum, the time from the call of ``fit``
to the first epoch, and the epoch times of the same fit.  The checkouts given
with ``--impl NAME=PATH`` are interleaved over ``--repeats`` rounds; medians
and ``uptime`` are printed.  Run one 100M process at a time (about 10 GB)::

    /work/main/.venv/bin/python benchmarks/profile_sgd_setup_scale.py \\
        --size 100M --repeats 3 --impl old=/work/main --impl new=.
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

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(cache_dir, size):
    import numpy as np

    sys.path.insert(0, HERE)
    from bench_scale import load

    from sklearn_mf import MatrixFactorization

    u, i, y = load(cache_dir, size)
    X = np.column_stack([u, i])
    del u, i
    model = MatrixFactorization(
        n_factors=64,
        n_epochs=2,
        learning_rate=0.005,
        regularization=0.02,
        random_state=0,
        n_jobs=2,
        verbose=1,
    )
    out = io.StringIO()
    tic = time.perf_counter()
    with contextlib.redirect_stdout(out):
        model.fit(X, y)
    total = time.perf_counter() - tic
    text = out.getvalue()
    stages = {
        m[0].split(" (")[0].strip(): float(m[1])
        for m in re.findall(r"set-up +(.+?) +([\d.]+)s", text)
    }
    epochs = [float(t) for t in re.findall(r"epoch +\d+ .* ([\d.]+)s\s*$", text, re.M)]
    print(
        json.dumps(
            {
                "stages": stages,
                "setup": sum(stages.values()),
                "epochs": epochs,
                "fit": total,
                "text": text,
            }
        )
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default="/work/bench-venvs/scale-cache")
    ap.add_argument("--size", default="100M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impl", action="append", default=[], help="NAME=PATH")
    ap.add_argument("--out", help="JSON of every run")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.cache_dir, args.size)
    impls = [s.split("=", 1) for s in args.impl] or [["this", "."]]
    runs = {name: [] for name, _ in impls}
    for rep in range(args.repeats):
        for name, path in impls:
            up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
            env = dict(os.environ, PYTHONPATH=os.path.abspath(path), OMP_NUM_THREADS="2")
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--cache-dir",
                args.cache_dir,
                "--size",
                args.size,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["uptime"] = up
            runs[name].append(res)
            st = "  ".join(f"{k} {v:.2f}" for k, v in res["stages"].items())
            other = res["fit"] - sum(res["epochs"]) - res["setup"]
            print(
                f"{args.size} {name} rep {rep}: set-up {res['setup']:.2f} s ({st}); "
                f"epochs {res['epochs']}; rest {other:.2f} s  [{up}]",
                flush=True,
            )
    print(f"\nmedians, {args.size}:")
    for name, rs in runs.items():
        if not rs:
            continue
        keys = rs[0]["stages"].keys()
        med = {k: statistics.median(r["stages"].get(k, 0.0) for r in rs) for k in keys}
        setup = statistics.median(r["setup"] for r in rs)
        epoch = statistics.median(e for r in rs for e in r["epochs"])
        # everything in fit that is neither an epoch nor a set-up stage line
        # (working copies of the factors, the final scatter, attributes)
        other = statistics.median(r["fit"] - sum(r["epochs"]) - r["setup"] for r in rs)
        print(
            f"  {name}: set-up {setup:.2f} s, epoch {epoch:.2f} s, "
            f"set-up/epoch {setup / epoch:.2f}; fit - epochs - set-up {other:.2f} s; "
            + ", ".join(f"{k} {v:.2f}" for k, v in med.items())
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
