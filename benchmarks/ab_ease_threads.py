"""EASE fits with n_jobs=2: each stage on one thread or on two, interleaved.

For the thread cut-offs of ``sklearn_mf._ease`` (``_PARALLEL_GRAM_WORK``,
``_PARALLEL_PASS_ITEMS``, ``_PARALLEL_SOLVE_ITEMS``): in one process, the
whole fit on the benchmark's implicit training sets (``bench_neighbours``'s
split) alternates between the cut-offs as shipped and every stage parallel
(cut-offs 0); prints medians and minima of the wall seconds, the largest
difference of the weights and the load average before and after.

    PYTHONPATH=. python benchmarks/ab_ease_threads.py --data ../shared/data --repeats 20
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

from bench_neighbours import DATA, implicit_task  # noqa: E402

from sklearn_mf import EASE, _ease  # noqa: E402

NAMES = ("_PARALLEL_GRAM_WORK", "_PARALLEL_PASS_ITEMS", "_PARALLEL_SOLVE_ITEMS")


def set_cutoffs(values):
    for name, value in zip(NAMES, values):
        setattr(_ease, name, value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--datasets", default="amazon,ml-100k")
    args = ap.parse_args()
    shipped = tuple(getattr(_ease, name) for name in NAMES)
    modes = {"shipped": shipped, "all parallel": (0, 0, 0)}
    print(f"load before {os.getloadavg()}", flush=True)
    for name in args.datasets.split(","):
        train, _ = implicit_task(name, args.data)
        times = {mode: [] for mode in modes}
        coef = {}
        for r in range(args.repeats + 1):
            order = list(modes) if r % 2 else list(modes)[::-1]
            for mode in order:
                set_cutoffs(modes[mode])
                model = EASE(n_jobs=args.threads)
                tic = time.perf_counter()
                model.fit(train)
                if r:  # the first round warms up
                    times[mode].append(time.perf_counter() - tic)
                coef[mode] = model.coef_
        set_cutoffs(shipped)
        diff = float(np.abs(coef["shipped"] - coef["all parallel"]).max())
        row = " | ".join(
            f"{mode} median {np.median(t) * 1e3:.2f} ms, min {np.min(t) * 1e3:.2f}"
            for mode, t in times.items()
        )
        print(
            f"{name} ({len(model.items_)} items): {row}; max |dB| {diff:.1e}; "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
