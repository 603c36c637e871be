"""Methods the design promises for every recommender (DESIGN.md section 3):
a ranking ``score`` for the implicit models (so that a search without
``scoring=`` works) and ``partial_fit`` that grows the model."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from sklearn_mf import PopularityRecommender
from sklearn_mf.datasets import make_ratings
from sklearn_mf.metrics import make_ranking_scorer
from sklearn_mf.model_selection import TemporalSplit


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(n_users=60, n_items=40, n_ratings=900, random_state=0)
    return X, y.astype(np.float64)


def test_popularity_score_is_the_ndcg_scorer(ratings):
    X, y = ratings
    train, test = next(TemporalSplit().split(X))
    pop = PopularityRecommender().fit(X[train], y[train])
    want = make_ranking_scorer("ndcg", k=10)(pop, X[test])
    assert pop.score(X[test]) == pytest.approx(want)
    assert 0 < want < 1
    # rows with y <= 0 are not relevant
    y_test = y[test].copy()
    y_test[::2] = 0
    keep = test[1::2]
    assert pop.score(X[test], y_test) == pytest.approx(
        make_ranking_scorer("ndcg", k=10)(pop, X[keep]))


def test_popularity_grid_search_without_scoring(ratings):
    X, y = ratings
    search = GridSearchCV(PopularityRecommender(by="rating"), {"damping": [0.0, 50.0]},
                          cv=TemporalSplit(n_splits=2)).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
