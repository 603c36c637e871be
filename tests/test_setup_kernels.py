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


def _triples(rng, n, n_rows, n_cols, dup_fraction):
    # unequal rows (density falling with the row index), the heavy rows anywhere
    r = np.minimum(n_rows * rng.random(n) ** 2, n_rows - 1).astype(np.int32)
    r = rng.permutation(n_rows).astype(np.int32)[r]
    c = rng.integers(0, n_cols, n).astype(np.int32)
    n_dup = int(dup_fraction * n)
    if n_dup:  # repeat some (row, column) pairs
        src, dst = rng.integers(0, n, n_dup), rng.integers(0, n, n_dup)
        r[dst], c[dst] = r[src], c[src]
    return r, c


def _reference_csr(r, c, v, n_rows, n_cols):
    """Stable argsort by (row, column), then duplicates summed in input order."""
    order = np.lexsort((c, r))  # stable: equal pairs keep their input order
    rs, cs, vs = r[order], c[order], v[order].astype(np.float32)
    new = np.r_[True, (rs[1:] != rs[:-1]) | (cs[1:] != cs[:-1])]
    starts = np.flatnonzero(new)
    data = vs[starts].copy()
    for j in range(1, int(np.diff(np.r_[starts, len(vs)]).max(initial=1))):
        # add the j-th repeat of each run, in input order (float32 arithmetic)
        idx = starts + j
        ok = idx < np.r_[starts[1:], len(vs)]
        data[ok] += vs[idx[ok]]
    indptr = np.r_[0, np.cumsum(np.bincount(rs[starts], minlength=n_rows))]
    return indptr, cs[starts], data


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "n, n_rows, n_cols, dup_fraction",
    [
        (300_000, 20_000, 5_000, 0.0),  # many row blocks
        (300_000, 20_000, 5_000, 0.2),  # duplicates, summed in input order
        (400_000, 100_003, 3_000_000, 0.05),  # three column digits, odd row count
        (150_000, 70_000, 1, 0.0),  # one column: no digit pass
        (120_000, 6, 50, 0.1),  # few rows: one block, the one-thread passes
        (1_000, 300, 40, 0.3),  # small: the one-thread passes
    ],
)
def test_coo_to_csr_is_a_stable_sort_by_row_and_column(
    n_threads, dtype, n, n_rows, n_cols, dup_fraction
):
    rng = np.random.default_rng(n_rows + n_cols)
    r, c = _triples(rng, n, n_rows, n_cols, dup_fraction)
    v = rng.uniform(-3, 5, n).astype(dtype)
    got = _setup_fast.coo_to_csr(r, c, v, n_rows, n_cols, n_threads, return_col_counts=True)
    want = _reference_csr(r, c, v, n_rows, n_cols)
    assert [a.dtype for a in got] == [np.int64, np.int32, np.float32, np.int64]
    for g, w in zip(got[:3], want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[3], np.bincount(c, minlength=n_cols))
    serial = _setup_fast._coo_to_csr_serial(r, c, v, n_rows, n_cols, 1, return_col_counts=True)
    for g, w in zip(got, serial):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_coo_to_csr_reads_codes_through_the_maps(n_threads):
    rng = np.random.default_rng(3)
    n, n_rows, n_cols = 250_000, 30_000, 7_000
    r, c = _triples(rng, n, n_rows, n_cols, 0.1)
    v = rng.uniform(1, 5, n)
    row_map = rng.permutation(n_rows).astype(np.int32)
    col_map = rng.permutation(n_cols).astype(np.int32)
    got = _setup_fast.coo_to_csr(
        r,
        c,
        v,
        n_rows,
        n_cols,
        n_threads,
        row_map=row_map,
        col_map=col_map,
        return_col_counts=True,
    )
    want = _setup_fast.coo_to_csr(
        row_map[r], col_map[c], v, n_rows, n_cols, n_threads, return_col_counts=True
    )
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_coo_to_csr_with_one_heavy_row_matches_scipy():
    import scipy.sparse as sp

    rng = np.random.default_rng(4)
    n, n_rows, n_cols = 400_000, 50_000, 9_000
    r, c = _triples(rng, n, n_rows, n_cols, 0.0)
    r[: n // 2] = 17  # half the triples in one row: the one-thread passes
    v = rng.uniform(0, 2, n).astype(np.float32)
    indptr, indices, data = _setup_fast.coo_to_csr(r, c, v, n_rows, n_cols, 2)
    ref = sp.csr_matrix((v.astype(np.float64), (r, c)), shape=(n_rows, n_cols))
    ref.sum_duplicates()
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_allclose(data, ref.data, rtol=1e-6)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "n, n_rows, heavy",
    [
        (300_000, 20_000, False),  # many row blocks
        (400_000, 100_003, False),  # odd row count, empty rows
        (300_000, 40_000, True),  # half the entries in one row: one pass
        (120_000, 5, False),  # few rows: one pass
        (2_000, 300, False),  # small: one pass
    ],
)
def test_group_by_row_is_a_stable_argsort_and_gathers(n_threads, dtype, weighted, n, n_rows, heavy):
    rng = np.random.default_rng(n_rows + n)
    r, c = _triples(rng, n, n_rows, 9_000, 0.1)
    if heavy:
        r[::2] = 3
    v = rng.uniform(-3, 5, n).astype(dtype)
    w = rng.uniform(0.5, 2, n).astype(dtype) if weighted else np.zeros(0, dtype)
    indptr, indices, values, weights = _setup_fast.group_by_row(r, c, v, w, n_rows, n_threads)
    order = np.argsort(r, kind="stable")
    assert indptr.dtype == np.intp and indices.dtype == np.int32 and values.dtype == dtype
    np.testing.assert_array_equal(indptr, np.r_[0, np.cumsum(np.bincount(r, minlength=n_rows))])
    np.testing.assert_array_equal(indices, c[order])
    np.testing.assert_array_equal(values, v[order])
    np.testing.assert_array_equal(weights, w[order] if weighted else w)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(
    "n, n_rows, n_cols, heavy",
    [
        (300_000, 9_000, 20_000, False),  # many column blocks
        (200_000, 3_000, 100_003, False),  # odd column count, empty columns
        (300_000, 9_000, 40_000, True),  # half the entries in one column: one pass
        (120_000, 500, 3, False),  # few columns: one pass
        (2_000, 300, 70, False),  # small: one pass
    ],
)
def test_transpose_rows_is_the_scipy_transpose(
    n_threads, dtype, weighted, n, n_rows, n_cols, heavy
):
    import scipy.sparse as sp

    rng = np.random.default_rng(n_cols + n)
    r, c = _triples(rng, n, n_rows, n_cols, 0.0)
    if heavy:
        c[::2] = 1
    order = np.lexsort((c, r))
    r, c = r[order], c[order]  # row-major, columns sorted (repeats kept)
    v = rng.uniform(-3, 5, n).astype(dtype)
    w = rng.uniform(0.5, 2, n).astype(dtype) if weighted else np.zeros(0, dtype)
    indptr = np.r_[0, np.cumsum(np.bincount(r, minlength=n_rows))].astype(np.intp)
    got = _setup_fast.transpose_rows(indptr, c, v, w, n_cols, n_threads)
    by_col = np.argsort(c, kind="stable")
    np.testing.assert_array_equal(got[0], np.r_[0, np.cumsum(np.bincount(c, minlength=n_cols))])
    np.testing.assert_array_equal(got[1], r[by_col])
    np.testing.assert_array_equal(got[2], v[by_col])
    np.testing.assert_array_equal(got[3], w[by_col] if weighted else w)
    t = sp.csr_matrix((v, c, indptr), shape=(n_rows, n_cols)).T.tocsr()  # what it replaces
    np.testing.assert_array_equal(got[0], t.indptr)
    np.testing.assert_array_equal(got[1], t.indices)
    np.testing.assert_array_equal(got[2], t.data)


@pytest.mark.parametrize("background", [False, True])
def test_normal_factors_in_background_are_the_calls_in_order(background):
    from sklearn_mf._utils import normal_factors_in_background

    shapes = [(20_000, 64), (7_001, 64), (3, 64)]  # above the one-thread cut-off
    rng, ref_rng = np.random.default_rng(7), np.random.default_rng(7)
    result = normal_factors_in_background(rng, shapes, 0.1, np.float32, background=background)
    got = result()
    for (r, c), g in zip(shapes, got):
        np.testing.assert_array_equal(g, normal_factors(ref_rng, r, c, 0.1, np.float32))
    assert rng.bit_generator.state == ref_rng.bit_generator.state


def test_blocked_seen_matrix_is_the_same_by_either_kernel(monkeypatch):
    from sklearn_mf import _mf

    rng = np.random.default_rng(11)
    n, n_users, n_items = 250_000, 4_000, 3_000
    u, i = _triples(rng, n, n_users, n_items, 0.1)
    y = rng.uniform(1, 5, n)
    blocked = _mf.block_schedule(
        u, i, y, None, n_users, n_items, 40, np.random.default_rng(0), dtype=np.float32, n_threads=2
    )
    results = []
    for row_block in (1, 1 << 40):  # coo_to_csr, then blocked_csr
        monkeypatch.setattr(_mf, "_BLOCKED_CSR_ROW_BLOCK", row_block)
        m, popularity = _mf.blocked_seen_matrix(blocked, n_users, n_items, 2)
        results.append((m.indptr, m.indices, m.data, popularity))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
