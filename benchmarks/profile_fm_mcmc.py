"""Wall time of the phases of the Bayesian FM sampler on MovieLens 100K.

Fits ``FMRecommender(10, solver="mcmc", max_iter=200)`` on the split of
``bench_fm.py`` (80/20, ``random_state=0``) with 1 and then 2 threads and
prints the time spent in the plain columns' joint draws
(``_mcmc_fast.gibbs_sweep``), in the relational blocks' coordinate steps
(``BlockSampler.fused_coordinate_sweep``), in the cache refreshes, and the
rest (Python per sweep, preprocessing, prediction setup)::

    PYTHONPATH=. python benchmarks/profile_fm_mcmc.py both /work/shared/data/ml-100k

(first argument ids, user or both; second the data, default bench_fm's).

Session 8 measurement (quiet machine, load 0.0-0.5, 15:24 UTC, main's build):
``implicit_features="both"``: 7.05 s on 1 thread, 6.71 s on 2 threads, so the
second thread gives only 5 %.  ``perf record`` of the 1-thread fit: the block
walks over the training rows 21 %, the serial block column draws 20 %
(accumulate 11 %, move 8 %), the ids' joint draws 18 % (accumulate 11 %,
apply 3.4 %, Cholesky and solves 3.8 %), normal draws (log, cos) 3 %,
factor-major transposes 2 %, page clearing of per-call buffers 2 %, idle
OpenBLAS threads 2.5 %.  On 2 threads libgomp's spin-wait is 74 % of the
samples: the parallel regions (one walk per coordinate step, 23 a sweep) are
too short for the fork/join they cost.

Session 9 (load 1.5-3.5, other jobs running): the training rows are now
sorted by user, a sorted block's walk sums each user's run with vectorised
reductions, the block column accumulation uses independent partial sums,
and the fused block sweep runs in one OpenMP region a sweep whose thread 0
never waits for a helper to arrive.  An in-process A/B against main's
kernel (sweeps alternated, same draws): block steps 1.83 s against 2.19 s
(half of 200 sweeps each, both sets, one thread), 0.89 s against 1.15 s
(user set); the ids' joint draws on two threads 1.39 s with the rows
sorted against 1.69 s in split order (separate runs, load 1.7 and 0.0).
"""

import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fm import DEFAULT_DATA, movielens_frame  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from sklearn_mf import FMRecommender  # noqa: E402
from sklearn_mf._fm import _blocks, _fm_fast, _mcmc  # noqa: E402


def _timed(obj, name, key, totals):
    f = getattr(obj, name)

    def g(*args, **kwargs):
        tic = time.perf_counter()
        out = f(*args, **kwargs)
        totals[key] += time.perf_counter() - tic
        return out

    setattr(obj, name, g)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    implicit = None if not argv or argv[0] == "ids" else argv[0]
    frame, _ = movielens_frame(argv[1] if len(argv) > 1 else DEFAULT_DATA)
    train, _test = train_test_split(frame, test_size=0.2, random_state=0)
    y = train["rating"].to_numpy(float)
    totals = collections.defaultdict(float)
    _timed(_mcmc._fm_mcmc_fast, "gibbs_sweep", "ids draws", totals)
    _timed(_blocks.BlockSampler, "fused_coordinate_sweep", "block steps", totals)
    _timed(_fm_fast, "predict_cache", "refresh", totals)
    _timed(_blocks.BlockSampler, "add_to_caches", "refresh blocks", totals)
    for n_jobs in (1, 2):
        totals.clear()
        model = FMRecommender(
            10, solver="mcmc", max_iter=200, random_state=0,
            implicit_features=implicit, n_jobs=n_jobs,
        )  # fmt: skip
        tic = time.perf_counter()
        model.fit(train[["user", "item"]], y)
        wall = time.perf_counter() - tic
        parts = {k: round(v, 3) for k, v in totals.items()}
        print(n_jobs, f"total {wall:.3f}", parts, f"other {wall - sum(totals.values()):.3f}")


if __name__ == "__main__":
    main()
