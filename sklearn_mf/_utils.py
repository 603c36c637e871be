"""Small helpers shared by estimators (threads, random seeds, dtypes)."""

import numbers

import numpy as np
from joblib import cpu_count
from sklearn.utils import check_random_state

from sklearn_mf._openmp_helpers import openmp_enabled, openmp_max_threads


def effective_n_threads(n_jobs):
    """Number of OpenMP threads to use for ``n_jobs``.

    ``None`` means every core the process may use, capped by
    ``OMP_NUM_THREADS`` / threadpoolctl limits; a negative value counts back
    from the number of cores (``-1`` = all, ``-2`` = all but one), as in joblib.
    Always 1 when the package was built without OpenMP.
    """
    if not openmp_enabled():
        return 1
    if n_jobs is None:
        return max(1, min(openmp_max_threads(), cpu_count()))
    if n_jobs < 0:
        return max(1, cpu_count() + 1 + n_jobs)
    return int(n_jobs)


def make_rng(random_state, stream=None):
    """The ``numpy.random.Generator`` of a fit, seeded from ``random_state``.

    One 31-bit seed is drawn from ``check_random_state(random_state)`` (so a
    ``RandomState`` instance advances, and an int always gives the same
    generator); ``stream`` (an int) selects an independent stream of that
    seed, for example the ``n``-th ``partial_fit`` call.

    Examples
    --------
    >>> from sklearn_mf._utils import make_rng
    >>> bool(make_rng(0).random() == make_rng(0).random())
    True
    """
    seed = check_random_state(random_state).randint(2**31)
    return np.random.default_rng(seed if stream is None else [seed, stream])


def seeds_from(rng, size):
    """Draw ``size`` 64-bit seeds for the kernels' own generators."""
    return rng.integers(1, np.iinfo(np.uint64).max, size=size, dtype=np.uint64)


def check_dtype(dtype):
    """Normalise the ``dtype`` parameter to ``np.float32`` or ``np.float64``."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}.")
    return dt.type


def is_scalar_id(value):
    """True for a single id (number or string) rather than a list of ids."""
    return isinstance(value, (str, bytes, numbers.Number, np.generic))
