"""Runtime information about the OpenMP build."""

from sklearn_mf._openmp cimport SKMF_HAVE_OPENMP, omp_get_max_threads


def openmp_enabled():
    """Return True if the kernels were compiled with OpenMP support."""
    return bool(SKMF_HAVE_OPENMP)


def openmp_max_threads():
    """``omp_get_max_threads()``: honours ``OMP_NUM_THREADS`` and threadpoolctl."""
    return omp_get_max_threads()
