"""Lazy UserKNN(n_neighbors=None, n_history_neighbors=20) at 300,000 users (synthetic
make_ratings, 3M ratings): fit, recommend for 2,000 users, predict 20,000 pairs, peak RSS.

    PYTHONPATH=. python benchmarks/bench_userknn_lazy_scale.py
"""

import os
import resource
import time

from sklearn_mf import UserKNN
from sklearn_mf.datasets import make_ratings

X, y = make_ratings(n_users=300_000, n_items=20_000, n_ratings=3_000_000, random_state=0)
X = X[:, :2]
print(os.popen("uptime").read().strip())
m = UserKNN(n_neighbors=None, n_history_neighbors=20, n_jobs=2)
t = time.perf_counter()
m.fit(X)
print("fit %.2f s" % (time.perf_counter() - t), "lazy", m._lazy)
users = m.users_[:2000]
t = time.perf_counter()
r = m.recommend(users, n=10)
print("recommend 2000 users %.2f s" % (time.perf_counter() - t))
t = time.perf_counter()
p = m.predict(X[:20000])
print("predict 20000 pairs %.2f s" % (time.perf_counter() - t))
print("peak RSS %.0f MB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
try:
    UserKNN(n_neighbors=10**6, n_history_neighbors=20).fit(X)
except MemoryError as e:
    print("stored path:", str(e)[:120])
print(os.popen("uptime").read().strip())
