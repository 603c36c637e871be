# OpenMP shim shared by every kernel: when the extension is compiled without
# OpenMP, the few runtime functions we call fall back to serial stand-ins and
# ``prange`` runs serially (Cython drops the pragmas).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define SKMF_HAVE_OPENMP 1
    #else
    #define SKMF_HAVE_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint SKMF_HAVE_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
