"""Ids are kept exactly as given by every recommender (DESIGN.md section 2): mixed
int/str ids stay distinct objects, tuple ids are accepted, and every output
(``users_``, ``recommend``, ``similar_items``) hands back the same values."""

import numpy as np
import pytest
from _models import estimators
from sklearn.base import clone

from sklearn_mf.datasets import make_ratings


def _recode(X, user_of, item_of):
    out = np.empty((len(X), 2), dtype=object)
    for r, (u, i) in enumerate(X[:, :2].tolist()):
        out[r, 0], out[r, 1] = user_of(u), item_of(i)
    return out


@pytest.fixture(scope="module")
def data():
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=250, random_state=1)
    return X, y.astype(np.float64)


ID_KINDS = {
    # odd users are ints, even users strings: 2 and "2" never both occur, but
    # 1 and "1"-looking strings would be turned into each other by a str cast
    "mixed": (lambda u: u if u % 2 else str(u), lambda i: i if i % 3 else f"{i}"),
    "tuple": (lambda u: ("u", u), lambda i: (i % 4, str(i))),
}


@pytest.mark.parametrize("kind", ID_KINDS)
@pytest.mark.parametrize("name, est", estimators(), ids=[n for n, _ in estimators()])
def test_ids_kept_exactly(data, name, est, kind):
    X, y = data
    user_of, item_of = ID_KINDS[kind]
    Xo = _recode(X, user_of, item_of)
    model = clone(est).fit(Xo, y)
    want_users = set(Xo[:, 0].tolist())
    assert set(model.users_.tolist()) == want_users
    assert {type(u) for u in model.users_.tolist()} == {type(u) for u in want_users}
    assert set(model.items_.tolist()) == set(Xo[:, 1].tolist())
    # a training row is a known pair, not the unknown-id fallback
    first = Xo[0, 0]
    recs = model.recommend([first], n=3, exclude_seen=False)
    assert not recs.fallback[0]
    assert set(recs.items[0].tolist()) <= set(model.items_.tolist())
    # every training row is a known pair: no unknown-id fallback
    if hasattr(model, "predict") and "handle_unknown" in model.get_params():
        model.set_params(handle_unknown="error")
        assert np.isfinite(model.predict(Xo)).all()
        with pytest.raises(ValueError, match="unknown|unseen|not seen"):
            model.predict(_recode(np.array([[10**6 + 1, X[0, 1]]]), user_of, item_of))
