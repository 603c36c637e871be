"""In-process A/B of the implicit ALS objective: a separate pass over the
ratings after the item half-step (``implicit_objective``) against the observed
part computed inside the item half-step (``row_loss``) plus the two Grams.

    python benchmarks/ab_ials_objective.py --cache-dir DIR --size 100M --repeats 3
"""

import argparse
import os
import time

import numpy as np

from sklearn_mf._als import (
    blas_single_thread,
    gram,
    implicit_confidences,
    implicit_half_step,
    implicit_objective,
)
from sklearn_mf._convert import interactions_csr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--size", default="100M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    base = os.path.join(args.cache_dir, f"ratings-{args.size}-per_user-")
    u, i, y = (np.load(base + s + ".npy") for s in "uiy")
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    seen = interactions_csr(u, i, y, n_users, n_items, n_jobs=args.threads)
    del u, i, y
    R_u, R_i = implicit_confidences(seen, 1.0, np.float32, n_threads=args.threads)
    del seen
    rng = np.random.default_rng(0)
    P0 = (rng.standard_normal((n_users, 64)) * 0.01).astype(np.float32)
    Q0 = (rng.standard_normal((n_items, 64)) * 0.01).astype(np.float32)
    t = {"separate": [], "fused": []}
    row_loss = np.empty(n_items)
    for rep in range(args.repeats):
        for how in ("separate", "fused") if rep % 2 == 0 else ("fused", "separate"):
            P, Q = P0.copy(), Q0.copy()
            with blas_single_thread():
                t0 = time.perf_counter()
                if how == "separate":
                    implicit_half_step(R_i, P, Q, 0.01, "cg", 3, args.threads)
                    loss = implicit_objective(R_u, P, Q, 0.01, args.threads)
                else:
                    GP = gram(P)
                    implicit_half_step(
                        R_i, P, Q, 0.01, "cg", 3, args.threads, G=GP, row_loss=row_loss
                    )
                    GQ = gram(Q)
                    loss = (
                        row_loss.sum()
                        + np.sum(GP.astype(float) * GQ)
                        + 0.01
                        * (
                            np.einsum("ij,ij->", P, P, dtype=float)
                            + np.einsum("ij,ij->", Q, Q, dtype=float)
                        )
                    )
                t[how].append(time.perf_counter() - t0)
            print(
                f"round {rep} {how}: {t[how][-1]:.2f} s, loss {loss:.6e}",
                os.getloadavg(),
                flush=True,
            )
    a, b = np.median(t["separate"]), np.median(t["fused"])
    print(f"item half-step + objective: separate {a:.2f} s  fused {b:.2f} s  saved {a - b:.2f} s")


if __name__ == "__main__":
    main()
