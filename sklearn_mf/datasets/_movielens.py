"""Readers for the official MovieLens file layouts."""

import os

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

_GENRES_100K = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def _find(path, names):
    """First existing file among ``names`` (plain, .gz, .xz, .bz2) in ``path``."""
    for name in names:
        for suffix in ("", ".gz", ".xz", ".bz2", ".zip"):
            candidate = os.path.join(path, name + suffix)
            if os.path.isfile(candidate):
                return candidate
    return None


def _year_from_title(titles):
    year = titles.str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def _read_100k(path):
    ratings = pd.read_csv(
        _find(path, ["u.data"]),
        sep="\t",
        header=None,
        names=["user", "item", "rating", "timestamp"],
    )
    users = items = None
    f = _find(path, ["u.user"])
    if f:
        users = pd.read_csv(
            f, sep="|", header=None, names=["user", "age", "gender", "occupation", "zip_code"]
        )
    f = _find(path, ["u.item"])
    if f:
        cols = ["item", "title", "release_date", "video_release_date", "imdb_url"]
        items = pd.read_csv(f, sep="|", header=None, encoding="latin-1", names=cols + _GENRES_100K)
        flags = items[_GENRES_100K].to_numpy(dtype=bool)
        items["genres"] = ["|".join(g for g, on in zip(_GENRES_100K, row) if on) for row in flags]
        items["year"] = pd.to_datetime(
            items["release_date"], format="%d-%b-%Y", errors="coerce"
        ).dt.year.astype("Int64")
        items = items[["item", "title", "genres", "year"]]
    return ratings, users, items, "100k"


def _read_1m(path):
    kw = dict(sep="::", header=None, engine="python", encoding="latin-1")
    ratings = pd.read_csv(
        _find(path, ["ratings.dat"]), names=["user", "item", "rating", "timestamp"], **kw
    )
    users = items = None
    f = _find(path, ["users.dat"])
    if f:
        users = pd.read_csv(f, names=["user", "gender", "age", "occupation", "zip_code"], **kw)
    f = _find(path, ["movies.dat"])
    if f:
        items = pd.read_csv(f, names=["item", "title", "genres"], **kw)
        items["year"] = _year_from_title(items["title"])
    return ratings, users, items, "1m"


def _read_csv(path):
    ratings = pd.read_csv(_find(path, ["ratings.csv"]))
    ratings = ratings.rename(columns={"userId": "user", "movieId": "item"})
    items = None
    f = _find(path, ["movies.csv"])
    if f:
        items = pd.read_csv(f).rename(columns={"movieId": "item"})
        items["year"] = _year_from_title(items["title"])
    return ratings[["user", "item", "rating", "timestamp"]], None, items, "csv"


def _read_atomic(path):
    """RecBole atomic files (``<name>.inter``/``.user``/``.item``, typed headers)."""
    inter = _find(path, [os.path.basename(os.path.normpath(path)) + ".inter"])
    if inter is None:
        found = [f for f in os.listdir(path) if ".inter" in f]
        inter = os.path.join(path, found[0])

    def read(f):
        df = pd.read_csv(f, sep="\t")
        df.columns = [c.split(":")[0] for c in df.columns]
        return df

    ratings = read(inter).rename(columns={"user_id": "user", "item_id": "item"})
    base = inter.split(".inter")[0]
    users = items = None
    if _find("", [base + ".user"]):
        users = read(_find("", [base + ".user"])).rename(columns={"user_id": "user"})
    if _find("", [base + ".item"]):
        items = read(_find("", [base + ".item"])).rename(
            columns={
                "item_id": "item",
                "movie_title": "title",
                "release_year": "year",
                "class": "genres",
            }
        )
        if "genres" in items:
            items["genres"] = items["genres"].fillna("").str.replace(" ", "|")
    ratings["timestamp"] = ratings["timestamp"].astype(np.int64)
    return ratings[["user", "item", "rating", "timestamp"]], users, items, "atomic"


def load_movielens(path):
    """Read a local copy of a MovieLens dataset into DataFrames.

    Recognised layouts (files may be gzip/xz/bz2-compressed):

    * 100K: ``u.data`` (+ ``u.user``, ``u.item``);
    * 1M: ``ratings.dat`` (+ ``users.dat``, ``movies.dat``), ``::``-separated;
    * latest / 20M / 25M: ``ratings.csv`` (+ ``movies.csv``);
    * RecBole atomic files: ``<name>.inter`` (+ ``.user``, ``.item``).

    Parameters
    ----------
    path : str or path-like
        The directory holding the files, or the ratings file itself.

    Returns
    -------
    data : Bunch
        ``ratings``: DataFrame with columns ``user``, ``item``, ``rating``,
        ``timestamp`` (Unix seconds), one row per rating, in file order;
        ``users``: user side table (``user``, ``age``, ``gender``,
        ``occupation``, ``zip_code``) or None; ``movies``: item side table
        (``item``, ``title``, ``genres`` as ``|``-separated names, ``year``) or
        None; ``layout``: which layout was read.  ``X`` and ``y`` are shortcuts
        for ``ratings[["user", "item", "timestamp"]]`` and ``ratings["rating"]``.

    Raises
    ------
    FileNotFoundError
        When no recognised ratings file is found at ``path``.

    Examples
    --------
    >>> from sklearn_mf.datasets import load_movielens
    >>> data = load_movielens("path/to/ml-100k")  # doctest: +SKIP
    >>> data.ratings.shape  # doctest: +SKIP
    (100000, 4)
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        path = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No MovieLens data at {path!r}: not a directory or file.")
    if _find(path, ["u.data"]):
        ratings, users, items, layout = _read_100k(path)
    elif _find(path, ["ratings.dat"]):
        ratings, users, items, layout = _read_1m(path)
    elif _find(path, ["ratings.csv"]):
        ratings, users, items, layout = _read_csv(path)
    elif any(".inter" in f for f in os.listdir(path)):
        ratings, users, items, layout = _read_atomic(path)
    else:
        raise FileNotFoundError(
            f"No MovieLens ratings file in {path!r}: expected u.data (100K), "
            "ratings.dat (1M), ratings.csv (latest/20M/25M) or a RecBole .inter file."
        )
    ratings = ratings.reset_index(drop=True)
    return Bunch(
        ratings=ratings,
        users=users,
        movies=items,
        layout=layout,
        X=ratings[["user", "item", "timestamp"]],
        y=ratings["rating"].astype(float),
    )
