"""Where a Gibbs sweep of FMRecommender(solver='mcmc', implicit_features=...)
spends its time on MovieLens 100K: wraps the kernels and the Python steps of
``_mcmc.run_mcmc`` with wall/CPU timers (one fit per configuration).

    PYTHONPATH=. python benchmarks/profile_fm_mcmc.py [--sweeps 200] [--n-jobs 2]
"""

import argparse
import collections
import os
import time

import numpy as np
from sklearn.model_selection import train_test_split

from sklearn_mf import FMRecommender
from sklearn_mf._fm import _blocks, _estimators, _fm_fast, _mcmc, _mcmc_fast
from sklearn_mf.datasets import load_movielens

WALL = collections.Counter()
CPU = collections.Counter()
CALLS = collections.Counter()


def wrap(mod, name, label=None):
    f = getattr(mod, name)
    label = label or f"{mod.__name__.split('.')[-1]}.{name}"

    def g(*a, **kw):
        t, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **kw)
        finally:
            WALL[label] += time.perf_counter() - t
            CPU[label] += time.process_time() - c
            CALLS[label] += 1

    setattr(mod, name, g)
    return f


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sweeps", type=int, default=200)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--configs", default="ids,user,both")
    p.add_argument("--per-step", action="store_true", help="the blocks' draws by the per-step path")
    args = p.parse_args()
    if args.per_step:
        _mcmc._FUSED_MIXED = False
    path = os.environ.get("SKLEARN_MF_ML100K", "/work/shared/data/ml-100k")
    r = load_movielens(path).ratings
    train, test = train_test_split(r, test_size=0.2, random_state=0)
    X, y = train[["user", "item"]], train["rating"].to_numpy(float)
    for kname in (
        "gibbs_sweep",
        "block_coordinate_pass",
        "blocks_coordinate_sweep",
        "block_state",
        "block_add",
        "block_sweep",
        "intercept_draw",
        "coordinate_pass",
    ):
        if hasattr(_mcmc_fast, kname):
            wrap(_mcmc_fast, kname)
    for kname in ("predict_cache", "objective"):
        wrap(_fm_fast, kname)
    wrap(_mcmc, "sample_prior")
    wrap(_mcmc, "coordinate_draws")
    wrap(_estimators, "run_mcmc", "run_mcmc (all sweeps)")
    for name in ("fused_coordinate_sweep", "coordinate_pass", "add_to_caches", "sample_priors"):
        if hasattr(_blocks.BlockSampler, name):
            wrap(_blocks.BlockSampler, name, f"BlockSampler.{name}")
    for cfg in args.configs.split(","):
        impl = None if cfg == "ids" else cfg
        WALL.clear()
        CPU.clear()
        CALLS.clear()
        m = FMRecommender(
            10,
            solver="mcmc",
            max_iter=args.sweeps,
            random_state=0,
            implicit_features=impl,
            n_jobs=args.n_jobs,
        )
        t, c = time.perf_counter(), time.process_time()
        m.fit(X, y)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        pred = m.predict(test[["user", "item"]])
        rm = float(np.sqrt(np.mean((pred - test["rating"].to_numpy()) ** 2)))
        print(
            f"\n== {cfg}: fit wall {wall:.3f} s cpu {cpu:.3f} s  rmse {rm:.4f}  "
            f"load {os.getloadavg()[0]:.1f}"
        )
        for k_ in sorted(WALL, key=WALL.get, reverse=True):
            print(f"  {k_:36s} calls {CALLS[k_]:6d} wall {WALL[k_]:.3f} cpu {CPU[k_]:.3f}")


if __name__ == "__main__":
    main()
