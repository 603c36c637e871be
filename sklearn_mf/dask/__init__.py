"""ALS estimators that train on a Dask cluster (``pip install "sklearn_mf[dask]"``).

Named and shaped like dask-ml: :class:`ImplicitALS` and
:class:`MatrixFactorization` take the parameters of their single-machine
namesakes, ``fit`` a ``dask.dataframe.DataFrame`` on the current
``distributed.Client``, and :meth:`~ImplicitALS.to_local` returns the fitted
single-machine estimator.  See :ref:`cluster`.  ``import sklearn_mf`` never
imports this subpackage (nor dask).
"""

from sklearn_mf.dask._estimators import ImplicitALS, MatrixFactorization

__all__ = ["ImplicitALS", "MatrixFactorization"]
