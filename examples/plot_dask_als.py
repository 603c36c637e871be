"""
==========================================
Training ALS on a Dask cluster
==========================================

:mod:`sklearn_mf.dask` trains :class:`~sklearn_mf.MatrixFactorization`
(ALS) and :class:`~sklearn_mf.ImplicitALS` on a `dask.distributed` cluster
from a dask DataFrame, with the same parameters and, for a fixed
``random_state``, the same result as on one machine.  The interactions are
shuffled once into user blocks and item blocks that stay on the workers;
each half-step ships every factor vector only to the blocks that need it.
See :ref:`cluster` for the layout and the bytes each iteration moves.

Here the cluster is a :class:`~distributed.LocalCluster` of two workers with
one thread each inside this process; on a real cluster, connect the
:class:`~distributed.Client` to the scheduler's address and keep the rest.
Needs the ``dask`` extra: ``pip install "sklearn_mf[dask]"``.  The data are
MovieLens 100K when a local copy is found, synthetic ratings otherwise.
"""

# %%
# A cluster and a dask DataFrame of ratings
# -----------------------------------------
import logging
import tempfile

import dask.dataframe as dd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from _data import load_ratings
from distributed import Client, LocalCluster

import sklearn_mf
import sklearn_mf.dask

data = load_ratings()
print("Data:", data.source)
ratings = pd.DataFrame(
    {
        "user": data.X["user"].to_numpy(),
        "item": data.X["item"].to_numpy(),
        "rating": data.y.to_numpy(),
    }
)

cluster = LocalCluster(
    n_workers=2,
    threads_per_worker=1,
    processes=False,
    dashboard_address=None,
    silence_logs=logging.ERROR,
)
client = Client(cluster)
ddf = dd.from_pandas(ratings, npartitions=4)  # on a cluster: dd.read_parquet(...)

# %%
# Fit on the cluster, and on one machine
# --------------------------------------
# The distributed fit draws the same initial factors as the local estimator
# and runs the same half-step kernels, block by block on the workers.
params = dict(n_factors=20, max_iter=10, regularization=0.05, random_state=0)
dist = sklearn_mf.dask.MatrixFactorization(**params).fit(ddf)
local = sklearn_mf.MatrixFactorization(solver="als", n_jobs=1, **params).fit(
    ratings[["user", "item"]], ratings["rating"]
)
model = dist.to_local()  # a fitted sklearn_mf.MatrixFactorization
print(f"{dist.n_blocks_} user blocks and {dist.n_blocks_} item blocks")
print(
    "largest difference of the item factors:",
    float(np.abs(model.item_factors_ - local.item_factors_).max()),
)
print(
    "largest difference of the user factors:",
    float(np.abs(model.user_factors_ - local.user_factors_).max()),
)

# %%
# What each iteration moved
# -------------------------
# Dask's own counters (bytes the workers sent each other) against the
# formula: factor rows shipped to the blocks that need them, times
# ``(n_factors + 1) * 4`` bytes (one bias per row).  Only the messages between
# different workers cross the network, about half of them with two workers.
formula = (dist.message_rows_["to_users"] + dist.message_rows_["to_items"]) * (20 + 1) * 4
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
ax1.plot(range(1, dist.n_iter_ + 1), dist.loss_curve_, "o-", label="dask")
ax1.plot(range(1, local.n_iter_ + 1), local.loss_curve_, "x--", label="local")
ax1.set_xlabel("iteration")
ax1.set_ylabel("objective per rating")
ax1.legend()
ax2.bar(
    range(1, dist.n_iter_ + 1),
    np.asarray(dist.bytes_per_iteration_) / 1e6,
    label="measured (Dask counters)",
)
ax2.axhline(formula / 1e6, color="k", ls="--", label="all messages (formula)")
ax2.set_xlabel("iteration")
ax2.set_ylabel("MB sent between workers")
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# Every user's top 10, written to Parquet block by block
# ------------------------------------------------------
# ``recommend_all`` returns a lazy dask DataFrame (user, rank, item, score);
# each user block is scored on the worker that holds it.
with tempfile.TemporaryDirectory() as tmp:
    dist.recommend_all(n=10).to_parquet(tmp)
    recs = pd.read_parquet(tmp)
print(len(recs), "rows for", recs["user"].nunique(), "users")
print(recs.sort_values(["user", "rank"]).head(5).to_string(index=False))

client.close()
cluster.close()
