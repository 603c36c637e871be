"""
================================================
Distributing a hyperparameter search with dask
================================================

:class:`~sklearn.model_selection.GridSearchCV` runs its fits through joblib,
and joblib can hand them to a `dask.distributed` cluster instead of local
processes: wrap ``fit`` in ``joblib.parallel_backend("dask")``.  Nothing else
changes, and the search gives the same scores as on one machine.

Here the "cluster" is a :class:`~distributed.LocalCluster` of two workers with
one thread each, running inside this process (the compiled kernels release
the GIL, so two threads fit two models at once).  On a real cluster, connect
the :class:`~distributed.Client` to the scheduler's address instead
(``Client("tcp://scheduler:8786")``) and keep the rest.  Needs the ``dask``
extra: ``pip install "sklearn_mf[dask]"``.  The data are MovieLens 100K when a
local copy is found, synthetic ratings otherwise (the script prints which).
"""

# %%
# Start a small cluster
# ---------------------
# Threads must fit the cores: each fit uses the estimator's ``n_jobs``
# OpenMP threads, and each dask worker thread runs one fit at a time, so the
# cluster uses ``n_workers × threads_per_worker × n_jobs`` cores at most.
# Two workers × one thread × ``n_jobs=1`` = 2 cores.
import logging

import joblib
import matplotlib.pyplot as plt
import pandas as pd
from _data import load_ratings
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_mf import MatrixFactorization

data = load_ratings()
print("Data:", data.source)

cluster = LocalCluster(
    n_workers=2,
    threads_per_worker=1,
    processes=False,
    dashboard_address=None,
    silence_logs=logging.ERROR,
)
client = Client(cluster)
print("workers:", len(client.scheduler_info()["workers"]))

# %%
# Search on the cluster
# ---------------------
# ``GridSearchCV(n_jobs=2)`` keeps two fits in flight, one per worker
# thread; with the dask backend joblib sends each (candidate, fold) fit to
# the scheduler, which places it on a free worker.  The task stream records
# where and when each fit ran.
param_grid = {"n_factors": [10, 40], "regularization": [0.02, 0.08]}
search = GridSearchCV(
    MatrixFactorization(n_epochs=20, learning_rate=0.01, n_jobs=1, random_state=0),
    param_grid,
    scoring="neg_root_mean_squared_error",
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    n_jobs=2,
)
with get_task_stream(client) as stream, joblib.parallel_backend("dask"):
    search.fit(data.X, data.y)

results = pd.DataFrame(search.cv_results_["params"])
results["CV RMSE"] = -search.cv_results_["mean_test_score"]
print(results.to_string(index=False))
print("best:", search.best_params_)

# %%
# Where the fits ran
# ------------------
# Each bar is one task on a worker, from its start to its end: the two
# workers were busy side by side.  (The refit of the best candidate on all
# the data runs in this process after the search, not on the cluster.)
tasks = pd.DataFrame(
    [
        {"worker": t["worker"], "start": s["start"], "stop": s["stop"]}
        for t in stream.data
        for s in t["startstops"]
        if s["action"] == "compute"
    ]
)
t0 = tasks["start"].min()
workers = sorted(tasks["worker"].unique())
fig, ax = plt.subplots(figsize=(7, 2.2))
for row, worker in enumerate(workers):
    mine = tasks[tasks["worker"] == worker]
    ax.broken_barh(
        list(zip(mine["start"] - t0, mine["stop"] - mine["start"])),
        (row - 0.35, 0.7),
        edgecolor="white",
    )
ax.set_yticks(range(len(workers)), [f"worker {k + 1}" for k in range(len(workers))])
ax.set_xlabel("seconds since the first task")
ax.set_title(f"{len(tasks)} tasks of the search on {len(workers)} dask workers")
fig.tight_layout()
plt.show()

# %%
# Shut the cluster down
# ---------------------
client.close()
cluster.close()
