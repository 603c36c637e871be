"""Ranking, beyond-accuracy metrics and ranking scorers for recommenders.

All metric functions share one input convention: ``recommended`` is an
(n_users, n) array of ranked lists (best first, padding ``None`` / NaN /
negative integer) and ``y_true`` is either a sparse (n_users, n_items) matrix
of relevance grades (``recommended`` then holds column indices) or a sequence
of per-user collections of relevant item ids (``recommended`` holds the same
ids).  See :mod:`sklearn_mf.metrics._ranking` for the details.
"""

from sklearn_mf.metrics._beyond_accuracy import (
    coverage,
    intra_list_diversity,
    novelty,
    serendipity,
)
from sklearn_mf.metrics._evaluate import evaluate
from sklearn_mf.metrics._ranking import (
    auc,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from sklearn_mf.metrics._scorer import RankingScorer, make_ranking_scorer

__all__ = [
    "RankingScorer",
    "auc",
    "coverage",
    "evaluate",
    "hit_rate_at_k",
    "intra_list_diversity",
    "make_ranking_scorer",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "serendipity",
]
