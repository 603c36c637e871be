"""SGD kernel for Bayesian Personalised Ranking (Rendle et al. 2009).

For a triple (user ``u``, positive item ``i``, negative item ``j``)::

    x     = b_i - b_j + p_u . (q_i - q_j)
    g     = sigmoid(-x)                       # d log sigmoid(x) / dx
    b_i  += lr * ( g - reg_b * b_i)
    b_j  += lr * (-g - reg_b * b_j)
    p_u  += lr * ( g * (q_i - q_j) - reg * p_u)
    q_i  += lr * ( g * p_u_old - reg * q_i)
    q_j  += lr * (-g * p_u_old - reg * q_j)

Positives are drawn uniformly from the user-item pairs (so active users are
visited more often, as in Rendle's LearnBPR), negatives uniformly from the
catalogue.  A negative equal to the positive is always skipped; with
``skip_seen`` a negative the user interacted with is skipped too (binary search
in the user's sorted CSR row).  Skipped samples make no update.

``bpr_epoch_blocked`` (what the estimator runs) follows a block schedule:
in each of ``T`` strata the ``T`` tasks own disjoint user and item blocks, so
the result is reproducible for a given number of blocks whatever the thread
timing.  ``bpr_epoch`` visits given samples in order (the kernel test against
NumPy) or draws its own with lock-free threads on disjoint chunks of samples
(kept for the sampler test; reproducible with one thread only).
"""

from cython.parallel cimport prange
from libc.math cimport exp, isfinite, log1p
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from sklearn_mf._kernel_helpers cimport skmf_below as _below

ctypedef fused floating:
    float
    double


cdef inline bint _in_row(const int* indices, Py_ssize_t lo, Py_ssize_t hi, int j) noexcept nogil:
    """Binary search for ``j`` in the sorted ``indices[lo:hi]``."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < j:
            lo = mid + 1
        elif indices[mid] > j:
            hi = mid
        else:
            return True
    return False


cdef inline int _bpr_step(Py_ssize_t u, Py_ssize_t i, Py_ssize_t j,
                          floating* P, floating* Q, floating* b, Py_ssize_t k,
                          floating lr, floating reg, floating reg_b, bint update_items,
                          double* loss, Py_ssize_t* n_correct) noexcept nogil:
    """One update; returns 1 if x is not finite (divergence), else 0."""
    cdef floating* p = P + u * k
    cdef floating* qi = Q + i * k
    cdef floating* qj = Q + j * k
    cdef floating x = 0, g, pf, qif, qjf
    cdef Py_ssize_t f
    if b != NULL:
        x = b[i] - b[j]
    for f in range(k):
        x = x + p[f] * (qi[f] - qj[f])
    if not isfinite(x):
        return 1
    # g = sigmoid(-x) and -log sigmoid(x) from one exp(-|x|), without overflow
    cdef double ax = x if x > 0 else -x
    cdef double em = exp(-ax)
    if x > 0:
        loss[0] += log1p(em)
        n_correct[0] += 1
        g = <floating>(em / (1.0 + em))
    else:
        loss[0] += ax + log1p(em)
        g = <floating>(1.0 / (1.0 + em))
    if not update_items:  # fold-in: only the user moves
        for f in range(k):
            p[f] = p[f] + lr * (g * (qi[f] - qj[f]) - reg * p[f])
        return 0
    if b != NULL:
        b[i] += lr * (g - reg_b * b[i])
        b[j] += lr * (-g - reg_b * b[j])
    for f in range(k):
        pf = p[f]
        qif = qi[f]
        qjf = qj[f]
        p[f] = pf + lr * (g * (qif - qjf) - reg * pf)
        qi[f] = qif + lr * (g * pf - reg * qif)
        qj[f] = qjf + lr * (-g * pf - reg * qjf)
    return 0


cdef inline int _triple(Py_ssize_t u, Py_ssize_t i, Py_ssize_t j,
                        const int* indptr, const int* indices, bint skip_seen,
                        floating* P, floating* Q, floating* b, Py_ssize_t k,
                        floating lr, floating reg, floating reg_b, bint update_items,
                        double* loss, Py_ssize_t* n_correct) noexcept nogil:
    """The triple (user, positive, negative): 0 updated, 1 skipped (``j`` is the
    positive, or seen with ``skip_seen``), 2 not finite."""
    if j == i or (skip_seen and _in_row(indices, indptr[u], indptr[u + 1], <int>j)):
        return 1
    if _bpr_step(u, i, j, P, Q, b, k, lr, reg, reg_b, update_items, loss, n_correct):
        return 2
    return 0


cdef struct _Tally:
    # what one task saw: summed in task order after the parallel block
    double loss
    Py_ssize_t correct, updates, skipped, bad


cdef inline bint _count(_Tally* c, int r) noexcept nogil:
    """Record the outcome ``r`` of :func:`_triple`; True if the task must stop."""
    if r == 2:
        c.bad += 1
        return True
    c.skipped += (r == 1)
    c.updates += (r == 0)
    return False


cdef inline void _merge(_Tally* into, const _Tally* c) noexcept nogil:
    into.loss += c.loss
    into.correct += c.correct
    into.updates += c.updates
    into.skipped += c.skipped
    into.bad += c.bad


cdef Py_ssize_t _report(_Tally* tallies, Py_ssize_t n, double[::1] stats):
    """Sum ``n`` task tallies in order into ``stats``, free them, return the divergences."""
    cdef _Tally total
    cdef Py_ssize_t t
    total.loss = 0.0
    total.correct = total.updates = total.skipped = total.bad = 0
    for t in range(n):
        _merge(&total, &tallies[t])
    free(tallies)
    stats[0] = total.loss
    stats[1] = total.correct
    stats[2] = total.updates
    stats[3] = total.skipped
    return total.bad


def bpr_epoch(const int[::1] pos_users, const int[::1] indptr, const int[::1] indices,
              const Py_ssize_t[::1] sample_pos, const int[::1] sample_neg,
              Py_ssize_t n_samples,
              floating[:, ::1] P, floating[:, ::1] Q, floating[::1] item_bias,
              double lr, double reg, double reg_bias, bint skip_seen,
              const uint64_t[::1] seeds, int n_threads, double[::1] stats,
              bint update_items=True):
    """One BPR epoch of ``n_samples`` SGD steps.

    Parameters
    ----------
    pos_users : int32 array of shape (nnz,)
        User of each stored positive (the row of ``indices[n]``).
    indptr, indices : int32 CSR arrays of the positives, each row sorted.
    sample_pos, sample_neg : arrays of shape (n_samples,) or empty
        Given samples (index into the positives, negative item), visited in
        order; used for testing.  When empty, the kernel draws its own:
        thread ``t`` takes samples ``[t n / T, (t+1) n / T)`` and its own
        generator seeded with ``seeds[t]`` (``len(seeds) >= n_threads``).
    P, Q, item_bias : factors, updated in place; empty ``item_bias`` = none.
    stats : float64 array of shape (4,)
        Receives (sum of -log sigmoid(x), number of x > 0, number of updates,
        number of skipped samples).
    update_items : bool, default=True
        False updates only the user factors (fold-in of new users against
        fixed items; ``Q`` and ``item_bias`` are then only read).

    Returns
    -------
    n_bad : int
        Samples whose score was not finite (divergence).
    """
    cdef Py_ssize_t k = P.shape[1], n_items = Q.shape[0]
    cdef Py_ssize_t nnz = indices.shape[0]
    cdef bint given = sample_neg.shape[0] > 0
    cdef floating* b = &item_bias[0] if item_bias.shape[0] > 0 else NULL
    cdef Py_ssize_t t, n, start, stop, pos, j
    cdef _Tally* c
    cdef _Tally* tallies
    cdef uint64_t state
    stats[:] = 0.0
    if n_samples == 0 or nnz == 0:
        return 0
    if given:
        n_samples = sample_neg.shape[0]
        n_threads = 1
    elif seeds.shape[0] < n_threads:
        raise ValueError("need one seed per thread")
    tallies = <_Tally*>calloc(n_threads, sizeof(_Tally))
    if tallies == NULL:
        raise MemoryError()
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            start = t * n_samples // n_threads
            stop = (t + 1) * n_samples // n_threads
            state = seeds[t] if not given else 0
            c = tallies + t
            for n in range(start, stop):
                if given:
                    pos = sample_pos[n]
                    j = sample_neg[n]
                else:
                    pos = _below(&state, nnz)
                    j = _below(&state, n_items)
                if _count(c, _triple(pos_users[pos], indices[pos], j, &indptr[0], &indices[0],
                                     skip_seen, &P[0, 0], &Q[0, 0], b, k, <floating>lr,
                                     <floating>reg, <floating>reg_bias, update_items,
                                     &c.loss, &c.correct)):
                    break
    return _report(tallies, n_threads, stats)


def bpr_epoch_blocked(const int[::1] block_users, const int[::1] block_items,
                      const int[::1] indptr, const int[::1] indices,
                      const Py_ssize_t[::1] block_ptr, const int[::1] item_perm,
                      const Py_ssize_t[::1] item_ptr,
                      floating[:, ::1] P, floating[:, ::1] Q, floating[::1] item_bias,
                      double lr, double reg, double reg_bias, bint skip_seen,
                      uint64_t[::1] states, int n_threads, double[::1] stats,
                      bint update_items=True):
    """One BPR epoch on a block schedule: reproducible for a given number of blocks.

    Users and items are cut into ``T`` blocks each (``T = len(item_ptr) - 1``).
    The epoch runs ``T`` strata; in stratum ``s``, block ``t`` (one task per
    thread) updates the users of user block ``t`` with positives and
    negatives of item block ``(t + s) % T``, so that no two tasks touch the
    same user or item and the result does not depend on thread timing.  Task
    ``t`` draws ``nnz(t, b)`` positives uniformly (with replacement) from its
    block's positives and each negative uniformly from item block ``b``, with
    its own generator ``states[t]`` (advanced in place, carried across
    strata).  The caller draws a new random blocking every epoch, so that a
    negative is uniform over the catalogue across epochs.

    Parameters
    ----------
    block_users, block_items : int32 arrays of shape (n_positives,)
        The positives to sample from (user, item), grouped by block
        ``user_block * T + item_block`` (contiguous, so a draw reads one pair).
    indptr, indices : int32 CSR arrays of all positives, rows sorted (for the
        seen-negative check).
    block_ptr : intp array of shape (T * T + 1,)
        Start of each block in ``block_users`` / ``block_items``.
    item_perm : int32 array of shape (n_items,)
        Items grouped by item block; block ``b`` is
        ``item_perm[item_ptr[b]:item_ptr[b + 1]]``.
    item_ptr : intp array of shape (T + 1,)
    P, Q, item_bias, lr, reg, reg_bias, skip_seen, stats, update_items
        As in :func:`bpr_epoch`.
    states : uint64 array of shape (T,)
        Generator states, one per block, updated in place.
    n_threads : int
        OpenMP threads (the result does not depend on it).

    Returns
    -------
    n_bad : int
        Samples whose score was not finite (divergence).
    """
    cdef Py_ssize_t T = item_ptr.shape[0] - 1
    cdef Py_ssize_t k = P.shape[1]
    cdef floating* b = &item_bias[0] if item_bias.shape[0] > 0 else NULL
    cdef Py_ssize_t s, t, n, lo, cnt, ib, ilo, icnt, pos, j
    cdef _Tally* c
    cdef _Tally* tallies  # T per-task totals, then T per-stratum scratch tallies
    cdef uint64_t state
    stats[:] = 0.0
    if T < 1 or block_ptr.shape[0] != T * T + 1 or states.shape[0] < T:
        raise ValueError("block_ptr needs T * T + 1 entries and states T entries")
    if block_users.shape[0] == 0:
        return 0
    tallies = <_Tally*>calloc(2 * T, sizeof(_Tally))
    if tallies == NULL:
        raise MemoryError()
    with nogil:
        for s in range(T):
            for t in prange(T, num_threads=n_threads, schedule="dynamic", chunksize=1):
                ib = (t + s) % T
                lo = block_ptr[t * T + ib]
                cnt = block_ptr[t * T + ib + 1] - lo
                ilo = item_ptr[ib]
                icnt = item_ptr[ib + 1] - ilo
                state = states[t]
                c = tallies + T + t
                memset(c, 0, sizeof(_Tally))
                for n in range(cnt if icnt > 0 else 0):
                    pos = lo + _below(&state, cnt)
                    j = item_perm[ilo + _below(&state, icnt)]
                    if _count(c, _triple(block_users[pos], block_items[pos], j, &indptr[0],
                                         &indices[0], skip_seen, &P[0, 0], &Q[0, 0], b, k,
                                         <floating>lr, <floating>reg, <floating>reg_bias,
                                         update_items, &c.loss, &c.correct)):
                        break
                states[t] = state
                _merge(tallies + t, c)
    return _report(tallies, T, stats)


def group_by_block(const int[::1] indptr, const int[::1] indices,
                   const Py_ssize_t[::1] positions, const int[::1] user_block,
                   const int[::1] item_block, Py_ssize_t T, int[::1] out_users,
                   int[::1] out_items, Py_ssize_t[::1] block_ptr):
    """Group positives by (user block, item block), stably, for ``bpr_epoch_blocked``.

    The positives are the entries of the CSR ``(indptr, indices)``, or only
    those at ``positions`` (ascending) when it is not empty.  Entry ``p`` of
    row ``u`` has key ``user_block[u] * T + item_block[indices[p]]``; a
    counting sort writes its (user, item) to ``out_users`` / ``out_items``
    in key order, entries of one key in their CSR order (what a stable sort
    of the keys gives), and ``block_ptr`` (``T * T + 1``) receives the start
    of each key.  Two passes, no array of the size of the positives besides
    the outputs.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1
    cdef bint subset = positions.shape[0] > 0
    cdef Py_ssize_t n_pos = positions.shape[0] if subset else indices.shape[0]
    cdef Py_ssize_t n, p, u, key, dst, n_keys = T * T
    cdef Py_ssize_t* cursor
    if block_ptr.shape[0] != n_keys + 1 or out_users.shape[0] < n_pos or out_items.shape[0] < n_pos:
        raise ValueError("block_ptr needs T * T + 1 entries and the outputs one per positive")
    cursor = <Py_ssize_t*>calloc(n_keys + 1, sizeof(Py_ssize_t))
    if cursor == NULL:
        raise MemoryError()
    with nogil:
        for key in range(n_keys + 1):
            block_ptr[key] = 0
        u = 0
        for n in range(n_pos):  # count
            p = positions[n] if subset else n
            while indptr[u + 1] <= p:
                u = u + 1
            block_ptr[user_block[u] * T + item_block[indices[p]] + 1] += 1
        for key in range(n_keys):
            block_ptr[key + 1] += block_ptr[key]
            cursor[key] = block_ptr[key]
        u = 0
        for n in range(n_pos):  # place
            p = positions[n] if subset else n
            while indptr[u + 1] <= p:
                u = u + 1
            key = user_block[u] * T + item_block[indices[p]]
            dst = cursor[key]
            cursor[key] = dst + 1
            out_users[dst] = <int>u
            out_items[dst] = indices[p]
    free(cursor)
