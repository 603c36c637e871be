"""Set-up at scale: the counting-sort kernels, the id fast path and the matrix helpers."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from sklearn_mf import (
    BPR,
    ImplicitALS,
    MatrixFactorization,
    _setup_fast,
    interactions_to_matrix,
    matrix_to_interactions,
)
from sklearn_mf._convert import interactions_csr
from sklearn_mf._ids import factorize_ids
from sklearn_mf.datasets import make_ratings


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("n_keys", [1, 9, 90_000])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_counting_order_is_the_stable_argsort(n_keys, n_threads):
    # 90_000 keys: an SGD grid of 300 x 300 blocks, past numpy's 16-bit radix sort
    rng = np.random.default_rng(0)
    keys = rng.integers(0, n_keys, 150_000).astype(np.int32)  # above the one-thread cut-off
    perm, counts = _setup_fast.counting_order(keys, n_keys, n_threads)
    np.testing.assert_array_equal(perm, np.argsort(keys, kind="stable"))
    np.testing.assert_array_equal(counts, np.bincount(keys, minlength=n_keys))


def test_coo_to_csr_matches_scipy_with_duplicates_and_empty_rows():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 50, 3000).astype(np.int32)
    cols = rng.integers(0, 30, 3000).astype(np.int32)
    rows[rows == 7] = 8  # row 7 is empty
    vals = rng.integers(1, 5, 3000).astype(np.float32)  # small integers: sums are exact
    indptr, indices, data = _setup_fast.coo_to_csr(rows, cols, vals, 50, 31, 2)
    ref = sp.csr_matrix((vals, (rows, cols)), shape=(50, 31))
    ref.sum_duplicates()
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data)
    assert indptr[8] == indptr[7]


def test_coo_to_csr_reads_codes_through_maps_and_counts_columns():
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 40, 4000).astype(np.int32)
    cols = rng.integers(0, 25, 4000).astype(np.int32)
    vals = rng.integers(1, 5, 4000).astype(np.float32)
    row_map = rng.permutation(40).astype(np.int32)
    col_map = rng.permutation(25).astype(np.int32)
    indptr, indices, data, counts = _setup_fast.coo_to_csr(
        rows, cols, vals, 40, 25, 2, row_map=row_map, col_map=col_map, return_col_counts=True
    )
    want = _setup_fast.coo_to_csr(row_map[rows], col_map[cols], vals, 40, 25, 2)
    for got, ref in zip((indptr, indices, data), want):
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(counts, np.bincount(col_map[cols], minlength=25))


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_block_arrange_is_a_stable_sort_by_block_then_gathers(n_threads, subset, weighted):
    rng = np.random.default_rng(3)
    n, n_users, n_items, B = 150_000, 700, 300, 7  # above the one-thread cut-off
    u = rng.integers(0, n_users, n).astype(np.int32)
    i = rng.integers(0, n_items, n).astype(np.int32)
    y = rng.uniform(1, 5, n)
    w = rng.uniform(0.5, 2, n).astype(np.float32) if weighted else np.zeros(0, np.float32)
    rows = np.sort(rng.choice(n, n // 3, replace=False)) if subset else np.zeros(0, np.intp)
    user_pos = rng.permutation(n_users).astype(np.int32)
    item_pos = rng.permutation(n_items).astype(np.int32)
    m = len(rows) if subset else n
    out = [np.empty(m, np.int32), np.empty(m, np.int32), np.empty(m, np.float32)]
    out.append(np.empty(m if weighted else 0, np.float32))
    args = (u, i, y, w, rows.astype(np.intp), user_pos, item_pos, B, *out, n_threads)
    ptr = _setup_fast.block_arrange(*args)
    # reference: the block of each rating, a stable argsort, gathers
    sel = rows if subset else np.arange(n)
    wu, wi = user_pos[u[sel]], item_pos[i[sel]]
    key = (wu.astype(np.int64) * B // n_users) * B + wi.astype(np.int64) * B // n_items
    perm = sel[np.argsort(key, kind="stable")]
    np.testing.assert_array_equal(out[0], user_pos[u[perm]])
    np.testing.assert_array_equal(out[1], item_pos[i[perm]])
    np.testing.assert_array_equal(out[2], y[perm].astype(np.float32))
    if weighted:
        np.testing.assert_array_equal(out[3], w[perm])
    np.testing.assert_array_equal(ptr, np.r_[0, np.cumsum(np.bincount(key, minlength=B * B))])


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_group_by_row_and_transpose_rows_match_the_permutation_route(n_threads, weighted):
    from sklearn_mf._als import RowMatrix

    rng = np.random.default_rng(4)
    n, n_rows, n_cols = 150_000, 900, 400
    rows = rng.integers(0, n_rows, n).astype(np.int32)
    rows[rows == 5] = 6  # an empty row
    cols = rng.integers(0, n_cols, n).astype(np.int32)
    t = rng.normal(size=n)
    w = rng.uniform(0.5, 2, n) if weighted else t[:0]
    data = {"t": t} | ({"w": w} if weighted else {})
    ref = RowMatrix.from_codes(rows, cols, n_rows, n_cols, **data)
    indptr, indices, t_out, w_out = _setup_fast.group_by_row(rows, cols, t, w, n_rows, n_threads)
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(t_out, ref.data["t"])
    assert len(w_out) == (n if weighted else 0)
    if weighted:
        np.testing.assert_array_equal(w_out, ref.data["w"])
    ref_t = ref.transpose()
    got = _setup_fast.transpose_rows(indptr, indices, t_out, w_out, n_cols, n_threads)
    np.testing.assert_array_equal(got[0], ref_t.indptr)
    np.testing.assert_array_equal(got[1], ref_t.indices)
    np.testing.assert_array_equal(got[2], ref_t.data["t"])
    if weighted:
        np.testing.assert_array_equal(got[3], ref_t.data["w"])


@pytest.mark.parametrize("solver", ["sgd", "als"])
def test_low_memory_fits_keep_the_seen_matrix_and_popularity(solver):
    """The SGD fit builds user_items_ from its block-ordered copy and both
    solvers drop the codes early: the matrix is the one of the input order
    (duplicates summed in input order) and the input is untouched."""
    X, y = make_ratings(400, 150, 12_000, noise=0.3, random_state=0)
    X = np.vstack([X, X[:300], X[:100]])  # pairs rated two and three times
    y = np.r_[y, y[:300] * 0.5 + 0.1, y[:100] - 0.3]
    X_before, y_before = X.copy(), y.copy()
    model = MatrixFactorization(n_factors=4, solver=solver, n_epochs=2, max_iter=2, n_jobs=2)
    model.fit(X, y)
    u, i = model._user_codes(X[:, 0]), model._item_codes(X[:, 1])
    want = interactions_csr(u, i, y, len(model.users_), len(model.items_))
    got = model.user_items_
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)
    np.testing.assert_array_equal(
        model.item_popularity_, np.bincount(i, minlength=len(model.items_))
    )
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_interactions_csr_without_duplicates_keeps_every_value():
    u = np.array([2, 0, 2, 1], dtype=np.int32)
    i = np.array([1, 2, 0, 2], dtype=np.int32)
    m = interactions_csr(u, i, np.array([4.0, 3.0, 5.0, 1.0]), 3, 3)
    np.testing.assert_array_equal(m.toarray(), [[0, 0, 3], [0, 0, 1], [5, 4, 0]])
    assert m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert m.has_canonical_format


# ------------------------------------------------------------------ ids
def test_factorize_small_int_dtype_whose_range_exceeds_it():
    # -100..100 spans 200 > int8's max: the offsets must not be computed in int8
    ids = np.array([-100, 100, 0, 100], dtype=np.int8)
    codes, uniques = factorize_ids(ids)
    np.testing.assert_array_equal(codes, [0, 2, 1, 2])
    np.testing.assert_array_equal(uniques, [-100, 0, 100])
    assert uniques.dtype == np.int8
    ids = np.array([65535, 0, 40000], dtype=np.uint16)
    codes, uniques = factorize_ids(ids)
    np.testing.assert_array_equal(uniques[codes], ids)


def test_factorize_ids_that_are_already_codes_is_a_view_only_when_allowed():
    ids = np.array([2, 0, 1, 1, 3], dtype=np.int32)
    codes, uniques = factorize_ids(ids, copy=False)
    assert np.shares_memory(codes, ids)
    np.testing.assert_array_equal(uniques, [0, 1, 2, 3])
    codes, _ = factorize_ids(ids)
    assert not np.shares_memory(codes, ids)
    codes[0] = 99
    assert ids[0] == 2


@pytest.mark.parametrize("Est", [MatrixFactorization, ImplicitALS, BPR])
def test_same_model_whatever_the_id_path(Est):
    X, y = make_ratings(n_users=80, n_items=50, n_ratings=1500, random_state=0)
    u, i = X[:, 0], X[:, 1]
    _, u = np.unique(u, return_inverse=True)
    _, i = np.unique(i, return_inverse=True)
    codes = np.column_stack([u, i]).astype(np.int32)  # fast path: 0..n-1 int32
    shifted = codes.astype(np.int64) + [10**12, -5]  # wide ints: pandas hashing
    strings = pd.DataFrame({"u": [f"u{v:03d}" for v in u], "i": [f"i{v:03d}" for v in i]})
    kw = {"n_epochs": 3} if Est is not ImplicitALS else {"max_iter": 3}
    fits = [
        Est(n_factors=4, random_state=0, n_jobs=1, **kw).fit(Xv, y)
        for Xv in (codes, shifted, strings)
    ]
    for fit in fits[1:]:
        np.testing.assert_array_equal(fit.user_factors_, fits[0].user_factors_)
        np.testing.assert_array_equal(fit.item_factors_, fits[0].item_factors_)
    np.testing.assert_array_equal(fits[0].users_, np.arange(len(fits[0].users_)))
    assert codes[0, 0] == u[0]  # the caller's array is untouched


def test_verbose_prints_the_set_up_stages(capsys):
    X, y = make_ratings(n_users=30, n_items=20, n_ratings=300, random_state=0)
    MatrixFactorization(n_factors=2, n_epochs=1, verbose=1, n_jobs=1).fit(X, y)
    out = capsys.readouterr().out
    for stage in ("validate", "encode ids", "user-item matrix", "block schedule"):
        assert f"set-up  {stage}" in out
    ImplicitALS(n_factors=2, max_iter=1, verbose=0).fit(X)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------ helpers
def test_interactions_to_matrix_sums_repeats_and_sorts_ids():
    X = pd.DataFrame({"user": ["b", "a", "b", "b"], "item": [20, 10, 10, 20]})
    m, users, items = interactions_to_matrix(X, [1.0, 2.0, 3.0, 4.0])
    assert users.tolist() == ["a", "b"] and items.tolist() == [10, 20]
    np.testing.assert_array_equal(m.toarray(), [[2, 0], [3, 5]])
    m1, _, _ = interactions_to_matrix(X)
    np.testing.assert_array_equal(m1.toarray(), [[1, 0], [1, 2]])


def test_round_trip_matrix_to_interactions_and_back():
    rng = np.random.default_rng(3)
    dense = rng.integers(0, 4, (30, 12)) * (rng.random((30, 12)) < 0.3)
    dense[5] = 0  # an empty row: kept only when the ids are passed back
    m = sp.csr_matrix(dense.astype(np.float32))
    X, y = matrix_to_interactions(m)
    assert X.dtype == np.int32 and len(y) == m.nnz
    back, users, items = interactions_to_matrix(X, y, users=np.arange(30), items=np.arange(12))
    np.testing.assert_array_equal(back.toarray(), dense)
    # without the ids, the empty row disappears and the rest is unchanged
    back2, users2, _ = interactions_to_matrix(X, y)
    np.testing.assert_array_equal(back2.toarray(), np.delete(dense, 5, axis=0))
    assert 5 not in users2


def test_round_trip_with_raw_ids_and_frames():
    X = np.array([["ann", "tea"], ["bob", "tea"], ["ann", "jam"], ["cy", "oil"]], dtype=object)
    y = np.array([5.0, 3.0, 1.0, 2.0])
    m, users, items = interactions_to_matrix(X, y)
    frame, values = matrix_to_interactions(m, users, items, as_frame=True)
    got = sorted(zip(frame["user"], frame["item"], values))
    assert got == sorted(zip(X[:, 0], X[:, 1], y))
    X2, _ = matrix_to_interactions(m, users, items)
    assert sorted(map(tuple, X2.tolist())) == sorted(map(tuple, X.tolist()))


def test_matrix_to_interactions_does_not_alias_or_modify_the_matrix():
    m = sp.csr_matrix(np.array([[0, 2.0], [1.0, 0]]))
    X, y = matrix_to_interactions(m)
    y[:] = -1
    X[:] = 7
    np.testing.assert_array_equal(m.toarray(), [[0, 2], [1, 0]])
    Xd, yd = matrix_to_interactions(np.array([[0, 3], [0, 0]]))
    assert Xd.tolist() == [[0, 1]] and yd.tolist() == [3]


def test_helpers_reject_bad_input():
    X = np.array([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="not in the given users"):
        interactions_to_matrix(X, users=[0])
    with pytest.raises(ValueError, match="duplicates"):
        interactions_to_matrix(X, items=[0, 1, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        interactions_to_matrix(X, [1.0, np.nan])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        interactions_to_matrix(X, [1.0])
    with pytest.raises(ValueError, match="one id per row"):
        matrix_to_interactions(sp.eye(3, format="csr"), users=[1, 2])
    with pytest.raises(ValueError, match="2-d"):
        matrix_to_interactions(np.ones(3))


# ------------------------------------------------------------ recommend at scale
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offsets", [False, True])
@pytest.mark.parametrize("sorted_exclusions", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_topk_product_matches_dense_scores_then_topk_rows(dtype, offsets, sorted_exclusions, ties):
    from sklearn_mf import _topk

    rng = np.random.default_rng(5)
    n_rows, n_cols, k, dim = 150, 4500, 7, 8  # several row and column tiles
    U = rng.normal(size=(n_rows, dim)).astype(dtype)
    V = rng.normal(size=(n_cols, dim)).astype(dtype)
    if ties:  # small integer scores: most of a row ties with the heap's worst
        U, V = np.sign(U), np.sign(V) * (rng.random(V.shape) < 0.3)
    col_off = rng.normal(size=n_cols) if offsets else np.zeros(0)
    row_off = rng.normal(size=n_rows) if offsets else np.zeros(0)
    excl = sp.random(n_rows, n_cols + 3, density=0.01, format="csr", random_state=1)
    excl.sort_indices()  # sorted rows: both exclusion walks apply
    indptr, indices = excl.indptr.astype(np.int32), excl.indices.astype(np.int32)
    item_to_cand = np.r_[np.arange(n_cols), -1, -1, -1].astype(np.intp)  # 3 non-candidates
    row_map = np.arange(n_rows, dtype=np.intp)
    row_map[::10] = -1  # some rows exclude nothing
    # reference: dense scores in float64, then the plain top-k kernel
    S = U.astype(np.float64) @ V.T.astype(np.float64)
    if offsets:
        S += col_off + row_off[:, None]
    ref_s, ref_i = np.empty((n_rows, k)), np.empty((n_rows, k), dtype=np.intp)
    _topk.topk_rows(S, indptr, indices, row_map, item_to_cand, ref_s, ref_i, 1)
    got_s = np.empty((n_rows, k), dtype=dtype)
    got_i = np.empty((n_rows, k), dtype=np.intp)
    _topk.topk_product(
        U,
        V,
        col_off,
        row_off,
        indptr,
        indices,
        row_map,
        item_to_cand,
        got_s,
        got_i,
        2,
        sorted_exclusions,
    )
    np.testing.assert_array_equal(got_i, ref_i)
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-5, atol=1e-5)
    # excluded candidates never come back
    for r in np.flatnonzero(row_map >= 0):
        seen = set(indices[indptr[r] : indptr[r + 1]].tolist())
        assert not seen & set(got_i[r].tolist())


def test_topk_product_pads_rows_with_too_few_candidates():
    from sklearn_mf import _topk

    U = np.ones((2, 3), dtype=np.float32)
    V = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3]], dtype=np.float32)
    indptr = np.array([0, 2, 2], dtype=np.int32)
    indices = np.array([2, 0], dtype=np.int32)
    out_s = np.empty((2, 3), dtype=np.float32)
    out_i = np.empty((2, 3), dtype=np.intp)
    _topk.topk_product(
        U,
        V,
        np.zeros(0),
        np.zeros(0),
        indptr,
        indices,
        np.array([0, 1], dtype=np.intp),
        np.arange(3, dtype=np.intp),
        out_s,
        out_i,
        1,
    )
    np.testing.assert_array_equal(out_i, [[1, -1, -1], [2, 1, 0]])
    np.testing.assert_array_equal(out_s, [[2, -np.inf, -np.inf], [3, 2, 1]])
