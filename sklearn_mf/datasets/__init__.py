"""Synthetic data generators and MovieLens loaders."""

from sklearn_mf.datasets._movielens import load_movielens
from sklearn_mf.datasets._synthetic import make_ratings

__all__ = ["load_movielens", "make_ratings"]
