"""Synthetic ratings from a planted low-rank model."""

import numbers

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params


def _powerlaw_probs(n, exponent, rng):
    """Zipf-like probabilities over ``n`` entities, in a random order."""
    p = 1.0 / np.arange(1, n + 1) ** exponent
    p /= p.sum()
    return p[rng.permutation(n)]


def _sorted_unique(a):
    """Sorted distinct values (sorting beats numpy's hash-based unique here)."""
    a = np.sort(a)
    keep = np.empty(len(a), dtype=bool)
    keep[:1] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _check_room(n_users, n_items, n_ratings):
    if n_ratings > 0.5 * n_users * n_items:
        raise ValueError(
            f"n_ratings={n_ratings} is more than half of n_users * n_items = "
            f"{n_users * n_items}; use a larger catalogue or fewer ratings."
        )


def _sample_pairs(n_users, n_items, n_ratings, pu, pi, rng):
    """``n_ratings`` distinct (user, item) pairs drawn by popularity.

    Pairs are drawn with probability ``pu[u] * pi[i]`` and de-duplicated, with
    the oversampling adapted to the duplicate rate seen so far.  The most
    popular cells saturate (an item cannot be rated more often than there are
    users), so after a few rounds any shortfall is filled with uniformly drawn
    new pairs.
    """
    _check_room(n_users, n_items, n_ratings)
    keys = np.empty(0, dtype=np.int64)
    keep_rate = 1.0
    for round_ in range(4):
        missing = n_ratings - len(keys)
        if missing <= 0:
            break
        size = int(missing / keep_rate * 1.1) + 16
        if round_ < 3:
            new = rng.choice(n_users, size=size, p=pu).astype(np.int64) * n_items
            new += rng.choice(n_items, size=size, p=pi)
        else:  # saturated: top up uniformly
            new = rng.integers(0, n_users * n_items, size=size, dtype=np.int64)
        before = len(keys)
        keys = _sorted_unique(np.concatenate([keys, new]))
        keep_rate = max((len(keys) - before) / size, 0.05)
    if len(keys) < n_ratings:  # pragma: no cover - only for near-dense requests
        raise RuntimeError("Could not draw enough distinct pairs; lower n_ratings.")
    keys = keys[rng.permutation(len(keys))[:n_ratings]]
    return keys // n_items, keys % n_items


def _user_degrees(n_ratings, cap, pu, rng):
    """Ratings per user: multinomial by activity, none above ``cap``.

    What the cap cuts off is drawn again over the users below it, by activity,
    until nothing is left (the last crumbs fill free slots in user order).
    """
    d = rng.multinomial(n_ratings, pu)
    for _ in range(30):
        excess = int(np.maximum(d - cap, 0).sum())
        if excess == 0:
            return d
        np.minimum(d, cap, out=d)
        w = np.where(d < cap, pu, 0.0)
        d += rng.multinomial(excess, w / w.sum())
    excess = int(np.maximum(d - cap, 0).sum())
    np.minimum(d, cap, out=d)
    free = np.cumsum(cap - d)
    last = int(np.searchsorted(free, excess))
    d[:last] = cap
    d[last] += excess - (int(free[last - 1]) if last else 0)
    return d


def _sample_pairs_per_user(n_users, n_items, n_ratings, pu, pi, rng):
    """``n_ratings`` distinct pairs, distinct by construction.

    Each user's number of ratings is drawn by activity (at most half the
    catalogue), then her items without replacement by popularity in a
    parallel kernel (:mod:`._synthetic_fast`); the pairs come back in random
    order.  Linear time and about 17 bytes per rating besides the output.
    """
    from sklearn_mf._openmp_helpers import openmp_max_threads
    from sklearn_mf.datasets._synthetic_fast import build_alias, sample_user_items

    _check_room(n_users, n_items, n_ratings)
    d = _user_degrees(n_ratings, (n_items + 1) // 2, pu, rng)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(d, out=offsets[1:])
    prob = np.empty(n_items)
    alias = np.empty(n_items, dtype=np.int32)
    build_alias(pi, prob, alias)
    items = np.empty(n_ratings, dtype=np.int32)
    seed = int(rng.integers(0, 2**63))
    sample_user_items(offsets, prob, alias, seed, items, openmp_max_threads())
    users = np.repeat(np.arange(n_users, dtype=np.int32), d)
    del d, offsets
    order = rng.permutation(n_ratings)
    users = users[order]
    items = items[order]
    return users, items


@validate_params(
    {
        "n_users": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_items": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_ratings": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_factors": [Interval(numbers.Integral, 1, None, closed="left")],
        "noise": [Interval(numbers.Real, 0, None, closed="left")],
        "rating_scale": [tuple, None],
        "round_ratings": ["boolean"],
        "user_exponent": [Interval(numbers.Real, 0, None, closed="left")],
        "item_exponent": [Interval(numbers.Real, 0, None, closed="left")],
        "pair_sampling": [StrOptions({"joint", "per_user"})],
        "as_frame": ["boolean"],
        "return_truth": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_ratings(
    n_users=1000,
    n_items=500,
    n_ratings=50_000,
    *,
    n_factors=10,
    noise=0.5,
    rating_scale=(1, 5),
    round_ratings=True,
    user_exponent=0.8,
    item_exponent=1.0,
    pair_sampling="joint",
    as_frame=False,
    return_truth=False,
    random_state=None,
):
    r"""Generate ratings from a planted biased low-rank model.

    Each rating is

    .. math::

        r_{ui} = \mu + b_u + b_i + p_u^\top q_i + \varepsilon,
        \qquad \varepsilon \sim \mathcal N(0, \text{noise}^2),

    then clipped to ``rating_scale`` and optionally rounded.  The (user, item)
    pairs are distinct and drawn with power-law user activity and item
    popularity (Zipf exponents ``user_exponent`` and ``item_exponent``), as in
    real catalogues.  The planted interaction term has a standard deviation of
    a quarter of the rating range.  Each rating gets a timestamp (Unix seconds,
    uniform over the year 2020), and users and items get side features
    correlated with their latent factors.

    Parameters
    ----------
    n_users, n_items : int, default=1000, 500
        Size of the population and of the catalogue.
    n_ratings : int, default=50_000
        Number of distinct (user, item) ratings (at most half of all cells).
    n_factors : int, default=10
        Rank of the planted interaction term.
    noise : float, default=0.5
        Standard deviation of the Gaussian rating noise (before rounding).
    rating_scale : tuple (low, high) or None, default=(1, 5)
        Clip ratings to this range; None leaves them unbounded.
    round_ratings : bool, default=True
        Round ratings to integers (after clipping).
    user_exponent, item_exponent : float, default=0.8, 1.0
        Zipf exponents of user activity and item popularity (0 = uniform).
    pair_sampling : {"joint", "per_user"}, default="joint"
        How the distinct pairs are drawn.  ``"joint"`` draws pairs with
        probability proportional to activity times popularity and removes
        duplicates by sorting (the historical generator; its results for a
        given seed are kept).  ``"per_user"`` draws each user's number of
        ratings by activity (at most half the catalogue), then her items
        without replacement by popularity, in a parallel kernel whose result
        does not depend on the number of threads: distinct by construction,
        linear time, for 10-100 million ratings (100M ratings over
        1M users x 200k items take about a minute and under 6 GB).  The most
        active users and popular items saturate either way, and both fill the
        shortfall with uniformly drawn pairs.
    as_frame : bool, default=False
        Return ``X`` as a DataFrame with columns ``user``, ``item``,
        ``timestamp`` and ``y`` as a Series named ``rating``.
    return_truth : bool, default=False
        Also return a Bunch with the planted model and the side features.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of int64 of shape (n_ratings, 3) or DataFrame
        Columns: user id, item id, timestamp.
    y : ndarray of float64 of shape (n_ratings,) or Series
        Ratings.
    truth : Bunch
        Only when ``return_truth=True``: ``global_mean``, ``user_bias``,
        ``item_bias``, ``user_factors``, ``item_factors``, ``noise_free``
        (the rating before noise, clipping and rounding) and the side tables
        ``user_features`` (``age``, ``group``) and ``item_features``
        (``genre``, ``year``), indexed by id.

    Examples
    --------
    >>> from sklearn_mf.datasets import make_ratings
    >>> X, y = make_ratings(n_users=50, n_items=40, n_ratings=500, random_state=0)
    >>> X.shape, y.shape
    ((500, 3), (500,))
    >>> float(y.min()) >= 1 and float(y.max()) <= 5
    True
    """
    rs = check_random_state(random_state)
    rng = np.random.default_rng(rs.randint(2**31))
    if rating_scale is not None:
        if len(rating_scale) != 2 or not rating_scale[0] < rating_scale[1]:
            raise ValueError(
                f"rating_scale must be (low, high) with low < high, got {rating_scale}."
            )
    pu = _powerlaw_probs(n_users, user_exponent, rng)
    pi = _powerlaw_probs(n_items, item_exponent, rng)
    sample = _sample_pairs if pair_sampling == "joint" else _sample_pairs_per_user
    users, items = sample(n_users, n_items, n_ratings, pu, pi, rng)

    lo, hi = rating_scale if rating_scale is not None else (1.0, 5.0)
    mu = lo + 0.6 * (hi - lo)
    scale = (hi - lo) / 4.0
    bu = rng.normal(0, 0.3 * scale, n_users)
    bi = rng.normal(0, 0.5 * scale, n_items)
    # unit variance of p.q: each coordinate has variance 1/sqrt(k)
    s = (1.0 / n_factors) ** 0.25 * np.sqrt(scale)
    P = rng.normal(0, s, (n_users, n_factors))
    Q = rng.normal(0, s, (n_items, n_factors))

    clean = np.empty(n_ratings)
    for start in range(0, n_ratings, 1_000_000):
        sl = slice(start, start + 1_000_000)
        u, i = users[sl], items[sl]
        clean[sl] = mu + bu[u] + bi[i] + np.einsum("ij,ij->i", P[u], Q[i])
    y = clean.copy() if return_truth else clean
    y += rng.normal(0, noise, n_ratings)
    if rating_scale is not None:
        np.clip(y, lo, hi, out=y)
    if round_ratings:
        np.round(y, out=y)

    t0 = 1_577_836_800  # 2020-01-01
    year = 365 * 24 * 3600
    X = np.empty((n_ratings, 3), dtype=np.int64)
    X[:, 0] = users
    X[:, 1] = items
    del users, items
    X[:, 2] = (rng.random(n_ratings) * year).astype(np.int64)
    X[:, 2] += t0

    if as_frame:
        X = pd.DataFrame(X, columns=["user", "item", "timestamp"])
        y = pd.Series(y, name="rating")
    if not return_truth:
        return X, y
    user_features = pd.DataFrame(
        {
            "age": np.clip(35 + 10 * P[:, 0] / s + rng.normal(0, 5, n_users), 15, 80).astype(int),
            "group": np.where(P[:, 1] > 0, "a", "b"),
        },
        index=pd.RangeIndex(n_users, name="user"),
    )
    n_genres = min(n_factors, 6)
    item_features = pd.DataFrame(
        {
            "genre": np.array([f"g{g}" for g in range(n_genres)])[
                np.argmax(Q[:, :n_genres], axis=1)
            ],
            "year": (1990 + 30 * rng.random(n_items)).astype(int),
        },
        index=pd.RangeIndex(n_items, name="item"),
    )
    truth = Bunch(
        global_mean=mu,
        user_bias=bu,
        item_bias=bi,
        user_factors=P,
        item_factors=Q,
        noise_free=clean,
        user_features=user_features,
        item_features=item_features,
    )
    return X, y, truth
