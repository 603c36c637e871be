"""scikit-learn's own conformance checks on every public estimator.

Estimators are discovered from ``sklearn_mf.__all__`` so that a new model is
checked as soon as it is exported.  Expected failures are listed explicitly
with the reason; each reason is a place where the interaction data convention
(or a stochastic solver) makes the generic check meaningless.
"""

import inspect

from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import sklearn_mf

# Small, fast, deterministic settings for the generic checks.
FAST = dict(n_factors=3, n_epochs=5, max_iter=5, random_state=0, n_jobs=1)

SGD_WEIGHTS = (
    "SGD visits every rating once per epoch: a rating of weight 2 takes one step "
    "of twice the size, a repeated rating two steps, so the trajectories (not the "
    "objective) differ; tests/test_mf.py checks the objectives agree."
)

# {class name: {check name: reason}}
EXPECTED_FAILURES = {
    "MatrixFactorization": {
        "check_sample_weight_equivalence_on_dense_data": SGD_WEIGHTS,
    },
    "SVDpp": {
        "check_sample_weight_equivalence_on_dense_data": SGD_WEIGHTS,
    },
}


def _estimators():
    for name in sklearn_mf.__all__:
        obj = getattr(sklearn_mf, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            params = inspect.signature(obj).parameters
            yield obj(**{k: v for k, v in FAST.items() if k in params})


def _expected_failures(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks(list(_estimators()), expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_expected_failure_names_a_public_estimator():
    names = {type(e).__name__ for e in _estimators()}
    assert set(EXPECTED_FAILURES) <= names
