"""Splitters for interaction data (temporal, per-user, user-disjoint).

Each has the scikit-learn ``split`` / ``get_n_splits`` interface and can be
passed as ``cv=`` to ``GridSearchCV``, ``cross_validate`` or ``learning_curve``.
"""

from sklearn_mf.model_selection._split import (
    PerUserRandomSplit,
    PerUserTemporalSplit,
    TemporalSplit,
    UserDisjointKFold,
    get_timestamps,
)

__all__ = [
    "PerUserRandomSplit",
    "PerUserTemporalSplit",
    "TemporalSplit",
    "UserDisjointKFold",
    "get_timestamps",
]
