"""Methods the design promises for every recommender (DESIGN.md section 3):
a ranking ``score`` for the implicit models (so that a search without
``scoring=`` works) and ``partial_fit`` that grows the model."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
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
        make_ranking_scorer("ndcg", k=10)(pop, X[keep])
    )


def test_popularity_grid_search_without_scoring(ratings):
    X, y = ratings
    search = GridSearchCV(
        PopularityRecommender(by="rating"), {"damping": [0.0, 50.0]}, cv=TemporalSplit(n_splits=2)
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


# ---------------------------------------------------------------- BPR.partial_fit
def _clusters():
    rng = np.random.default_rng(0)
    return np.array(
        [(u, i + 30 * (u % 4)) for u in range(160) for i in rng.choice(30, 10, replace=False)]
    )


def test_bpr_partial_fit_grows_and_learns_new_users():
    from sklearn_mf import BPR

    X = _clusters()
    model = BPR(n_factors=8, n_epochs=40, learning_rate=0.1, random_state=0, n_jobs=2).fit(X)
    n_items = len(model.items_)
    # 40 new users of the four groups, 8 positives each; 4 new items in group 0
    rng = np.random.default_rng(1)
    new = np.array(
        [(1000 + u, i + 30 * (u % 4)) for u in range(40) for i in rng.choice(30, 8, replace=False)]
    )
    extra = np.array([(1000 + u, 120 + (u // 4) % 4) for u in range(0, 40, 4)])
    before = model.item_factors_[:n_items].copy()
    for _ in range(6):
        model.partial_fit(np.r_[new, extra])
    assert len(model.users_) == 200 and len(model.items_) == n_items + 4
    assert model.user_factors_.shape == (200, 8) and model.item_bias_.shape == (n_items + 4,)
    assert model.user_items_.shape == (200, n_items + 4)
    assert model.user_items_[np.searchsorted(model.users_, 1000)].nnz == 9
    # the new users are served by their group, without refitting
    items, _ = model.recommend(np.arange(1000, 1040), n=5)
    same = (items.astype(int) // 30) == (np.arange(40) % 4)[:, None]
    assert same.mean() > 0.8
    # the old items moved, but little: the replay keeps what was learned
    drift = np.linalg.norm(model.item_factors_[:n_items] - before) / np.linalg.norm(before)
    assert 0 < drift < 0.5
    assert len(model.loss_curve_) == 5


def test_bpr_partial_fit_reproducible_and_unfitted_is_fit():
    from sklearn_mf import BPR

    X = _clusters()
    a = BPR(n_factors=4, n_epochs=5, random_state=2, n_jobs=2).partial_fit(X)
    b = BPR(n_factors=4, n_epochs=5, random_state=2, n_jobs=2).fit(X)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    new = np.array([[500, 3], [500, 40], [0, 100]])
    a.partial_fit(new)
    b.partial_fit(new)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    # y == 0 rows are not positives
    c = BPR(n_factors=4, n_epochs=5, random_state=2, n_jobs=2).fit(X)
    c.partial_fit(np.r_[new, [[501, 1]]], y=[1.0, 1.0, 1.0, 0.0])
    assert 501 not in c.users_
    with pytest.raises(ValueError, match="negative"):
        c.partial_fit(new, y=[1.0, -1.0, 1.0])


# ---------------------------------------------------------------- FMRecommender.partial_fit
@pytest.mark.parametrize("solver", ["sgd", "als"])
@pytest.mark.parametrize("side", [False, True], ids=["ids", "ids+side"])
def test_fm_recommender_partial_fit_grows(ratings, solver, side):
    import pandas as pd

    from sklearn_mf import FMRecommender

    X, y = ratings
    old = X[:, 0] < 50
    kw = {}
    if side:
        users = np.unique(X[:, 0])
        kw["user_features"] = pd.DataFrame(
            {"age": (users % 7) / 7.0, "group": users % 3}, index=users
        )
    fm = FMRecommender(
        4, solver=solver, max_iter=20, clip_predictions=False, random_state=0, **kw
    ).fit(X[old], y[old])
    n_users, n_items, d = len(fm.users_), len(fm.items_), fm.fm_.w_.shape[0]
    new = np.c_[X[~old, :2], np.zeros((~old).sum(), dtype=X.dtype)]
    new[:, 1] = new[:, 1] + 1000 * (np.arange(len(new)) % 5 == 0)  # some new items
    before = np.abs(fm.predict(new) - y[~old]).mean()  # new users: fallback
    for _ in range(3):
        fm.partial_fit(new, y[~old])
    # with a side table every user was known in fit, without an id column
    n_new_u = len(np.setdiff1d(new[:, 0], fm.users_[:n_users]))
    n_new_i = len(np.setdiff1d(new[:, 1], X[old, 1]))
    n_id_u = len(np.setdiff1d(new[:, 0], X[old, 0]))
    assert len(fm.users_) == n_users + n_new_u and len(fm.items_) == n_items + n_new_i
    assert fm.fm_.w_.shape[0] == d + n_id_u + n_new_i == len(fm.feature_names_)
    # the blocks, the names and the FM's columns agree: the model's own
    # prediction equals the FM on the design matrix
    assert_allclose(fm.predict(new), fm.fm_.predict(fm.design_matrix(new)), rtol=1e-4, atol=1e-4)
    assert_allclose(
        fm.predict(X[old][:50]), fm.fm_.predict(fm.design_matrix(X[old][:50])), rtol=1e-4, atol=1e-4
    )
    assert f"user={new[0, 0]}" in fm.feature_names_
    after = np.abs(fm.predict(new) - y[~old]).mean()
    assert after < 0.9 * before


def test_fm_recommender_partial_fit_mcmc_refuses(ratings):
    from sklearn_mf import FMRecommender

    X, y = ratings
    fm = FMRecommender(2, solver="mcmc", max_iter=20, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="posterior draws, which partial_fit cannot"):
        fm.partial_fit(X[:5], y[:5])
