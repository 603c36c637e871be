"""Set-up stages of ``fit`` (everything that is not an iteration), old against new.

For each estimator (MatrixFactorization SGD and ALS, ImplicitALS) and each
checkout given with ``--impl NAME=PATH`` (put first on ``PYTHONPATH``), one
subprocess per measurement, interleaved over the checkouts and repeated:
load the cached ratings of ``bench_scale.py``, then ``fit`` with 1 iteration
three times with 1 iteration (the first one cold).  Reported:

* each ``verbose=1`` set-up stage (``SetupTimer`` lap), wall and process CPU
  time (all threads);
* ``set-up``: from the call of ``fit`` to the start of the first iteration
  (``TrainingLoop.run``), wall and CPU: set-up including what no stage line
  covers, for the first (cold), second and third fit of the process.

Medians over the repeats; ``uptime`` is printed before every round.  Run::

    /work/main/.venv/bin/python benchmarks/profile_setup.py \\
        --cache-dir /work/bench-venvs/scale-cache --size 10M --repeats 3 \\
        --impl old=/work/main --impl new=.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = ("mf_sgd", "mf_als", "ials")


def _model(task, n_iter):
    from sklearn_mf import ImplicitALS, MatrixFactorization

    common = dict(n_factors=64, random_state=0, n_jobs=2)
    if task == "mf_sgd":
        return MatrixFactorization(
            n_epochs=n_iter, learning_rate=0.005, regularization=0.02, **common
        )
    if task == "mf_als":
        return MatrixFactorization(solver="als", max_iter=n_iter, regularization=0.05, **common)
    return ImplicitALS(max_iter=n_iter, regularization=0.05, cg_steps=3, **common)


def worker(task, cache_dir, size):
    import numpy as np

    sys.path.insert(0, HERE)
    from bench_scale import load

    import sklearn_mf
    from sklearn_mf import _progress

    stages = []

    def lap(self, name):
        now, cpu = time.perf_counter(), time.process_time()
        tic, ctic = self._tic, getattr(self, "_ctic", None)
        if ctic is None:
            ctic = self._cpu0
        stages.append((name.split(" (")[0], now - tic, cpu - ctic))
        self._tic, self._ctic = now, cpu

    original_init = _progress.SetupTimer.__init__

    def init(self, verbose):
        original_init(self, verbose)
        self._cpu0 = time.process_time()
        self._ctic = None

    _progress.SetupTimer.__init__ = init
    _progress.SetupTimer.lap = lap
    from sklearn_mf import _training

    loop_entry = []
    original_run = _training.TrainingLoop.run

    def run(self, *args, **kwargs):
        loop_entry.append((time.perf_counter(), time.process_time()))
        return original_run(self, *args, **kwargs)

    _training.TrainingLoop.run = run

    u, i, y = load(cache_dir, size)
    X = np.column_stack([u, i])
    del u, i
    y = y if task != "ials" else None
    out = {"file": sklearn_mf.__file__}
    for label in ("cold", "fit1", "fit1b"):
        stages.clear()
        loop_entry.clear()
        model = _model(task, 1)
        tic, ctic = time.perf_counter(), time.process_time()
        model.fit(X) if y is None else model.fit(X, y)
        out[label] = (time.perf_counter() - tic, time.process_time() - ctic)
        out[label + "_setup"] = (loop_entry[0][0] - tic, loop_entry[0][1] - ctic)
        out[label + "_stages"] = list(stages)
        del model
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default="/work/bench-venvs/scale-cache")
    parser.add_argument("--size", default="10M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--impl", action="append", default=[])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.cache_dir, args.size)))
        return
    impls = [s.split("=", 1) for s in (args.impl or ["new=."])]
    tasks = args.tasks.split(",")
    results = {(name, t): [] for name, _ in impls for t in tasks}
    for rep in range(args.repeats):
        for task in tasks:
            for name, path in impls:
                up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
                env = dict(os.environ, PYTHONPATH=os.path.abspath(path), OMP_NUM_THREADS="2")
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        task,
                        "--cache-dir",
                        args.cache_dir,
                        "--size",
                        args.size,
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    print(proc.stdout, proc.stderr)
                    raise SystemExit(f"{name} {task} failed")
                res = json.loads(line[0][7:])
                res["uptime"] = up
                results[(name, task)].append(res)
                su = res["fit1_setup"]
                print(
                    f"round {rep} {task:7s} {name:4s} setup wall {su[0]:6.3f} "
                    f"cpu {su[1]:6.3f} fit(1) {res['fit1'][0]:6.3f}  "
                    f"stages "
                    + " ".join(f"{n}={w:.3f}/{c:.3f}" for n, w, c in res["fit1_stages"])
                    + f"  [{up}]",
                    flush=True,
                )
    print()
    print(f"medians over {args.repeats} repeats (wall / process CPU seconds), {args.size}")
    med = statistics.median
    for task in tasks:
        print(f"\n{task}")
        names = []
        for name, _ in impls:
            for n, _, _ in results[(name, task)][0]["fit1_stages"]:
                if n not in names:
                    names.append(n)
        header = f"  {'stage':22s}" + "".join(f"{name:>22s}" for name, _ in impls)
        print(header)

        def cell(runs, fn):
            vals = [fn(r) for r in runs]
            vals = [v for v in vals if v is not None]
            if not vals:
                return f"{'-':>22s}"
            w, c = med([v[0] for v in vals]), med([v[1] for v in vals])
            return f"{w:10.3f} / {c:8.3f}  "

        def stage(n):
            def fn(r):
                hits = [(w, c) for m, w, c in r["fit1_stages"] if m == n]
                return (sum(h[0] for h in hits), sum(h[1] for h in hits)) if hits else None

            return fn

        for n in names:
            print(f"  {n:22s}" + "".join(cell(results[(nm, task)], stage(n)) for nm, _ in impls))
        rows = (
            (
                "stages total",
                lambda r: (
                    sum(s[1] for s in r["fit1_stages"]),
                    sum(s[2] for s in r["fit1_stages"]),
                ),
            ),
            ("set-up (to 1st iter)", lambda r: tuple(r["fit1_setup"])),
            ("set-up, 2nd warm fit", lambda r: tuple(r["fit1b_setup"])),
            ("set-up, cold fit", lambda r: tuple(r["cold_setup"])),
            ("fit(1)", lambda r: tuple(r["fit1"])),
            ("cold fit(1)", lambda r: tuple(r["cold"])),
        )
        for n, fn in rows:
            print(f"  {n:22s}" + "".join(cell(results[(nm, task)], fn) for nm, _ in impls))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{k[0]}:{k[1]}": v for k, v in results.items()}, f)


if __name__ == "__main__":
    main()
