# The bounded min-heap shared by the top-k kernels (_topk, _neighbors_fast):
# keep the k best (score, index) pairs of a stream, then sort them best first.
# Inline Cython in the .pxd (one copy; each cimporting module compiles its
# own), fused over float and double scores.
#
# The heap lives in two caller-owned arrays of length >= k: ``hs`` (scores)
# and ``hi`` (indices); its root ``hs[0]`` is the worst kept entry.  A pair
# (s1, c1) ranks below (s2, c2) when s1 < s2, ties going to the lower index,
# so every result is deterministic.

from libc.math cimport INFINITY

from cython cimport floating


cdef inline bint heap_worse(floating s1, Py_ssize_t c1, floating s2,
                            Py_ssize_t c2) noexcept nogil:
    """True if (s1, c1) ranks below (s2, c2)."""
    return s1 < s2 or (s1 == s2 and c1 > c2)


cdef inline void heap_sift_down(floating* hs, Py_ssize_t* hi, Py_ssize_t size,
                                Py_ssize_t pos) noexcept nogil:
    """Move the entry at ``pos`` down until both children rank above it."""
    cdef Py_ssize_t child
    cdef floating ts = hs[pos]
    cdef Py_ssize_t ti = hi[pos]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and heap_worse(hs[child + 1], hi[child + 1], hs[child], hi[child]):
            child += 1
        if heap_worse(hs[child], hi[child], ts, ti):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = ts
    hi[pos] = ti


cdef inline void heap_push(floating* hs, Py_ssize_t* hi, Py_ssize_t* size, Py_ssize_t k,
                           floating s, Py_ssize_t c) noexcept nogil:
    """Offer (s, c) to a heap of ``size[0]`` entries that keeps the best ``k``."""
    cdef Py_ssize_t j, n = size[0]
    if n < k:
        # insert at the end and sift up
        j = n
        size[0] = n + 1
        while j > 0 and heap_worse(s, c, hs[(j - 1) // 2], hi[(j - 1) // 2]):
            hs[j] = hs[(j - 1) // 2]
            hi[j] = hi[(j - 1) // 2]
            j = (j - 1) // 2
        hs[j] = s
        hi[j] = c
    elif heap_worse(hs[0], hi[0], s, c):
        # replace the worst kept entry
        hs[0] = s
        hi[0] = c
        heap_sift_down(hs, hi, n, 0)


cdef inline void heap_finish(Py_ssize_t size, Py_ssize_t k, floating* hs,
                             Py_ssize_t* hi) noexcept nogil:
    """Sort a heap of ``size`` entries best first and pad it to ``k`` with
    (-inf, -1)."""
    cdef Py_ssize_t c, end = size
    cdef floating ts
    cdef Py_ssize_t ti
    # heap sort in place: repeatedly move the worst kept entry to the end
    while end > 1:
        end -= 1
        ts = hs[0]
        ti = hi[0]
        hs[0] = hs[end]
        hi[0] = hi[end]
        hs[end] = ts
        hi[end] = ti
        heap_sift_down(hs, hi, end, 0)
    for c in range(size, k):
        hs[c] = -INFINITY
        hi[c] = -1


# ------------------------------------------------ key-value selection
# The history-side kernels (_neighbors_fast) keep the k largest *keys* of a
# stream of (key, value) pairs, the values (doubles) carried along.  Ties are
# not broken by an index: a key equal to the heap's worst does not enter (the
# first of tied keys stays), so these are separate from the (score, index)
# heap above (whose order would change which tied pair is kept and the order
# of the sums over the kept ones).

cdef inline void kv_heap_push(double* hk, double* hv, Py_ssize_t* size, Py_ssize_t k,
                              double key, double val) noexcept nogil:
    """Offer (key, val) to a min-heap on ``key`` of ``size[0]`` entries that
    keeps the ``k`` largest keys (root = the worst kept; a key equal to it
    does not enter)."""
    cdef Py_ssize_t j, child, n = size[0]
    if n < k:
        j = n
        size[0] = n + 1
        while j > 0 and key < hk[(j - 1) // 2]:
            hk[j] = hk[(j - 1) // 2]
            hv[j] = hv[(j - 1) // 2]
            j = (j - 1) // 2
        hk[j] = key
        hv[j] = val
    elif key > hk[0]:
        j = 0
        while True:
            child = 2 * j + 1
            if child >= n:
                break
            if child + 1 < n and hk[child + 1] < hk[child]:
                child = child + 1
            if hk[child] < key:
                hk[j] = hk[child]
                hv[j] = hv[child]
                j = child
            else:
                break
        hk[j] = key
        hv[j] = val


cdef inline double select_top(double* hk, double* hv, Py_ssize_t n,
                              Py_ssize_t k) noexcept nogil:
    """Move the ``k`` largest of ``hk[0..n)`` (0 < k <= n) to the front and
    return the smallest of them (the k-th largest): quickselect, median of
    three, Hoare partition, descending.  The values ``hv`` move along unless
    ``hv`` is NULL."""
    cdef Py_ssize_t lo = 0, hi = n - 1, want = k - 1, mid, i, j
    cdef double a, b, c, pivot, t
    while lo < hi:
        mid = lo + (hi - lo) // 2
        a = hk[lo]
        b = hk[mid]
        c = hk[hi]
        # the median of the three
        if a < b:
            if b < c:
                pivot = b
            elif a < c:
                pivot = c
            else:
                pivot = a
        elif a < c:
            pivot = a
        elif b < c:
            pivot = c
        else:
            pivot = b
        i = lo
        j = hi
        while i <= j:
            while hk[i] > pivot:
                i = i + 1
            while hk[j] < pivot:
                j = j - 1
            if i <= j:
                t = hk[i]
                hk[i] = hk[j]
                hk[j] = t
                if hv != NULL:
                    t = hv[i]
                    hv[i] = hv[j]
                    hv[j] = t
                i = i + 1
                j = j - 1
        if want <= j:
            hi = j
        elif want >= i:
            lo = i
        else:
            break
    return hk[want]


cdef inline void heap_select(floating* hs, Py_ssize_t* hi, Py_ssize_t n,
                             Py_ssize_t k) noexcept nogil:
    """Move the ``k`` best of ``n`` distinct (score, index) pairs (0 < k <= n),
    in the order of the heap above, to the front, in no particular order:
    the same set the heap keeps, by quickselect (median of three, Hoare
    partition), O(n) on average instead of O(n log k)."""
    cdef Py_ssize_t lo = 0, up = n - 1, want = k - 1, mid, piv, i, j
    cdef floating ps, ts
    cdef Py_ssize_t pc, tc
    while lo < up:
        mid = lo + (up - lo) // 2
        # the median of the three (by the pair order)
        if heap_worse(hs[lo], hi[lo], hs[mid], hi[mid]):
            if heap_worse(hs[mid], hi[mid], hs[up], hi[up]):
                piv = mid
            elif heap_worse(hs[lo], hi[lo], hs[up], hi[up]):
                piv = up
            else:
                piv = lo
        elif heap_worse(hs[lo], hi[lo], hs[up], hi[up]):
            piv = lo
        elif heap_worse(hs[mid], hi[mid], hs[up], hi[up]):
            piv = up
        else:
            piv = mid
        ps = hs[piv]
        pc = hi[piv]
        i = lo
        j = up
        while i <= j:
            # better than the pivot to the front, worse to the back
            while heap_worse(ps, pc, hs[i], hi[i]):
                i = i + 1
            while heap_worse(hs[j], hi[j], ps, pc):
                j = j - 1
            if i <= j:
                ts = hs[i]
                tc = hi[i]
                hs[i] = hs[j]
                hi[i] = hi[j]
                hs[j] = ts
                hi[j] = tc
                i = i + 1
                j = j - 1
        if want <= j:
            up = j
        elif want >= i:
            lo = i
        else:
            break
