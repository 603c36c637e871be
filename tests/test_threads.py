"""Many threads serving one fitted model give the serial answers: ``predict``,
``recommend`` and ``similar_items`` only read the fitted state (the kernels
release the GIL, so the calls really overlap)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _models import estimators
from sklearn.base import clone

from sklearn_mf.datasets import make_ratings

MODELS = estimators()


@pytest.fixture(scope="module")
def data():
    X, y = make_ratings(n_users=200, n_items=120, n_ratings=4000, random_state=4)
    return X, y.astype(np.float64)


def _answers(model, X, part):
    users = model.users_[part::4]
    out = {"recommend": model.recommend(users, n=5, exclude_seen=True)}
    if hasattr(model, "predict"):
        out["predict"] = model.predict(X[part::4])
    if hasattr(model, "similar_items"):  # models without factors have none
        out["similar"] = model.similar_items(model.items_[part::8], n=3)
    return out


@pytest.mark.parametrize("name, est", MODELS, ids=[n for n, _ in MODELS])
def test_concurrent_calls_match_serial(data, name, est):
    X, y = data
    model = clone(est).set_params(**({"n_jobs": 2} if "n_jobs" in est.get_params() else {}))
    model.fit(X, y)
    serial = [_answers(model, X, part) for part in range(4)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(_answers, model, X, part % 4) for part in range(24)]
        results = [f.result() for f in futures]
    for part, got in enumerate(results):
        want = serial[part % 4]
        assert got.keys() == want.keys()
        for key, value in want.items():
            if key == "predict":
                np.testing.assert_array_equal(got[key], value)
            else:
                np.testing.assert_array_equal(got[key].items, value.items)
                np.testing.assert_array_equal(got[key].scores, value.scores)
