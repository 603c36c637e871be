"""Faults that used to pass silently or fail with the wrong words: non-finite
fits, extreme targets, parameters a solver cannot use, fold-in of the
baselines and updates of memory-mapped models."""

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose

from sklearn_mf import (
    BaselineRegressor,
    FactorizationMachineClassifier,
    FactorizationMachineRegressor,
    FMRecommender,
    ImplicitALS,
    MatrixFactorization,
    PopularityRecommender,
    SVDpp,
    TruncatedSVDRecommender,
)
from sklearn_mf._utils import check_finite_fit
from sklearn_mf.datasets import make_ratings


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(n_users=40, n_items=30, n_ratings=500, random_state=0)
    return X, y.astype(np.float64)


# ------------------------------------------------------- non-finite fits
@pytest.mark.parametrize(
    "make, scale",
    [
        (lambda: MatrixFactorization(solver="als", max_iter=3, random_state=0), 1e30),
        (lambda: ImplicitALS(max_iter=3, random_state=0), 1e30),
        (lambda: ImplicitALS(alpha=1e30, max_iter=3, random_state=0), 1.0),
        (lambda: ImplicitALS(solver="cholesky", alpha=1e30, max_iter=3, random_state=0), 1.0),
    ],
    ids=["mf-als-y", "ials-y", "ials-alpha", "ials-cholesky-alpha"],
)
def test_huge_targets_raise_naming_the_cause(ratings, make, scale):
    X, y = ratings
    with pytest.raises(
        (FloatingPointError, np.linalg.LinAlgError),
        match=r"too large for float32 arithmetic.*rescale y"
        r"|alpha or y if the confidences 1 \+ alpha \* y are huge",
    ):
        make().fit(X, y * scale)


def test_check_finite_fit_names_attributes_and_cause():
    class Stub:
        dtype = np.float32

        def __init__(self):
            self.user_factors_ = np.ones((3, 2), dtype=np.float32)
            self.item_bias_ = np.array([0.0, np.nan])
            self.global_mean_ = 1.0
            self._private_ = np.array([np.inf])  # not a public fitted attribute

    with pytest.raises(
        FloatingPointError,
        match=r"Stub.fit produced NaN or infinite "
        r"values in item_bias_: the solver "
        r"diverged numerically",
    ):
        check_finite_fit(Stub(), np.array([1.0, 5.0]))
    with pytest.raises(
        FloatingPointError,
        match=r"the ratings reach 1e\+30 in absolute "
        r"value, too large for float32",
    ):
        check_finite_fit(Stub(), np.array([1.0, -1e30]))
    with pytest.raises(
        FloatingPointError,
        match=r"reach 2e\+20 in absolute value times "
        r"alpha=1e\+20",
    ):
        check_finite_fit(Stub(), np.array([2.0]), scale=1e20)
    fine = Stub()
    fine.item_bias_ = np.zeros(2)
    check_finite_fit(fine, np.array([1e30]))  # finite results pass whatever y is


@pytest.mark.parametrize(
    "est",
    [
        FactorizationMachineRegressor(solver="mcmc", n_factors=2, max_iter=40, random_state=0),
        FMRecommender(solver="mcmc", n_factors=2, max_iter=40, random_state=0),
    ],
    ids=["fm", "fm-recommender"],
)
def test_bayesian_fm_is_scale_equivariant(ratings, est):
    # MCMC standardises y (in float64 now: float32 squares of 1e30 overflowed to
    # inf, then a zero noise precision raised ZeroDivisionError)
    X, y = ratings
    if isinstance(est, FactorizationMachineRegressor):
        from sklearn.preprocessing import OneHotEncoder

        X = OneHotEncoder().fit_transform(X[:, :2])
    small = est.__class__(**est.get_params()).fit(X, y).predict(X[:50])
    big = est.__class__(**est.get_params()).fit(X, y * 1e30).predict(X[:50])
    assert np.isfinite(big).all()
    assert_allclose(big / 1e30, small, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------- parameters and data
def test_als_rejects_zero_regularization_before_fitting(ratings):
    X, y = ratings
    for biased in (True, False):
        with pytest.raises(
            ValueError,
            match=r"MatrixFactorization\(solver='als'\) needs "
            r"regularization > 0",
        ):
            MatrixFactorization(solver="als", regularization=0, biased=biased).fit(X, y)
    # SGD has no linear system: regularization=0 is a valid (unpenalised) fit
    MatrixFactorization(regularization=0, n_epochs=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("cls", [FactorizationMachineClassifier, FactorizationMachineRegressor])
def test_fm_on_empty_X_speaks_of_samples(cls):
    with pytest.raises(
        ValueError, match=f"Found array with 0 sample\\(s\\) .* required by {cls.__name__}"
    ):
        cls().fit(np.empty((0, 3)), np.empty(0))


# ------------------------------------------------------- fold-in of the baselines
@pytest.mark.parametrize("impute", ["item_mean", "user_mean", "zero"])
def test_truncated_svd_fold_in_reproduces_training_users(ratings, impute):
    X, y = ratings
    svd = TruncatedSVDRecommender(n_factors=5, impute=impute).fit(X, y)
    users = svd.users_[:6]
    rows = np.isin(X[:, 0], users)
    folded = svd.fold_in(X[rows], y[rows])
    np.testing.assert_array_equal(folded.users, users)
    assert_allclose(folded.user_factors, svd.user_factors_[:6], rtol=1e-8, atol=1e-8)
    # and recommend_new ranks as recommend does for those users
    a = svd.recommend(users, n=5)
    b = svd.recommend_new(X[rows], y[rows], n=5)
    np.testing.assert_array_equal(a.items, b.items)


def test_baseline_fold_in_is_one_bias_step(ratings):
    X, y = ratings
    base = BaselineRegressor(regularization=2.0).fit(X, y)
    rows = X[:, 0] == base.users_[0]
    folded = base.fold_in(X[rows], y[rows])
    codes = np.searchsorted(base.items_, X[rows, 1])
    want = (y[rows] - base.global_mean_ - base.item_bias_[codes]).sum() / (rows.sum() + 2.0)
    assert folded.user_bias[0] == pytest.approx(want)
    # the ALS fit's user bias is this same step at convergence
    assert folded.user_bias[0] == pytest.approx(base.user_bias_[0], abs=1e-3)


def test_popularity_recommend_new_is_popularity_without_given_items(ratings):
    X, y = ratings
    pop = PopularityRecommender().fit(X)
    new = np.array([["n", pop.items_[np.argmax(pop.item_scores_)]]], dtype=object)
    recs = pop.recommend_new(new, n=3)
    order = pop.items_[np.argsort(-pop.item_scores_, kind="stable")]
    np.testing.assert_array_equal(recs.items[0], order[1:4])


# ------------------------------------------------------- memory-mapped models
@pytest.mark.parametrize(
    "make",
    [
        lambda: MatrixFactorization(n_epochs=3, random_state=0, n_jobs=1),
        lambda: MatrixFactorization(solver="als", max_iter=3, random_state=0, n_jobs=1),
        lambda: SVDpp(n_epochs=3, random_state=0, n_jobs=1),
        lambda: ImplicitALS(max_iter=3, random_state=0, n_jobs=1),
    ],
    ids=["mf-sgd", "mf-als", "svdpp", "ials"],
)
def test_partial_fit_on_memory_mapped_model(tmp_path, ratings, make):
    X, y = ratings
    model = make().fit(X[:400], y[:400])
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    on_disk = path.read_bytes()
    mapped = joblib.load(path, mmap_mode="r")
    assert not mapped.user_factors_.flags.writeable
    mapped.partial_fit(X[400:], y[400:])
    model.partial_fit(X[400:], y[400:])
    assert_allclose(
        mapped.predict(X)
        if hasattr(mapped, "predict")
        else mapped.recommend(mapped.users_[:5], n=3).scores,
        model.predict(X)
        if hasattr(model, "predict")
        else model.recommend(model.users_[:5], n=3).scores,
        rtol=1e-6,
    )
    assert path.read_bytes() == on_disk  # the file is never written
