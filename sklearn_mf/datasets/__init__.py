"""Synthetic data generators, MovieLens loaders and the download cache."""

from sklearn_mf.datasets._fetch import clear_data_home, fetch_movielens, get_data_home
from sklearn_mf.datasets._movielens import load_movielens
from sklearn_mf.datasets._synthetic import make_ratings

__all__ = [
    "clear_data_home",
    "fetch_movielens",
    "get_data_home",
    "load_movielens",
    "make_ratings",
]
