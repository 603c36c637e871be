"""The parallel id kernels of factorize_ids against NumPy."""

import numpy as np
import pytest

from sklearn_mf import _setup_fast
from sklearn_mf._ids import factorize_ids


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", [1, 7, 1_000_003])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_id_range_and_presence_match_numpy(dtype, n, n_threads):
    rng = np.random.default_rng(n)
    values = rng.integers(-50, 3 * n + 10, size=n).astype(dtype)
    lo, hi = _setup_fast.id_range(values, n_threads)
    assert (lo, hi) == (int(values.min()), int(values.max()))
    span = hi - lo + 1
    present, n_present = _setup_fast.id_presence(values, lo, span, n_threads)
    expected = np.zeros(span, dtype=bool)
    expected[values - lo] = True
    np.testing.assert_array_equal(present, expected)
    assert n_present == int(expected.sum())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int16, np.uint32])
@pytest.mark.parametrize("dense", [True, False])
def test_factorize_ids_fast_path_matches_pandas(dtype, dense):
    rng = np.random.default_rng(0)
    n_ids = 5000
    ids = np.arange(n_ids) if dense else rng.choice(3 * n_ids, n_ids, replace=False) + 7
    values = rng.choice(ids, 2_000_000).astype(dtype)
    values[:n_ids] = ids  # every id present
    codes, uniques = factorize_ids(values)
    import pandas as pd

    ref_codes, ref_uniques = pd.factorize(values, sort=True)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(uniques, ref_uniques)
    assert codes.dtype == np.int32 and uniques.dtype == values.dtype


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", [3, 1_000_001])
def test_split_columns_matches_numpy(dtype, n):
    X = np.random.default_rng(1).integers(0, 1000, size=(n, 3)).astype(dtype)
    a, b = _setup_fast.split_columns(X, 2)
    np.testing.assert_array_equal(a, X[:, 0])
    np.testing.assert_array_equal(b, X[:, 1])
    assert a.flags.c_contiguous and not np.shares_memory(a, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [5, 1_000_001])
def test_finite_float64_matches_numpy(dtype, n):
    y = np.random.default_rng(2).normal(size=n).astype(dtype)
    out, n_bad = _setup_fast.finite_float64(y, 2)
    assert out.dtype == np.float64 and n_bad == 0
    np.testing.assert_array_equal(out, y.astype(np.float64))
    y[[0, n // 2, n - 1]] = [np.nan, np.inf, -np.inf]
    out, n_bad = _setup_fast.finite_float64(y, 2)
    assert n_bad == 3
