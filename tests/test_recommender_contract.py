"""The contract every recommender keeps, run on every recommender.

Each test is parametrised over :data:`RECOMMENDERS`; a new model family plugs
in with one line there (a name and a factory of a small, fast,
deterministic model).  What a model offers follows its mixins:
``similar_items`` / ``similar_users`` exactly for the
:class:`~sklearn_mf.LatentFactorMixin` models, ``fold_in`` /
``recommend_new`` exactly for the :class:`~sklearn_mf.FoldInMixin` models,
and the tests for those run only where they apply.

The data has string ids (never contiguous integers), ratings 1-5, and one
user whose items are all known.
"""

import copy

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

from sklearn_mf import (
    BPR,
    EASE,
    BaselineRegressor,
    FMRecommender,
    FoldInMixin,
    ImplicitALS,
    ItemKNN,
    LatentFactorMixin,
    MatrixFactorization,
    PopularityRecommender,
    RecommenderMixin,
    RecommendNewMixin,
    SVDpp,
    TruncatedSVDRecommender,
    UserKNN,
)
from sklearn_mf.datasets import make_ratings

# name -> factory.  clip_predictions=False where it exists, so that the score
# ``recommend`` ranks by is the prediction itself.
RECOMMENDERS = {
    "mf_sgd": lambda: MatrixFactorization(
        4, n_epochs=5, clip_predictions=False, random_state=0, n_jobs=1
    ),
    "mf_als": lambda: MatrixFactorization(
        4, solver="als", max_iter=3, clip_predictions=False, random_state=0, n_jobs=1
    ),
    "svdpp": lambda: SVDpp(4, n_epochs=5, clip_predictions=False, random_state=0, n_jobs=1),
    "implicit_als": lambda: ImplicitALS(4, max_iter=3, random_state=0, n_jobs=1),
    "bpr": lambda: BPR(4, n_epochs=5, random_state=0, n_jobs=1),
    "baseline": lambda: BaselineRegressor(clip_predictions=False),
    "popularity": lambda: PopularityRecommender(),
    "truncated_svd": lambda: TruncatedSVDRecommender(4, clip_predictions=False, random_state=0),
    "fm": lambda: FMRecommender(4, clip_predictions=False, random_state=0, n_jobs=1),
    "item_knn": lambda: ItemKNN(n_neighbors=10, n_jobs=1),
    "user_knn": lambda: UserKNN(n_neighbors=10, n_jobs=1),
    "ease": lambda: EASE(regularization=10.0, n_jobs=1),
}
NAMES = list(RECOMMENDERS)
N = 5


@pytest.fixture(scope="module")
def data():
    X, y = make_ratings(n_users=80, n_items=60, n_ratings=1500, random_state=0)
    ids = np.empty((len(X), 2), dtype=object)
    ids[:, 0] = [f"u{u}" for u in X[:, 0]]
    ids[:, 1] = [f"i{i}" for i in X[:, 1]]
    return ids, y


_fitted = {}


def fitted(name, data):
    """Each model fitted once per session (tests must not change it)."""
    if name not in _fitted:
        X, y = data
        _fitted[name] = RECOMMENDERS[name]().fit(X, y)
    return _fitted[name]


def _users(model, k=8):
    return model.users_[:k]


def _pairs(users, items):
    """(user, item) rows for every user and each of its returned items."""
    return np.column_stack([np.repeat(users, items.shape[1]), items.ravel()])


@pytest.mark.parametrize("name", NAMES)
def test_is_a_recommender_with_the_interface_of_its_mixins(name, data):
    model = fitted(name, data)
    assert isinstance(model, RecommenderMixin)
    latent = isinstance(model, LatentFactorMixin)
    assert hasattr(model, "build_similarity_index") == latent
    if latent:  # factors give both similarity searches
        assert hasattr(model, "similar_items") and hasattr(model, "similar_users")
    elif not hasattr(model, "similarity_") and not hasattr(model, "coef_"):
        # no factors and no stored neighbours: no similarity search at all
        assert not hasattr(model, "similar_items") and not hasattr(model, "similar_users")
    assert hasattr(model, "fold_in") == isinstance(model, FoldInMixin)
    assert hasattr(model, "recommend_new") == isinstance(model, RecommendNewMixin)


@pytest.mark.parametrize("name", NAMES)
def test_recommend_shapes_order_and_scores_are_predictions(name, data):
    model = fitted(name, data)
    users = _users(model)
    rec = model.recommend(users, n=N)
    assert rec.items.shape == rec.scores.shape == (len(users), N)
    assert_array_equal(rec.query, users)
    assert not rec.fallback.any()
    assert np.all(np.diff(rec.scores, axis=1) <= 0), "scores must be best first"
    for row in rec.items:
        assert len(set(row)) == N
    assert_allclose(
        rec.scores.ravel(), model.predict(_pairs(users, rec.items)), rtol=1e-5, atol=1e-5
    )
    # unpacks as (items, scores)
    items, scores = rec
    assert items is rec.items and scores is rec.scores


@pytest.mark.parametrize("name", NAMES)
def test_exclude_seen(name, data):
    X, _ = data
    model = fitted(name, data)
    users = _users(model)
    seen = {u: set(X[X[:, 0] == u, 1]) for u in users}
    rec = model.recommend(users, n=N)
    for u, row in zip(users, rec.items):
        assert not seen[u] & set(row)
    # without exclusion the best item over the whole catalogue comes first
    full = model.recommend(users, n=N, exclude_seen=False)
    for u, row, s in zip(users, full.items, full.scores):
        all_scores = model.predict(_pairs([u], model.items_[None, :]))
        assert_allclose(s[0], all_scores.max(), rtol=1e-5, atol=1e-5)
        assert row[0] in set(
            model.items_[np.isclose(all_scores, all_scores.max(), rtol=1e-5, atol=1e-5)]
        )


@pytest.mark.parametrize("name", NAMES)
def test_items_allow_list_and_exclude_items(name, data):
    model = fitted(name, data)
    users = _users(model)
    allow = model.items_[::3]
    deny = allow[:2]
    rec = model.recommend(users, n=N, exclude_seen=False, items=allow, exclude_items=deny)
    assert set(rec.items.ravel()) <= set(allow) - set(deny)
    # the top of the allow-list is the allow-list sorted by score
    for u, s in zip(users, rec.scores):
        allowed = np.array([i for i in allow if i not in set(deny)], dtype=object)
        best = np.sort(model.predict(_pairs([u], allowed[None, :])))[::-1][:N]
        assert_allclose(s, best, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="not seen in fit"):
        model.recommend(users, n=N, items=["no such item"])


@pytest.mark.parametrize("name", NAMES)
def test_unknown_user_gets_the_popularity_fallback(name, data):
    model = fitted(name, data)
    rec = model.recommend(["nobody", model.users_[0]], n=N)
    assert_array_equal(rec.fallback, [True, False])
    order = np.argsort(-model._fallback_item_scores(), kind="stable")[:N]
    assert_allclose(rec.scores[0], model._fallback_item_scores()[order])
    assert_array_equal(rec.items[0], model.items_[order])
    strict = (
        clone(model).set_params(handle_unknown="error")
        if "handle_unknown" in model.get_params()
        else None
    )
    if strict is not None:
        with pytest.raises(ValueError, match="not seen in fit"):
            strict.fit(*data).recommend(["nobody"], n=N)


@pytest.mark.parametrize(
    "name", [n for n in NAMES if issubclass(type(RECOMMENDERS[n]()), FoldInMixin)]
)
def test_fold_in_leaves_the_model_unchanged_and_serves_the_new_user(name, data):
    X, y = data
    model = fitted(name, data)
    before = joblib.hash(model)
    rows = X[:, 0] == model.users_[0]
    new = X[rows].copy()
    new[:, 0] = "newcomer"
    if isinstance(model, FoldInMixin):  # kNN and EASE score the history itself
        folded = model.fold_in(new, y[rows])
        assert_array_equal(folded.users, ["newcomer"])
        assert folded.user_factors.shape == (1, model._item_embeddings()[0].shape[1])
    rec = model.recommend_new(new, y[rows], n=N)
    assert joblib.hash(model) == before
    assert rec.items.shape == (1, N) and not rec.fallback.any()
    assert not set(rec.items[0]) & set(new[:, 1])  # given items are seen
    assert np.all(np.diff(rec.scores[0]) <= 0)


@pytest.mark.parametrize("name", NAMES)
def test_joblib_round_trip(name, data, tmp_path):
    X, _ = data
    model = fitted(name, data)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    back = joblib.load(path)
    users = _users(model)
    a, b = model.recommend(users, n=N), back.recommend(users, n=N)
    assert_array_equal(a.items, b.items)
    assert_array_equal(a.scores, b.scores)
    assert_array_equal(model.predict(X[:50]), back.predict(X[:50]))


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_unfitted_and_refits_to_the_same_model(name, data):
    X, y = data
    model = fitted(name, data)
    fresh = clone(model)
    assert fresh.get_params() == model.get_params()
    assert not hasattr(fresh, "users_")
    fresh.fit(X, y)
    users = _users(model)
    assert_array_equal(fresh.recommend(users, n=N).items, model.recommend(users, n=N).items)
    assert_allclose(fresh.predict(X[:50]), model.predict(X[:50]), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_n_jobs_does_not_change_results(name, data):
    X, _ = data
    model = fitted(name, data)
    if "n_jobs" not in model.get_params():
        pytest.skip("no n_jobs parameter")
    users = model.users_
    one = model.recommend(users, n=N)
    pred_one = model.predict(X)
    two = copy.deepcopy(model).set_params(n_jobs=2)
    rec_two = two.recommend(users, n=N)
    assert_array_equal(one.items, rec_two.items)
    assert_array_equal(one.scores, rec_two.scores)
    assert_array_equal(pred_one, two.predict(X))
    if isinstance(model, LatentFactorMixin):
        assert_array_equal(
            model.similar_items(model.items_[:4], n=3).items,
            two.similar_items(model.items_[:4], n=3).items,
        )


@pytest.mark.parametrize("name", NAMES)
def test_sparse_matrix_is_refused_with_the_converters_named(name, data):
    import scipy.sparse as sp

    with pytest.raises(
        TypeError,
        match=r"sklearn_mf\.matrix_to_interactions .*"
        r"sklearn_mf\.interactions_to_matrix",
    ):
        RECOMMENDERS[name]().fit(
            sp.random(5, 4, density=0.5, format="csr", random_state=0), np.ones(5)
        )
