"""Approximate similar-item search (build_similarity_index, hnswlib)."""

import joblib
import numpy as np
import pytest

from sklearn_mf import ImplicitALS, MatrixFactorization
from sklearn_mf._ann import fingerprint
from sklearn_mf.datasets import make_ratings


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_ratings(n_users=3000, n_items=3000, n_ratings=60_000, random_state=0)
    return ImplicitALS(32, max_iter=5, random_state=0, n_jobs=2).fit(X)


def _exact_cosine(V, a, b):
    Va, Vb = V[a].astype(np.float64), V[b].astype(np.float64)
    return (Va * Vb).sum(-1) / (np.linalg.norm(Va, axis=-1) * np.linalg.norm(Vb, axis=-1))


def test_no_index_means_exact_search_and_exact_false_needs_one(fitted):
    assert not hasattr(fitted, "similarity_index_")
    a = fitted.similar_items(fitted.items_[:5], n=10)
    b = fitted.similar_items(fitted.items_[:5], n=10, exact=True)
    assert np.array_equal(a.items, b.items)
    with pytest.raises(ValueError, match="build_similarity_index"):
        fitted.similar_items(fitted.items_[:5], n=10, exact=False)


def test_bad_parameters(fitted):
    with pytest.raises(ValueError, match="method must be 'hnsw'"):
        fitted.build_similarity_index("annoy")
    with pytest.raises(ValueError, match="M must be a positive integer"):
        fitted.build_similarity_index(M=0)
    with pytest.raises(ValueError, match="ef_search must be a positive integer"):
        fitted.build_similarity_index(ef_search=2.5)


def test_hnsw_recall_against_exact_search(fitted):
    pytest.importorskip("hnswlib")
    import copy

    model = copy.deepcopy(fitted)
    assert model.build_similarity_index(M=16, ef_construction=100, ef_search=50) is model
    queries = model.items_[::6]
    approx = model.similar_items(queries, n=10)
    exact = model.similar_items(queries, n=10, exact=True)
    assert approx.items.shape == exact.items.shape == (len(queries), 10)
    # the item itself is never its own neighbour, results are best first
    assert not (approx.items == queries[:, None]).any()
    assert (np.diff(approx.scores, axis=1) <= 1e-6).all()
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.items, exact.items)])
    assert recall > 0.95, recall
    # the scores are the true cosine similarities of the returned pairs
    codes_q = model._item_codes(np.repeat(queries, 10))
    codes_n = model._item_codes(approx.items.ravel())
    cos = _exact_cosine(model.item_factors_, codes_q, codes_n).reshape(approx.scores.shape)
    np.testing.assert_allclose(approx.scores, cos, atol=1e-5)
    # a tiny candidate list lowers the recall: the index is really used
    model.build_similarity_index(M=4, ef_construction=8, ef_search=11)
    low = model.similar_items(queries, n=10)
    low_recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(low.items, exact.items)])
    assert low_recall < recall


def test_index_survives_joblib_and_detects_stale_factors(tmp_path):
    pytest.importorskip("hnswlib")
    X, y = make_ratings(n_users=300, n_items=200, n_ratings=6000, random_state=0)
    model = MatrixFactorization(8, n_epochs=10, random_state=0, n_jobs=1).fit(X, y)
    model.build_similarity_index(ef_search=200)
    before = model.similar_items(model.items_[:20], n=5)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    after = loaded.similar_items(model.items_[:20], n=5)
    assert np.array_equal(before.items, after.items)
    np.testing.assert_allclose(before.scores, after.scores)
    with pytest.raises(ValueError, match="not seen in fit"):
        model.similar_items(["nope"], n=5)
    # partial_fit moves the factors: the snapshot refuses to answer
    fp = fingerprint(model.item_factors_)
    model.partial_fit(X[:50], y[:50])
    assert fingerprint(model.item_factors_) != fp
    with pytest.raises(ValueError, match="rebuild the index"):
        model.similar_items(model.items_[:2], n=5)
    assert model.similar_items(model.items_[:2], n=5, exact=True).items.shape == (2, 5)
    model.build_similarity_index()
    assert model.similar_items(model.items_[:2], n=5).items.shape == (2, 5)


def test_fewer_items_than_requested_neighbours():
    pytest.importorskip("hnswlib")
    X, _ = make_ratings(n_users=80, n_items=12, n_ratings=400, random_state=0)
    model = ImplicitALS(4, max_iter=3, random_state=0, n_jobs=1).fit(X)
    model.build_similarity_index()
    n = len(model.items_) - 1
    approx = model.similar_items(model.items_, n=n)
    exact = model.similar_items(model.items_, n=n, exact=True)
    # every other item is returned: the same sets as exact search
    for a, e in zip(approx.items, exact.items):
        assert set(a) == set(e)
