"""Data for the gallery examples.

``load_ratings()`` returns MovieLens 100K when a local copy is found and
synthetic ratings otherwise, so that every example runs offline.  It never
downloads: call ``sklearn_mf.datasets.fetch_movielens("100k")`` once to fill
the cache.
"""

import os
from pathlib import Path

import pandas as pd
from sklearn.utils import Bunch

from sklearn_mf.datasets import load_movielens, make_ratings


def _candidates():
    if os.environ.get("SKLEARN_MF_DATA"):
        yield Path(os.environ["SKLEARN_MF_DATA"]) / "ml-100k"
    # shared/data beside the repository checkout (examples/ -> repo -> ..)
    yield Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k"
    home = os.environ.get("SKLEARN_MF_DATA_HOME", os.path.join("~", "sklearn_mf_data"))
    yield Path(home).expanduser() / "ml-100k"


def find_movielens_100k():
    """Path of a local MovieLens 100K copy, or None."""
    for path in _candidates():
        if path.is_dir():
            return path
    return None


def load_ratings(random_state=0):
    """Ratings for an example, as a Bunch.

    ``X``: DataFrame ``user, item, timestamp``; ``y``: Series of ratings;
    ``titles``: Series of item names indexed by item id; ``genres``: Series of
    ``|``-separated genres indexed by item id; ``source``: what was loaded.
    """
    path = find_movielens_100k()
    if path is not None:
        data = load_movielens(path)
        movies = data.movies.set_index("item")
        return Bunch(
            X=data.X,
            y=data.y,
            titles=movies["title"],
            genres=movies["genres"],
            source=f"MovieLens 100K ({path})",
        )
    # Same size and shape as MovieLens 100K, from a planted low-rank model.
    X, y, truth = make_ratings(
        n_users=943,
        n_items=1682,
        n_ratings=100_000,
        as_frame=True,
        return_truth=True,
        random_state=random_state,
    )
    items = truth.item_features
    titles = pd.Series(
        [f"item {i} ({g})" for i, g in zip(items.index, items["genre"])],
        index=items.index,
        name="title",
    )
    return Bunch(
        X=X,
        y=y,
        titles=titles,
        genres=items["genre"],
        source="synthetic ratings from make_ratings (no MovieLens copy found)",
    )
