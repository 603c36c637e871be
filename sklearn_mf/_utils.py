"""Small helpers shared by estimators (threads, random seeds, dtypes)."""

import contextlib
import functools
import numbers
import threading

import numpy as np
from joblib import cpu_count as _joblib_cpu_count
from sklearn.utils import check_random_state

from sklearn_mf._openmp_helpers import openmp_enabled, openmp_max_threads


@functools.cache
def cpu_count():
    """joblib's ``cpu_count()`` (cores the process may use, cgroup quotas
    included), looked up once per process: it reads the cgroup files on
    every call (about 55 us, a fifth of a millisecond-sized kNN fit)."""
    return _joblib_cpu_count()


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


# Values drawn per call of normal_factors: a float64 temporary of 2 MB, which
# stays in cache, instead of one of the size of the factors.
_NORMAL_CHUNK = 1 << 18


def normal_factors(rng, n_rows, n_columns, scale, dtype):
    """``rng.normal(0, scale, (n_rows, n_columns)).astype(dtype)``, drawn in
    chunks.

    The same values and the same generator state afterwards as the one call
    (the generator fills an array value after value, so consecutive chunks
    are consecutive draws, and ``normal`` is ``0 + scale * standard_normal``
    value by value), without its float64 temporary of the size of the
    factors (0.5 GB for a million rows of 64 factors).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf._utils import normal_factors
    >>> a = normal_factors(np.random.default_rng(0), 3, 2, 0.1, np.float32)
    >>> b = np.random.default_rng(0).normal(0, 0.1, (3, 2)).astype(np.float32)
    >>> bool((a == b).all())
    True
    """
    if scale < 0:
        raise ValueError("scale < 0")  # as rng.normal
    out = np.empty((n_rows, n_columns), dtype=dtype)
    flat = out.reshape(-1)
    buf = np.empty(min(_NORMAL_CHUNK, flat.size), dtype=np.float64)
    for start in range(0, flat.size, _NORMAL_CHUNK):
        chunk = buf[: min(_NORMAL_CHUNK, flat.size - start)]
        # rng.normal(0, scale) computes 0 + scale * z per value through a
        # call per value; the fill of standard normals and two in-place
        # passes give the same bits, 15 % faster
        rng.standard_normal(out=chunk)
        chunk *= scale
        chunk += 0.0
        flat[start : start + len(chunk)] = chunk
    return out


# Below this many values the factors are drawn in the caller's thread: a
# thread costs more than the draws.
_BACKGROUND_VALUES = 1 << 20


def normal_factors_in_background(rng, shapes, scale, dtype, background=True):
    """Start drawing :func:`normal_factors` of each ``(n_rows, n_columns)`` of
    ``shapes``, in order, from ``rng``, on a background thread.

    The generator fills its arrays without the GIL, so the draws overlap
    with the caller's own work (a CSR build); the values and the generator
    state afterwards are those of the calls made one after the other.  The
    caller must not use ``rng`` until it has the result.  With
    ``background=False`` (nothing to overlap), or for fewer than a million
    values, they are drawn at once in the caller's thread.

    Returns
    -------
    result : callable
        ``result()`` waits for the draws and returns the list of arrays (it
        re-raises an error of the drawing thread).  ``result.done`` is a
        one-byte array that becomes 1 when the drawing thread has finished
        (at once without a thread), for a kernel that works meanwhile
        without the GIL (:func:`~sklearn_mf._setup_fast.touch_pages`).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_mf._utils import normal_factors, normal_factors_in_background
    >>> shapes = [(3, 2), (2, 2)]
    >>> result = normal_factors_in_background(np.random.default_rng(0), shapes, 0.1, np.float32)
    >>> P, Q = result()
    >>> rng = np.random.default_rng(0)
    >>> bool((P == normal_factors(rng, 3, 2, 0.1, np.float32)).all())
    True
    >>> bool((Q == normal_factors(rng, 2, 2, 0.1, np.float32)).all())
    True
    """
    shapes = [(int(r), int(c)) for r, c in shapes]
    done = np.zeros(1, dtype=np.uint8)
    if not background or sum(r * c for r, c in shapes) < _BACKGROUND_VALUES:
        out = [normal_factors(rng, r, c, scale, dtype) for r, c in shapes]
        done[0] = 1

        def result():
            return out

        result.done = done
        return result
    box = {}

    def draw():
        try:
            box["out"] = [normal_factors(rng, r, c, scale, dtype) for r, c in shapes]
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            box["error"] = exc
        finally:
            done[0] = 1

    thread = threading.Thread(target=draw, name="sklearn_mf-init", daemon=True)
    thread.start()

    def result():
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["out"]

    result.done = done
    return result


def check_dtype(dtype):
    """Normalise the ``dtype`` parameter to ``np.float32`` or ``np.float64``."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}.")
    return dt.type


def is_scalar_id(value):
    """True for a single id (number or string) rather than a list of ids."""
    return isinstance(value, (str, bytes, numbers.Number, np.generic))


def make_writable(model, names):
    """Replace read-only fitted arrays (a model loaded with
    ``joblib.load(..., mmap_mode="r")``) by private in-memory copies, before an
    update writes into them; the file on disk is never modified."""
    for name in names:
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            setattr(model, name, np.array(value, order="C"))


def _non_finite_attributes(obj, prefix=""):
    """Names of the fitted float attributes of ``obj`` (and of fitted
    estimators it holds) that contain NaN or infinity."""
    bad = []
    for name, value in vars(obj).items():
        if not name.endswith("_") or name.startswith("_") or name.endswith("__"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
            if not np.isfinite(value).all():
                bad.append(prefix + name)
        elif isinstance(value, (float, np.floating)) and not np.isfinite(value):
            bad.append(prefix + name)
        elif hasattr(value, "get_params") and hasattr(value, "__dict__"):
            bad.extend(_non_finite_attributes(value, prefix + name + "."))
    return bad


def check_finite_fit(estimator, y=None, *, scale=1.0, what="ratings"):
    """Raise if a fit left NaN or infinite values in the fitted attributes.

    Called where each ``fit`` finishes (DESIGN.md section 6: a fit never
    returns non-finite factors).  Every public fitted float attribute (name
    ending in ``_``, also inside a fitted sub-estimator such as
    ``FMRecommender.fm_``) is checked.

    Parameters
    ----------
    estimator : estimator instance
        The model whose fit just ran.
    y : ndarray, default=None
        The training targets, to name the likely cause when they are huge.
    scale : float, default=1.0
        Factor the solver applies to ``y`` (``alpha`` of implicit ALS).
    what : str, default="ratings"
        What ``y`` holds, for the message.

    Raises
    ------
    FloatingPointError
        Naming the attributes, and the size of the targets when they are large
        enough to overflow the arithmetic of the model's dtype.
    """
    bad = _non_finite_attributes(estimator)
    if not bad:
        return
    name = type(estimator).__name__
    cause = target_overflow_cause(estimator, y, scale=scale, what=what) or (
        "the solver diverged numerically: use a larger regularization (ALS) "
        "or a smaller learning_rate (SGD)"
    )
    raise FloatingPointError(
        f"{name}.fit produced NaN or infinite values in {', '.join(bad)}: {cause}. "
        "The model is not usable."
    )


def target_overflow_cause(estimator, y, *, scale=1.0, what="ratings"):
    """Why a fit on targets ``y`` (times ``scale``) overflows the arithmetic
    of the estimator's dtype, or None when they are not that large."""
    if y is None or not len(y):
        return None
    dtype = np.dtype(getattr(estimator, "dtype", np.float64) or np.float64)
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    peak = float(np.max(np.abs(y))) * abs(float(scale))
    # log10(peak^2 * n) against the dtype's range, with 6 digits of margin
    size = 2 * np.log10(max(peak, 1e-300)) + np.log10(len(y))
    if np.isfinite(peak) and size <= np.log10(np.finfo(dtype).max) - 6:
        return None
    times = "" if scale == 1.0 else f" times alpha={scale:g}"
    return (
        f"the {what} reach {peak:.3g} in absolute value{times}, too large "
        f"for {dtype.name} arithmetic (the solver sums their squares); "
        f"rescale y (e.g. divide it by its largest value) or use dtype=np.float64"
    )


@contextlib.contextmanager
def naming_target_overflow(estimator, y, *, scale=1.0, what="ratings"):
    """Re-raise a divergence (``FloatingPointError``) of the code inside with
    the cause when the targets are too large for the dtype's arithmetic."""
    try:
        yield
    except FloatingPointError as exc:
        cause = target_overflow_cause(estimator, y, scale=scale, what=what)
        if cause is None:
            raise
        raise FloatingPointError(f"{exc} Likely cause: {cause}.") from exc
