"""sklearn_mf: matrix-factorization recommenders as scikit-learn estimators.

Interactions are samples: ``X`` holds one (user, item, ...) row per rating or
event and ``y`` the rating or strength, so every scikit-learn tool (pipelines,
grid search, cross-validation, joblib) works unchanged.
"""

from sklearn_mf._base import FoldIn, Recommendations, RecommenderMixin
from sklearn_mf._baselines import (
    BaselineRegressor,
    PopularityRecommender,
    TruncatedSVDRecommender,
)
from sklearn_mf._bpr import BPR
from sklearn_mf._convert import interactions_to_matrix, matrix_to_interactions
from sklearn_mf._fm._estimators import FactorizationMachineClassifier, FactorizationMachineRegressor
from sklearn_mf._fm._recommender import FMRecommender
from sklearn_mf._implicit import ImplicitALS
from sklearn_mf._mf import MatrixFactorization
from sklearn_mf._svdpp import SVDpp
from sklearn_mf._utils import effective_n_threads

__version__ = "0.1.0.dev0"

__all__ = [
    "BPR",
    "FMRecommender",
    "FactorizationMachineClassifier",
    "FactorizationMachineRegressor",
    "BaselineRegressor",
    "FoldIn",
    "ImplicitALS",
    "PopularityRecommender",
    "TruncatedSVDRecommender",
    "MatrixFactorization",
    "Recommendations",
    "RecommenderMixin",
    "SVDpp",
    "effective_n_threads",
    "interactions_to_matrix",
    "matrix_to_interactions",
]
