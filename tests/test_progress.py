"""verbose: silent, one line per epoch, a tqdm bar, the fallback without tqdm.

Every iterative estimator reports through ``sklearn_mf._progress.EpochProgress``;
these tests check each one, and that reporting never changes the fitted model.
"""

import re
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from sklearn_mf import (
    BPR,
    BaselineRegressor,
    ImplicitALS,
    MatrixFactorization,
    SVDpp,
)
from sklearn_mf._progress import TQDM_MISSING, EpochProgress
from sklearn_mf.datasets import make_ratings

# (factory, the word starting each line, the fitted arrays compared across verbose)
CASES = {
    "mf-sgd": (
        lambda v: MatrixFactorization(n_factors=3, n_epochs=4, n_jobs=1, random_state=0, verbose=v),
        "epoch",
        ("user_factors_", "item_factors_", "user_bias_"),
    ),
    "mf-sgd-early-stopping": (
        lambda v: MatrixFactorization(
            n_factors=3,
            n_epochs=4,
            n_jobs=1,
            early_stopping=True,
            n_iter_no_change=10,
            random_state=0,
            verbose=v,
        ),
        "epoch",
        ("user_factors_", "item_factors_", "validation_scores_"),
    ),
    "mf-als": (
        lambda v: MatrixFactorization(
            solver="als", n_factors=3, max_iter=4, tol=0, n_jobs=1, random_state=0, verbose=v
        ),
        "iteration",
        ("user_factors_", "item_factors_", "item_bias_"),
    ),
    "svdpp": (
        lambda v: SVDpp(n_factors=3, n_epochs=3, random_state=0, verbose=v),
        "epoch",
        ("user_factors_", "implicit_item_factors_", "item_bias_"),
    ),
    "implicit-als": (
        lambda v: ImplicitALS(
            n_factors=3, max_iter=3, tol=None, n_jobs=1, random_state=0, verbose=v
        ),
        "iteration",
        ("user_factors_", "item_factors_"),
    ),
    "bpr": (
        lambda v: BPR(n_factors=3, n_epochs=3, n_jobs=1, random_state=0, verbose=v),
        "epoch",
        ("user_factors_", "item_factors_", "accuracy_curve_"),
    ),
    "baseline-als": (
        lambda v: BaselineRegressor(max_iter=3, tol=0, verbose=v),
        "sweep",
        ("user_bias_", "item_bias_"),
    ),
    "baseline-sgd": (
        lambda v: BaselineRegressor(solver="sgd", n_epochs=3, random_state=0, verbose=v),
        "epoch",
        ("user_bias_", "item_bias_"),
    ),
}


@pytest.fixture(scope="module")
def ratings():
    X, y = make_ratings(n_users=40, n_items=30, n_ratings=600, random_state=0)
    return X, y


@pytest.fixture
def no_tqdm(monkeypatch):
    """Make ``import tqdm`` / ``from tqdm.auto import tqdm`` fail."""
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)


def _fit(case, verbose, ratings):
    make, _, _ = CASES[case]
    return make(verbose).fit(*ratings)


@pytest.mark.parametrize("case", CASES)
def test_verbose_0_is_silent(case, ratings, capsys):
    _fit(case, 0, ratings)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def _epoch_lines(out, est):
    """The lines of ``out`` after the set-up stages, which come first (if any)."""
    lines = out.splitlines()
    n_setup = sum(line.startswith("set-up  ") for line in lines)
    assert all(line.startswith("set-up  ") for line in lines[:n_setup])
    if type(est).__name__ in ("MatrixFactorization", "ImplicitALS", "BPR", "SVDpp"):
        assert n_setup >= 3, out  # validate, encode ids, user-item matrix at least
    return lines[n_setup:]


@pytest.mark.parametrize("case", CASES)
def test_verbose_1_prints_one_line_per_epoch(case, ratings, capsys):
    est = _fit(case, 1, ratings)
    _, word, _ = CASES[case]
    out, err = capsys.readouterr()
    lines = _epoch_lines(out, est)
    assert err == ""
    assert len(lines) == est.n_iter_ >= 2
    for step, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"{word} +{step}  .*  \d+\.\d\ds", line), line
    # the last line shows the last value of the loss curve
    assert f"{est.loss_curve_[-1]:.6g}" in lines[-1]


@pytest.mark.parametrize("case", CASES)
def test_verbose_2_draws_a_tqdm_bar(case, ratings, capsys):
    pytest.importorskip("tqdm")
    est = _fit(case, 2, ratings)
    _, word, _ = CASES[case]
    out, err = capsys.readouterr()
    assert _epoch_lines(out, est) == []  # no per-epoch lines: the bar replaces them
    n = est.n_iter_
    assert type(est).__name__ in err
    assert re.search(rf"\b{n}/{n} \[", err), err  # the bar reached the last epoch
    assert f"{word}/s" in err or f"s/{word}" in err
    assert f"{est.loss_curve_[-1]:.6g}" in err  # metrics shown as the bar's postfix


@pytest.mark.parametrize("case", ["mf-sgd", "bpr", "baseline-als"])
def test_verbose_2_without_tqdm_prints_lines_and_one_note(case, ratings, capsys, no_tqdm):
    est = _fit(case, 2, ratings)
    _, word, _ = CASES[case]
    out, err = capsys.readouterr()
    lines = _epoch_lines(out, est)
    assert err == ""
    assert lines[0] == TQDM_MISSING.format(verbose=2, unit=word)
    assert "tqdm is not installed" in lines[0]
    assert len(lines) == 1 + est.n_iter_
    assert all(line.startswith(f"{word} ") for line in lines[1:])


@pytest.mark.parametrize("case", CASES)
def test_fitted_model_does_not_depend_on_verbose(case, ratings, capsys, monkeypatch):
    _, _, attrs = CASES[case]
    fits = [_fit(case, v, ratings) for v in (0, 1, 2)]
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    fits.append(_fit(case, 2, ratings))  # the fallback path
    ref = fits[0]
    for est in fits[1:]:
        assert est.n_iter_ == ref.n_iter_
        assert_array_equal(est.loss_curve_, ref.loss_curve_)
        for name in attrs:
            assert_array_equal(getattr(est, name), getattr(ref, name))


def test_epoch_progress_lines_format(capsys):
    with EpochProgress(1, 5, unit="sweep") as progress:
        progress.update(1, {"loss": 0.123456789, "count": np.int64(7), "note": "x"})
        progress.update(2)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"sweep   1  loss 0\.123457  count 7  note x  \d+\.\d\ds", lines[0])
    assert re.fullmatch(r"sweep   2  \d+\.\d\ds", lines[1])


def test_epoch_progress_bar_closes_when_the_loop_stops_early_or_raises(monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    bars = []

    class Recording:
        """Stands in for tqdm.auto.tqdm: records the calls, draws nothing."""

        def __init__(self, total=None, desc=None, unit="it"):
            self.total, self.desc, self.unit, self.n = total, desc, unit, 0
            self.postfixes, self.closed = [], False
            bars.append(self)

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            self.postfixes.append(dict(ordered_dict))

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm_auto, "tqdm", Recording)
    with EpochProgress(2, 10, desc="Model") as progress:
        assert progress.mode == "bar"
        for step in (1, 2, 3):
            progress.update(step, {"loss": 1.0 / step})
    bar = bars[-1]
    assert (bar.total, bar.desc, bar.unit, bar.n, bar.closed) == (10, "Model", "epoch", 3, True)
    assert bar.postfixes == [{"loss": "1"}, {"loss": "0.5"}, {"loss": "0.333333"}]

    with pytest.raises(FloatingPointError):
        with EpochProgress(3, 10) as progress:
            progress.update(1, {})
            raise FloatingPointError("diverged")
    assert bars[-1].closed and bars[-1].n == 1


@pytest.mark.parametrize(
    "verbose, mode",
    [(0, "silent"), (False, "silent"), (1, "lines"), (True, "lines"), (2, "bar"), (5, "bar")],
)
def test_epoch_progress_mode(verbose, mode):
    pytest.importorskip("tqdm")
    assert EpochProgress(verbose, 3).mode == mode


def test_epoch_progress_mode_without_tqdm(no_tqdm, capsys):
    assert EpochProgress(2, 3).mode == "lines"
    assert EpochProgress(0, 3).mode == "silent"
    with EpochProgress(1, 3):  # verbose=1 never mentions tqdm
        pass
    assert capsys.readouterr().out == ""
