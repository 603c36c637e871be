"""
=========================
Saving and loading models
=========================

A fitted :class:`~sklearn_mf.MatrixFactorization` is an ordinary Python
object: :mod:`joblib` saves it with its factors, its id mappings and the
training interactions that ``recommend`` uses to leave out seen items, and
the loaded copy answers exactly as the original.  The data are MovieLens 100K
when a local copy is found, synthetic ratings otherwise (the script prints
which).
"""

# %%
# Fit and save
# ------------
import os
import tempfile

import joblib
import numpy as np
from _data import load_ratings

import sklearn_mf
from sklearn_mf import MatrixFactorization

data = load_ratings()
print("Data:", data.source)
model = MatrixFactorization(n_factors=32, n_epochs=20, random_state=0).fit(data.X, data.y)

folder = tempfile.mkdtemp()
path = os.path.join(folder, "mf.joblib")
joblib.dump(model, path, compress=3)
print(f"saved {os.path.getsize(path) / 1e6:.1f} MB to {path}")

# %%
# Load and compare
# ----------------
# Predictions, recommendations and neighbours are identical, bit for bit.
restored = joblib.load(path)
sample = data.X.sample(1000, random_state=0)
np.testing.assert_array_equal(restored.predict(sample), model.predict(sample))

users = data.X["user"].unique()[:50]
a, b = model.recommend(users, n=10), restored.recommend(users, n=10)
np.testing.assert_array_equal(a.items, b.items)
np.testing.assert_array_equal(a.scores, b.scores)
print("predictions and recommendations are identical")

# %%
# Store the versions with the file
# --------------------------------
# A pickle is only guaranteed to load with the versions that wrote it.  Keep
# them beside the model, and refit after an upgrade rather than unpickling an
# old file.
import sklearn

manifest = {
    "sklearn_mf": sklearn_mf.__version__,
    "scikit-learn": sklearn.__version__,
    "numpy": np.__version__,
    "params": model.get_params(),
}
joblib.dump({"model": model, "manifest": manifest}, path)
loaded = joblib.load(path)
print({k: v for k, v in loaded["manifest"].items() if k != "params"})

# %%
# The factors alone
# -----------------
# For a serving system that only needs vectors (a nearest-neighbour index,
# another language), export the arrays and the raw ids; ``np.savez`` keeps
# them in ``float32``.
np.savez(
    os.path.join(folder, "factors.npz"),
    users=model.users_,
    items=model.items_,
    user_factors=model.user_factors_,
    item_factors=model.item_factors_,
    user_bias=model.user_bias_,
    item_bias=model.item_bias_,
    global_mean=model.global_mean_,
)
with np.load(os.path.join(folder, "factors.npz")) as f:
    print({k: (f[k].shape, f[k].dtype.name) for k in f.files})
