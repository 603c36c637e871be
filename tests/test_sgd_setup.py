"""The set-up of ``MatrixFactorization(solver="sgd")`` (issue 12).

Kernels against NumPy references (``float64_sum`` against ``np.add.reduce``
of the float64 copy, ``count_nonfinite``, ``touch_pages``, ``blocked_csr``
into given arrays) and the fit paths they serve: a float32 ``y`` read as it
is, the block schedule's arrays paged in while the factors are drawn, the
seen-items matrix written into the fit's dead code arrays.  Each fit path is
compared with the one it replaces, bit for bit.
"""

import threading

import numpy as np
import pytest

from sklearn_mf import MatrixFactorization, _mf, _setup_fast
from sklearn_mf._convert import interactions_csr


def _awkward(rng, n, dtype):
    # magnitudes from 1e-12 to 1e8: a float64 sum of these rounds, so the
    # summation order shows in the last bits
    return (rng.random(n) * 1e8 * rng.random(n) ** 20).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_float64_sum_is_numpy_add_reduce_of_the_float64_copy(dtype, n_threads):
    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 1000, 4097, 65537, 1_000_000, 1_000_003, 2_345_679]:
        a = _awkward(rng, n, dtype)
        want = float(np.add.reduce(a.astype(np.float64)))
        assert _setup_fast.float64_sum(a, n_threads) == want, n


def test_float64_sum_order_matters_for_these_values():
    # the test above would be vacuous if any order gave the same bits
    a = _awkward(np.random.default_rng(1), 100_000, np.float32).astype(np.float64)
    assert float(np.add.reduce(a)) != sum(a.tolist())


def test_count_nonfinite():
    y = np.arange(2_000_000, dtype=np.float32)
    assert _setup_fast.count_nonfinite(y, 2) == 0
    y[[3, 10, 1_999_999]] = [np.nan, np.inf, -np.inf]
    for n_threads in (1, 2):
        assert _setup_fast.count_nonfinite(y, n_threads) == 3
        assert _setup_fast.count_nonfinite(y.astype(np.float64), n_threads) == 3


def test_touch_pages_writes_each_page_until_stopped():
    arrays = [np.ones(3 * 4096 + 5, dtype=np.uint8), np.ones(10_000, dtype=np.int32)]
    go = np.zeros(1, dtype=np.uint8)
    done = _setup_fast.touch_pages(arrays, go)
    assert done == sum(a.nbytes for a in arrays)
    assert (arrays[0][::4096] == 0).all()
    assert arrays[0][1] == 1  # only one byte per page is written
    assert (arrays[1].view(np.uint8)[::4096] == 0).all()
    stop = np.ones(1, dtype=np.uint8)
    fresh = [np.ones(5 * 4096, dtype=np.uint8)]
    assert _setup_fast.touch_pages(fresh, stop) == 0
    assert (fresh[0] == 1).all()


def test_touch_pages_stops_when_another_thread_sets_the_flag():
    flag = np.zeros(1, dtype=np.uint8)
    big = [np.empty(1 << 28, dtype=np.uint8)]  # virtual: only touched pages cost
    timer = threading.Timer(0.01, lambda: flag.__setitem__(0, 1))
    timer.start()
    done = _setup_fast.touch_pages(big, flag)
    timer.join()
    assert done < big[0].nbytes  # stopped before the end (256 MB take ~0.25 s)


def test_touch_pages_refuses_read_only_arrays():
    a = np.zeros(10)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _setup_fast.touch_pages([a], np.zeros(1, dtype=np.uint8))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_blocked_csr_into_given_arrays_is_the_same(n_threads):
    rng = np.random.default_rng(2)
    n, n_users, n_items, B = 300_000, 3000, 700, 8
    u = rng.integers(0, n_users, n).astype(np.int32)
    i = rng.integers(0, n_items, n).astype(np.int32)
    y = rng.random(n).astype(np.float32)
    blocked = _mf.block_schedule(
        u, i, y, None, n_users, n_items, B, rng, dtype=np.float32, n_threads=n_threads
    )
    args = (
        blocked.users,
        blocked.items,
        blocked.ratings,
        blocked.block_ptr,
        B,
        blocked.user_order.astype(np.int32),
        blocked.item_order.astype(np.int32),
        n_threads,
    )
    want = _setup_fast.blocked_csr(*args)
    idx, dat = np.full(n, -1, dtype=np.int32), np.full(n, -1, dtype=np.float32)
    got = _setup_fast.blocked_csr(*args, indices_out=idx, data_out=dat)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="one entry per rating"):
        _setup_fast.blocked_csr(*args, indices_out=idx[:-1], data_out=dat)


def _ratings(n=400_000, n_users=5000, n_items=900, seed=3):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)]).astype(np.int32)
    y = (rng.integers(1, 6, n) + _awkward(rng, n, np.float64) * 1e-9).astype(np.float32)
    return X, y


def _fit(X, y, **kw):
    params = dict(n_factors=8, n_epochs=2, random_state=0, n_jobs=2) | kw
    return MatrixFactorization(**params).fit(X, y)


def _assert_same_model(a, b):
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.global_mean_ == b.global_mean_
    assert a.rating_range_ == b.rating_range_
    assert (a.user_items_ != b.user_items_).nnz == 0
    np.testing.assert_array_equal(a.user_items_.indices, b.user_items_.indices)
    np.testing.assert_array_equal(a.item_popularity_, b.item_popularity_)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_ratings_fit_the_model_of_their_float64_copy(weighted, dtype):
    X, y = _ratings()
    w = np.random.default_rng(4).random(len(y)) + 0.5 if weighted else None
    y_before = y.copy()
    m32 = MatrixFactorization(n_factors=8, n_epochs=2, random_state=0, n_jobs=2, dtype=dtype)
    m32.fit(X, y, sample_weight=w)
    m64 = MatrixFactorization(n_factors=8, n_epochs=2, random_state=0, n_jobs=2, dtype=dtype)
    m64.fit(X, y.astype(np.float64), sample_weight=w)
    _assert_same_model(m32, m64)
    np.testing.assert_array_equal(y, y_before)
    assert y.flags.writeable


def test_fit_leaves_the_callers_ids_alone_and_lists_what_it_saw():
    # int32 ids 0..n-1 are used as codes, whose arrays then hold the
    # seen-items matrix: they must be fit's own copies, not the caller's
    X, y = _ratings()
    X_before = X.copy()
    model = _fit(X, y)
    np.testing.assert_array_equal(X, X_before)
    want, counts = interactions_csr(X[:, 0], X[:, 1], y, 5000, 900, return_counts=True)
    seen = model.user_items_
    np.testing.assert_array_equal(seen.indptr, want.indptr)
    np.testing.assert_array_equal(seen.indices, want.indices)
    np.testing.assert_array_equal(seen.data, want.data)
    np.testing.assert_array_equal(model.item_popularity_, counts)
    assert seen.data.dtype == np.float32 and seen.indices.dtype == np.int32


def test_fit_with_early_stopping_keeps_its_float64_path():
    # early stopping holds ratings out: the float32 shortcut is not taken,
    # the model is still the one of the float64 ratings
    X, y = _ratings(n=60_000)
    a = _fit(X, y, early_stopping=True, n_epochs=3)
    b = _fit(X, y.astype(np.float64), early_stopping=True, n_epochs=3)
    _assert_same_model(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 5, 200_003])
def test_take_rows_and_put_rows_are_fancy_indexing(dtype, n):
    rng = np.random.default_rng(5)
    src = rng.standard_normal((n, 7)).astype(dtype)
    order = rng.permutation(n)
    for n_threads in (1, 2):
        got = _setup_fast.take_rows(src, order, n_threads)
        np.testing.assert_array_equal(got, src[order])
        dst = np.zeros_like(src)
        _setup_fast.put_rows(dst, order, got, n_threads)
        np.testing.assert_array_equal(dst, src)


def test_take_rows_and_put_rows_check_their_arguments():
    src = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(IndexError, match="outside 0..3"):
        _setup_fast.take_rows(src, np.array([0, 4]), 1)
    with pytest.raises(IndexError, match="outside 0..3"):
        _setup_fast.put_rows(src, np.array([-1]), src[:1], 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _setup_fast.take_rows(src.T, np.array([0]), 1)
    with pytest.raises(ValueError, match="dtype"):
        _setup_fast.put_rows(src, np.array([0]), src[:1].astype(np.float64), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (1, 1), (5000, 64), (300_001, 3)])
def test_normal_factors_are_rng_normal_bit_for_bit(dtype, shape):
    from sklearn_mf._utils import normal_factors

    a_rng, b_rng = np.random.default_rng(11), np.random.default_rng(11)
    got = normal_factors(a_rng, *shape, 0.1, dtype)
    want = b_rng.normal(0, 0.1, shape).astype(dtype)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert a_rng.bit_generator.state == b_rng.bit_generator.state
    with pytest.raises(ValueError, match="scale < 0"):
        normal_factors(a_rng, 2, 2, -1.0, dtype)
