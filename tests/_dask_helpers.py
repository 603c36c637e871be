"""Set-up shared by the tests of ALS on a Dask cluster.

``tests/test_dask_als.py`` and ``tests/test_als_cg.py`` fit on the same kind
of cluster, build the same small blocks and compare a cluster fit to the
local one the same way; the pieces are here (the cluster fixture itself is
``dask_als_client`` in ``conftest.py``).
"""

import logging
from contextlib import contextmanager

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose


@contextmanager
def als_cluster_client():
    """A ``Client`` of two worker processes, one thread each, on loopback."""
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def ml100k_ratings(ml100k):
    """MovieLens 100K as a (user, item, rating) frame of int64 ids."""
    X = np.asarray(ml100k.X)[:, :2].astype(np.int64)
    y = np.asarray(ml100k.y, dtype=np.float64)
    return pd.DataFrame({"user": X[:, 0], "item": X[:, 1], "rating": y})


def small_blocks(model, solver, B=3, k=5, seed=0):
    """User and item blocks of 700 random interactions, and item factor blocks.

    Returns ``params, ublk, iblk, ifac, Q, rng``: the block parameters, the
    blocks as ``_blocks.build_block`` makes them, the item factors ``Q`` (and
    biases) split into blocks, and the generator, to draw more from.
    """
    from sklearn_mf.dask import _blocks

    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 45
    u, i = rng.integers(0, n_users, 700), rng.integers(0, n_items, 700)
    v = rng.integers(1, 6, 700).astype(np.float32)
    params = dict(
        model=model,
        dtype=np.float32,
        n_factors=k,
        reg=0.1,
        reg_b=0.1,
        biased=True,
        scale=True,
        alpha=2.0,
        solver=solver,
        cg_steps=3,
        n_threads=1,
        global_mean=3.0,
    )
    uidx, iidx = pd.Index(np.arange(n_users)), pd.Index(np.arange(n_items))
    frame = pd.DataFrame({"user": u, "item": i, "value": v})
    pu = _blocks.split_partition(frame, uidx, iidx, B, np.float32, False)
    pi = _blocks.split_partition(frame, iidx, uidx, B, np.float32, True)
    ublk = [
        _blocks.build_block(len(range(b, n_users, B)), n_items, B, f"{model}-u", params, pu[b])
        for b in range(B)
    ]
    iblk = [
        _blocks.build_block(len(range(b, n_items, B)), n_users, B, f"{model}-i", params, pi[b])
        for b in range(B)
    ]
    Q = rng.normal(0, 0.3, (n_items, k)).astype(np.float32)
    qb = rng.normal(0, 0.3, n_items).astype(np.float32)
    ifac = [(np.ascontiguousarray(Q[b::B]), qb[b::B].copy(), None) for b in range(B)]
    return params, ublk, iblk, ifac, Q, rng


def assert_explicit_fit_equals_local(model, local, atol=1e-4):
    """The factors and biases of a cluster fit's local model are the local fit's."""
    assert_allclose(model.user_factors_, local.user_factors_, atol=atol)
    assert_allclose(model.item_factors_, local.item_factors_, atol=atol)
    assert_allclose(model.user_bias_, local.user_bias_, atol=atol)
