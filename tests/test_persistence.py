"""Safe persistence with skops: every estimator round-trips through
``skops.io`` with ``trusted=sklearn_mf.trusted_types()`` and nothing else, and
a file needing any other type is refused (doc/user_guide/production.rst)."""

import numpy as np
import pytest
from _models import estimators, supports_partial_fit
from sklearn.base import clone
from sklearn.preprocessing import OneHotEncoder

from sklearn_mf import trusted_types
from sklearn_mf.datasets import make_ratings

sio = pytest.importorskip("skops.io")

MODELS = estimators(recommenders_only=False)


@pytest.fixture(scope="module")
def data():
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=250, random_state=3)
    return X, y.astype(np.float64)


def _fit(est, X, y):
    name = type(est).__name__
    if name.startswith("FactorizationMachine"):
        F = OneHotEncoder().fit_transform(X[:, :2])
        target = (y > 3).astype(int) if name.endswith("Classifier") else y
        return clone(est).fit(F, target), F
    return clone(est).fit(X, y), X


class Payload:
    """A type skops does not know: loading it would mean trusting its code."""


@pytest.mark.parametrize("name, est", MODELS, ids=[n for n, _ in MODELS])
def test_skops_round_trip(tmp_path, data, name, est):
    X, y = data
    model, Xf = _fit(est, X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    assert set(sio.get_untrusted_types(file=path)) <= set(trusted_types())
    loaded = sio.load(path, trusted=trusted_types())
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    if hasattr(model, "predict"):
        np.testing.assert_array_equal(loaded.predict(Xf), model.predict(Xf))
    if hasattr(model, "recommend"):
        a = model.recommend(model.users_[:5], n=4)
        b = loaded.recommend(model.users_[:5], n=4)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_array_equal(a.scores, b.scores)
        # the loaded model keeps working: its id lookups were rebuilt
        if supports_partial_fit(loaded):
            loaded.partial_fit(X[:10], y[:10])
    # without trusting the library's types, skops refuses the file
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)


def test_unknown_type_is_refused(tmp_path, data):
    X, y = data
    model, _ = _fit(dict(MODELS)["MatrixFactorization"], X, y)
    model.payload_ = Payload()
    path = tmp_path / "tampered.skops"
    sio.dump(model, path)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException, match="Payload"):
        sio.load(path, trusted=trusted_types())


def test_trusted_types_are_the_librarys_own():
    names = trusted_types()
    assert names == sorted(set(names))
    assert "sklearn_mf._mf.MatrixFactorization" in names
    assert all(n.startswith(("sklearn_mf.", "scipy.sparse.")) for n in names)
