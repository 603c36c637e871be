"""The column rule (doc/user_guide/conventions.rst, 'Columns are read by
position'), for every recommender and every entry point: columns 0 and 1 are
the ids, further columns are ignored whatever their number, and named id
columns that disagree with fit are refused."""

import numpy as np
import pandas as pd
import pytest
from _models import estimators, supports_partial_fit
from sklearn.base import clone

from sklearn_mf.datasets import make_ratings
from sklearn_mf.metrics import make_ranking_scorer

MODELS = estimators()
IDS = [n for n, _ in MODELS]


@pytest.fixture(scope="module")
def data():
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=250, random_state=2)
    frame = pd.DataFrame(X, columns=["user", "item", "timestamp"])
    return X, frame, y.astype(np.float64)


@pytest.fixture(scope="module", params=MODELS, ids=IDS)
def fitted(request, data):
    _, frame, y = data
    return clone(request.param[1]).fit(frame, y)


def test_extra_columns_are_ignored(fitted, data):
    X, frame, y = data
    assert fitted.n_features_in_ == 3
    assert list(fitted.feature_names_in_) == ["user", "item", "timestamp"]
    forms = [
        X[:, :2],
        frame[["user", "item"]],
        frame.assign(ctx=1.0, more="x"),
        [tuple(r) for r in X[:, :2].tolist()],
    ]
    if hasattr(fitted, "predict"):
        ref = fitted.predict(frame)
        for form in forms:
            np.testing.assert_array_equal(fitted.predict(form), ref)
    if hasattr(fitted, "score"):
        assert fitted.score(X[:, :2], y) == fitted.score(frame, y)
    scorer = make_ranking_scorer("precision", k=3)
    assert scorer(fitted, X[:, :2], y) == scorer(fitted, frame, y)


def test_fold_in_and_recommend_new_on_id_columns(fitted, data):
    X, frame, y = data
    if not hasattr(fitted, "recommend_new"):
        pytest.skip("no recommend_new")
    new = X[:6, :2].astype(object)
    new[:, 0] = ["n1", "n1", "n1", "n2", "n2", "n2"]
    framed = pd.DataFrame(new, columns=["user", "item"])
    a = fitted.recommend_new(new, y[:6], n=3)
    b = fitted.recommend_new(framed.assign(timestamp=0, extra=1), y[:6], n=3)
    np.testing.assert_array_equal(a.items, b.items)
    if hasattr(fitted, "fold_in"):
        fitted.fold_in(new, y[:6])


def test_partial_fit_on_id_columns(fitted, data):
    X, frame, y = data
    if not supports_partial_fit(fitted):
        pytest.skip("no partial_fit")
    model = clone(fitted).fit(frame, y)
    model.partial_fit(X[:20, :2], y[:20])
    model.partial_fit(frame.iloc[:20, :2].assign(ctx=0), y[:20])
    assert model.n_features_in_ == 3


@pytest.mark.parametrize(
    "columns", [["item", "user", "timestamp"], ["u", "i", "timestamp"]], ids=["swapped", "renamed"]
)
def test_named_id_columns_must_agree(fitted, data, columns):
    X, frame, y = data
    bad = pd.DataFrame(X, columns=columns)
    methods = [
        m
        for m in ("predict", "fold_in", "recommend_new", "partial_fit")
        if hasattr(fitted, m) and (m != "partial_fit" or supports_partial_fit(fitted))
    ]
    for method in methods:
        args = (bad, y) if method != "predict" else (bad,)
        with pytest.raises(
            ValueError,
            match=r"reads the user and item ids from columns "
            r"0 and 1 of X; it was fitted with columns "
            r"\['user', 'item'\] there",
        ):
            getattr(clone(fitted).fit(frame, y) if method == "partial_fit" else fitted, method)(
                *args
            )
    with pytest.raises(ValueError, match="reads the user and item ids"):
        make_ranking_scorer("ndcg", k=3)(fitted, bad, y)
    # read by position on purpose
    if hasattr(fitted, "predict"):
        np.testing.assert_array_equal(
            fitted.predict(bad.to_numpy()[:, [0, 1]]), fitted.predict(X[:, :2])
        )


def test_one_column_is_refused(fitted, data):
    X, _, y = data
    for method in ("predict", "partial_fit"):
        if hasattr(fitted, method) and (method == "predict" or supports_partial_fit(fitted)):
            args = (X[:, :1],) if method == "predict" else (X[:, :1], y)
            with pytest.raises(
                ValueError,
                match="X has 1 features, but .* is expecting 3 "
                "features as input: X needs a user id "
                "column and an item id column",
            ):
                getattr(fitted, method)(*args)
