"""Ranking and beyond-accuracy metrics: hand-computed cases, sklearn oracles, edge cases."""

import itertools

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import ndcg_score, roc_auc_score

from sklearn_mf.metrics import (
    auc,
    coverage,
    hit_rate_at_k,
    intra_list_diversity,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
    serendipity,
)

ACCURACY = [precision_at_k, recall_at_k, ndcg_at_k, map_at_k, mrr_at_k, hit_rate_at_k]

# ---------------------------------------------------------------- a hand case
# u0: truth {a, c}, list a b c d -> hits at ranks 1 and 3
# u1: truth {x},    list y z x <pad> -> hit at rank 3, one padded slot
# u2: no relevant item (skipped by default)
# u3: truth {q, r, s}, no hit
TRUTH = [["a", "c"], {"x"}, [], ["q", "r", "s"]]
REC = np.array(
    [["a", "b", "c", "d"], ["y", "z", "x", None], ["a", "b", "c", "d"], ["p", "o", "n", "m"]],
    dtype=object,
)
L3 = 1 / np.log2(3)  # discount of rank 2
L4 = 1 / np.log2(4)  # discount of rank 3 (= 0.5)

HAND = {
    precision_at_k: [2 / 4, 1 / 4, np.nan, 0.0],
    recall_at_k: [1.0, 1.0, np.nan, 0.0],
    hit_rate_at_k: [1.0, 1.0, np.nan, 0.0],
    mrr_at_k: [1.0, 1 / 3, np.nan, 0.0],
    map_at_k: [(1 / 1 + 2 / 3) / 2, (1 / 3) / 1, np.nan, 0.0],
    ndcg_at_k: [(1 + L4) / (1 + L3), L4 / 1, np.nan, 0.0],
}


@pytest.mark.parametrize("metric", ACCURACY, ids=lambda f: f.__name__)
def test_hand_computed_per_user_and_mean(metric):
    expected = np.array(HAND[metric])
    per_user = metric(TRUTH, REC, k=4, average=False)
    assert_allclose(per_user, expected, rtol=1e-12)
    assert metric(TRUTH, REC, k=4) == pytest.approx(np.nanmean(expected), rel=1e-12)
    # no_relevant="zero": the empty user scores 0 and is averaged in
    zero = metric(TRUTH, REC, k=4, no_relevant="zero")
    assert zero == pytest.approx(np.nan_to_num(expected).mean(), rel=1e-12)


def test_hand_computed_at_smaller_k():
    # k=2: u0 hits only "a"; u1 has no hit in [y, z]
    assert_allclose(precision_at_k(TRUTH, REC, k=2, average=False), [0.5, 0, np.nan, 0])
    assert_allclose(recall_at_k(TRUTH, REC, k=2, average=False), [0.5, 0, np.nan, 0])
    # AP@2 of u0: (1/1) / min(2, 2)
    assert_allclose(map_at_k(TRUTH, REC, k=2, average=False), [0.5, 0, np.nan, 0])
    # NDCG@2 of u0: 1 / (1 + 1/log2(3))
    assert_allclose(ndcg_at_k(TRUTH, REC, k=2, average=False), [1 / (1 + L3), 0, np.nan, 0])


def test_map_denominator_is_min_k_and_n_relevant():
    # 5 relevant items, k=2, both slots hit -> AP@2 = 1
    assert map_at_k([list("abcde")], [["a", "b"]], k=2) == 1.0
    # recall keeps |relevant| as denominator
    assert recall_at_k([list("abcde")], [["a", "b"]], k=2) == pytest.approx(2 / 5)


def test_graded_ndcg_hand_computed():
    truth = [{"a": 3, "b": 1, "c": 2}]
    rec = [["b", "a", "d"]]
    dcg = 1 + 3 * L3
    idcg = 3 + 2 * L3 + 1 * L4
    assert ndcg_at_k(truth, rec, k=3) == pytest.approx(dcg / idcg, rel=1e-12)
    dcg_e = 1 + 7 * L3
    idcg_e = 7 + 3 * L3 + 1 * L4
    assert ndcg_at_k(truth, rec, k=3, gains="exponential") == pytest.approx(
        dcg_e / idcg_e, rel=1e-12
    )
    # grades only matter through > 0 for the other metrics
    assert precision_at_k(truth, rec, k=3) == pytest.approx(2 / 3)
    # a Series is the same as a mapping
    assert ndcg_at_k([pd.Series({"a": 3, "b": 1, "c": 2})], rec, k=3) == pytest.approx(dcg / idcg)


def test_positional_and_keyed_forms_agree():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 40, 25, 6
    R = (rng.random((n_users, n_items)) < 0.2) * rng.integers(1, 4, (n_users, n_items))
    rec = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    rec[::7, -2:] = -1  # some padding
    names = np.array([f"i{j}" for j in range(n_items)], dtype=object)
    rec_ids = np.where(rec >= 0, names[np.maximum(rec, 0)], None)
    keyed = [pd.Series(R[u][R[u] > 0], index=names[R[u] > 0]) for u in range(n_users)]
    T = sp.csr_matrix(R)
    for metric in ACCURACY:
        assert_allclose(
            metric(T, rec, k=k, average=False),
            metric(keyed, rec_ids, k=k, average=False),
            equal_nan=True,
        )
    assert_allclose(
        auc(T, rec, k=k, average=False),
        auc(keyed, rec_ids, k=k, n_items=n_items, average=False),
        equal_nan=True,
    )


@pytest.mark.parametrize("k", [1, 3, 10])
def test_ndcg_matches_sklearn_ndcg_score(k):
    # Same definition when the list is the argsort of untied scores and every
    # user has a relevant item: linear gain, log2 discount, top-k ideal.
    rng = np.random.default_rng(1)
    n_users, n_items = 60, 30
    y_true = rng.integers(0, 4, (n_users, n_items)) * (rng.random((n_users, n_items)) < 0.3)
    y_true[np.arange(n_users), rng.integers(0, n_items, n_users)] = 2
    scores = rng.random((n_users, n_items))
    rec = np.argsort(-scores, axis=1)[:, :k]
    ours = ndcg_at_k(sp.csr_matrix(y_true), rec, k=k, average=False)
    theirs = [ndcg_score(y_true[u : u + 1], scores[u : u + 1], k=k) for u in range(n_users)]
    assert_allclose(ours, theirs, rtol=1e-12)
    assert ndcg_at_k(sp.csr_matrix(y_true), rec, k=k) == pytest.approx(
        ndcg_score(y_true, scores, k=k), rel=1e-12
    )


def test_ndcg_ties_equal_sklearn_tie_average():
    # sklearn averages the gain over tied scores; that equals the mean of our
    # (list-based) NDCG over every order of the tied items.
    y_true = np.array([[3, 0, 1, 2, 0, 1]])
    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.1, 0.0]])  # items 1, 2, 3 tied
    k = 4
    values = []
    for perm in itertools.permutations([1, 2, 3]):
        rec = np.array([[0, *perm, 4, 5]])
        values.append(ndcg_at_k(sp.csr_matrix(y_true), rec, k=k))
    assert np.mean(values) == pytest.approx(ndcg_score(y_true, scores, k=k), rel=1e-12)
    # ties in the truth (two items of grade 1) do not change the ideal DCG
    a = ndcg_at_k([{"a": 1, "b": 1}], [["a", "c"]], k=2)
    b = ndcg_at_k([{"a": 1, "b": 1}], [["b", "c"]], k=2)
    assert a == b == pytest.approx(1 / (1 + L3))


def test_auc_matches_roc_auc_score_on_list_scores():
    rng = np.random.default_rng(2)
    n_users, n_items, k = 30, 20, 5
    rel = rng.random((n_users, n_items)) < 0.25
    rel[:, 0] = True  # everyone has a relevant item
    rel[:, 1] = False  # and a non-relevant one
    rec = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    ours = auc(sp.csr_matrix(rel.astype(float)), rec, k=k, average=False)
    for u in range(n_users):
        s = np.zeros(n_items)
        s[rec[u]] = k - np.arange(k)  # listed items in order, the rest tied at 0
        assert ours[u] == pytest.approx(roc_auc_score(rel[u], s), rel=1e-12)


def test_auc_hand_cases():
    # perfect: every relevant item on top
    assert auc([["a", "b"]], [["a", "b", "c"]], n_items=5) == 1.0
    # empty list: everything tied -> 0.5
    assert auc([["a"]], [[None, None]], n_items=4) == 0.5
    # per-user n_items
    assert_allclose(
        auc([["b"], ["b"]], [["a", "b"], ["a", "b"]], n_items=[4, 3], average=False), [2 / 3, 1 / 2]
    )
    with pytest.raises(ValueError, match="needs n_items"):
        auc([["a"]], [["a"]])
    with pytest.raises(ValueError, match="smaller than the 2 items"):
        auc([["a"]], [["a", "b"]], n_items=1)
    # all candidates relevant: undefined
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(auc([["a", "b"]], [["a", "b"]], n_items=2))


# ------------------------------------------------------------------ edge cases
def test_padding_forms_are_equivalent_and_count_as_misses():
    truth = [["a"]]
    a = precision_at_k(truth, np.array([["a", None, None]], dtype=object), k=3)
    b = precision_at_k(truth, np.array([["a", np.nan, np.nan]], dtype=object), k=3)
    assert a == b == pytest.approx(1 / 3)
    T = sp.csr_matrix(np.array([[0, 1, 0]]))
    assert precision_at_k(T, np.array([[1, -1, -1]]), k=3) == pytest.approx(1 / 3)
    assert precision_at_k(T, np.array([[1.0, np.nan, np.nan]]), k=3) == pytest.approx(1 / 3)
    assert ndcg_at_k(T, np.array([[-1, 1, -1]]), k=3) == pytest.approx(L3)


def test_all_users_without_relevant_items_warn_and_return_nan():
    for metric in ACCURACY:
        with pytest.warns(UndefinedMetricWarning, match="none of the 2 user"):
            assert np.isnan(metric([[], []], [["a"], ["b"]], k=1))
        assert metric([[], []], [["a"], ["b"]], k=1, no_relevant="zero") == 0.0


def test_k_none_uses_all_columns_and_k_too_large_errors():
    assert precision_at_k([["a"]], [["a", "b"]]) == 0.5
    with pytest.raises(ValueError, match="k=3 but recommended has only 2 column"):
        precision_at_k([["a"]], [["a", "b"]], k=3)
    with pytest.raises(ValueError, match="positive integer"):
        precision_at_k([["a"]], [["a", "b"]], k=0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="same item twice"):
        precision_at_k([["a"]], [["a", "a"]])
    with pytest.raises(ValueError, match="y_true has 1 entries .* recommended has 2"):
        precision_at_k([["a"]], [["a"], ["b"]])
    with pytest.raises(ValueError, match="y_true has 2 rows"):
        precision_at_k(sp.csr_matrix(np.ones((2, 3))), [[0]])
    with pytest.raises(TypeError, match="integer item indices"):
        precision_at_k(sp.csr_matrix(np.ones((1, 3))), [["a"]])
    with pytest.raises(ValueError, match="item index 7 but y_true has only 3"):
        precision_at_k(sp.csr_matrix(np.ones((1, 3))), [[7]])
    with pytest.raises(ValueError, match="2-dimensional"):
        precision_at_k([["a"]], ["a", "b"])
    with pytest.raises(TypeError, match="collection of item ids"):
        precision_at_k(["a"], [["a"]])
    with pytest.raises(ValueError, match="no_relevant"):
        precision_at_k([["a"]], [["a"]], no_relevant="drop")
    with pytest.raises(ValueError, match="gains"):
        ndcg_at_k([["a"]], [["a"]], gains="log")
    with pytest.raises(ValueError, match="NaN or infinite"):
        ndcg_at_k([{"a": np.nan}], [["a"]])


def test_inputs_are_not_modified():
    T = sp.csr_matrix(np.array([[0.0, 2.0, -1.0, 1.0]]))
    T_copy = T.copy()
    rec = np.array([[3, 1, -1]])
    rec_copy = rec.copy()
    truth = [["a", "a", "b"]]
    for metric in ACCURACY:
        metric(T, rec)
        metric(truth, [["a", None]])
    assert (T != T_copy).nnz == 0 and np.array_equal(rec, rec_copy)
    assert truth == [["a", "a", "b"]]


def test_duplicate_and_nonpositive_truth_entries():
    # duplicates of an item in the truth count once; negative grades are not relevant
    assert recall_at_k([["a", "a", "b"]], [["a", "c"]]) == 0.5
    T = sp.csr_matrix(np.array([[0.0, 2.0, -1.0, 1.0]]))
    assert recall_at_k(T, [[1, 2]]) == 0.5


def test_integer_ids_in_keyed_form():
    truth = [np.array([10, 20]), np.array([30])]
    rec = np.array([[20, 11], [31, 30]])
    assert_allclose(precision_at_k(truth, rec, average=False), [0.5, 0.5])
    # mixing int32 and int64 ids still matches
    assert_allclose(precision_at_k([np.array([10], dtype=np.int32)], np.array([[10, 1]])), 0.5)


# ------------------------------------------------------------ beyond accuracy
def test_coverage_hand_cases():
    rec = np.array([["a", "b"], ["a", "c"], ["d", None]], dtype=object)
    assert coverage(rec, 10) == pytest.approx(4 / 10)
    assert coverage(rec, 10, k=1) == pytest.approx(2 / 10)
    # ids: "d" is outside the given catalogue and is not counted
    assert coverage(rec, ["a", "b", "c", "e"]) == pytest.approx(3 / 4)
    assert coverage(np.array([[0, 1], [1, -1]]), 4) == 0.5
    with pytest.raises(ValueError, match="4 distinct items were recommended but the catalogue"):
        coverage(rec, 3)


def test_novelty_hand_cases():
    pop = pd.Series({"a": 8, "b": 2, "c": 1})
    # p = pop / 8 users: -log2 -> a: 0, b: 2, c: 3
    assert_allclose(novelty([["a", "b"], ["c", None]], pop, n_users=8, average=False), [1.0, 3.0])
    # normaliser defaults to the total count (11)
    assert novelty([["c"]], pop) == pytest.approx(np.log2(11))
    # positional form; an unknown/zero-popularity item counts as popularity 1
    assert novelty(np.array([[0, 2]]), np.array([4, 1, 0]), n_users=4) == pytest.approx(1.0)
    assert novelty([["zzz"]], pop, n_users=8) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="non-negative"):
        novelty([[0]], np.array([-1.0]))


def _ild_bruteforce(rec, F):
    out = []
    for row in rec:
        items = [i for i in row if i >= 0]
        d = []
        for i, j in itertools.combinations(items, 2):
            ni, nj = np.linalg.norm(F[i]), np.linalg.norm(F[j])
            cos = 0.0 if ni == 0 or nj == 0 else F[i] @ F[j] / (ni * nj)
            d.append(1 - cos)
        out.append(np.mean(d) if d else np.nan)
    return np.array(out)


def test_intra_list_diversity_vs_bruteforce_and_forms():
    rng = np.random.default_rng(3)
    F = rng.normal(size=(30, 5))
    F[4] = 0  # zero vector: similarity 0 with everything
    rec = np.argsort(rng.random((25, 30)), axis=1)[:, :6]
    rec[0, 1:] = -1  # single item: NaN
    rec[1, [3, 4]] = rec[1, [4, 3]]  # the zero vector (item 4) moves to slot 3
    assert rec[1, 3] == 4
    expected = _ild_bruteforce(rec, F)
    assert_allclose(intra_list_diversity(rec, F, average=False), expected, rtol=1e-10)
    assert intra_list_diversity(rec, F) == pytest.approx(np.nanmean(expected), rel=1e-10)
    # sparse features and keyed DataFrame give the same numbers
    assert_allclose(
        intra_list_diversity(rec, sp.csr_matrix(F), average=False), expected, rtol=1e-10
    )
    frame = pd.DataFrame(F, index=[f"m{j}" for j in range(30)])
    ids = np.where(rec >= 0, np.array(frame.index, dtype=object)[np.maximum(rec, 0)], None)
    assert_allclose(intra_list_diversity(ids, frame, average=False), expected, rtol=1e-10)


def test_intra_list_diversity_genres():
    genres = pd.DataFrame({"drama": [1, 1, 0], "comedy": [0, 0, 1]}, index=["x", "y", "z"])
    assert intra_list_diversity([["x", "y"]], genres) == pytest.approx(0.0)
    assert intra_list_diversity([["x", "z"]], genres) == pytest.approx(1.0)
    with pytest.raises(TypeError, match="positional"):
        intra_list_diversity([["x", "z"]], genres.to_numpy())


def test_serendipity_hand_cases():
    truth = [["a", "c", "d"], ["b"], []]
    rec = [["a", "c", "e"], ["b", "c", "a"], ["a", "b", "c"]]
    # expected (popular) = {a, b}: u0 has one unexpected hit (c) of 3 slots, u1 none
    assert_allclose(serendipity(truth, rec, ["a", "b"], k=3, average=False), [1 / 3, 0.0, np.nan])
    # per-user expected lists
    assert_allclose(
        serendipity(truth, rec, [["a", None], ["c", "e"], ["a", "b"]], k=3, average=False),
        [1 / 3, 1 / 3, np.nan],
    )
    # positional form
    T = sp.csr_matrix(np.array([[1, 0, 1, 1]]))
    assert serendipity(T, np.array([[0, 2]]), np.array([0]), k=2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one row per user"):
        serendipity(truth, rec, [["a"], ["b"]], k=3)


def test_ranking_metrics_equals_the_individual_functions():
    rng = np.random.default_rng(4)
    R = (rng.random((50, 30)) < 0.2) * rng.integers(1, 4, (50, 30))
    T = sp.csr_matrix(R)
    rec = np.argsort(rng.random((50, 30)), axis=1)[:, :10]
    got = ranking_metrics(T, rec, k=[3, 10], gains="exponential")
    assert len(got) == 7 * 2
    funcs = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "map": map_at_k,
        "mrr": mrr_at_k,
        "hit_rate": hit_rate_at_k,
    }
    for k in (3, 10):
        for name, f in funcs.items():
            assert got[f"{name}@{k}"] == pytest.approx(f(T, rec, k=k), rel=1e-12)
        assert got[f"ndcg@{k}"] == pytest.approx(
            ndcg_at_k(T, rec, k=k, gains="exponential"), rel=1e-12
        )
        assert got[f"auc@{k}"] == pytest.approx(auc(T, rec, k=k), rel=1e-12)
    per_user = ranking_metrics(T, rec, k=5, metrics=["recall"], average=False)
    assert_allclose(per_user["recall@5"], recall_at_k(T, rec, k=5, average=False))
    # keyed form: auc only with n_items
    keyed = [np.flatnonzero(row) for row in R]
    assert "auc@10" not in ranking_metrics(keyed, rec, k=10)
    with pytest.raises(ValueError, match="auc needs n_items"):
        ranking_metrics(keyed, rec, k=10, metrics=["auc"])
    with pytest.raises(ValueError, match="Unknown metric"):
        ranking_metrics(T, rec, metrics=["f1"])


def test_lookup_against_dense_bruteforce():
    # rows of very different lengths (empty, 1, long) exercise the binary search
    rng = np.random.default_rng(5)
    n_users, n_items, k = 40, 300, 8
    dense = np.zeros((n_users, n_items))
    lengths = rng.choice([0, 1, 2, 17, 299, 300], size=n_users)
    for u, m in enumerate(lengths):
        dense[u, rng.choice(n_items, size=m, replace=False)] = rng.integers(1, 5, m)
    rec = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    rec[::5, -1] = -1
    gains = np.where(rec >= 0, dense[np.arange(n_users)[:, None], np.maximum(rec, 0)], 0)
    n_rel = (dense > 0).sum(axis=1)
    expected = np.where(n_rel > 0, (gains > 0).sum(axis=1) / k, np.nan)
    assert_allclose(precision_at_k(sp.csr_matrix(dense), rec, k=k, average=False), expected)
    # an unsorted, duplicated CSR gives the same (canonicalised on a copy)
    coo = sp.coo_matrix(dense)
    order = rng.permutation(coo.nnz)
    rows = np.concatenate([coo.row[order], coo.row[:3]])
    cols = np.concatenate([coo.col[order], coo.col[:3]])
    vals = np.concatenate([coo.data[order], np.zeros(3)])
    messy = sp.csr_matrix((vals, (rows, cols)), shape=dense.shape)
    messy.has_canonical_format = False
    assert_allclose(precision_at_k(messy, rec, k=k, average=False), expected)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_lookup_kernel_matches_numpy_reference(index_dtype, n_threads, monkeypatch):
    from sklearn_mf.metrics import _ranking

    rng = np.random.default_rng(6)
    T = sp.random(300, 500, density=0.05, format="csr", random_state=6, dtype=np.float64)
    T.data = rng.integers(1, 5, T.nnz).astype(float)
    T.indices = T.indices.astype(index_dtype)
    T.indptr = T.indptr.astype(index_dtype)
    T.sort_indices()
    codes = np.argsort(rng.random((300, 500)), axis=1)[:, :12]
    codes[::4, 5:] = -1
    monkeypatch.setattr(_ranking, "effective_n_threads", lambda n_jobs: n_threads)
    got = _ranking._lookup(T, codes)
    assert_allclose(got, _ranking._lookup_numpy(T, codes), rtol=0, atol=0)
    dense = T.toarray()
    assert_allclose(
        got, np.where(codes >= 0, dense[np.arange(300)[:, None], np.maximum(codes, 0)], 0)
    )
