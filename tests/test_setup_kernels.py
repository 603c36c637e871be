"""The set-up kernels of the SGD fit against NumPy references.

``block_arrange`` (one and two radix passes), ``blocked_csr`` (the CSR of
block-ordered ratings) and ``normal_factors`` (factors drawn in chunks) must
give exactly what the simple route gives: a stable ``argsort`` and gathers,
``coo_to_csr`` of the same triples, one ``rng.normal`` call.
"""

import numpy as np
import pytest

from sklearn_mf import _setup_fast
from sklearn_mf._utils import normal_factors


def _arrange(u, i, y, w, rows, user_pos, item_pos, B, n_threads, dtype=np.float32):
    m = len(rows) if len(rows) else len(u)
    out = [np.empty(m, np.int32), np.empty(m, np.int32), np.empty(m, dtype)]
    out.append(np.empty(m if len(w) else 0, dtype))
    ptr = _setup_fast.block_arrange(
        u, i, y, w, rows.astype(np.intp), user_pos, item_pos, B, *out, n_threads
    )
    return ptr, out


def _reference_arrange(u, i, y, w, rows, user_pos, item_pos, B, dtype=np.float32):
    sel = rows if len(rows) else np.arange(len(u))
    wu, wi = user_pos[u[sel]], item_pos[i[sel]]
    n_users, n_items = len(user_pos), len(item_pos)
    key = (wu.astype(np.int64) * B // n_users) * B + wi.astype(np.int64) * B // n_items
    perm = sel[np.argsort(key, kind="stable")]
    out = [user_pos[u[perm]], item_pos[i[perm]], y[perm].astype(dtype)]
    out.append(w[perm] if len(w) else w)
    return np.r_[0, np.cumsum(np.bincount(key, minlength=B * B))], out


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("B", [1, 5, 64, 65, 97])  # 65 and 97: past the one-pass cut-off
def test_block_arrange_is_a_stable_argsort_by_block(n_threads, subset, weighted, B):
    rng = np.random.default_rng(B + 10 * n_threads)
    n, n_users, n_items = 160_000, 1_900, 700  # above the one-thread cut-off
    # power-law users: unequal row blocks; repeated pairs test the stability
    u = np.minimum(rng.zipf(1.3, n) - 1, n_users - 1).astype(np.int32)
    i = rng.integers(0, n_items, n).astype(np.int32)
    y = rng.uniform(1, 5, n)
    w = rng.uniform(0.5, 2, n).astype(np.float32) if weighted else np.zeros(0, np.float32)
    rows = np.sort(rng.choice(n, n // 3, replace=False)) if subset else np.zeros(0, np.intp)
    user_pos = rng.permutation(n_users).astype(np.int32)
    item_pos = rng.permutation(n_items).astype(np.int32)
    ptr, out = _arrange(u, i, y, w, rows, user_pos, item_pos, B, n_threads)
    want_ptr, want = _reference_arrange(u, i, y, w, rows, user_pos, item_pos, B)
    np.testing.assert_array_equal(ptr, want_ptr)
    for got, ref in zip(out, want):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_arrange_small_and_empty_inputs(dtype):
    rng = np.random.default_rng(0)
    for n, n_users, n_items, B in [(0, 3, 4, 70), (1, 1, 1, 70), (50, 200, 3, 70), (999, 9, 9, 2)]:
        u = rng.integers(0, n_users, n).astype(np.int32)
        i = rng.integers(0, n_items, n).astype(np.int32)
        y = rng.uniform(1, 5, n).astype(np.float32)
        w = np.zeros(0, dtype)
        user_pos = rng.permutation(n_users).astype(np.int32)
        item_pos = rng.permutation(n_items).astype(np.int32)
        none = np.zeros(0, np.intp)
        ptr, out = _arrange(u, i, y, w, none, user_pos, item_pos, B, 2, dtype)
        want_ptr, want = _reference_arrange(u, i, y, w, none, user_pos, item_pos, B, dtype)
        np.testing.assert_array_equal(ptr, want_ptr)
        for got, ref in zip(out, want):
            np.testing.assert_array_equal(got, ref)


def _blocked(rng, n, n_users, n_items, B, dtype, dup_fraction=0.0):
    u = np.minimum(rng.zipf(1.4, n) - 1, n_users - 1).astype(np.int32)
    i = rng.integers(0, n_items, n).astype(np.int32)
    n_dup = int(dup_fraction * n)
    if n_dup:  # repeat some (user, item) pairs, up to four times
        src = rng.integers(0, n, n_dup)
        dst = rng.integers(0, n, n_dup)
        u[dst], i[dst] = u[src], i[src]
    y = rng.uniform(-3, 5, n).astype(dtype)
    user_order = rng.permutation(n_users).astype(np.int32)
    item_order = rng.permutation(n_items).astype(np.int32)
    user_pos = np.argsort(user_order).astype(np.int32)
    item_pos = np.argsort(item_order).astype(np.int32)
    none = np.zeros(0, np.intp)
    ptr, (bu, bi, by, _) = _arrange(
        u, i, y, np.zeros(0, dtype), none, user_pos, item_pos, B, 2, dtype
    )
    return bu, bi, by, ptr, user_order, item_order


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n, n_users, n_items, B, dup_fraction",
    [
        (150_000, 3_000, 5_000, 70, 0.0),
        (150_000, 3_000, 5_000, 70, 0.2),  # duplicates, summed in input order
        (120_000, 500, 3_000_000, 9, 0.1),  # item codes of three radix digits
        (120_000, 40, 1, 4, 0.0),  # one item: no digit pass
        (30_000, 1_000, 2, 1, 0.3),  # one block
        (100, 1_000, 50, 30, 0.0),  # empty rows and blocks
    ],
)
def test_blocked_csr_is_coo_to_csr_of_the_mapped_codes(
    n_threads, dtype, n, n_users, n_items, B, dup_fraction
):
    rng = np.random.default_rng(n_users + n_items)
    bu, bi, by, ptr, user_order, item_order = _blocked(
        rng, n, n_users, n_items, B, dtype, dup_fraction
    )
    got = _setup_fast.blocked_csr(bu, bi, by, ptr, B, user_order, item_order, n_threads)
    want = _setup_fast.coo_to_csr(
        bu,
        bi,
        by,
        n_users,
        n_items,
        1,
        row_map=user_order,
        col_map=item_order,
        return_col_counts=True,
    )
    assert [a.dtype for a in got] == [a.dtype for a in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_blocked_csr_matches_scipy():
    import scipy.sparse as sp

    rng = np.random.default_rng(5)
    n_users, n_items = 2_000, 900
    bu, bi, by, ptr, user_order, item_order = _blocked(
        rng, 200_000, n_users, n_items, 80, np.float32, 0.05
    )
    indptr, indices, data, counts = _setup_fast.blocked_csr(
        bu, bi, by, ptr, 80, user_order, item_order, 2
    )
    ref = sp.coo_matrix(
        (by.astype(np.float64), (user_order[bu], item_order[bi])), shape=(n_users, n_items)
    ).tocsr()
    ref.sum_duplicates()
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_allclose(data, ref.data, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(counts, np.bincount(item_order[bi], minlength=n_items))


def test_blocked_csr_rejects_a_wrong_grid():
    rng = np.random.default_rng(6)
    bu, bi, by, ptr, user_order, item_order = _blocked(rng, 1_000, 50, 40, 5, np.float32)
    with pytest.raises(ValueError, match="block_ptr"):
        _setup_fast.blocked_csr(bu, bi, by, ptr, 4, user_order, item_order, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(0, 8), (7, 0), (1, 1), (5_000, 64), (100_003, 3)])
def test_normal_factors_is_one_normal_call_in_chunks(dtype, shape):
    rng, ref_rng = np.random.default_rng(42), np.random.default_rng(42)
    got = normal_factors(rng, shape[0], shape[1], 0.1, dtype)
    want = ref_rng.normal(0, 0.1, shape).astype(dtype)
    assert got.dtype == dtype and got.shape == shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    # the generator is left where one call leaves it
    assert rng.bit_generator.state == ref_rng.bit_generator.state
    np.testing.assert_array_equal(rng.normal(size=5), ref_rng.normal(size=5))
