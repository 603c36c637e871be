"""Shared fixtures: paths to the real datasets in ../shared/data."""

import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("SKLEARN_MF_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


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
