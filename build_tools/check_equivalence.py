"""Before/after equality of every estimator's fit on MovieLens 100K.

Fits every estimator of ``sklearn_mf.__all__`` that learns from ratings or
interactions (each solver, with and without early stopping, plus one
``partial_fit`` and one ``fold_in`` per family that has them) at a fixed
``random_state`` with few epochs, and records predictions, ``recommend``
output and the key fitted attributes::

    # from a checkout of the old code (so that *its* sklearn_mf is imported)
    python /path/to/build_tools/check_equivalence.py --save ref.npz
    # from the refactored checkout
    python build_tools/check_equivalence.py --compare ref.npz

``--compare`` re-fits and asserts that every recorded array is bit-equal to
the reference (``np.array_equal``, NaN equal to NaN).  Every case runs with
``n_jobs=1`` or a fixed thread count, and every solver here is deterministic
for a given ``random_state`` and thread count, so no tolerance is used.

Parameters are written in the current vocabulary; :data:`RENAMES` maps each
renamed parameter (and value) back to its old spelling, and is applied
whenever the imported estimator does not know the new name.
"""

import argparse
import gzip
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

# the sklearn_mf of the current directory (the checkout under test), not the
# one of this script's checkout or of the editable install
sys.path.insert(0, os.getcwd())
import sklearn_mf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "ml-100k", "ml-100k.inter.gz")
if not os.path.exists(DATA):
    DATA = "/work/shared/data/ml-100k/ml-100k.inter.gz"

# new name -> (old name, {new value: old value}); applied only when the
# estimator has no parameter of the new name.
RENAMES = {
    "n_epochs": ("max_iter", {}),  # FM SGD passes (FM and FMRecommender)
    "bias_regularization": ("regularization_w", {}),  # FM bias penalty
    # one name and values for the per-occurrence scaling of penalties:
    # MatrixFactorization's als_regularization and the FMs' regularization_mode
    "regularization_scaling": (
        "als_regularization|regularization_mode",
        {"occurrence": "weighted|occurrence", "none": "plain|total"},
    ),
}


def translate(cls, params):
    """Params in the new vocabulary -> params ``cls`` understands."""
    known = set(cls().get_params())
    out = {}
    for name, value in params.items():
        if name in known or name not in RENAMES:
            out[name] = value
            continue
        old_names, values = RENAMES[name]
        for j, old in enumerate(old_names.split("|")):
            if old in known:
                if value in values:
                    value = values[value].split("|")[min(j, values[value].count("|"))]
                out[old] = value
                break
        else:
            raise KeyError(f"{cls.__name__} knows neither {name} nor {old_names}")
    return out


def load():
    df = pd.read_csv(gzip.open(DATA), sep="\t")
    df.columns = ["user", "item", "rating", "timestamp"]
    rng = np.random.default_rng(0)
    test = rng.random(len(df)) < 0.2
    return df[~test].reset_index(drop=True), df[test].reset_index(drop=True)


def one_hot(df, users, items):
    u = pd.Index(users).get_indexer(df["user"])
    i = pd.Index(items).get_indexer(df["item"])
    n = len(df)
    rows = np.r_[np.arange(n), np.arange(n)]
    cols = np.r_[u, len(users) + i]
    return sp.csr_matrix((np.ones(2 * n), (rows, cols)), shape=(n, len(users) + len(items)))


ATTRS = (
    "user_factors_",
    "item_factors_",
    "user_bias_",
    "item_bias_",
    "global_mean_",
    "implicit_factors_",
    "w_",
    "V_",
    "intercept_",
    "loss_curve_",
    "n_iter_",
    "validation_scores_",
    "best_iteration_",
    "accuracy_curve_",
    "user_embeddings_",
    "item_embeddings_",
    "user_offsets_",
    "item_offsets_",
    "noise_precision_",
    "coef_",
    "precision_diag_",
    "item_popularity_",
)
# sparse fitted attributes, recorded as their CSR arrays
SPARSE_ATTRS = ("similarity_",)


def record(out, name, est, X_test, rec_users, fm_X=None):
    """Put predictions, recommendations and fitted attributes into ``out``."""
    for attr in ATTRS:
        if attr in vars(est):
            v = getattr(est, attr)
            if v is None:
                continue
            out[f"{name}/{attr}"] = np.asarray(v, dtype=np.float64)
    for attr in SPARSE_ATTRS:
        if attr in vars(est):
            m = sp.csr_matrix(getattr(est, attr))
            for part in ("data", "indices", "indptr"):
                out[f"{name}/{attr}.{part}"] = np.asarray(getattr(m, part), dtype=np.float64)
    if fm_X is not None:
        out[f"{name}/predict"] = np.asarray(est.predict(fm_X), dtype=np.float64)
        if hasattr(est, "predict_proba"):
            out[f"{name}/predict_proba"] = est.predict_proba(fm_X)
        return
    if hasattr(est, "predict"):
        out[f"{name}/predict"] = np.asarray(est.predict(X_test), dtype=np.float64)
    if hasattr(est, "recommend"):
        items, scores = est.recommend(rec_users, n=10)
        out[f"{name}/recommend_items"] = np.asarray(items, dtype=np.float64)
        out[f"{name}/recommend_scores"] = np.asarray(scores, dtype=np.float64)


def cases():
    """(name, class name, params, extra) for every fit; extra in
    {None, "partial_fit", "fold_in", "weighted", "fm", "fm_clf"}."""
    ml = dict(random_state=0, n_jobs=1)
    mf = dict(n_factors=16, **ml)
    es = dict(early_stopping=True, n_iter_no_change=2)
    return [
        ("mf_sgd", "MatrixFactorization", dict(mf, solver="sgd", n_epochs=5), "fold_in"),
        (
            "mf_sgd_2threads",
            "MatrixFactorization",
            dict(mf, solver="sgd", n_epochs=3, n_jobs=2),
            None,
        ),
        ("mf_sgd_es", "MatrixFactorization", dict(mf, solver="sgd", n_epochs=6, **es), None),
        (
            "mf_sgd_partial",
            "MatrixFactorization",
            dict(mf, solver="sgd", n_epochs=3),
            "partial_fit",
        ),
        ("mf_als", "MatrixFactorization", dict(mf, solver="als", max_iter=4), "fold_in"),
        (
            "mf_als_plain",
            "MatrixFactorization",
            dict(mf, solver="als", max_iter=3, regularization_scaling="none"),
            None,
        ),
        ("mf_als_es", "MatrixFactorization", dict(mf, solver="als", max_iter=5, **es), None),
        (
            "mf_als_cg",
            "MatrixFactorization",
            dict(mf, solver="als", als_solver="cg", max_iter=3),
            "fold_in",
        ),
        (
            "mf_als_cg_2threads",
            "MatrixFactorization",
            dict(mf, solver="als", als_solver="cg", max_iter=3, n_jobs=2),
            None,
        ),
        ("mf_sgd_weighted", "MatrixFactorization", dict(mf, solver="sgd", n_epochs=3), "weighted"),
        ("mf_als_weighted", "MatrixFactorization", dict(mf, solver="als", max_iter=3), "weighted"),
        (
            "mf_als_cg_weighted",
            "MatrixFactorization",
            dict(mf, solver="als", als_solver="cg", max_iter=3),
            "weighted",
        ),
        (
            "mf_als_partial",
            "MatrixFactorization",
            dict(mf, solver="als", max_iter=3),
            "partial_fit",
        ),
        ("svdpp", "SVDpp", dict(mf, n_epochs=3), "fold_in"),
        ("svdpp_es", "SVDpp", dict(mf, n_epochs=4, **es), None),
        ("svdpp_partial", "SVDpp", dict(mf, n_epochs=2), "partial_fit"),
        ("ials_cg", "ImplicitALS", dict(mf, solver="cg", max_iter=4), "fold_in"),
        ("ials_cholesky", "ImplicitALS", dict(mf, solver="cholesky", max_iter=3), None),
        ("ials_partial", "ImplicitALS", dict(mf, solver="cg", max_iter=3), "partial_fit"),
        ("bpr", "BPR", dict(mf, n_epochs=5), "fold_in"),
        ("itemknn", "ItemKNN", dict(n_jobs=1), None),
        ("itemknn_2threads", "ItemKNN", dict(n_jobs=2), None),
        ("itemknn_tfidf", "ItemKNN", dict(weighting="tfidf", n_jobs=1), None),
        ("itemknn_bm25", "ItemKNN", dict(weighting="bm25", n_jobs=1), None),
        ("itemknn_ratings", "ItemKNN", dict(feedback="explicit", n_jobs=1), "ratings"),
        ("userknn", "UserKNN", dict(n_jobs=1), None),
        ("userknn_ratings", "UserKNN", dict(feedback="explicit", n_jobs=1), "ratings"),
        ("ease", "EASE", dict(), None),
        ("baseline_als", "BaselineRegressor", dict(ml, solver="als", max_iter=5), None),
        ("baseline_sgd", "BaselineRegressor", dict(ml, solver="sgd", n_epochs=5), None),
        ("popularity", "PopularityRecommender", dict(n_jobs=1), None),
        ("truncated_svd", "TruncatedSVDRecommender", dict(n_factors=16, **ml), None),
        (
            "fm_reg_sgd",
            "FactorizationMachineRegressor",
            dict(n_factors=8, solver="sgd", n_epochs=4, **ml),
            "fm",
        ),
        (
            "fm_reg_sgd_es",
            "FactorizationMachineRegressor",
            dict(n_factors=8, solver="sgd", n_epochs=5, **es, **ml),
            "fm",
        ),
        (
            "fm_reg_als",
            "FactorizationMachineRegressor",
            dict(n_factors=8, solver="als", max_iter=4, **ml),
            "fm",
        ),
        (
            "fm_reg_als_total",
            "FactorizationMachineRegressor",
            dict(
                n_factors=8,
                solver="als",
                max_iter=3,
                regularization_scaling="none",
                bias_regularization=0.5,
                **ml,
            ),
            "fm",
        ),
        (
            "fm_reg_mcmc",
            "FactorizationMachineRegressor",
            dict(n_factors=8, solver="mcmc", max_iter=12, **ml),
            "fm",
        ),
        (
            "fm_reg_mcmc_es",
            "FactorizationMachineRegressor",
            dict(n_factors=4, solver="mcmc", max_iter=12, **es, **ml),
            "fm",
        ),
        (
            "fm_clf_sgd",
            "FactorizationMachineClassifier",
            dict(n_factors=8, solver="sgd", n_epochs=4, **ml),
            "fm_clf",
        ),
        (
            "fm_clf_als",
            "FactorizationMachineClassifier",
            dict(n_factors=8, solver="als", max_iter=3, **ml),
            "fm_clf",
        ),
        (
            "fm_clf_mcmc",
            "FactorizationMachineClassifier",
            dict(n_factors=4, solver="mcmc", max_iter=10, **ml),
            "fm_clf",
        ),
        (
            "fmrec_als",
            "FMRecommender",
            dict(n_factors=8, solver="als", max_iter=4, **ml),
            "fold_in",
        ),
        ("fmrec_sgd", "FMRecommender", dict(n_factors=8, solver="sgd", n_epochs=3, **ml), None),
        (
            "fmrec_mcmc",
            "FMRecommender",
            dict(n_factors=4, solver="mcmc", max_iter=10, **ml),
            "fold_in",
        ),
        (
            "fmrec_mcmc_both",
            "FMRecommender",
            dict(n_factors=4, solver="mcmc", max_iter=10, implicit_features="both", **ml),
            "fold_in",
        ),
        (
            "fmrec_mcmc_both_2threads",
            "FMRecommender",
            dict(
                n_factors=4,
                solver="mcmc",
                max_iter=10,
                implicit_features="both",
                random_state=0,
                n_jobs=2,
            ),
            None,
        ),
    ]


def run(only=None):
    train, test = load()
    X_tr, y_tr = train[["user", "item"]], train["rating"].to_numpy(float)
    X_te = test[["user", "item"]]
    rec_users = np.unique(train["user"])[:50]
    users, items = np.unique(train["user"]), np.unique(train["item"])
    fm_tr, fm_te = one_hot(train, users, items), one_hot(test, users, items)
    # second batch for partial_fit: new users and items plus old cells
    extra = test.iloc[:3000].copy()
    extra.loc[extra.index[:200], "user"] += 5000
    extra.loc[extra.index[200:400], "item"] += 5000
    # fold-in: 20 test users' test ratings
    fold_users = np.unique(test["user"])[:20]
    fold = test[test["user"].isin(fold_users)]
    out = {}
    timings = {}
    for name, cls_name, params, extra_kind in cases():
        if only and name not in only:
            continue
        cls = getattr(sklearn_mf, cls_name)
        est = cls(**translate(cls, params))
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if extra_kind == "fm":
                est.fit(fm_tr, y_tr)
                record(out, name, est, None, None, fm_X=fm_te)
            elif extra_kind == "fm_clf":
                est.fit(fm_tr, (y_tr >= 4).astype(int))
                record(out, name, est, None, None, fm_X=fm_te)
            else:
                implicit = ("ImplicitALS", "BPR", "ItemKNN", "UserKNN", "EASE")
                y = None if cls_name in implicit and extra_kind != "ratings" else y_tr
                if cls_name == "PopularityRecommender":
                    est.fit(X_tr)
                elif extra_kind == "weighted":
                    w = 0.5 + (train["timestamp"].to_numpy() % 7) / 4.0
                    est.fit(X_tr, y, sample_weight=w)
                else:
                    est.fit(X_tr, y)
                record(out, name, est, X_te, rec_users)
                if extra_kind == "partial_fit":
                    ye = None if y is None else extra["rating"].to_numpy(float)
                    est.partial_fit(extra[["user", "item"]], ye)
                    record(out, name + "+partial_fit", est, X_te, rec_users)
                elif extra_kind == "fold_in":
                    yf = None if y is None else fold["rating"].to_numpy(float)
                    f = est.fold_in(fold[["user", "item"]], yf)
                    out[f"{name}/fold_in_factors"] = np.asarray(f.user_factors, np.float64)
                    if f.user_bias is not None:
                        out[f"{name}/fold_in_bias"] = np.asarray(f.user_bias, np.float64)
        timings[name] = time.perf_counter() - t0
        print(f"{name:24s} {timings[name]:6.2f} s", flush=True)
    return out


def compare(out, ref):
    bad, missing = [], []
    for key in sorted(set(ref) | set(out)):
        if key not in out or key not in ref:
            missing.append(key)
            continue
        a, b = out[key], ref[key]
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
            diff = np.nanmax(np.abs(a - b)) if a.shape == b.shape else "shape"
            bad.append((key, diff))
    return bad, missing


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", metavar="NPZ")
    g.add_argument("--compare", metavar="NPZ")
    p.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = p.parse_args(argv)
    print(f"sklearn_mf from {os.path.dirname(sklearn_mf.__file__)}")
    t0 = time.perf_counter()
    out = run(args.only)
    print(f"{len(out)} arrays in {time.perf_counter() - t0:.1f} s")
    if args.save:
        np.savez_compressed(args.save, **out)
        print(f"saved {args.save}")
        return 0
    ref = dict(np.load(args.compare))
    if args.only:
        ref = {k: v for k, v in ref.items() if k.split("/")[0].split("+")[0] in args.only}
    bad, missing = compare(out, ref)
    for key in missing:
        print(f"MISSING  {key} ({'reference' if key not in ref else 'this run'})")
    for key, diff in bad:
        print(f"DIFFERS  {key}: max abs difference {diff}")
    n_ok = len(ref) - len(bad) - sum(k in ref for k in missing)
    print(f"{n_ok} of {len(ref)} arrays bit-equal, {len(bad)} differ, {len(missing)} missing")
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
