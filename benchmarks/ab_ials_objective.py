"""In-process A/B of the implicit ALS objective: a separate pass over the
ratings after the item half-step (``implicit_objective``) against the observed
part computed inside the item half-step (``row_loss``) plus the two Grams.

    python benchmarks/ab_ials_objective.py --cache-dir DIR --size 100M --repeats 3
"""

import argparse
import os
import time

import numpy as np
from ab_ials_kernel import load_problem  # the same data and start

from sklearn_mf._als import (
    blas_single_thread,
    gram,
    implicit_half_step,
    implicit_objective,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-dir", required=True)
    ap.add_argument("--size", default="100M")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    R_u, R_i, P0, Q0 = load_problem(args.cache_dir, args.size, args.threads)
    n_items = len(Q0)
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
