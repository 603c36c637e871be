"""Where the time of the explicit ALS half-step goes, against its floor.

The half-step of ``MatrixFactorization(solver="als")`` (``_als_fast.explicit_solve``)
costs, per row with ``n`` ratings and ``d = k + 1`` unknowns, a Gram update
of ``n d (d + 1) / 2`` multiply-adds (BLAS ``ssyrk`` on the gathered rows,
in chunks of 128) and one ``d x d`` Cholesky.  This script times, on one
thread and in the same process:

* ``solve``: the kernel on the user side of the synthetic ratings of
  ``bench_dask.py`` (``--size``);
* ``syrk_floor``: the Gram part at the rate of one large ``ssyrk``
  (the machine's best single-thread rate for this operation);
* ``chol``: the kernel on as many rows of exactly ``d + 1`` ratings
  (its Gram part subtracted at the same rate): the per-row solve cost.

With ``--cg``: instead, the CPU seconds (one thread) of both half-steps of
an iteration (users, then items, warm-started from the previous values) by
the Cholesky kernel and by ``explicit_solve_cg`` with 1, 2, 3 and 5 steps,
each after two warm-up iterations of its own, with the training RMSE after
them.

Run: ``PYTHONPATH=. python benchmarks/bench_explicit_kernel.py --size 10M [--cg]``
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.linalg import blas

sys.path.insert(0, os.path.dirname(__file__))
from bench_dask import SIZES, make_partition  # noqa: E402

from sklearn_mf._als import RowMatrix, blas_single_thread, explicit_half_step  # noqa: E402


def best(f, repeat):
    ts = []
    for _ in range(repeat):
        tic = time.perf_counter()
        f()
        ts.append(time.perf_counter() - tic)
    return min(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="10M")
    ap.add_argument("--partitions", type=int, default=None, help="of the size's partitions")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cg", action="store_true", help="Cholesky vs CG steps, both half-steps")
    args = ap.parse_args()
    n_users, n_items, n, P = SIZES[args.size]
    P_used = args.partitions or P
    parts = [make_partition(p, n_users, n_items, n // P) for p in range(P_used)]
    u = np.concatenate([p.user.to_numpy() for p in parts])
    i = np.concatenate([p.item.to_numpy() for p in parts])
    r = np.concatenate([p.rating.to_numpy() for p in parts])
    k, d = args.factors, args.factors + 1
    rng = np.random.default_rng(0)
    Y = rng.normal(0, 0.1, (n_items, k)).astype(np.float32)
    by = rng.normal(0, 0.1, n_items).astype(np.float32)
    R = RowMatrix.from_codes(u, i, n_users, n_items, t=(r - r.mean()).astype(np.float32))
    if args.cg:
        return compare_cg(R, n_users, n_items, args)
    X = np.zeros((n_users, k), np.float32)
    bias = np.zeros(n_users, np.float32)
    nnz = int(R.indptr[-1])
    lengths = np.diff(R.indptr)
    primal = lengths >= d  # rows with fewer ratings than unknowns take the dual path
    Rp, Rd = R.take_rows(np.flatnonzero(primal)), R.take_rows(np.flatnonzero(~primal))

    def solve(Rs):
        Xs, bs = np.zeros((Rs.n_rows, k), np.float32), np.zeros(Rs.n_rows, np.float32)
        return best(lambda: explicit_half_step(Rs, Y, by, Xs, bs, 0.05, 0.05, True, 1), args.repeat)

    with blas_single_thread():
        t_solve = best(
            lambda: explicit_half_step(R, Y, by, X, bias, 0.05, 0.05, True, 1), args.repeat
        )
        t_primal, t_dual = solve(Rp), solve(Rd)
        Z = np.asfortranarray(rng.normal(0, 1, (d, 1 << 20)).astype(np.float32))
        t_big = best(lambda: blas.ssyrk(1.0, Z), args.repeat)
        rate = Z.shape[1] * d * (d + 1) / 2 / t_big  # multiply-adds per second
        Zc = np.asfortranarray(Z[:, :128])
        t_128 = (
            best(
                lambda: [
                    blas.ssyrk(1.0, Zc, beta=1.0, c=np.zeros((d, d), np.float32, order="F"))
                    for _ in range(2000)
                ],
                1,
            )
            / 2000
        )
        rate_128 = 128 * d * (d + 1) / 2 / t_128
        # rows of exactly d + 1 ratings: the per-row solve cost
        m = int(primal.sum())
        idx = rng.integers(0, n_items, m * (d + 1)).astype(np.int32)
        Rc = RowMatrix(
            np.arange(0, m * (d + 1) + 1, d + 1, dtype=np.intp),
            idx,
            {"t": rng.normal(0, 1, m * (d + 1)).astype(np.float32)},
            n_items,
        )
        Xc, bc = np.zeros((m, k), np.float32), np.zeros(m, np.float32)
        t_c = best(lambda: explicit_half_step(Rc, Y, by, Xc, bc, 0.05, 0.05, True, 1), args.repeat)
    gram_madds = float(np.sum(lengths[primal])) * d * (d + 1) / 2
    t_chol = max(t_c - m * (d + 1) * d * (d + 1) / 2 / rate, 0.0)
    floor = gram_madds / rate + t_chol
    # dual rows (n < d): an n x n system, n d (n + 1) / 2 + n^3 / 6 multiply-adds
    nd = lengths[~primal].astype(np.float64)
    dual_madds = float(np.sum(nd * d * (nd + 1) / 2 + nd**3 / 6))
    print(
        f"size {args.size} partitions {P_used}: rows {n_users} nnz {nnz} k {k}; "
        f"load {os.getloadavg()[0]:.1f}\n"
        f"  solve (1 thread)          {t_solve:.3f} s\n"
        f"  ssyrk rate, 2^20 rows     {rate / 1e9:.2f} G multiply-add/s; "
        f"128 rows {rate_128 / 1e9:.2f}\n"
        f"  Gram floor                {gram_madds / rate:.3f} s ({gram_madds / 1e9:.1f} G madds)\n"
        f"  per-row solves ({m} rows) {t_chol:.3f} s ({t_chol / max(m, 1) * 1e6:.1f} us/row)\n"
        f"  primal rows: kernel {t_primal:.3f} s; floor = Gram + solves {floor:.3f} s; "
        f"kernel / floor = {t_primal / floor:.2f}\n"
        f"  dual rows ({len(nd)}): kernel {t_dual:.3f} s; their multiply-adds at the "
        f"ssyrk rate {dual_madds / rate:.3f} s"
    )


def compare_cg(R_u, n_users, n_items, args):
    """CPU seconds of one iteration (both half-steps), Cholesky vs CG steps."""
    k = args.factors
    R_i = R_u.transpose()
    rng = np.random.default_rng(0)
    P0 = rng.normal(0, 0.1, (n_users, k)).astype(np.float32)
    Q0 = rng.normal(0, 0.1, (n_items, k)).astype(np.float32)
    nnz = int(R_u.indptr[-1])
    print(
        f"size {args.size}: users {n_users} items {n_items} nnz {nnz} k {k}; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    configs = [("cholesky", 0)] + [("cg", s) for s in (1, 2, 3, 5)]
    res = {c: [] for c in configs}
    state = {}
    for c in configs:  # two warm-up iterations each, from the same start
        P, Q = P0.copy(), Q0.copy()
        bu, bi = np.zeros(n_users, np.float32), np.zeros(n_items, np.float32)
        for _ in range(2):
            _iteration(R_u, R_i, P, Q, bu, bi, *c)
        state[c] = (P, Q, bu, bi)
    with blas_single_thread():
        for _ in range(args.repeat):  # interleaved rounds
            for c in configs:
                P, Q, bu, bi = state[c]
                t0 = time.process_time()
                sse = _iteration(R_u, R_i, P, Q, bu, bi, *c)
                res[c].append(time.process_time() - t0)
                state.setdefault(("rmse", c), []).append(float(np.sqrt(sse / nnz)))
    for c in configs:
        name = c[0] if c[0] == "cholesky" else f"cg {c[1]} steps"
        print(
            f"  {name:14s} CPU s/iter median {np.median(res[c]):.3f} "
            f"(runs {', '.join(f'{t:.2f}' for t in res[c])}); "
            f"train RMSE after {2 + args.repeat} it {state[('rmse', c)][-1]:.4f}"
        )
    print(f"  load {os.getloadavg()[0]:.1f}")


def _iteration(R_u, R_i, P, Q, bu, bi, solver, steps):
    from sklearn_mf._als_fast import explicit_sse

    explicit_half_step(R_u, Q, bi, P, bu, 0.05, 0.05, True, 1, solver, max(steps, 1))
    explicit_half_step(R_i, P, bu, Q, bi, 0.05, 0.05, True, 1, solver, max(steps, 1))
    e = np.zeros(0, np.float32)
    return explicit_sse(R_u.indptr, R_u.indices, R_u.data["t"], e, P, bu, Q, bi, 1)


if __name__ == "__main__":
    main()
