# Helpers shared by the kernels, as inline C (one copy; each cimporting module
# compiles its own): the SplitMix64 generator, bounded draws and the
# Fisher-Yates shuffle on it, and the macros that compile a hot C loop twice
# (AVX2+FMA and baseline x86-64, picked when the module loads).
#
# ``cimport`` the C functions; a module's own verbatim C block may use the
# macros SKMF_CLONES (before a function: target_clones on gcc/clang x86-64
# Linux, nothing elsewhere or with -DSKMF_NO_CLONES), SKMF_PRAGMA(x)
# (``_Pragma`` inside a macro, for ``omp simd``) and SKMF_PREFETCH(p, rw)
# (``__builtin_prefetch`` where it exists).

from libc.stdint cimport uint64_t

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(SKMF_NO_CLONES)
    #define SKMF_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
    #else
    #define SKMF_CLONES
    #endif
    #if defined(__GNUC__)
    #define SKMF_PREFETCH(p, rw) __builtin_prefetch((p), (rw))
    #else
    #define SKMF_PREFETCH(p, rw)
    #endif
    #define SKMF_PRAGMA(x) _Pragma(#x)

    /* SplitMix64 (Steele, Lea and Flood 2014): the output for counter x, a
       bijective scramble of x + golden gamma. */
    static inline uint64_t skmf_mix64(uint64_t x) {
        uint64_t z = x + 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }

    /* The next SplitMix64 draw of the generator whose counter is *state. */
    static inline uint64_t skmf_splitmix64(uint64_t *state) {
        uint64_t z = skmf_mix64(*state);
        *state += 0x9E3779B97F4A7C15ULL;
        return z;
    }

    /* A draw in [0, n) by multiply-shift on the high 32 bits (n < 2**32). */
    static inline Py_ssize_t skmf_below(uint64_t *state, Py_ssize_t n) {
        return (Py_ssize_t)(((skmf_splitmix64(state) >> 32) * (uint64_t)n) >> 32);
    }

    /* Fisher-Yates shuffle of a[:n] with the generator *state. */
    #define SKMF_DEFINE_SHUFFLE(NAME, T)                                      \
    static inline void NAME(T *a, Py_ssize_t n, uint64_t *state) {             \
        for (Py_ssize_t j = n - 1; j > 0; j--) {                               \
            Py_ssize_t t = skmf_below(state, j + 1);                           \
            T tmp = a[j];                                                      \
            a[j] = a[t];                                                       \
            a[t] = tmp;                                                        \
        }                                                                      \
    }
    SKMF_DEFINE_SHUFFLE(skmf_shuffle_int, int)
    SKMF_DEFINE_SHUFFLE(skmf_shuffle_intp, Py_ssize_t)
    """
    uint64_t skmf_mix64(uint64_t x) noexcept nogil
    uint64_t skmf_splitmix64(uint64_t* state) noexcept nogil
    Py_ssize_t skmf_below(uint64_t* state, Py_ssize_t n) noexcept nogil
    void skmf_shuffle_int(int* a, Py_ssize_t n, uint64_t* state) noexcept nogil
    void skmf_shuffle_intp(Py_ssize_t* a, Py_ssize_t n, uint64_t* state) noexcept nogil
