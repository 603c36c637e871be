"""The training loop, the array drivers and what a failed fit leaves behind."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sklearn_mf import (
    BPR,
    BaselineRegressor,
    FactorizationMachineRegressor,
    ImplicitALS,
    MatrixFactorization,
    SVDpp,
)
from sklearn_mf._als import run_explicit_als
from sklearn_mf._online import merge_interactions
from sklearn_mf._training import (
    EarlyStopping,
    TrainingLoop,
    objective_stalled,
    relative_decrease_below,
    seen_matrix,
)
from sklearn_mf._utils import make_rng
from sklearn_mf.datasets import make_ratings


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(n_users=60, n_items=40, n_ratings=1200, random_state=0)
    return np.asarray(X)[:, :2], np.asarray(y, dtype=float)


# ------------------------------------------------------------ the loop
def test_loop_records_curve_and_stops_on_convergence():
    curve = [4.0, 2.0, 1.5, 1.45, 1.44, 1.0]
    result = TrainingLoop(10, hint="").run(
        lambda e: (curve[e - 1], 0, {}), converged=relative_decrease_below(0.05)
    )
    # 1.5 -> 1.45 is a decrease of 3.3% <= 5%: stop after epoch 4
    assert result.loss_curve == curve[:4]
    assert result.n_iter == 4 and result.stopped
    assert result.validation_scores is None and result.best_iteration is None
    full = TrainingLoop(6, hint="").run(lambda e: (curve[e - 1], 0, {}))
    assert full.loss_curve == curve and not full.stopped


def test_loop_divergence_names_epoch_solver_and_hint():
    steps = iter([(1.0, 0, {}), (np.inf, 0, {})])
    with pytest.raises(
        FloatingPointError, match="The als solver diverged in iteration 2: .* Try this."
    ):
        TrainingLoop(5, hint="Try this.", solver="als", unit="iteration").run(lambda e: next(steps))
    with pytest.raises(FloatingPointError, match="in epoch 1"):  # counted bad values
        TrainingLoop(5, hint="").run(lambda e: (1.0, 3, {}))


def test_loop_early_stopping_restores_the_best_parameters():
    param = np.zeros(2)
    scores = [5.0, 3.0, 4.0, 4.5, 2.9]

    def step(epoch):
        param[:] = epoch  # the "model" after this epoch
        return 1.0 / epoch, 0, {}

    stopper = EarlyStopping(lambda: (param,), tol=0.5, patience=2)
    result = TrainingLoop(10, hint="", early_stopping=stopper).run(
        step, score=lambda e: scores[e - 1]
    )
    # epoch 2 is the best (3.0); epochs 3, 4 do not improve by 0.5: stop at 4
    assert result.n_iter == 4 and result.stopped
    assert result.validation_scores == scores[:4]
    assert result.best_iteration == 2
    np.testing.assert_array_equal(param, [2.0, 2.0])


def test_objective_stalled_needs_patience_epochs_in_a_row():
    converged = objective_stalled(0.1, 2)
    curve = []
    stops = []
    for value in [10.0, 9.5, 5.0, 4.9, 4.8]:
        curve.append(value)
        stops.append(converged(curve))
    # 9.5 stalls (5%), 5.0 does not, 4.9 and 4.8 stall twice in a row
    assert stops == [False, False, False, False, True]
    assert objective_stalled(None, 2) is None and relative_decrease_below(None) is None


def test_make_rng_is_reproducible_and_streams_differ():
    a, b = make_rng(3).random(4), make_rng(3).random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(make_rng(3, 1).random(4), make_rng(3, 2).random(4))


def test_merge_interactions_replaces_or_adds_and_keeps_inputs():
    seen, pop = seen_matrix(
        np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([1.0, 2.0, 3.0]), 2, 2
    )
    before = seen.toarray().copy()
    u, i, v = np.array([0, 2]), np.array([1, 2]), np.array([5.0, 7.0])
    m, p, _, keep = merge_interactions(seen, pop, u, i, v, 3, 3, replace=True)
    np.testing.assert_array_equal(m.toarray(), [[1, 5, 0], [0, 3, 0], [0, 0, 7]])
    np.testing.assert_array_equal(p, [1, 3, 1])
    assert keep.tolist() == [True, False, True]
    m, p, _, _ = merge_interactions(seen, pop, u, i, v, 3, 3, replace=False)
    np.testing.assert_array_equal(m.toarray(), [[1, 7, 0], [0, 3, 0], [0, 0, 7]])
    np.testing.assert_array_equal(seen.toarray(), before)  # input untouched
    np.testing.assert_array_equal(pop, [1, 2])


def test_explicit_als_driver_matches_the_estimator(ratings):
    X, y = ratings
    mf = MatrixFactorization(
        4, solver="als", max_iter=5, dtype=np.float64, tol=None, random_state=0, n_jobs=1
    ).fit(X, y)
    u, i = mf._user_codes(X[:, 0]), mf._item_codes(X[:, 1])
    rng = make_rng(0)
    P = rng.normal(0, mf.init_std, (len(mf.users_), 4))
    Q = rng.normal(0, mf.init_std, (len(mf.items_), 4))
    res = run_explicit_als(
        u,
        i,
        y,
        None,
        np.arange(len(y)),
        None,
        P,
        Q,
        np.zeros(len(P)),
        np.zeros(len(Q)),
        global_mean=float(y.mean()),
        regularization=mf.regularization,
        bias_regularization=None,
        scaling=True,
        max_iter=5,
        tol=None,
        n_iter_no_change=5,
        clip_range=None,
        n_threads=1,
    )
    np.testing.assert_array_equal(res.user_factors, mf.user_factors_)
    np.testing.assert_array_equal(res.item_bias, mf.item_bias_)
    assert res.loop.loss_curve == mf.loss_curve_ and res.loop.n_iter == 5


# ------------------------------------------- failures leave the model as it was
def _snapshot(est):
    out = {}
    for name, value in vars(est).items():
        if name.endswith("_") or name.startswith("_"):
            if hasattr(value, "toarray"):
                value = value.toarray()
            out[name] = np.copy(value) if isinstance(value, np.ndarray) else value
    return out


def _assert_same(est, snap):
    now = _snapshot(est)
    assert set(now) == set(snap)
    for name, value in snap.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(now[name], value, err_msg=name)
        elif isinstance(value, (list, tuple, float, int, str)):
            assert now[name] == value, name


ONLINE = [
    MatrixFactorization(4, n_epochs=3, random_state=0, n_jobs=1),
    MatrixFactorization(4, solver="als", max_iter=3, random_state=0, n_jobs=1),
    SVDpp(4, n_epochs=3, random_state=0, n_jobs=1),
    ImplicitALS(4, max_iter=3, random_state=0, n_jobs=1),
]


@pytest.mark.parametrize(
    "est", ONLINE, ids=lambda e: f"{type(e).__name__}-{e.get_params().get('solver', '')}"
)
def test_partial_fit_failing_validation_leaves_the_model_unchanged(est, ratings):
    X, y = ratings
    est.fit(X, y)
    snap = _snapshot(est)
    X_new = np.array([["new-user", X[0, 1]], [X[1, 0], "new-item"]], dtype=object)
    with pytest.raises(ValueError, match="NaN|finite"):
        est.partial_fit(X_new, np.array([4.0, np.nan]))
    _assert_same(est, snap)
    # and a valid batch does change it (the snapshot can see a change)
    est.partial_fit(X_new, np.array([4.0, 2.0]))
    assert len(est.users_) == len(snap["users_"]) + 1


@pytest.mark.parametrize(
    "make, bad",
    [
        (
            lambda: MatrixFactorization(4, n_epochs=20, random_state=0, n_jobs=1),
            dict(learning_rate=50.0),
        ),
        (lambda: SVDpp(4, n_epochs=20, random_state=0, n_jobs=1), dict(learning_rate=50.0)),
        (
            lambda: BaselineRegressor(solver="sgd", n_epochs=20, random_state=0),
            dict(learning_rate=1e6),
        ),
        (
            lambda: FactorizationMachineRegressor(
                2, solver="sgd", n_epochs=20, tol=None, random_state=0
            ),
            dict(learning_rate=1e3, init_std=5.0),
        ),
    ],
    ids=["mf", "svdpp", "baseline", "fm"],
)
def test_fit_raising_midway_leaves_the_model_unchanged(make, bad, ratings):
    X, y = ratings
    if isinstance(make(), FactorizationMachineRegressor):
        from sklearn.preprocessing import OneHotEncoder

        X = OneHotEncoder().fit_transform(X)
    # an unfitted model stays unfitted
    est = make().set_params(**bad)
    with pytest.raises(FloatingPointError, match="diverged"):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    # a fitted model keeps every fitted attribute
    est = make().fit(X, y)
    snap = _snapshot(est)
    est.set_params(**bad)
    with pytest.raises(FloatingPointError, match="diverged"):
        est.fit(X, y)
    _assert_same(est, snap)


def test_bpr_fit_failing_leaves_the_model_unchanged(ratings):
    X, y = ratings
    est = BPR(4, n_epochs=2, random_state=0, n_jobs=1).fit(X)
    snap = _snapshot(est)
    with pytest.raises(ValueError, match="at least 2 items"):
        est.fit(np.array([["a", "x"], ["b", "x"]], dtype=object))
    _assert_same(est, snap)


INTERRUPTIBLE = [
    lambda: MatrixFactorization(4, n_epochs=6, random_state=0, n_jobs=1),
    lambda: MatrixFactorization(4, solver="als", max_iter=6, tol=None, random_state=0, n_jobs=1),
    lambda: SVDpp(4, n_epochs=6, random_state=0, n_jobs=1),
    lambda: ImplicitALS(4, max_iter=6, random_state=0, n_jobs=1),
    lambda: BPR(4, n_epochs=6, random_state=0, n_jobs=1),
    lambda: BaselineRegressor(max_iter=6, tol=None),
]


@pytest.mark.parametrize(
    "make", INTERRUPTIBLE, ids=["mf-sgd", "mf-als", "svdpp", "ials", "bpr", "baseline"]
)
def test_keyboard_interrupt_midway_leaves_the_model_unchanged(make, ratings, monkeypatch):
    X, y = ratings
    est = make().fit(X, y)
    snap = _snapshot(est)
    update = TrainingLoop.run.__globals__["EpochProgress"].update

    def interrupt(self, step, metrics=None):
        if step == 3:  # Ctrl-C during the third epoch's report
            raise KeyboardInterrupt
        return update(self, step, metrics)

    monkeypatch.setattr(TrainingLoop.run.__globals__["EpochProgress"], "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.set_params(random_state=1).fit(X, y)
    _assert_same(est, snap)
    fresh = make()
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
