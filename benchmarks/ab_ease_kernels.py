"""EASE fit stages before/after the s7 kernels, interleaved in one process.

Old: the full Gram matrix (``sparse_rows_dot``) and the NumPy
symmetrise / divide / zero-diagonal pass; new: ``ease_weights`` (the
lower-triangle Gram kernel and the tiled ``ease_from_inverse``).  Prints the
median wall and process-CPU seconds of each, the stage timings, whether the
weights are equal bit for bit, and ``uptime``.

    PYTHONPATH=. python benchmarks/ab_ease_kernels.py --data /work/shared/data --threads 2
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

from sklearn_mf import EASE, _neighbors_fast  # noqa: E402
from sklearn_mf._ease import _blas_threads, ease_weights  # noqa: E402
from sklearn_mf._neighbors import csr_parts  # noqa: E402


def old_ease_weights(X, regularization, dtype=np.float32, n_threads=1, timings=None):
    """``ease_weights`` as of main @2f977fe (4096-item BLAS threshold kept)."""
    dtype = np.dtype(dtype).type
    X = sp.csr_matrix(X, dtype=dtype)
    n = X.shape[1]
    tic = time.perf_counter()
    G = np.empty((n, n), dtype=dtype)
    Xt = X.T.tocsr()
    _neighbors_fast.sparse_rows_dot(
        *csr_parts(Xt, dtype),
        np.arange(n, dtype=np.intp),
        *csr_parts(X, dtype),
        0,
        G,
        np.empty((0, 0), dtype=dtype),
        n_threads,
    )
    G.flat[:: n + 1] += dtype(regularization)
    timings["gram"] = time.perf_counter() - tic
    tic = time.perf_counter()
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (G,))
    with _blas_threads(n_threads if n >= 4096 else 1):
        c, info = potrf(G.T, lower=0, overwrite_a=1, clean=0)
        c, info = potri(c, lower=0, overwrite_c=1)
    timings["lapack"] = time.perf_counter() - tic
    tic = time.perf_counter()
    P = c.T
    for start in range(0, n, 1024):
        stop = min(start + 1024, n)
        blk = P[start:stop, start:stop]
        blk[...] = np.tril(blk) + np.tril(blk, -1).T
        P[start:stop, stop:] = P[stop:, start:stop].T
    d = np.diag(P).astype(np.float64)
    for start in range(0, n, 1024):
        stop = min(start + 1024, n)
        P[start:stop] /= -d.astype(dtype)[None, :]
    P.flat[:: n + 1] = 0
    timings["post"] = time.perf_counter() - tic
    return np.ascontiguousarray(P), d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--lam", type=float, default=300.0)
    args = ap.parse_args()
    from bench_neighbours import implicit_task

    for name in ["ml-100k", "amazon"]:
        train = implicit_task(name, args.data)[0]
        X = EASE(regularization=args.lam).fit(train).user_items_
        t_old, t_new = {"gram": [], "lapack": [], "post": []}, {"gram": [], "solve": []}
        wall = {"old": [], "new": []}
        cpu = {"old": [], "new": []}
        for _ in range(args.repeats):
            for which in ("old", "new"):
                timings = {}
                w0, c0 = time.perf_counter(), time.process_time()
                fn = old_ease_weights if which == "old" else ease_weights
                out = fn(X, args.lam, n_threads=args.threads, timings=timings)
                if which == "old":
                    B_old, d_old = out
                else:
                    B_new, d_new = out
                wall[which].append(time.perf_counter() - w0)
                cpu[which].append(time.process_time() - c0)
                for k, v in timings.items():
                    (t_old if which == "old" else t_new)[k].append(v)
        same = np.array_equal(B_old.view(np.uint32), B_new.view(np.uint32))
        zeros = int((B_new == 0).sum() - B_new.shape[0])
        med = {k: float(np.median(v)) for k, v in wall.items()}
        print(
            f"{name}: {X.shape[1]} items, {X.nnz} interactions, {args.threads} threads, "
            f"{args.repeats} interleaved repeats (medians)\n"
            f"  old ease_weights wall {med['old']:.4f} s cpu {np.median(cpu['old']):.4f} s "
            f"(gram {np.median(t_old['gram']):.4f}, potrf+potri {np.median(t_old['lapack']):.4f}, "
            f"post {np.median(t_old['post']):.4f})\n"
            f"  new ease_weights wall {med['new']:.4f} s cpu {np.median(cpu['new']):.4f} s "
            f"(gram {np.median(t_new['gram']):.4f}, potrf+potri+weights "
            f"{np.median(t_new['solve']):.4f})\n"
            f"  weights bit-identical: {same}; d identical: {np.array_equal(d_old, d_new)}; "
            f"exact zeros off the diagonal: {zeros}",
            flush=True,
        )
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
