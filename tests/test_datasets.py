"""make_ratings and load_movielens."""

import gzip

import numpy as np
import pandas as pd
import pytest

from sklearn_mf.datasets import load_movielens, make_ratings

# make_ratings(n_users=50, n_items=40, n_ratings=500, random_state=3), drawn at c180d2e
PINNED_JOINT_PAIRS = [[2, 22], [28, 19], [6, 18]]
PINNED_JOINT_RATINGS = [3.0, 5.0, 5.0, 3.0, 4.0]


@pytest.mark.parametrize("pair_sampling", ["joint", "per_user"])
def test_make_ratings_shapes_scale_and_distinct_pairs(pair_sampling):
    X, y = make_ratings(
        n_users=200, n_items=100, n_ratings=5000, pair_sampling=pair_sampling, random_state=0
    )
    assert X.shape == (5000, 3) and X.dtype == np.int64 and y.shape == (5000,)
    assert set(np.unique(y)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    pairs = X[:, 0] * 100 + X[:, 1]
    assert len(np.unique(pairs)) == 5000
    assert X[:, 0].min() >= 0 and X[:, 0].max() < 200
    assert X[:, 1].min() >= 0 and X[:, 1].max() < 100
    t = pd.to_datetime(X[:, 2], unit="s")
    assert (t.year == 2020).all()


@pytest.mark.parametrize("pair_sampling", ["joint", "per_user"])
def test_make_ratings_power_law_popularity(pair_sampling):
    X, _ = make_ratings(
        n_users=2000, n_items=1000, n_ratings=40_000, pair_sampling=pair_sampling, random_state=0
    )
    counts = np.sort(np.bincount(X[:, 1], minlength=1000))[::-1]
    # Zipf(1): the top 10% of items get far more than 10% of the ratings
    assert counts[:100].sum() > 0.45 * counts.sum()
    flat, _ = make_ratings(
        n_users=2000,
        n_items=1000,
        n_ratings=40_000,
        item_exponent=0.0,
        user_exponent=0.0,
        pair_sampling=pair_sampling,
        random_state=0,
    )
    flat_counts = np.sort(np.bincount(flat[:, 1], minlength=1000))[::-1]
    assert flat_counts[:100].sum() < 0.15 * flat_counts.sum()


def test_make_ratings_truth_and_noise():
    X, y, truth = make_ratings(
        n_users=300,
        n_items=200,
        n_ratings=10_000,
        noise=0.25,
        rating_scale=None,
        round_ratings=False,
        return_truth=True,
        random_state=1,
    )
    u, i = X[:, 0], X[:, 1]
    clean = (
        truth.global_mean
        + truth.user_bias[u]
        + truth.item_bias[i]
        + np.einsum("ij,ij->i", truth.user_factors[u], truth.item_factors[i])
    )
    np.testing.assert_allclose(truth.noise_free, clean)
    residual = y - clean
    assert residual.std() == pytest.approx(0.25, rel=0.05)
    # the planted interaction term has a standard deviation of ~1 on a 1-5 scale
    inter = np.einsum("ij,ij->i", truth.user_factors[u], truth.item_factors[i])
    assert 0.7 < inter.std() < 1.3
    assert list(truth.user_features.columns) == ["age", "group"]
    assert list(truth.item_features.columns) == ["genre", "year"]
    assert len(truth.user_features) == 300 and len(truth.item_features) == 200


@pytest.mark.parametrize("pair_sampling", ["joint", "per_user"])
def test_make_ratings_deterministic_and_frames(pair_sampling):
    kw = dict(n_users=50, n_items=40, n_ratings=500, pair_sampling=pair_sampling)
    a = make_ratings(**kw, random_state=3)
    b = make_ratings(**kw, random_state=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = make_ratings(**kw, random_state=4)
    assert not np.array_equal(a[0][:, :2], c[0][:, :2])
    X, y = make_ratings(**kw, as_frame=True, random_state=3)
    assert list(X.columns) == ["user", "item", "timestamp"] and y.name == "rating"
    np.testing.assert_array_equal(X.to_numpy(), a[0])


def test_make_ratings_joint_results_pinned():
    # the historical sampler keeps its draws for a given seed (tests and the
    # equivalence check depend on them)
    X, y = make_ratings(n_users=50, n_items=40, n_ratings=500, random_state=3)
    assert X[:3, :2].tolist() == PINNED_JOINT_PAIRS
    assert y[:5].tolist() == PINNED_JOINT_RATINGS


def test_alias_table_reproduces_the_probabilities():
    from sklearn_mf.datasets._synthetic_fast import build_alias

    rng = np.random.default_rng(0)
    for p in (np.array([0.5, 0.25, 0.125, 0.125]), rng.dirichlet(np.full(37, 0.3))):
        n = len(p)
        prob = np.empty(n)
        alias = np.empty(n, dtype=np.int32)
        build_alias(p, prob, alias)
        assert ((prob >= 0) & (prob <= 1)).all()
        # column j keeps itself w.p. prob[j], else gives alias[j]; columns uniform
        implied = prob / n + np.bincount(alias, weights=(1 - prob) / n, minlength=n)
        np.testing.assert_allclose(implied, p, atol=1e-12)


def test_per_user_kernel_distinct_capped_and_thread_independent():
    from sklearn_mf.datasets._synthetic import _powerlaw_probs, _user_degrees
    from sklearn_mf.datasets._synthetic_fast import build_alias, sample_user_items

    rng = np.random.default_rng(0)
    n_users, n_items, n_ratings = 300, 50, 6000
    pu = _powerlaw_probs(n_users, 1.5, rng)  # steep: the top users hit the cap
    d = _user_degrees(n_ratings, 25, pu, rng)
    assert d.sum() == n_ratings and d.max() == 25 and d.min() >= 0
    offsets = np.concatenate([[0], np.cumsum(d)]).astype(np.int64)
    pi = _powerlaw_probs(n_items, 1.0, rng)
    prob, alias = np.empty(n_items), np.empty(n_items, dtype=np.int32)
    build_alias(pi, prob, alias)
    outs = []
    for n_threads in (1, 2, 3):
        out = np.full(n_ratings, -1, dtype=np.int32)
        sample_user_items(offsets, prob, alias, 12345, out, n_threads)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])
    out = outs[0]
    assert out.min() >= 0 and out.max() < n_items
    for u in range(n_users):
        row = out[offsets[u] : offsets[u + 1]]
        assert len(np.unique(row)) == len(row)
    # users far below the cap draw by popularity: the ranking of items follows pi
    light = np.repeat(d < 10, d)
    counts = np.bincount(out[light], minlength=n_items)
    top = np.argsort(pi)[::-1]
    assert counts[top[:5]].sum() > 4 * counts[top[-25:]].sum() / 5


def test_make_ratings_per_user_near_saturation():
    # half of all cells: the shortfall of the saturated users is filled uniformly
    X, _ = make_ratings(n_users=20, n_items=11, n_ratings=110, pair_sampling="per_user")
    pairs = X[:, 0] * 11 + X[:, 1]
    assert len(np.unique(pairs)) == 110
    assert np.bincount(X[:, 0]).max() <= 6


def test_make_ratings_bad_arguments():
    with pytest.raises(ValueError, match="more than half"):
        make_ratings(n_users=10, n_items=10, n_ratings=60)
    with pytest.raises(ValueError, match="rating_scale"):
        make_ratings(n_users=10, n_items=10, n_ratings=5, rating_scale=(5, 1))
    with pytest.raises(ValueError, match="n_factors"):
        make_ratings(n_factors=0)
    with pytest.raises(ValueError, match="more than half"):
        make_ratings(n_users=10, n_items=10, n_ratings=60, pair_sampling="per_user")
    with pytest.raises(ValueError, match="pair_sampling"):
        make_ratings(pair_sampling="dedup")


# ------------------------------------------------------------------ MovieLens
def test_load_movielens_100k_shared_copy(ml100k):
    r = ml100k.ratings
    assert r.shape == (100_000, 4)
    assert list(r.columns) == ["user", "item", "rating", "timestamp"]
    assert r["user"].nunique() == 943 and r["item"].nunique() == 1682
    assert r["rating"].mean() == pytest.approx(3.52986)
    assert r.iloc[0].tolist() == [196, 242, 3, 881250949]
    assert r["timestamp"].min() == 874724710 and r["timestamp"].max() == 893286638
    assert len(ml100k.users) == 943 and {"age", "gender", "occupation"} <= set(ml100k.users)
    assert len(ml100k.movies) == 1682 and {"title", "genres", "year"} <= set(ml100k.movies)
    assert ml100k.X.shape == (100_000, 3) and ml100k.y.dtype == float


def test_load_movielens_latest_small_csv(ml_latest_small_path):
    data = load_movielens(ml_latest_small_path)
    assert data.layout == "csv"
    assert data.ratings.shape == (100_836, 4)
    assert data.ratings["user"].nunique() == 610
    assert data.ratings["item"].nunique() == 9724
    assert len(data.movies) == 9742 and data.users is None
    assert data.movies.loc[data.movies["item"] == 1, "year"].item() == 1995


def _write(path, text, compress=False):
    if compress:
        with gzip.open(str(path) + ".gz", "wt", encoding="latin-1") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="latin-1")


@pytest.mark.parametrize("compress", [False, True])
def test_load_movielens_official_100k_layout(tmp_path, compress):
    _write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n", compress)
    _write(tmp_path / "u.user", "196|49|M|writer|55105\n186|39|F|executive|00000\n", compress)
    flags_242 = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)  # Comedy
    flags_302 = "|".join(["0"] * 6 + ["1"] + ["0"] * 9 + ["1", "0", "0"])  # Crime, Thriller
    _write(
        tmp_path / "u.item",
        f"242|Kolya (1996)|24-Jan-1997||http://x|{flags_242}\n"
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://y|{flags_302}\n",
        compress,
    )
    data = load_movielens(tmp_path)
    assert data.layout == "100k"
    assert data.ratings.values.tolist() == [[196, 242, 3, 881250949], [186, 302, 3, 891717742]]
    assert data.users["occupation"].tolist() == ["writer", "executive"]
    assert data.movies["genres"].tolist() == ["Comedy", "Crime|Thriller"]
    assert data.movies["year"].tolist() == [1997, 1997]


def test_load_movielens_official_1m_layout(tmp_path):
    _write(tmp_path / "ratings.dat", "1::1193::5::978300760\n2::661::3::978302109\n")
    _write(tmp_path / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    _write(
        tmp_path / "movies.dat",
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n",
    )
    data = load_movielens(tmp_path / "ratings.dat")  # a file path works too
    assert data.layout == "1m"
    assert data.ratings["rating"].tolist() == [5, 3]
    assert data.users["gender"].tolist() == ["F", "M"]
    assert data.movies["year"].tolist() == [1975, 1996]


def test_load_movielens_csv_layout(tmp_path):
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    _write(tmp_path / "movies.csv", "movieId,title,genres\n31,Dangerous Minds (1995),Drama\n")
    data = load_movielens(tmp_path)
    assert data.ratings.values.tolist() == [[1, 31, 2.5, 1260759144]]
    assert data.movies["year"].tolist() == [1995]


def test_load_movielens_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No MovieLens ratings file"):
        load_movielens(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_movielens(tmp_path / "missing")
