"""Scores of (user, item) pairs under a biased dot-product model.

``mu + b_u + b_i + p_u . q_i``: the prediction of matrix factorization (SGD and
ALS), SVD++ (with its effective user vectors) and BPR (``mu = 0``, item biases
only), behind :class:`sklearn_mf._latent.DotProductMixin`.
"""

from cython.parallel cimport prange

ctypedef fused floating:
    float
    double


def dot_scores(const int[::1] users, const int[::1] items,
               const floating[:, ::1] P, const floating[:, ::1] Q,
               const floating[::1] bu, const floating[::1] bi,
               double mu, floating[::1] out, int n_threads):
    """``out[n] = mu + b_u + b_i + p_u . q_i`` where unknown ids (index -1)
    contribute nothing: an unknown user keeps ``mu + b_i``, an unknown item
    ``mu + b_u``, both unknown ``mu``.  Empty ``bu``/``bi`` mean no biases."""
    cdef Py_ssize_t n_rows = users.shape[0], k = P.shape[1]
    cdef Py_ssize_t n, f, u, i
    cdef bint biased = bu.shape[0] > 0
    cdef floating acc
    with nogil:
        for n in prange(n_rows, num_threads=n_threads, schedule="static"):
            u = users[n]
            i = items[n]
            acc = <floating>mu
            if biased:
                if u >= 0:
                    acc = acc + bu[u]
                if i >= 0:
                    acc = acc + bi[i]
            if u >= 0 and i >= 0:
                for f in range(k):
                    acc = acc + P[u, f] * Q[i, f]
            out[n] = acc
