"""The 1M-100M rating tier: set-up, iterations, memory and top-N against the peers.

Synthetic implicit/explicit data from :func:`sklearn_mf.datasets.make_ratings`
with ``pair_sampling="per_user"`` (unique (user, item) pairs by construction,
power-law activity and popularity, linear time: 100M in minutes and under
6 GB; the files are cached under a name that includes the sampler, with the
generation time and peak memory beside them); 100 ratings per user on
average, the catalogue a fifth of the users:

=====  ==========  ========
size   users       items
=====  ==========  ========
1M     10,000      2,000
10M    100,000     20,000
30M    300,000     60,000
100M   1,000,000   200,000
=====  ==========  ========

Each measurement runs in its own subprocess, one at a time, on the same cached
arrays (user and item codes int32, ratings float32; ``--cache-dir``, never the
repository).  k=64, float32, 2 threads everywhere.

Reported per (estimator, size):

* ``setup_s`` = fit(1 iteration) - one marginal iteration, where the marginal
  iteration is (fit(3) - fit(1)) / 2: everything ``fit`` does that is not an
  iteration (validation, id encoding, CSR build, block schedule);
* ``iter_s``: the marginal iteration;
* ``extra_bytes_per_rating``: peak resident memory of the fit (``VmHWM``, reset
  just before ``fit``) minus the resident memory with the input arrays loaded,
  divided by the number of ratings;
* for ``recommend``: users per second for the top-10 of 20,000 users (all of
  them at 1M), seen items excluded, over the whole catalogue, and the GEMM
  rate this represents against the machine's own ``float32`` GEMM rate
  (measured in the same process with the same shapes).

Peers: ``implicit`` (ALS with conjugate gradient, 3 steps; its set-up is the
CSR build from the arrays that its API requires) and LIBMF (SGD; its set-up is
the conversion of the arrays to its problem structure).  ``sklearn_mf``
computes its training objective at each ImplicitALS iteration
(``loss_curve_``); implicit's is switched off.  Ratios < 1 mean sklearn_mf is
faster (time) or smaller (memory).

Run (peers in a benchmark-only environment, our in-place build first on the
path)::

    python3 -m venv /path/venv && /path/venv/bin/pip install numpy scipy \\
        scikit-learn pandas threadpoolctl implicit libmf matplotlib
    PYTHONPATH=. /path/venv/bin/python benchmarks/bench_scale.py \\
        --cache-dir /tmp/scale-cache --sizes 1M,10M,30M,100M

Every measurement process is stopped after ``TIMEOUT_S`` (one hour) and
reported as failed; the results are saved after each measurement, so an
interrupted run keeps what it measured.  At the end the script prints the
table and one line per target (``TARGETS``: ratio, target, met or not) for
every size.  Before a 100M run check ``free -g`` (about 14 GB available: our
ImplicitALS peaks near 4 GB beyond the 1 GB of input, implicit near 4 GB).

Results go to ``benchmarks/results/scale.json`` (merged with earlier runs by
size, so that the 100M tier can be run on its own), the table to
``benchmarks/results/scale.rst`` (included by ``doc/benchmarks.rst``) and the
plot to ``doc/images/scale.png``; ``--plot-only`` redraws both from the JSON.
"""

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.json"
PLOT = HERE.parent / "doc" / "images" / "scale.png"
K = 64
THREADS = 2
SIZES = {
    "1M": (10_000, 2_000, 1_000_000),
    "10M": (100_000, 20_000, 10_000_000),
    "30M": (300_000, 60_000, 30_000_000),
    "100M": (1_000_000, 200_000, 100_000_000),
}
N_RECOMMEND = 20_000
FIT_TASKS = ("ours_mf_sgd", "ours_mf_als", "ours_ials", "ours_bpr", "implicit_als", "libmf_sgd")
REC_TASKS = ("ours_recommend", "implicit_recommend")
PAIR_SAMPLING = "per_user"  # make_ratings(pair_sampling=...): linear time at 100M
TIMEOUT_S = 3600  # per measurement process; a hung or swapping run is reported, not waited on
# (ratio name, target, "max" = at most / "min" = at least), checked at every size
TARGETS = (
    ("ials_iter_vs_implicit", 0.5, "max"),
    ("ials_memory_vs_implicit", 1.0, "max"),
    ("sgd_iter_vs_libmf", 1 / 1.5, "max"),
    ("sgd_setup_in_epochs", 1.0, "max"),
    ("recommend_speedup_vs_implicit", 2.0, "min"),
    ("ials_bytes_per_rating", 32.0, "max"),
    ("bpr_bytes_per_rating", 32.0, "max"),
    ("mf_sgd_bytes_per_rating", 32.0, "max"),
    ("mf_als_bytes_per_rating", 32.0, "max"),
)


# ------------------------------------------------------------------ data
def data_paths(cache_dir, size):
    # the generator is in the name: files drawn by another sampler are not reused
    base = Path(cache_dir) / f"ratings-{size}-{PAIR_SAMPLING}"
    return {name: base.with_name(f"{base.name}-{name}.npy") for name in ("u", "i", "y")}


def generate(cache_dir, size):
    """Draw the ratings once and cache them as .npy files (in a worker process).

    Returns ``{"generate_s", "generate_peak_bytes"}`` (kept beside the cached
    files), or None when the files were cached without them.
    """
    paths = data_paths(cache_dir, size)
    stats = paths["u"].with_name(paths["u"].name.replace("-u.npy", ".json"))
    if all(p.exists() for p in paths.values()):
        return json.loads(stats.read_text()) if stats.exists() else None
    out = run("generate", cache_dir, size, 1)
    if out is not None:
        stats.write_text(json.dumps(out))
    return out


def _generate_worker(cache_dir, size):
    from sklearn_mf.datasets import make_ratings

    n_users, n_items, n_ratings = SIZES[size]
    paths = data_paths(cache_dir, size)
    base = reset_peak()
    tic = time.perf_counter()
    X, y = make_ratings(
        n_users=n_users,
        n_items=n_items,
        n_ratings=n_ratings,
        pair_sampling=PAIR_SAMPLING,
        random_state=0,
    )
    seconds = time.perf_counter() - tic
    peak = peak_bytes() - base
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for name, column in (("u", X[:, 0]), ("i", X[:, 1])):
        np.save(paths[name].with_suffix(".tmp.npy"), column.astype(np.int32))
    del X
    np.save(paths["y"].with_suffix(".tmp.npy"), y.astype(np.float32))
    for p in paths.values():  # complete files only: an interrupted run leaves no cache
        p.with_suffix(".tmp.npy").replace(p)
    return {"generate_s": seconds, "generate_peak_bytes": peak}


def load(cache_dir, size):
    p = data_paths(cache_dir, size)
    return np.load(p["u"]), np.load(p["i"]), np.load(p["y"])


# ------------------------------------------------------------- memory
def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak():
    """Reset VmHWM to the current RSS (Linux >= 4.0); return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kb("VmRSS") * 1024


def peak_bytes():
    return _status_kb("VmHWM") * 1024


# ------------------------------------------------------------ workers
def _fit_ours(task, u, i, y, n_iter, verbose=0):
    from sklearn_mf import BPR, ImplicitALS, MatrixFactorization

    X = np.column_stack([u, i])  # the caller's table: (n, 2) int32
    if task == "ours_mf_sgd":
        model = MatrixFactorization(
            n_factors=K,
            n_epochs=n_iter,
            learning_rate=0.005,
            regularization=0.02,
            random_state=0,
            n_jobs=THREADS,
            verbose=verbose,
        )
        args = (X, y)
    elif task == "ours_mf_als":
        model = MatrixFactorization(
            n_factors=K,
            solver="als",
            max_iter=n_iter,
            regularization=0.05,
            random_state=0,
            n_jobs=THREADS,
            verbose=verbose,
        )
        args = (X, y)
    elif task == "ours_ials":
        model = ImplicitALS(
            n_factors=K,
            max_iter=n_iter,
            regularization=0.05,
            cg_steps=3,
            random_state=0,
            n_jobs=THREADS,
            verbose=verbose,
        )
        args = (X,)
    elif task == "ours_bpr":
        model = BPR(n_factors=K, n_epochs=n_iter, random_state=0, n_jobs=THREADS, verbose=verbose)
        args = (X,)
    else:
        raise ValueError(task)
    base = reset_peak()
    tic = time.perf_counter()
    model.fit(*args)
    seconds = time.perf_counter() - tic
    return model, seconds, peak_bytes() - base


def _implicit_matrix(u, i, n_users, n_items):
    import scipy.sparse as sp

    ones = np.ones(len(u), dtype=np.float32)
    return sp.csr_matrix((ones, (u, i)), shape=(n_users, n_items))


def _fit_implicit(u, i, n_iter):
    from implicit.cpu.als import AlternatingLeastSquares

    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1
    model = AlternatingLeastSquares(
        factors=K,
        regularization=0.05,
        alpha=2.0,
        iterations=n_iter,
        use_cg=True,
        calculate_training_loss=False,
        num_threads=THREADS,
        dtype=np.float32,
        random_state=0,
    )
    base = reset_peak()
    tic = time.perf_counter()
    m = _implicit_matrix(u, i, n_users, n_items)
    model.fit(m, show_progress=False)
    seconds = time.perf_counter() - tic
    return model, m, seconds, peak_bytes() - base


def libmf_model(n_iter):
    """LIBMF at the settings of every scale benchmark (k, threads, step, L2)."""
    from libmf import mf

    return mf.MF(
        k=K,
        nr_threads=THREADS,
        nr_iters=n_iter,
        eta=0.05,
        lambda_p2=0.02,
        lambda_q2=0.02,
        lambda_p1=0.0,
        lambda_q1=0.0,
        quiet=True,
    )


def _fit_libmf(u, i, y, n_iter):
    model = libmf_model(n_iter)
    base = reset_peak()
    tic = time.perf_counter()
    data = np.column_stack([u, i, y]).astype(np.float32)  # the layout LIBMF reads
    model.fit(data)
    seconds = time.perf_counter() - tic
    return seconds, peak_bytes() - base


def gemm_rate(U, V, n_threads):
    """Seconds per user of the bare float32 product U @ V.T, in the same blocks."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n_threads, user_api="blas"):
        rows = max(1, min(len(U), (64 << 20) // (4 * len(V))))
        tic = time.perf_counter()
        for start in range(0, len(U), rows):
            U[start : start + rows] @ V.T
        return (time.perf_counter() - tic) / len(U)


def _fit_once(task, u, i, y, n_iter):
    """(seconds, peak bytes beyond the input) of one fit; the model is freed."""
    if task == "implicit_als":
        model, _, seconds, extra = _fit_implicit(u, i, n_iter)
    elif task == "libmf_sgd":
        model, (seconds, extra) = None, _fit_libmf(u, i, y, n_iter)
    else:
        model, seconds, extra = _fit_ours(task, u, i, y, n_iter)
    del model
    gc.collect()
    return seconds, extra


def worker(task, cache_dir, size, n_iter):
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    if task == "generate":
        print(json.dumps(_generate_worker(cache_dir, size)))
        return
    u, i, y = load(cache_dir, size)
    out = {"task": task, "size": size, "n_iter": n_iter, "n_ratings": len(y)}
    n_users = int(u.max()) + 1
    query = np.linspace(0, n_users - 1, min(N_RECOMMEND, n_users)).astype(np.int64)
    if task in FIT_TASKS:
        # all in this one process: a cold fit(1) (what a user waits for), then
        # a warm fit(1) and a warm fit(n_iter), whose difference is the
        # marginal iteration; across two processes, or cold against warm, the
        # page faults of the first large allocations swamp a short SGD epoch
        out["seconds_cold_1"], mem_cold = _fit_once(task, u, i, y, 1)
        out["seconds_1"], out["extra_bytes_1"] = _fit_once(task, u, i, y, 1)
        out["seconds"], out["extra_bytes"] = _fit_once(task, u, i, y, n_iter)
        out["extra_bytes_1"] = max(out["extra_bytes_1"], mem_cold)
    elif task == "ours_recommend":
        from threadpoolctl import threadpool_limits

        model, _, _ = _fit_ours("ours_ials", u, i, y, 1)
        users = model.users_[query]
        with threadpool_limits(THREADS, user_api="blas"):
            model.recommend(users[:100], n=10)  # warm-up
            tic = time.perf_counter()
            model.recommend(users, n=10, exclude_seen=True)
            out["seconds"] = time.perf_counter() - tic
        out["gemm_s_per_user"] = gemm_rate(model.user_factors_[query], model.item_factors_, THREADS)
    elif task == "implicit_recommend":
        model, m, _, _ = _fit_implicit(u, i, 1)
        model.recommend(query[:100], m[query[:100]], N=10)
        tic = time.perf_counter()
        model.recommend(query, m[query], N=10, filter_already_liked_items=True)
        out["seconds"] = time.perf_counter() - tic
    else:
        raise ValueError(task)
    if task.endswith("recommend"):
        out["users_per_s"] = len(query) / out["seconds"]
        out["n_users"] = len(query)
    print(json.dumps(out))


def run(task, cache_dir, size, n_iter):
    blas = str(THREADS) if task.endswith("recommend") else "1"
    env = dict(
        os.environ, OMP_NUM_THREADS=str(THREADS), OPENBLAS_NUM_THREADS=blas, MKL_NUM_THREADS=blas
    )
    try:
        proc = _run_worker(task, cache_dir, size, n_iter, env)
    except subprocess.TimeoutExpired:
        print(f"  {task} {size} timed out after {TIMEOUT_S} s", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(f"  {task} {size} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_worker(task, cache_dir, size, n_iter, env):
    return subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            task,
            "--cache-dir",
            str(cache_dir),
            "--sizes",
            size,
            "--n-iter",
            str(n_iter),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=TIMEOUT_S,
    )


# -------------------------------------------------------------- driver
def measure_size(cache_dir, size, tasks, repeats, rows, save):
    """Measure ``tasks`` into ``rows`` (by task), calling ``save()`` after each."""
    for task in tasks:
        save()
        if task.endswith("recommend"):
            runs = [run(task, cache_dir, size, 1) for _ in range(repeats)]
            runs = [r for r in runs if r]
            if runs:
                rows[task] = {
                    "users_per_s": float(np.median([r["users_per_s"] for r in runs])),
                    "users_per_s_all": [r["users_per_s"] for r in runs],
                }
                if "gemm_s_per_user" in runs[0]:
                    g = float(np.median([r["gemm_s_per_user"] for r in runs]))
                    rows[task]["gemm_users_per_s"] = 1.0 / g
                    rows[task]["fraction_of_gemm"] = rows[task]["users_per_s"] * g
            print(f"  {size} {task}: {rows.get(task)}", flush=True)
            continue
        t1, t3, cold, mem = [], [], [], []
        for _ in range(repeats):
            r = run(task, cache_dir, size, 3)  # fit(1) and fit(3) in one process
            if r is None:
                break
            t1.append(r["seconds_1"])
            t3.append(r["seconds"])
            cold.append(r["seconds_cold_1"])
            mem.append(max(r["extra_bytes_1"], r["extra_bytes"]))
        if not t1:
            continue
        n = SIZES[size][2]
        it = [(b - a) / 2 for a, b in zip(t1, t3)]
        setup = [a - s for a, s in zip(cold, it)]
        rows[task] = {
            "iter_s": float(np.median(it)),
            "setup_s": float(np.median(setup)),
            "fit1_s": float(np.median(t1)),
            "extra_bytes_per_rating": float(np.median(mem)) / n,
            "iter_s_all": it,
            "setup_s_all": setup,
        }
        print(
            f"  {size} {task}: iter {rows[task]['iter_s']:.3f} s, setup "
            f"{rows[task]['setup_s']:.3f} s, {rows[task]['extra_bytes_per_rating']:.1f} B/rating",
            flush=True,
        )
    return rows


def ratios(rows):
    def get(task, key):
        return rows.get(task, {}).get(key)

    out = {}
    pairs = [
        ("ials_iter_vs_implicit", "ours_ials", "implicit_als", "iter_s"),
        ("ials_memory_vs_implicit", "ours_ials", "implicit_als", "extra_bytes_per_rating"),
        ("sgd_iter_vs_libmf", "ours_mf_sgd", "libmf_sgd", "iter_s"),
    ]
    for name, a, b, key in pairs:
        if get(a, key) and get(b, key):
            out[name] = get(a, key) / get(b, key)
    if get("ours_recommend", "users_per_s") and get("implicit_recommend", "users_per_s"):
        out["recommend_speedup_vs_implicit"] = get("ours_recommend", "users_per_s") / get(
            "implicit_recommend", "users_per_s"
        )
    if get("ours_mf_sgd", "setup_s") and get("ours_mf_sgd", "iter_s"):
        out["sgd_setup_in_epochs"] = get("ours_mf_sgd", "setup_s") / get("ours_mf_sgd", "iter_s")
    for name, task in (
        ("ials_bytes_per_rating", "ours_ials"),
        ("bpr_bytes_per_rating", "ours_bpr"),
        ("mf_sgd_bytes_per_rating", "ours_mf_sgd"),
        ("mf_als_bytes_per_rating", "ours_mf_als"),
    ):
        if get(task, "extra_bytes_per_rating"):
            out[name] = get(task, "extra_bytes_per_rating")
    return out


def target_report(results):
    """One line per (size, target): the measured ratio and whether it is met."""
    lines = []
    for size in (s for s in SIZES if s in results["sizes"]):
        got = results["sizes"][size].get("ratios", {})
        for name, target, kind in TARGETS:
            if name not in got:
                continue
            met = got[name] <= target if kind == "max" else got[name] >= target
            word = "at most" if kind == "max" else "at least"
            lines.append(
                f"{size:>5} {name:<32} {got[name]:8.2f}  target {word} {target:.2f}: "
                + ("met" if met else "NOT met")
            )
    return "\n".join(lines)


def table(results):
    sizes = [s for s in SIZES if s in results["sizes"]]
    lines = ["| | " + " | ".join(sizes) + " |", "|---" * (len(sizes) + 1) + "|"]

    def row(label, fn):
        cells = []
        for s in sizes:
            try:
                cells.append(fn(results["sizes"][s]))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for task, label in (
        ("ours_mf_sgd", "MF sgd"),
        ("libmf_sgd", "LIBMF"),
        ("ours_mf_als", "MF als"),
        ("ours_ials", "ImplicitALS"),
        ("implicit_als", "implicit ALS"),
        ("ours_bpr", "BPR"),
    ):
        row(f"{label} s/iteration", lambda r, t=task: f"{r['rows'][t]['iter_s']:.2f}")
        row(f"{label} set-up s", lambda r, t=task: f"{r['rows'][t]['setup_s']:.2f}")
        row(
            f"{label} bytes/rating",
            lambda r, t=task: f"{r['rows'][t]['extra_bytes_per_rating']:.0f}",
        )
    row("recommend users/s ours", lambda r: f"{r['rows']['ours_recommend']['users_per_s']:,.0f}")
    row(
        "recommend users/s implicit",
        lambda r: f"{r['rows']['implicit_recommend']['users_per_s']:,.0f}",
    )
    row(
        "recommend, fraction of GEMM rate",
        lambda r: f"{r['rows']['ours_recommend']['fraction_of_gemm']:.2f}",
    )
    for key in (
        "ials_iter_vs_implicit",
        "ials_memory_vs_implicit",
        "sgd_iter_vs_libmf",
        "recommend_speedup_vs_implicit",
        "sgd_setup_in_epochs",
    ):
        row(key, lambda r, k=key: f"{r['ratios'][k]:.2f}")
    row("make_ratings s", lambda r: f"{r['generate_s']:.0f}")
    row("make_ratings peak GB", lambda r: f"{r['generate_peak_bytes'] / 1e9:.1f}")
    return "\n".join(lines)


def rst_table(markdown):
    """The markdown table as an RST ``list-table`` (for the docs page)."""
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if not line.startswith("|---")
    ]
    rows[0][0] = "measure"
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        out.append("   * - " + row[0])
        out += [f"     - {c}" for c in row[1:]]
    return "\n".join(out) + "\n"


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [s for s in SIZES if s in results["sizes"]]
    n = np.array([SIZES[s][2] for s in sizes], dtype=float)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = (
        ("ours_mf_sgd", "MF sgd", "C0", "-"),
        ("libmf_sgd", "LIBMF sgd", "C0", ":"),
        ("ours_ials", "ImplicitALS", "C1", "-"),
        ("implicit_als", "implicit ALS", "C1", ":"),
        ("ours_mf_als", "MF als", "C2", "-"),
        ("ours_bpr", "BPR", "C3", "-"),
    )
    for task, label, color, style in series:
        for ax, key, scale in ((ax_t, "iter_s", 1.0), (ax_m, "extra_bytes_per_rating", 1e-9)):
            pts = [
                (x, results["sizes"][s]["rows"][task][key])
                for x, s in zip(n, sizes)
                if task in results["sizes"][s]["rows"]
            ]
            if not pts:
                continue
            x, v = np.array(pts).T
            v = v * (x if key == "extra_bytes_per_rating" else 1.0) * scale
            ax.loglog(x, v, style, color=color, marker="o", label=label)
    pts = [
        (x, results["sizes"][s]["rows"]["ours_mf_sgd"]["setup_s"])
        for x, s in zip(n, sizes)
        if "ours_mf_sgd" in results["sizes"][s]["rows"]
    ]
    if pts:
        x, v = np.array(pts).T
        ax_t.loglog(x, np.maximum(v, 1e-3), "--", color="C0", marker="s", label="MF sgd set-up")
    for ax in (ax_t, ax_m):
        lo, hi = ax.get_ylim()
        ref = n / n[0]
        ax.loglog(n, ref * (lo * 3), color="grey", lw=0.8, label="linear reference")
        ax.set_xlabel("ratings")
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_ylabel("seconds per iteration")
    ax_m.set_ylabel("fit peak memory beyond the input (GB)")
    ax_t.set_title("time (k=64, 2 threads, float32)")
    ax_m.set_title("memory")
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", required=True, help="where the generated ratings are kept")
    parser.add_argument("--sizes", default="1M,10M,30M")
    parser.add_argument("--tasks", default=",".join(FIT_TASKS + REC_TASKS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-iter", type=int, default=1)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.cache_dir, args.sizes, args.n_iter)
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"sizes": {}}
    if not args.plot_only:
        results.update(
            k=K,
            threads=THREADS,
            machine=platform.machine(),
            date=time.strftime("%Y-%m-%d"),
            load=os.getloadavg()[0],
        )
        for size in args.sizes.split(","):
            gen = generate(args.cache_dir, size)
            entry = results["sizes"].setdefault(size, {"rows": {}})
            if gen is not None:
                entry.update(gen)
            entry["pair_sampling"] = PAIR_SAMPLING
            print(
                f"{size}: generated in {entry.get('generate_s', float('nan')):.1f} s "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )

            def save(entry=entry):
                entry["ratios"] = ratios(entry["rows"])
                entry["load_after"] = os.getloadavg()[0]
                RESULTS.write_text(json.dumps(results, indent=1))

            measure_size(
                args.cache_dir, size, args.tasks.split(","), args.repeats, entry["rows"], save
            )
            save()
    md = table(results)
    print(md)
    print(target_report(results))
    RESULTS.with_suffix(".rst").write_text(rst_table(md))
    plot(results, PLOT)


if __name__ == "__main__":
    main()
