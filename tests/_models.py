"""Every public recommender (and solver) at small, fast, deterministic settings,
shared by the robustness tests (bad input, properties, persistence, threads).

Discovered from ``sklearn_mf.__all__``, so a new model is covered as soon as it
is exported.
"""

import inspect

from sklearn.base import BaseEstimator

import sklearn_mf

FAST = dict(n_factors=3, n_epochs=5, max_iter=5, random_state=0, n_jobs=1)

# solvers with their own code path, beyond each class's default
VARIANTS = {
    "MatrixFactorization": [{"solver": "als"}],
    "FMRecommender": [{"solver": "sgd"}, {"solver": "mcmc"}],
    "BaselineRegressor": [{"solver": "sgd"}],
    "ImplicitALS": [{"solver": "cholesky"}],
    "ItemKNN": [{"feedback": "explicit"}],
    "UserKNN": [{"feedback": "explicit"}],
}


def _fast(cls, **extra):
    params = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in {**FAST, **extra}.items() if k in params})


def estimators(recommenders_only=True):
    """``[(id, estimator), ...]`` for ``pytest.mark.parametrize``."""
    out = []
    for name in sklearn_mf.__all__:
        cls = getattr(sklearn_mf, name)
        if not (inspect.isclass(cls) and issubclass(cls, BaseEstimator)):
            continue
        if recommenders_only and not hasattr(cls, "recommend"):
            continue
        out.append((name, _fast(cls)))
        for extra in VARIANTS.get(name, []):
            tag = ",".join(f"{k}={v}" for k, v in extra.items())
            out.append((f"{name}({tag})", _fast(cls, **extra)))
    return out


def is_rating_model(est):
    """Whether the model predicts ratings (needs explicit y) rather than preferences."""
    if type(est).__name__ in ("ImplicitALS", "BPR", "PopularityRecommender", "EASE"):
        return False
    return est.get_params().get("feedback", "explicit") == "explicit"


def supports_partial_fit(est):
    """Whether ``partial_fit`` updates the model (the Bayesian FM's posterior
    draws cannot be updated: it refuses, tested in test_promises.py)."""
    return hasattr(est, "partial_fit") and est.get_params().get("solver") != "mcmc"
