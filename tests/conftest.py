"""Shared fixtures: paths to the real datasets in ../shared/data."""

import os
from pathlib import Path

import pytest


def _find_data_dir():
    """``$SKLEARN_MF_DATA``, else the first ``shared/data`` beside an ancestor.

    The checkout sits next to ``shared/`` (``../shared/data``), but a git
    worktree or a CI clone may sit deeper, so every ancestor is tried; the
    first candidate is returned when none exists (the fixtures then skip).
    """
    if os.environ.get("SKLEARN_MF_DATA"):
        return Path(os.environ["SKLEARN_MF_DATA"])
    parents = Path(__file__).resolve().parents[1:]
    for parent in parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return parents[1] / "shared" / "data"


DATA_DIR = _find_data_dir()


def pytest_report_header(config):
    found = "found" if DATA_DIR.is_dir() else "NOT FOUND: the real-data tests skip"
    return f"sklearn_mf real datasets: {DATA_DIR} ({found})"


# Tests that read a real dataset (directly or through a fixture built on one)
# fit models on tens of thousands of ratings: they are ``slow``, so that
# ``pytest -m "not slow"`` is the quick inner loop.  Large synthetic fits are
# marked ``@pytest.mark.slow`` where they are written.
REAL_DATA_FIXTURES = {"ml100k_path", "ml_latest_small_path"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ml100k_path():
    path = DATA_DIR / "ml-100k"
    if not path.is_dir():
        pytest.skip(f"MovieLens 100K not found at {path} (set SKLEARN_MF_DATA)")
    return path


@pytest.fixture(scope="session")
def ml100k(ml100k_path):
    from sklearn_mf.datasets import load_movielens

    return load_movielens(ml100k_path)


@pytest.fixture(scope="session")
def ml_latest_small_path():
    path = DATA_DIR / "ml-latest-small"
    if not path.is_dir():
        pytest.skip(f"ml-latest-small not found at {path} (set SKLEARN_MF_DATA)")
    return path


def _planted_fm(n=400, d=12, k=3, seed=0, density=0.35):
    """Sparse non-negative features and the targets of a known random FM."""
    import numpy as np
    import scipy.sparse as sp

    from sklearn_mf._fm._estimators import fm_predict_naive

    rng = np.random.default_rng(seed)
    X = sp.random(
        n,
        d,
        density=density,
        random_state=seed,
        format="csr",
        data_rvs=lambda m: rng.uniform(0.5, 1.5, m),
    )
    w0, w, V = 0.3, rng.normal(0, 0.5, d), rng.normal(0, 0.6, (d, k))
    return X, fm_predict_naive(X, w0, w, V)


@pytest.fixture(scope="session")
def planted_fm():
    """``planted_fm(n, d, k, seed, density) -> (X, y)``: data of a known FM."""
    return _planted_fm


@pytest.fixture(scope="module")
def dask_als_client():
    """A two-process, one-thread-each ``LocalCluster`` client for the dask ALS tests."""
    pytest.importorskip("distributed")
    from _dask_helpers import als_cluster_client

    with als_cluster_client() as client:
        yield client
