"""Safe persistence: the types a fitted sklearn_mf model is made of, for skops.

``joblib`` and ``pickle`` run arbitrary code on load.  ``skops.io`` stores a
model as data plus a list of the types it needs, and refuses to load a type
the caller has not trusted; :func:`trusted_types` is that list for this
library.
"""

import inspect

import scipy.sparse as sp
from sklearn.base import BaseEstimator


def _qualified(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_types():
    """Types to trust when loading a sklearn_mf model with ``skops.io.load``.

    Every estimator class of :mod:`sklearn_mf`, the library's private
    containers that fitted models hold (the ALS rating store of
    ``MatrixFactorization(solver="als")``), and
    :class:`scipy.sparse.csr_matrix` (``user_items_``).  NumPy arrays,
    builtins and scikit-learn's own types are trusted by skops already.  A
    file that needs any other type is refused by ``skops.io.load``, which is
    the point: a model that crossed a trust boundary is loaded without running
    code it brought along.  An approximate-neighbour index
    (``build_similarity_index``) is not stored by skops; rebuild it after
    loading.

    Returns
    -------
    types : list of str
        Fully qualified type names, sorted, for ``skops.io.load(...,
        trusted=...)``.

    Examples
    --------
    >>> import io
    >>> import skops.io as sio  # doctest: +SKIP
    >>> from sklearn_mf import MatrixFactorization, trusted_types
    >>> from sklearn_mf.datasets import make_ratings
    >>> X, y = make_ratings(n_users=30, n_items=20, n_ratings=200, random_state=0)
    >>> model = MatrixFactorization(n_epochs=2, random_state=0).fit(X, y)
    >>> loaded = sio.loads(sio.dumps(model), trusted=trusted_types())  # doctest: +SKIP
    >>> "sklearn_mf._mf.MatrixFactorization" in trusted_types()
    True
    """
    import sklearn_mf
    from sklearn_mf._als import RowMatrix

    classes = [
        obj
        for obj in (getattr(sklearn_mf, name) for name in sklearn_mf.__all__)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator)
    ]
    return sorted({_qualified(c) for c in classes + [RowMatrix, sp.csr_matrix]})
