"""CPU seconds of the explicit CG kernel (1 thread) on the whole matrices vs on the
dask blocks (the rows each block gathers), interleaved: does a block solve slower?

Run (the Parquet data of bench_dask.py; the second argument is the blocks per side)::

    PYTHONPATH=. python benchmarks/bench_dask_block_kernel.py \\
        /tmp/sklearn_mf_bench_dask/ratings-10M 6
"""

import os
import sys
import time

import numpy as np
import pandas as pd

from sklearn_mf._als import _explicit_setup, explicit_half_step, explicit_ratings
from sklearn_mf._ids import factorize_ids
from sklearn_mf.dask import _blocks

df = pd.read_parquet(sys.argv[1])
df = df[~df.test]
B = int(sys.argv[2]) if len(sys.argv) > 2 else 6
u = factorize_ids(df.user.to_numpy())[0].astype(np.int64)
i = factorize_ids(df.item.to_numpy())[0].astype(np.int64)
y = df.rating.to_numpy()
nU, nI, k = u.max() + 1, i.max() + 1, 64
gm = y.mean()
R_u = explicit_ratings(u, i, y, None, nU, nI, gm, np.float32)
R_i, wu, wi = _explicit_setup(R_u)
rng = np.random.default_rng(0)
P = rng.normal(0, 0.1, (nU, k)).astype(np.float32)
Q = rng.normal(0, 0.1, (nI, k)).astype(np.float32)
bu = np.zeros(nU, np.float32)
bi = np.zeros(nI, np.float32)
params = dict(dtype=np.float32, global_mean=gm)
frame = pd.DataFrame({"user": u, "item": i, "value": y})
uidx, iidx = pd.Index(np.arange(nU)), pd.Index(np.arange(nI))
pu = _blocks.split_partition(frame, uidx, iidx, B, np.float32, False)
pi = _blocks.split_partition(frame, iidx, uidx, B, np.float32, True)
ub = [
    _blocks.build_block(len(range(b, nU, B)), nI, B, "explicit-u", params, pu[b]) for b in range(B)
]
ib = [
    _blocks.build_block(len(range(b, nI, B)), nU, B, "explicit-i", params, pi[b]) for b in range(B)
]
del pu, pi, frame


def gathered(blocks_fixed, F, bias, b):
    msgs = [
        _blocks.send(blk["out"], (np.ascontiguousarray(F[j::B]), bias[j::B], None), b)
        for j, blk in enumerate(blocks_fixed)
    ]
    return _blocks._gathered([_blocks._Source(*m) for m in msgs], k, np.float32)


Yu = [gathered(ib, Q, bi, b) for b in range(B)]
Yi = [gathered(ub, P, bu, b) for b in range(B)]
print("rows gathered u", [len(x[0]) for x in Yu], "i", [len(x[0]) for x in Yi], flush=True)


def t_whole():
    X, b_ = P.copy(), bu.copy()
    Z, bz = Q.copy(), bi.copy()
    c0 = time.thread_time()
    explicit_half_step(R_u, Q, bi, X, b_, 0.05, 0.05, True, 1, "cg", 3)
    c1 = time.thread_time()
    explicit_half_step(R_i, P, bu, Z, bz, 0.05, 0.05, True, 1, "cg", 3, np.zeros(R_i.n_rows))
    c2 = time.thread_time()
    return c1 - c0, c2 - c1


def t_blocks():
    tu = ti = 0.0
    for b in range(B):
        X, b_ = P[b::B].copy(), bu[b::B].copy()
        c0 = time.thread_time()
        explicit_half_step(ub[b]["R"], Yu[b][0], Yu[b][1], X, b_, 0.05, 0.05, True, 1, "cg", 3)
        tu += time.thread_time() - c0
        Z, bz = Q[b::B].copy(), bi[b::B].copy()
        c0 = time.thread_time()
        explicit_half_step(
            ib[b]["R"],
            Yi[b][0],
            Yi[b][1],
            Z,
            bz,
            0.05,
            0.05,
            True,
            1,
            "cg",
            3,
            np.zeros(ib[b]["R"].n_rows),
        )
        ti += time.thread_time() - c0
    return tu, ti


for rep in range(3):
    w = t_whole()
    bl = t_blocks()
    print(
        f"rep {rep} whole u {w[0]:.3f} i {w[1]:.3f} | blocks u {bl[0]:.3f} i {bl[1]:.3f}",
        "load",
        os.getloadavg(),
        flush=True,
    )
