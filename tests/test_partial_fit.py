"""Online updates by SGD: MatrixFactorization(solver="sgd").partial_fit and SVDpp.partial_fit."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_mf import MatrixFactorization, SVDpp
from sklearn_mf.datasets import make_ratings

MODELS = {
    "mf": lambda **kw: MatrixFactorization(solver="sgd", **kw),
    "svdpp": lambda **kw: SVDpp(**kw),
}


def rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


@pytest.fixture(scope="module")
def small():
    X, y = make_ratings(n_users=60, n_items=40, n_ratings=1200, random_state=2)
    return X, y


@pytest.mark.parametrize("name", MODELS)
def test_growth_and_bookkeeping(name, small):
    X, y = small
    model = MODELS[name](n_factors=3, n_epochs=3, random_state=0, n_jobs=1).fit(X, y)
    n_users, n_items = len(model.users_), len(model.items_)
    pop_before = model.item_popularity_.copy()
    old_user, old_item = X[0, 0], X[0, 1]
    Xn = np.array(
        [
            [old_user, old_item, 0],  # re-rating of a known cell
            [10_001, old_item, 0],  # new user, old item
            [10_001, 20_002, 0],  # new user, new item
            [10_003, 20_002, 0],
        ],
        dtype=X.dtype,
    )
    yn = np.array([1.0, 5.0, 4.0, 6.0])
    model.partial_fit(Xn, yn)
    assert len(model.users_) == n_users + 2 and len(model.items_) == n_items + 1
    assert list(model.users_[-2:]) == [10_001, 10_003] and model.items_[-1] == 20_002
    for attr in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        arr = getattr(model, attr)
        assert arr.shape[0] == (n_users + 2 if attr.startswith("user") else n_items + 1)
        assert arr.flags.c_contiguous and np.isfinite(arr).all()
    if name == "svdpp":
        assert model.implicit_item_factors_.shape[0] == n_items + 1
        assert model.implicit_user_factors_.shape[0] == n_users + 2
    ui = model.user_items_
    cu, ci = model._user_codes([old_user])[0], model._item_codes([old_item])[0]
    assert ui[cu, ci] == 1.0  # replaced, not summed
    assert ui.shape == (n_users + 2, n_items + 1) and ui.nnz == len(np.unique(X[:, :2], axis=0)) + 3
    assert_array_equal(
        model.item_popularity_[:n_items] - pop_before, np.bincount([ci, ci], minlength=n_items)
    )
    assert model.item_popularity_[-1] == 2
    assert model.rating_range_[1] == 6.0
    assert model.n_iter_ == 5 and len(model.loss_curve_) == 5
    # the new ids are now known: predictions are personalised, recommend works
    pred = model.predict(Xn)
    assert np.isfinite(pred).all()
    assert model.recommend([10_001], n=3).fallback.tolist() == [False]


@pytest.mark.parametrize("name", MODELS)
def test_unfitted_partial_fit_is_fit_and_updates_are_reproducible(name, small):
    X, y = small
    a = MODELS[name](n_factors=3, n_epochs=3, random_state=0, n_jobs=1).partial_fit(X, y)
    b = MODELS[name](n_factors=3, n_epochs=3, random_state=0, n_jobs=1).fit(X, y)
    assert_array_equal(a.item_factors_, b.item_factors_)
    Xn, yn = X[:50].copy(), y[:50][::-1].copy()
    a.partial_fit(Xn, yn)
    b.partial_fit(Xn, yn)
    assert_array_equal(a.user_factors_, b.user_factors_)
    # a second call draws a different replay sample but stays reproducible
    a.partial_fit(Xn, yn)
    b.partial_fit(Xn, yn)
    assert_array_equal(a.user_factors_, b.user_factors_)


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_leaves_the_model_unchanged(name, small):
    X, y = small
    model = MODELS[name](n_factors=3, n_epochs=2, random_state=0).fit(X, y)
    before = [model.user_factors_.copy(), model.users_.copy(), model.user_items_.copy()]
    y_bad = y[:5].copy()
    y_bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.partial_fit(X[:5], y_bad)
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:5, :1], y[:5])
    assert_array_equal(model.user_factors_, before[0])
    assert_array_equal(model.users_, before[1])
    assert (model.user_items_ != before[2]).nnz == 0


def test_svdpp_partial_fit_options(small):
    X, y = small
    model = SVDpp(n_factors=3, n_epochs=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="n_passes"):
        model.partial_fit(X[:5], y[:5], n_passes=0)
    with pytest.raises(ValueError, match="replay_ratio"):
        model.partial_fit(X[:5], y[:5], replay_ratio=-1)
    model.partial_fit(X[:5], y[:5], n_passes=2, replay_ratio=0)
    assert model.n_iter_ == 2
    # new items rated by an old user enter her implicit set N(u)
    user = X[0, 0]
    model.partial_fit(np.array([[user, 777, 0]]), [3.0], replay_ratio=0)
    cu = model._user_codes([user])[0]
    row = model.user_items_[cu].indices
    z = model.implicit_item_factors_[row].sum(axis=0) / np.sqrt(len(row))
    assert model._item_codes([777])[0] in row
    assert_allclose(model.implicit_user_factors_[cu], z, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_ml100k_new_users_improve_old_predictions_hold(name, ml100k):
    """Users arrive after fit: partial_fit learns them without hurting the others."""
    r = ml100k.ratings
    rng = np.random.default_rng(0)
    users = r["user"].unique()
    new_users = rng.choice(users, len(users) // 5, replace=False)
    is_new = r["user"].isin(new_users).to_numpy()
    old, new = r[~is_new], r[is_new].sort_values("timestamp", kind="stable")
    old_test = rng.random(len(old)) < 0.2
    # each new user's first half of ratings arrives, the second half is the future
    first_half = (
        new.groupby("user").cumcount() < new.groupby("user")["item"].transform("size") // 2
    ).to_numpy()
    arrived, future = new[first_half], new[~first_half]
    cols = ["user", "item", "timestamp"]
    Xo, yo = old[cols].to_numpy()[~old_test], old["rating"].to_numpy()[~old_test]
    Xot, yot = old[cols].to_numpy()[old_test], old["rating"].to_numpy()[old_test]
    Xf, yf = future[cols].to_numpy(), future["rating"].to_numpy()

    model = MODELS[name](random_state=0).fit(Xo, yo)
    old_before, new_before = rmse(model, Xot, yot), rmse(model, Xf, yf)
    model.partial_fit(arrived[cols].to_numpy(), arrived["rating"].to_numpy())
    old_after, new_after = rmse(model, Xot, yot), rmse(model, Xf, yf)
    # before: the new users are unknown (global mean + item bias)
    print(
        f"{name}: new users {new_before:.4f} -> {new_after:.4f}, "
        f"old {old_before:.4f} -> {old_after:.4f}"
    )
    assert new_after < new_before - 0.02, (new_before, new_after)
    assert old_after < old_before + 0.01, (old_before, old_after)
