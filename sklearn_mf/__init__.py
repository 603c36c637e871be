"""sklearn_mf: matrix-factorization recommenders as scikit-learn estimators.

Interactions are samples: ``X`` holds one (user, item, ...) row per rating or
event and ``y`` the rating or strength, so every scikit-learn tool (pipelines,
grid search, cross-validation, joblib) works unchanged.
"""

from sklearn_mf._base import Recommendations, RecommenderMixin
from sklearn_mf._baselines import (
    BaselineRegressor,
    PopularityRecommender,
    TruncatedSVDRecommender,
)
from sklearn_mf._bpr import BPR
from sklearn_mf._convert import interactions_to_matrix, matrix_to_interactions
from sklearn_mf._ease import EASE
from sklearn_mf._fm._estimators import FactorizationMachineClassifier, FactorizationMachineRegressor
from sklearn_mf._fm._recommender import FMRecommender
from sklearn_mf._fold_in import FoldIn, FoldInMixin, RecommendNewMixin
from sklearn_mf._implicit import ImplicitALS
from sklearn_mf._latent import LatentFactorMixin
from sklearn_mf._mf import MatrixFactorization
from sklearn_mf._neighbors import ItemKNN, UserKNN
from sklearn_mf._persist import trusted_types
from sklearn_mf._svdpp import SVDpp
from sklearn_mf._utils import effective_n_threads

__version__ = "0.1.0.dev0"

__all__ = [
    "BPR",
    "FMRecommender",
    "FactorizationMachineClassifier",
    "FactorizationMachineRegressor",
    "BaselineRegressor",
    "EASE",
    "FoldIn",
    "FoldInMixin",
    "ImplicitALS",
    "LatentFactorMixin",
    "ItemKNN",
    "PopularityRecommender",
    "TruncatedSVDRecommender",
    "MatrixFactorization",
    "Recommendations",
    "RecommenderMixin",
    "RecommendNewMixin",
    "SVDpp",
    "UserKNN",
    "effective_n_threads",
    "trusted_types",
    "interactions_to_matrix",
    "matrix_to_interactions",
]
