"""In-process A/B of the implicit ALS half-step kernel of two builds.

Loads the cached per-user ratings (bench_scale.py's cache), builds the user-
and item-major confidence matrices once, and times ``implicit_solve`` (CG,
3 steps, 2 threads) of build A and build B on both sides, interleaved, from
the same starting factors; checks that B's factors equal A's bit for bit.

    python benchmarks/ab_ials_kernel.py --cache-dir DIR --size 100M \
        --a /work/main/sklearn_mf --b sklearn_mf --repeats 3
"""

import argparse
import glob
import importlib.util
import os
import time

import numpy as np

from sklearn_mf._als import blas_single_thread, gram, implicit_confidences
from sklearn_mf._convert import interactions_csr


def load_build(pkg_dir, tag):
    path = glob.glob(os.path.join(pkg_dir, "_als_fast*.so"))[0]
    spec = importlib.util.spec_from_file_location(f"{tag}._als_fast", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_problem(cache_dir, size, threads, k=64):
    """The confidence matrices of bench_scale.py's cached per-user ratings of
    ``size`` (alpha 1, float32) and starting factors of rank ``k``."""
    base = os.path.join(cache_dir, f"ratings-{size}-per_user-")
    u, i, y = (np.load(base + s + ".npy") for s in "uiy")
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    seen = interactions_csr(u, i, y, n_users, n_items, n_jobs=threads)
    del u, i, y
    R_u, R_i = implicit_confidences(seen, 1.0, np.float32, n_threads=threads)
    del seen
    rng = np.random.default_rng(0)
    P0 = (rng.standard_normal((n_users, k)) * 0.01).astype(np.float32)
    Q0 = (rng.standard_normal((n_items, k)) * 0.01).astype(np.float32)
    return R_u, R_i, P0, Q0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--size", default="100M")
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--factors", type=int, default=64)
    args = ap.parse_args()
    A, B = load_build(args.a, "a"), load_build(args.b, "b")
    R_u, R_i, P0, Q0 = load_problem(args.cache_dir, args.size, args.threads, args.factors)
    n_users, n_items = len(P0), len(Q0)
    print(f"{args.size}: {n_users} users, {n_items} items, {len(R_u.indices)} ratings", flush=True)
    times = {("a", "user"): [], ("b", "user"): [], ("a", "item"): [], ("b", "item"): []}
    out = {}
    for rep in range(args.repeats):
        for tag, mod in (("a", A), ("b", B)) if rep % 2 == 0 else (("b", B), ("a", A)):
            P, Q = P0.copy(), Q0.copy()
            for side, R, Y, X in (("user", R_u, Q, P), ("item", R_i, P, Q)):
                G = gram(Y)
                with blas_single_thread():
                    t = time.perf_counter()
                    mod.implicit_solve(
                        R.indptr, R.indices, R.data["cw"], Y, G, X, 0.01, True, 3, args.threads
                    )
                    times[(tag, side)].append(time.perf_counter() - t)
            out[tag] = (P, Q)
        print(
            f"round {rep}: " + "  ".join(f"{t}/{s} {v[-1]:.2f}" for (t, s), v in times.items()),
            os.getloadavg(),
            flush=True,
        )
    for side in ("user", "item"):
        a, b = np.median(times[("a", side)]), np.median(times[("b", side)])
        print(f"{side} half-step: A {a:.2f} s  B {b:.2f} s  B/A {b / a:.3f}")
    same = all(np.array_equal(x, y) for x, y in zip(out["a"], out["b"]))
    print("factors bit-equal:", same)


if __name__ == "__main__":
    main()
