"""Factorization machines on MovieLens 100K: accuracy and time against peers.

Same data, same 80/20 random split (``train_test_split(random_state=0)``), same
feature matrices for every library:

* ``ids``: one-hot user and item ids;
* ``side``: + age group, gender, occupation (``ml-100k.user``) and genres
  (``ml-100k.item``, 0/1 indicators);
* ``side+time``: + the month of the rating (one-hot);
* ``ids+user set`` / ``ids+both sets``: one-hot ids plus the implicit-feedback
  sets (Bayesian SVD++: the items each user rated, weights 1/sqrt|N(u)|; and
  the users who rated each item), built from the *training* ratings only, as
  relational blocks in both libraries (our ``FMRecommender(solver="mcmc",
  implicit_features=...)``; myfm's ``RelationBlock`` with one group per
  block, at the same number of sweeps).

Compared: our ``FactorizationMachineRegressor`` (the Bayesian FM of
``solver="mcmc"``, rank 10, 150 and 200 sweeps, and the ALS and SGD solvers),
our ``MatrixFactorization`` (ids only, defaults), myfm's Bayesian FM (Gibbs
sampling, rank 10, 200 iterations), fastFM (ALS and MCMC, when it installs),
xlearn (when it installs).  Each peer that cannot be imported is reported with
the reason.  Timings are wall-clock on whatever machine runs this; the machine
may be shared, so the Gibbs samplers (ours and myfm) are timed ``--repeats``
times and the median is reported, and the ratios are computed within one run.

Usage::

    python benchmarks/bench_fm.py [--data ../shared/data/ml-100k] [--quick]
                                  [--repeats 3] [--n-jobs 2] [--only-implicit]
    python benchmarks/bench_fm.py --synthetic 1000000 --sweeps 50   # 1M synthetic

Our implicit configurations run with each ``sampler`` ("mixed", the default:
joint draws for the id columns, coordinate draws for the relational blocks;
"blocked"; "coordinate", libFM's order).
"""

import argparse
import datetime
import os
import platform
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder

from sklearn_mf import FactorizationMachineRegressor, FMRecommender, MatrixFactorization
from sklearn_mf.datasets import load_movielens, make_ratings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"


def movielens_frame(path):
    """Ratings joined with the user and item side tables (one row per rating)."""
    ml = load_movielens(path)
    users = ml.users[["user", "age", "gender", "occupation"]].copy()
    users["age_group"] = pd.cut(users["age"], [0, 18, 25, 35, 45, 50, 56, 100]).astype(str)
    genres = ml.movies.set_index("item")["genres"].str.get_dummies("|")
    genres = genres.add_prefix("genre_")  # 0/1 indicators
    r = ml.ratings.merge(users, on="user").merge(genres, left_on="item", right_index=True)
    r["month"] = pd.to_datetime(r["timestamp"], unit="s").dt.strftime("%Y-%m")
    return r, list(genres.columns)


def feature_sets(train, test, genre_cols):
    """Sparse design matrices (train, test) of the three feature sets."""
    cats = {
        "ids": ["user", "item"],
        "side": ["user", "item", "age_group", "gender", "occupation"],
        "side+time": ["user", "item", "age_group", "gender", "occupation", "month"],
    }
    out = {}
    for name, cols in cats.items():
        parts = [("onehot", OneHotEncoder(handle_unknown="ignore"), cols)]
        if name != "ids":
            parts.append(("genres", "passthrough", genre_cols))
        ct = ColumnTransformer(parts, sparse_threshold=1.0)
        Xtr = sp.csr_matrix(ct.fit_transform(train), dtype=np.float64)
        Xte = sp.csr_matrix(ct.transform(test), dtype=np.float64)
        out[name] = (Xtr, Xte)
    return out


def rmse(pred, y):
    return float(np.sqrt(np.mean((np.asarray(pred) - y) ** 2)))


def _import_myfm():
    # myfm 0.4.0 imports pkg_resources only to read its own version; recent
    # setuptools no longer ships it, so provide that one function.
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            from importlib.metadata import version

            shim = types.ModuleType("pkg_resources")
            shim.DistributionNotFound = type("DistributionNotFound", (Exception,), {})
            shim.get_distribution = lambda name: types.SimpleNamespace(version=version(name))
            sys.modules["pkg_resources"] = shim
    import myfm

    return myfm


def _select_regularization(Xtr, y_tr, params, grid):
    """Pick ``regularization`` on a 10 % holdout of the *training* rows."""
    rows = np.random.default_rng(0).permutation(Xtr.shape[0])
    n_val = Xtr.shape[0] // 10
    val, fit = rows[:n_val], rows[n_val:]
    scores = {}
    for reg in grid:
        model = FactorizationMachineRegressor(
            random_state=0, tol=None, **{**params, "regularization": reg}
        )
        model.fit(Xtr[fit], y_tr[fit])
        scores[reg] = rmse(model.predict(Xtr[val]), y_tr[val])
    return min(scores, key=scores.get)


def _median_fit(make, fit, repeats):
    """Fit ``repeats`` fresh models; return the last one and the median time."""
    times = []
    for _ in range(repeats):
        model = make()
        tic = time.perf_counter()
        fit(model)
        times.append(time.perf_counter() - tic)
    return model, float(np.median(times))


def run_mcmc(sets, y_tr, y_te, results, quick, repeats, n_jobs, seeds):
    for fs in [f for f in ("ids", "side", "side+time") if f in sets]:
        Xtr, Xte = sets[fs]
        for sweeps in (150, 200):
            it = 20 if quick else sweeps

            def make(seed=0):
                return FactorizationMachineRegressor(
                    n_factors=10, solver="mcmc", max_iter=it, random_state=seed, n_jobs=n_jobs
                )

            model, fit_s = _median_fit(make, lambda m: m.fit(Xtr, y_tr), repeats)
            row = dict(
                library="sklearn_mf",
                model=f"FactorizationMachineRegressor MCMC ({n_jobs} threads)",
                features=fs,
                rank=10,
                iterations=it,
                fit_s=fit_s,
                s_per_iter=fit_s / it,
                rmse=rmse(model.predict(Xte), y_te),
            )
            if seeds > 1:  # the sampler's own variability: other random_state values
                more = [
                    rmse(make(seed).fit(Xtr, y_tr).predict(Xte), y_te) for seed in range(1, seeds)
                ]
                row["rmse_mean_over_seeds"] = float(np.mean([row["rmse"], *more]))
                row["rmse_sd_over_seeds"] = float(np.std([row["rmse"], *more], ddof=1))
            results.append(row)
            print(results[-1], flush=True)


def run_ours(sets, y_tr, y_te, results, quick):
    configs = [
        # ALS converges in 10-15 sweeps here (more sweeps change RMSE < 0.001);
        # its penalty is chosen on a holdout of the training data.
        ("ALS", dict(solver="als", n_factors=10, max_iter=15), (0.1, 0.15, 0.2)),
        ("ALS", dict(solver="als", n_factors=20, max_iter=15), (0.1, 0.15, 0.2)),
        (
            "SGD",
            dict(solver="sgd", n_factors=10, regularization=0.05, learning_rate=0.01, n_epochs=40),
            None,
        ),
    ]
    for fs, (Xtr, Xte) in sets.items():
        for label, params, grid in configs:
            if quick:
                params = {**params, "n_epochs" if params["solver"] == "sgd" else "max_iter": 3}
            if grid is not None:
                params = {
                    **params,
                    "regularization": _select_regularization(Xtr, y_tr, params, grid),
                }
            model = FactorizationMachineRegressor(random_state=0, tol=None, **params)
            tic = time.perf_counter()
            model.fit(Xtr, y_tr)
            fit_s = time.perf_counter() - tic
            results.append(
                dict(
                    library="sklearn_mf",
                    model=f"FactorizationMachineRegressor {label} (reg={params['regularization']})",
                    features=fs,
                    rank=params["n_factors"],
                    iterations=model.n_iter_,
                    fit_s=fit_s,
                    s_per_iter=fit_s / model.n_iter_,
                    rmse=rmse(model.predict(Xte), y_te),
                )
            )
            print(results[-1], flush=True)


def run_mf(train, test, results, quick):
    mf = MatrixFactorization(random_state=0, n_epochs=2 if quick else 20)
    tic = time.perf_counter()
    mf.fit(train[["user", "item"]], train["rating"])
    fit_s = time.perf_counter() - tic
    results.append(
        dict(
            library="sklearn_mf",
            model="MatrixFactorization (defaults)",
            features="ids",
            rank=mf.n_factors,
            iterations=mf.n_iter_,
            fit_s=fit_s,
            s_per_iter=fit_s / mf.n_iter_,
            rmse=rmse(mf.predict(test[["user", "item"]]), test["rating"].to_numpy()),
        )
    )
    print(results[-1], flush=True)


def run_myfm(sets, y_tr, y_te, results, failures, quick, repeats):
    try:
        myfm = _import_myfm()
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        failures["myfm"] = f"{type(exc).__name__}: {exc}"
        return
    n_iter = 20 if quick else 200
    for fs in [f for f in ("ids", "side", "side+time") if f in sets]:
        Xtr, Xte = sets[fs]
        model, fit_s = _median_fit(
            lambda: myfm.MyFMRegressor(rank=10, random_seed=0),
            lambda m: m.fit(
                Xtr,
                y_tr,
                n_iter=n_iter,
                n_kept_samples=n_iter - n_iter // 10,
                callback=lambda *args: (False, None),
            ),  # no progress bar
            repeats,
        )
        results.append(
            dict(
                library=f"myfm {myfm.__version__}",
                model="Bayesian FM (Gibbs)",
                features=fs,
                rank=10,
                iterations=n_iter,
                fit_s=fit_s,
                s_per_iter=fit_s / n_iter,
                rmse=rmse(model.predict(Xte), y_te),
            )
        )
        print(results[-1], flush=True)


def _implicit_blocks(train, test):
    """Codes of the users and items of both frames, and the training sets
    (user -> items, item -> users), each row normalised by 1/sqrt(count)."""
    users = pd.Index(pd.unique(pd.concat([train["user"], test["user"]])))
    items = pd.Index(pd.unique(pd.concat([train["item"], test["item"]])))
    ut, it = users.get_indexer(train["user"]), items.get_indexer(train["item"])
    sets = {}
    for name, rows, cols, shape in (
        ("user", ut, it, (len(users), len(items))),
        ("item", it, ut, (len(items), len(users))),
    ):
        M = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
        M.sum_duplicates()
        counts = np.diff(M.indptr)
        M.data = np.repeat(1 / np.sqrt(np.maximum(counts, 1)), counts)
        sets[name] = M
    codes = {
        "train": (ut, it),
        "test": (users.get_indexer(test["user"]), items.get_indexer(test["item"])),
    }
    return codes, sets


IMPLICIT = {"ids+user set": "user", "ids+both sets": "both"}
SAMPLERS = ("mixed", "blocked", "coordinate")


def run_implicit(train, test, results, n_iter, repeats, n_jobs, configs=IMPLICIT):
    """Our FMRecommender with each ``sampler`` on the feature sets ``configs``
    (name -> ``implicit_features``)."""
    y_tr, y_te = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    for fs, implicit in configs.items():
        for sampler in SAMPLERS:
            if implicit is None and sampler == "mixed":
                continue  # the same draws as "blocked" without blocks
            model, fit_s = _median_fit(
                lambda: FMRecommender(
                    10,
                    solver="mcmc",
                    max_iter=n_iter,
                    random_state=0,
                    implicit_features=implicit,
                    sampler=sampler,
                    n_jobs=n_jobs,
                ),
                lambda m: m.fit(train[["user", "item"]], y_tr),
                repeats,
            )
            results.append(
                dict(
                    library="sklearn_mf",
                    model=f"FMRecommender MCMC sampler={sampler} ({n_jobs} threads)",
                    features=fs,
                    rank=10,
                    iterations=n_iter,
                    fit_s=fit_s,
                    s_per_iter=fit_s / n_iter,
                    rmse=rmse(model.predict(test[["user", "item"]]), y_te),
                )
            )
            print(results[-1], flush=True)


def _one_hot(codes, n):
    return sp.csr_matrix(
        (np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n)
    )


def run_myfm_implicit(train, test, results, failures, n_iter, repeats, configs=IMPLICIT):
    """myfm with the same one-hot ids and relational blocks as ours."""
    try:
        myfm = _import_myfm()
    except Exception as exc:  # noqa: BLE001
        failures["myfm"] = f"{type(exc).__name__}: {exc}"
        return
    y_tr, y_te = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    codes, blocks = _implicit_blocks(train, test)
    n_users, n_items = blocks["user"].shape
    X = {
        part: sp.hstack(
            [_one_hot(codes[part][0], n_users), _one_hot(codes[part][1], n_items)], format="csr"
        )
        for part in ("train", "test")
    }
    for fs, implicit in configs.items():
        names = {None: [], "user": ["user"], "item": ["item"], "both": ["user", "item"]}[implicit]
        rel = {
            part: [
                myfm.RelationBlock(codes[part][0 if b == "user" else 1], blocks[b]) for b in names
            ]
            for part in ("train", "test")
        }
        shapes = [n_users, n_items] + [blocks[b].shape[1] for b in names]
        model, fit_s = _median_fit(
            lambda: myfm.MyFMRegressor(rank=10, random_seed=0),
            lambda m: m.fit(
                X["train"],
                y_tr,
                X_rel=rel["train"],
                n_iter=n_iter,
                n_kept_samples=n_iter - n_iter // 10,
                group_shapes=shapes,
                callback=lambda *args: (False, None),
            ),
            repeats,
        )
        results.append(
            dict(
                library=f"myfm {myfm.__version__}",
                model="Bayesian FM (Gibbs)",
                features=fs,
                rank=10,
                iterations=n_iter,
                fit_s=fit_s,
                s_per_iter=fit_s / n_iter,
                rmse=rmse(np.clip(model.predict(X["test"], X_rel=rel["test"]), 1, 5), y_te),
            )
        )
        print(results[-1], flush=True)


def versus_myfm(train, test, n_iter, repeats, n_jobs, configs=None, sampler="mixed"):
    """Ours (``FMRecommender``) and myfm on the same ids and blocks, fitted
    alternately (ours, myfm, ours, ...) ``repeats`` times per configuration
    in this one process; medians of the wall times, the load average
    (``os.getloadavg``) before and after each configuration, and RMSE; also
    the medians of the CPU times (``time.process_time``: comparable for one
    thread, less sensitive than wall time to a loaded machine).  With
    the implicit blocks, ours is also timed with the blocks' draws by the
    per-step path (``_mcmc._FUSED_MIXED = False``, the same draws: the
    before/after of the fused kernel)."""
    from sklearn_mf._fm import _mcmc

    myfm = _import_myfm()
    configs = configs or {"ids": None, **IMPLICIT}
    y_tr, y_te = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    codes, blocks = _implicit_blocks(train, test)
    n_users, n_items = blocks["user"].shape
    X = {
        part: sp.hstack(
            [_one_hot(codes[part][0], n_users), _one_hot(codes[part][1], n_items)], format="csr"
        )
        for part in ("train", "test")
    }
    rows = []
    for fs, implicit in configs.items():
        names = {None: [], "user": ["user"], "item": ["item"], "both": ["user", "item"]}[implicit]
        rel = {
            part: [
                myfm.RelationBlock(codes[part][0 if b == "user" else 1], blocks[b]) for b in names
            ]
            for part in ("train", "test")
        }
        shapes = [n_users, n_items] + [blocks[b].shape[1] for b in names]
        load = os.getloadavg()
        times = {"ours": [], "myfm": []}
        if implicit is not None and sampler == "mixed":
            times["ours per-step"] = []
        cpu = {who: [] for who in times}
        for _ in range(repeats):
            for who in [w for w in times if w.startswith("ours")]:
                _mcmc._FUSED_MIXED = who == "ours"
                ours = FMRecommender(
                    10, solver="mcmc", max_iter=n_iter, random_state=0,
                    implicit_features=implicit, sampler=sampler, n_jobs=n_jobs,
                )  # fmt: skip
                tic, cic = time.perf_counter(), time.process_time()
                ours.fit(train[["user", "item"]], y_tr)
                times[who].append(time.perf_counter() - tic)
                cpu[who].append(time.process_time() - cic)
            _mcmc._FUSED_MIXED = True
            peer = myfm.MyFMRegressor(rank=10, random_seed=0)
            tic, cic = time.perf_counter(), time.process_time()
            peer.fit(
                X["train"], y_tr, X_rel=rel["train"], n_iter=n_iter,
                n_kept_samples=n_iter - n_iter // 10, group_shapes=shapes,
                callback=lambda *args: (False, None),
            )  # fmt: skip
            times["myfm"].append(time.perf_counter() - tic)
            cpu["myfm"].append(time.process_time() - cic)
        ours_rmse = rmse(ours.predict(test[["user", "item"]]), y_te)
        peer_rmse = rmse(np.clip(peer.predict(X["test"], X_rel=rel["test"]), 1, 5), y_te)
        med = {who: float(np.median(t)) for who, t in times.items()}
        row = dict(
            features=fs,
            sweeps=n_iter,
            threads=n_jobs,
            ours_s=med["ours"],
            per_step_s=med.get("ours per-step", np.nan),
            myfm_s=med["myfm"],
            ratio=med["myfm"] / med["ours"],
            ours_cpu_s=float(np.median(cpu["ours"])),
            per_step_cpu_s=float(np.median(cpu.get("ours per-step", [np.nan]))),
            myfm_cpu_s=float(np.median(cpu["myfm"])),
            cpu_ratio=float(np.median(cpu["myfm"]) / np.median(cpu["ours"])),
            ours_rmse=ours_rmse,
            myfm_rmse=peer_rmse,
            **{f"{who}_all": " ".join(f"{t:.2f}" for t in ts) for who, ts in times.items()},
            load=f"{load[0]:.2f}->{os.getloadavg()[0]:.2f}",
        )
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return table


def run_fastfm(sets, y_tr, y_te, results, failures, quick):
    try:
        from fastFM import als, mcmc
    except Exception as exc:  # noqa: BLE001
        failures["fastFM"] = f"{type(exc).__name__}: {exc}"
        return
    for fs in ("ids", "side"):
        Xtr, Xte = (m.tocsc() for m in sets[fs])
        n_iter = 10 if quick else 100
        model = als.FMRegression(
            n_iter=n_iter, rank=10, l2_reg_w=5.0, l2_reg_V=10.0, random_state=0
        )
        tic = time.perf_counter()
        model.fit(Xtr, y_tr)
        fit_s = time.perf_counter() - tic
        results.append(
            dict(
                library="fastFM 0.2.10",
                model="FM (ALS)",
                features=fs,
                rank=10,
                iterations=n_iter,
                fit_s=fit_s,
                s_per_iter=fit_s / n_iter,
                rmse=rmse(np.clip(model.predict(Xte), 1, 5), y_te),
            )
        )
        print(results[-1], flush=True)
        n_iter = 20 if quick else 200
        model = mcmc.FMRegression(n_iter=n_iter, rank=10, random_state=0)
        tic = time.perf_counter()
        pred = model.fit_predict(Xtr, y_tr, Xte)
        fit_s = time.perf_counter() - tic
        results.append(
            dict(
                library="fastFM 0.2.10",
                model="Bayesian FM (MCMC)",
                features=fs,
                rank=10,
                iterations=n_iter,
                fit_s=fit_s,
                s_per_iter=fit_s / n_iter,
                rmse=rmse(np.clip(pred, 1, 5), y_te),
            )
        )
        print(results[-1], flush=True)


def run_xlearn(failures):
    try:
        import xlearn  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        failures["xlearn"] = (
            f"{type(exc).__name__}: {exc} (pip cannot build its wheel here: "
            "the source build needs CMake)"
        )
        return
    failures["xlearn"] = "imported, but not benchmarked (file-based API)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("SKLEARN_MF_ML100K", DEFAULT_DATA))
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument(
        "--only-implicit",
        action="store_true",
        help="only the implicit-feedback configurations (ours and myfm)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed fits of each Gibbs sampler (median reported)"
    )
    parser.add_argument("--n-jobs", type=int, default=2, help="threads of our MCMC solver")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="random_state values for our MCMC RMSE (mean and sd reported)",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="instead of MovieLens: this many synthetic ratings (make_ratings, 90/10 split), "
        "ids / +user set / +both sets, ours against myfm",
    )
    parser.add_argument(
        "--versus-myfm",
        action="store_true",
        help="only ours (FMRecommender) against myfm, fitted alternately, ids / +user / +both",
    )
    parser.add_argument(
        "--sweeps", type=int, default=200, help="Gibbs sweeps of the implicit configurations"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.processor() or platform.machine()}"
        f"  {os.cpu_count()} cores  Python {platform.python_version()}  "
        f"numpy {np.__version__}"
    )

    n_iter = 20 if args.quick else args.sweeps
    if args.synthetic:
        return synthetic(args, n_iter)
    frame, genre_cols = movielens_frame(args.data)
    train, test = train_test_split(frame, test_size=0.2, random_state=0)
    if args.versus_myfm:
        print(f"uptime: {os.popen('uptime').read().strip()}")
        table = versus_myfm(train, test, n_iter, args.repeats, args.n_jobs)
        print(f"uptime: {os.popen('uptime').read().strip()}")
        return table
    y_tr, y_te = train["rating"].to_numpy(float), test["rating"].to_numpy(float)
    sets = feature_sets(train, test, genre_cols)
    results, failures = [], {}
    if not args.only_implicit:
        run_mcmc(sets, y_tr, y_te, results, args.quick, args.repeats, args.n_jobs, args.seeds)
        run_ours(sets, y_tr, y_te, results, args.quick)
        run_mf(train, test, results, args.quick)
    else:  # the ids-only samplers of the same run, for the ratios
        run_mcmc(
            {"ids": sets["ids"]},
            y_tr,
            y_te,
            results,
            args.quick,
            args.repeats,
            args.n_jobs,
            args.seeds,
        )
    run_implicit(train, test, results, n_iter, args.repeats, args.n_jobs)
    if not args.skip_peers:
        run_myfm(
            {"ids": sets["ids"]} if args.only_implicit else sets,
            y_tr,
            y_te,
            results,
            failures,
            args.quick,
            args.repeats,
        )
        run_myfm_implicit(train, test, results, failures, n_iter, args.repeats)
        if not args.only_implicit:
            run_fastfm(sets, y_tr, y_te, results, failures, args.quick)
            run_xlearn(failures)

    return report(results, failures)


def synthetic(args, n_iter):
    """Ours against myfm on ``args.synthetic`` synthetic ratings."""
    X, y = make_ratings(
        n_users=args.synthetic // 50, n_items=args.synthetic // 250, n_ratings=args.synthetic,
        random_state=0,
    )  # fmt: skip
    X = np.asarray(X)
    frame = pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "rating": np.asarray(y, float)})
    train, test = train_test_split(frame, test_size=0.1, random_state=0)
    configs = {"ids": None, **IMPLICIT}
    results, failures = [], {}
    run_implicit(train, test, results, n_iter, args.repeats, args.n_jobs, configs)
    if not args.skip_peers:
        run_myfm_implicit(train, test, results, failures, n_iter, args.repeats, configs)
    return report(results, failures)


def report(results, failures):
    """Print the table, with each row's time against myfm's on its features."""
    table = pd.DataFrame(results)
    myfm_rows = table[table["library"].str.startswith("myfm")]
    if len(myfm_rows):
        ref = dict(zip(myfm_rows["features"], myfm_rows["fit_s"]))
        table["myfm_fit_s / fit_s"] = [
            ref[f] / t if f in ref else np.nan for f, t in zip(table["features"], table["fit_s"])
        ]
    pd.set_option("display.width", 200)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for lib, why in failures.items():
        print(f"\n{lib}: not run -- {why}")
    return table


if __name__ == "__main__":
    main()
