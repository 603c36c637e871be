"""GridSearchCV distributed through joblib's dask backend gives the loky result.

Skipped only when ``distributed`` is not installed (it is in the ``test``
extra).  The cluster is small (two single-threaded workers) and is always shut
down by the fixture.
"""

import logging
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_mf import MatrixFactorization
from sklearn_mf.datasets import make_ratings

distributed = pytest.importorskip("distributed")

GRID = {"n_factors": [2, 6], "regularization": [0.02, 0.1]}


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=80, n_items=60, n_ratings=2000, random_state=0)


@pytest.fixture(scope="module")
def dask_client():
    # Two worker processes (the estimators are pickled to them, as on a real
    # cluster), one thread each: with the estimator's n_jobs=1 and the
    # search's n_jobs=2 that is exactly the two cores of a small machine.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak from the cluster
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    with cluster, distributed.Client(cluster) as client:  # both closed on exit
        yield client


def _search():
    est = MatrixFactorization(n_epochs=5, n_jobs=1, random_state=0)
    return GridSearchCV(
        est,
        GRID,
        cv=KFold(3, shuffle=True, random_state=0),
        scoring="neg_root_mean_squared_error",
        n_jobs=2,
    )


def test_grid_search_on_dask_matches_loky(ratings, dask_client):
    X, y = ratings
    with joblib.parallel_backend("loky"):
        reference = _search().fit(X, y)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with distributed.get_task_stream(dask_client) as tasks:
            with joblib.parallel_backend("dask"):
                search = _search().fit(X, y)
    # the fits really ran on the cluster's workers
    assert len(tasks.data) >= len(search.cv_results_["params"]) * 3 // 2

    assert search.best_params_ == reference.best_params_
    assert_array_equal(search.cv_results_["params"], reference.cv_results_["params"])
    for key in ["mean_test_score", "std_test_score", "rank_test_score"] + [
        f"split{k}_test_score" for k in range(3)
    ]:
        assert_allclose(search.cv_results_[key], reference.cv_results_[key], rtol=0, atol=1e-12)
    # the refitted model is the same model
    assert_allclose(
        search.best_estimator_.predict(X[:50]),
        reference.best_estimator_.predict(X[:50]),
        rtol=0,
        atol=1e-12,
    )
    # and the search is meaningful: the candidates do not all score the same
    assert np.ptp(search.cv_results_["mean_test_score"]) > 1e-3
