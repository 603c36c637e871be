"""The block layout of distributed ALS: what runs inside each Dask task.

Every function here is a task body: it takes NumPy / pandas objects (the
results of other tasks) and returns new ones, never touching the client or
the scheduler.  The client side (``_estimators.py``) decides which task runs
on which block; this module only computes.

Layout (see ``doc/user_guide/cluster.rst``).  Users are cut into ``B_u``
blocks by code modulo ``B_u`` (user ``c`` is row ``c // B_u`` of block
``c % B_u``), items into ``B_i`` blocks the same way.  A *user block* holds
its users' interactions as a :class:`~sklearn_mf._als.RowMatrix` whose column
indices point into the compact matrix of just the item factors the block
needs, gathered in item-block order (the *in-links*), and, for each item
block, the local rows of its own users that the item block needs (the
*out-links*).  Item blocks mirror this.  A half-step then ships, from every
block ``j`` of the fixed side to every block ``b`` of the side being solved,
exactly the factor rows ``out_j[b]``: never a whole factor matrix (a solve
reads the rows of its own worker's blocks in place, and each other worker
sends it the rows of all its blocks in one message, :func:`send_group`).
"""

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sklearn_mf import _als_fast
from sklearn_mf._als import (
    RowMatrix,
    blas_single_thread,
    explicit_half_step,
    explicit_objective,
    implicit_half_step,
)

# the columns of every normalised input partition
USER, ITEM, VALUE = "user", "item", "value"


# ------------------------------------------------------------ input partitions
def frame_partition(part, y_part, has_value):
    """One input partition as a DataFrame with columns user, item, value.

    ``part`` is a pandas DataFrame (or a 2-d NumPy chunk of a dask array)
    whose columns 0 and 1 are the ids; the value is ``y_part`` when given,
    else column 2 when ``has_value``, else 1.
    """
    if isinstance(part, pd.DataFrame):
        users, items = part.iloc[:, 0].to_numpy(), part.iloc[:, 1].to_numpy()
        third = part.iloc[:, 2].to_numpy() if has_value and y_part is None else None
    else:
        arr = np.asarray(part)
        users, items = arr[:, 0], arr[:, 1]
        third = arr[:, 2] if has_value and y_part is None else None
    if y_part is not None:
        third = np.asarray(y_part).ravel()
        if len(third) != len(users):
            raise ValueError(
                f"A partition of y has {len(third)} rows but the matching partition "
                f"of X has {len(users)}; y must be partitioned like X."
            )
    value = np.ones(len(users)) if third is None else np.asarray(third, dtype=np.float64)
    return pd.DataFrame({USER: users, ITEM: items, VALUE: value})


def partition_summary(frame):
    """Per-partition unique ids and the numbers the input checks need."""
    v = frame[VALUE].to_numpy()
    return {
        "users": pd.unique(frame[USER].to_numpy()),
        "items": pd.unique(frame[ITEM].to_numpy()),
        "n": len(v),
        "null_ids": int(frame[USER].isna().sum() + frame[ITEM].isna().sum()),
        "non_finite": int((~np.isfinite(v)).sum()),
        "negative": int((v < 0).sum()),
        "positive": int((v > 0).sum()),
        "sum": float(v[np.isfinite(v)].sum()),
        # values that float32 holds exactly (integer or half-star ratings)
        # travel through the shuffle in 4 bytes instead of 8
        "inexact32": int((v.astype(np.float32) != v).sum()),
        "min": float(v.min()) if len(v) else np.inf,
        "max": float(v.max()) if len(v) else -np.inf,
    }


def merge_summaries(*parts):
    """Combine partition summaries (a node of the distributed unique's tree)."""
    out = dict(parts[0])
    for s in parts[1:]:
        for key in ("n", "null_ids", "non_finite", "negative", "positive", "sum", "inexact32"):
            out[key] = out[key] + s[key]
        out["min"] = min(out["min"], s["min"])
        out["max"] = max(out["max"], s["max"])
    for key in ("users", "items"):
        out[key] = pd.unique(
            np.concatenate(
                [
                    np.asarray(s[key], dtype=object)
                    if s[key].dtype != parts[0][key].dtype
                    else s[key]
                    for s in parts
                ]
            )
        )
    return out


def split_partition(frame, row_index, col_index, n_blocks, value_dtype, swap):
    """Encode a partition with the vocabularies and cut it into the pieces of one side.

    Returns ``pieces``: ``pieces[b]`` holds the rows of block ``b`` as
    ``(local row, column code, value)`` in the partition's row order; the
    rows are users (``swap=False``: ``row_index`` is the user vocabulary) or
    items (``swap=True``).  One side is split at a time, so that only one
    side's pieces are in the cluster's memory during the shuffle.
    """
    rc, cc = (ITEM, USER) if swap else (USER, ITEM)
    r = np.asarray(row_index.get_indexer(frame[rc].to_numpy()), dtype=np.int64)
    c = np.asarray(col_index.get_indexer(frame[cc].to_numpy()), dtype=np.int64)
    v = frame[VALUE].to_numpy().astype(value_dtype)
    return _pieces(r, c, v, n_blocks)


def _pieces(rows, cols, values, n_blocks):
    block = rows % n_blocks
    order = np.argsort(block, kind="stable")
    bounds = np.searchsorted(block[order], np.arange(n_blocks + 1))
    local = (rows // n_blocks).astype(np.int32)[order]
    cols32, vals = cols.astype(np.int32)[order], values[order]
    return [(local[a:z], cols32[a:z], vals[a:z]) for a, z in zip(bounds[:-1], bounds[1:])]


# ----------------------------------------------------------------- the blocks
def build_block(n_rows, n_cols_total, n_other_blocks, kind, params, *pieces):
    """Gather the pieces of one block (in partition order) into its CSR.

    ``kind`` is ``"explicit-u"``, ``"explicit-i"``, ``"implicit-u"`` or
    ``"implicit-i"`` (which model, which side).  The row order of the entries
    reproduces the local estimator's: for explicit ratings the user side keeps
    input order within a user and the item side sorts by user code (the
    transpose of the user-major matrix); for implicit feedback duplicates are
    summed and entries sorted by column code, as in ``user_items_``.
    """
    model, side = kind.split("-")
    rows = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.int32)
    cols = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, np.int32)
    vals = np.concatenate([p[2] for p in pieces]) if pieces else np.zeros(0)
    dtype = params["dtype"]
    raw_counts = np.bincount(rows, minlength=n_rows).astype(np.int64)
    if model == "implicit":
        m = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_rows, n_cols_total))
        m.sum_duplicates()
        indptr, gcols, summed = m.indptr.astype(np.intp), m.indices.astype(np.int32), m.data
        data = {"cw": (params["alpha"] * summed).astype(dtype)}
        if side == "u":
            data["y"] = summed  # the seen-items matrix of recommend and to_local
    else:
        order = np.argsort(rows, kind="stable") if side == "u" else np.lexsort((cols, rows))
        indptr = np.zeros(n_rows + 1, dtype=np.intp)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
        gcols = cols[order]
        data = {"t": (vals[order].astype(np.float64) - params["global_mean"]).astype(dtype)}
        if side == "u":
            data["y"] = vals[order].astype(np.float32)  # as user_items_ stores them
    del rows, cols, vals
    # in-links: the distinct columns, in (other block, local row) order
    B = n_other_blocks
    wide = np.int64 if B * (n_cols_total + 1) >= 2**31 else np.int32
    dest_of_entry = (gcols % B).astype(wide)
    key = dest_of_entry * wide(n_cols_total) + (gcols // B).astype(wide)
    needed = np.unique(key)
    compact = np.searchsorted(needed, key).astype(np.int32)
    del key
    needed_cols = ((needed % n_cols_total) * B + needed // n_cols_total).astype(np.int32)
    # out-links: which of this block's rows each other-side block needs
    n = max(n_rows, 1)
    wide = np.int64 if B * (n + 1) >= 2**31 else np.int32
    pairs = dest_of_entry.astype(wide, copy=False) * wide(n)
    del dest_of_entry
    pairs += np.repeat(np.arange(n_rows, dtype=wide), np.diff(indptr))
    pairs = np.unique(pairs)
    dest, local = pairs // n, (pairs % n).astype(np.intp)
    bounds = np.searchsorted(dest, np.arange(B + 1))
    return {
        "R": RowMatrix(indptr, compact, data, len(needed)),
        "cols": needed_cols,
        "out": [local[a:z].astype(np.int32) for a, z in zip(bounds[:-1], bounds[1:])],
        "row_weight": np.diff(indptr).astype(np.float64),
        "raw_counts": raw_counts,
    }


def piece_lengths(pieces):
    """Interactions of each block in one partition's pieces."""
    return np.array([len(p[0]) for p in pieces], dtype=np.int64)


def balanced_placement(loads, capacities):
    """Workers for blocks of the given ``loads``: largest first, each to the
    worker that it leaves least loaded per unit of capacity.

    ``capacities[w]`` is worker ``w``'s threads.  Returns ``place`` with
    ``place[b]`` the worker of block ``b``.  Deterministic (ties go to the
    lower block and worker numbers).  Blocks by code modulo ``B`` hold equal
    numbers of rows but, on power-law data, unequal numbers of
    interactions; the half-step's solves cost in proportion to the
    interactions and end together only if every worker's share is equal.
    """
    loads = np.asarray(loads, dtype=np.float64)
    caps = np.asarray(capacities, dtype=np.float64)
    held, count = np.zeros(len(caps)), np.zeros(len(caps))
    place = np.zeros(len(loads), dtype=np.int64)
    for b in sorted(range(len(loads)), key=lambda b: (-loads[b], b)):
        # equal loads (empty blocks too) go round the workers
        w = min(
            range(len(caps)), key=lambda w: ((held[w] + loads[b]) / caps[w], count[w] / caps[w], w)
        )
        place[b] = w
        held[w] += loads[b]
        count[w] += 1
    return place


def block_nnz(block):
    """Interactions, distinct columns and out-link sizes of a block (for sizing)."""
    return {
        "nnz": int(block["R"].indptr[-1]),
        "n_cols": int(block["R"].n_cols),
        "out": [len(o) for o in block["out"]],
        "n_rows": block["R"].n_rows,
    }


def concat_rows(*chunks):
    """Stack row chunks of an initial factor block."""
    return np.ascontiguousarray(np.concatenate(chunks)) if chunks else None


def as_factors(F, bias, params):
    """A factor block: ``(factors, bias or None, statistics)``."""
    return F, bias, factor_stats(F, bias, None, params)


def factor_stats(F, bias, block, params):
    """Penalty sums of a factor block (plain or scaled by each row's count)."""
    mult = block["row_weight"] if (block is not None and params.get("scale")) else 1.0
    pen = float(np.sum(mult * np.einsum("ij,ij->i", F, F, dtype=np.float64)))
    pen_b = 0.0 if bias is None else float(np.sum(mult * bias.astype(np.float64) ** 2))
    return {"pen": pen, "pen_b": pen_b}


# ------------------------------------------------------------------ messages
def out_links(block):
    """A block's out-links alone: what its messages need, without its CSR
    (so that a spilled block need not be read back to send its rows)."""
    return block["out"]


def send(links, factors, dest):
    """The factor rows (and biases) that block ``dest`` needs, by ``links = out_links(block)``."""
    F, bias, _ = factors
    rows = links[dest]
    return np.ascontiguousarray(F[rows]), (None if bias is None else bias[rows])


def send_group(dest, *links_and_factors):
    """One message to block ``dest`` from several blocks of one worker.

    ``links_and_factors`` alternates ``out_links(block_j)`` and the factor
    block of ``j`` for the blocks ``j`` of the message, in block order.  The
    rows of every ``j`` are gathered straight into one contiguous array
    (and the biases into another), which travels as a single buffer: one
    copy on the sender, none to stack them on the receiver.  Returns
    ``(rows, biases or None, lengths)``, ``lengths[m]`` the rows of the
    ``m``-th block.
    """
    pairs = [links_and_factors[a : a + 2] for a in range(0, len(links_and_factors), 2)]
    lengths = [len(links[dest]) for links, _ in pairs]
    F0, bias0, _ = pairs[0][1]
    F = np.empty((sum(lengths), F0.shape[1]), dtype=F0.dtype)
    bias = None if bias0 is None else np.empty(len(F), dtype=bias0.dtype)
    a = 0
    for (links, (Fj, bj, _)), n in zip(pairs, lengths):
        np.take(Fj, links[dest], axis=0, out=F[a : a + n], mode="clip")
        if bias is not None:
            np.take(bj, links[dest], out=bias[a : a + n], mode="clip")
        a += n
    return F, bias, lengths


class _Source:
    """The factor rows one block of the fixed side contributes to a solve.

    Either rows already gathered for the solve (a message: ``idx`` None) or
    a factor block of the same worker with the row numbers to take from it
    (``idx``), read in place: a block's rows never travel to a block of its
    own worker, and are copied once, into the solve's stacked matrix.
    """

    __slots__ = ("F", "bias", "idx", "n")

    def __init__(self, F, bias, idx=None):
        self.F, self.bias, self.idx = F, bias, idx
        self.n = len(F) if idx is None else len(idx)

    def take(self, rows, out, bias_out):
        """Rows ``rows`` of this source (None: all) into ``out`` / ``bias_out``."""
        if rows is None:
            rows = self.idx
        elif self.idx is not None:
            rows = self.idx[rows]
        if rows is None:
            out[...] = self.F
            if bias_out is not None:
                bias_out[...] = self.bias
        else:
            # mode="clip": the row numbers are valid, and "raise" buffers ``out``
            np.take(self.F, rows, axis=0, out=out, mode="clip")
            if bias_out is not None:
                np.take(self.bias, rows, out=bias_out, mode="clip")


def _sources(dest, plan, inputs):
    """The per-block sources of a solve, in block order, from its task inputs.

    ``plan`` has one entry per source group: ``("l", j)`` takes two inputs,
    the factor block of ``j`` (on this worker) and ``out_links`` of its block;
    ``("m", js)`` takes one input, a message of ``send`` (one block,
    ``js`` of length 1) or of :func:`send_group` (the blocks ``js``).
    """
    by_block, pos = {}, 0
    for kind, js in plan:
        if kind == "l":
            (F, bias, _), links = inputs[pos], inputs[pos + 1]
            by_block[js] = _Source(F, bias, links[dest])
            pos += 2
            continue
        msg = inputs[pos]
        pos += 1
        if len(msg) == 2:  # a single block's message
            by_block[js[0]] = _Source(msg[0], msg[1])
            continue
        F, bias, lengths = msg
        a = 0
        for j, n in zip(js, lengths):
            by_block[j] = _Source(F[a : a + n], None if bias is None else bias[a : a + n])
            a += n
    return [by_block[j] for j in sorted(by_block)]


def _gathered(sources, k, dtype):
    """The factor rows of every source stacked in block order (one copy each)."""
    n = sum(s.n for s in sources)
    Y = np.empty((n, k), dtype=dtype)
    has_bias = bool(sources) and sources[0].bias is not None
    b = np.empty(n, dtype=dtype) if has_bias else None
    a = 0
    for s in sources:
        s.take(None, Y[a : a + s.n], None if b is None else b[a : a + s.n])
        a += s.n
    return Y, b


def row_chunks(indptr, n_gathered, max_rows):
    """Row ranges ``[a, z)`` of a block whose gathered factor rows fit ``max_rows``.

    The whole block when its ``n_gathered`` rows fit (or ``max_rows`` is
    None); otherwise consecutive ranges of at most ``max_rows`` entries each
    (so at most that many distinct columns), at least one row each.
    """
    n_rows = len(indptr) - 1
    if max_rows is None or n_gathered <= max_rows or n_rows <= 1:
        return [(0, n_rows)]
    out, a = [], 0
    while a < n_rows:
        z = int(np.searchsorted(indptr, indptr[a] + max_rows, side="right")) - 1
        z = min(max(z, a + 1), n_rows)
        out.append((a, z))
        a = z
    return out


def _chunk(R, a, z, sources, offsets, k, dtype):
    """Rows ``a:z`` of ``R`` with only the gathered factor rows they use.

    ``offsets[m]`` is the first compact column of source ``m``; the rows are
    copied out of the sources without stacking them.
    """
    s, e = R.indptr[a], R.indptr[z]
    cols = R.indices[s:e]
    need = np.unique(cols)
    Y = np.empty((len(need), k), dtype=dtype)
    has_bias = bool(sources) and sources[0].bias is not None
    b = np.empty(len(need), dtype=dtype) if has_bias else None
    cut = np.searchsorted(need, offsets)
    for m, src in enumerate(sources):
        lo, hi = cut[m], cut[m + 1]
        if hi > lo:
            src.take(need[lo:hi] - offsets[m], Y[lo:hi], b[lo:hi] if has_bias else None)
    indptr = (R.indptr[a : z + 1] - s).astype(np.intp)
    indices = np.searchsorted(need, cols).astype(np.int32)
    data = {key: v[s:e] for key, v in R.data.items() if key in ("t", "w", "cw")}
    return RowMatrix(indptr, indices, data, len(need)), Y, b


def factor_gram(factors):
    """``F^T F`` of a factor block, float64 (summed over blocks for ``Y^T Y``)."""
    F = factors[0]
    return (F.T.astype(np.float64) @ F.astype(np.float64)) if len(F) else 0.0


def sum_grams(*grams):
    """Sum of block Gram matrices, in block order (deterministic)."""
    total = 0.0
    for g in grams:
        total = total + g
    return total


def solve_block(block, old, G, params, with_loss, *messages):
    """One half-step on one block from the messages of every fixed block.

    ``messages[j]`` is ``send(out_links(block_j), factors_j, b)`` for each
    block ``j`` of the fixed side, in block order; see :func:`solve_block_from`.
    """
    return _solve(block, old, G, params, with_loss, [_Source(m[0], m[1]) for m in messages])


def solve_block_from(block, old, G, params, with_loss, dest, plan, *inputs):
    """One half-step on block ``dest``, its factor rows read where they are.

    The factor blocks of the same worker are read in place, the other
    workers' rows come as messages (``plan`` and ``inputs`` as in
    :func:`_sources`); the result is that of :func:`solve_block` on the
    messages of every block.
    """
    return _solve(block, old, G, params, with_loss, _sources(dest, plan, inputs))


def _solve(block, old, G, params, with_loss, sources):
    """One half-step on one block: the local estimator's half-step function on
    the block's rows against the gathered factors of the other side.

    The rows are solved in chunks when the gathered factor rows exceed
    ``params["max_gathered_rows"]``: each chunk copies out of the sources
    only the rows it uses, so the task holds the messages plus one chunk's
    rows instead of the messages plus their stacking.  Every row's
    system is the same either way (same entries, same factor values, same
    order), so the result does not depend on the chunking.

    With ``with_loss`` (the second half-step of an iteration, when both sides
    are new) the statistics also hold the block's data term of the
    objective, computed from the same gathered factors.  ``stats["seconds"]``
    holds the task's wall-clock seconds gathering rows and in the kernel,
    and its thread's CPU seconds (a profile; nothing depends on them).
    """
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    gather_s = 0.0
    R = block["R"]
    k, dtype = params["n_factors"], params["dtype"]
    n_threads = params["n_threads"]
    offsets = np.cumsum([0] + [s.n for s in sources])
    ranges = row_chunks(R.indptr, int(offsets[-1]), params.get("max_gathered_rows"))
    if params["model"] == "implicit":
        X = old[0].copy()
        G = np.ascontiguousarray(np.asarray(G, dtype=np.float64).astype(dtype))
        bias = None
    elif params.get("solver") == "cg":  # warm start from the factors replaced
        X = old[0].copy()
        bias = None if old[1] is None or not params["biased"] else old[1].copy()
    else:
        X = np.zeros((R.n_rows, k), dtype=dtype)
        bias = np.zeros(R.n_rows, dtype=dtype) if params["biased"] else None
    cg_explicit = params["model"] == "explicit" and params.get("solver") == "cg"
    data = 0.0
    for a, z in ranges:
        t = time.perf_counter()
        if len(ranges) == 1:
            Rc, (Y, other_bias) = R, _gathered(sources, k, dtype)
        else:
            Rc, Y, other_bias = _chunk(R, a, z, sources, offsets, k, dtype)
        gather_s += time.perf_counter() - t
        Xc, bc = X[a:z], (None if bias is None else bias[a:z])
        if params["model"] == "implicit":
            implicit_half_step(
                Rc, Y, Xc, params["reg"], params["solver"], params["cg_steps"], n_threads, G=G
            )
        else:
            # the CG kernel returns each row's squared error: no second pass
            sse = np.zeros(Rc.n_rows) if cg_explicit and with_loss else None
            explicit_half_step(
                Rc,
                Y,
                other_bias,
                Xc,
                bc,
                params["reg"],
                params["reg_b"],
                params["scale"],
                n_threads,
                "cg" if cg_explicit else "cholesky",
                params.get("cg_steps", 3),
                sse,
            )
            if sse is not None:
                data += float(np.sum(sse))
        if with_loss and not cg_explicit:
            data += observed_loss(Rc, Xc, bc, Y, other_bias, params)
        del Rc, Y, other_bias
    stats = factor_stats(X, bias, block, params)
    if with_loss:
        stats["data"] = data
    wall = time.perf_counter() - wall0
    stats["seconds"] = {
        "gather": gather_s,
        "wall": wall,
        "cpu": time.thread_time() - cpu0,
    }
    return X, bias, stats


def observed_loss(R, X, bias, Y, other_bias, params):
    """The data term of the objective that a block's entries carry.

    Explicit: the squared error of the block's ratings; implicit: the
    observed-cell correction (the rest is ``<G_u, G_i>``, from the Grams).
    """
    n_threads = params["n_threads"]
    if params["model"] == "implicit":
        with blas_single_thread():
            return float(
                _als_fast.implicit_loss_observed(R.indptr, R.indices, R.data["cw"], X, Y, n_threads)
            )
    return explicit_objective(R, X, bias, Y, other_bias, 0.0, 0.0, False, n_threads, None, None)


# ----------------------------------------------------------- gathering back
def block_interactions(block, n_user_blocks, b):
    """A user block's training interactions as global codes (for ``to_local``)."""
    R = block["R"]
    rows = np.repeat(np.arange(R.n_rows, dtype=np.int64), np.diff(R.indptr))
    users = (rows * n_user_blocks + b).astype(np.int32)
    return users, block["cols"][R.indices], R.data["y"], R.data.get("t")


def seen_matrix(block, n_items):
    """The block users' seen items (``user_items_`` rows), global item codes."""
    R = block["R"]
    m = sp.csr_matrix(
        (R.data["y"].astype(np.float32), block["cols"][R.indices], R.indptr),
        shape=(R.n_rows, n_items),
    )
    m.sum_duplicates()
    m.indices = m.indices.astype(np.int32, copy=False)
    m.indptr = m.indptr.astype(np.int32, copy=False)
    return m


def recommend_block(block, factors, model, block_users, query, n, exclude_seen):
    """Top-``n`` rows ``(user, rank, item, score)`` for the users ``query``.

    ``model`` is a fitted local estimator that holds the item side (factors,
    biases, ``items_``, popularity); it is given this block's users, factors
    and seen items, and its own ``recommend`` does the work, so that the
    result is the local estimator's, unknown users (popularity) included.
    """
    model = _with_users(model, block, factors, block_users)
    rec = model.recommend(query, n=n, exclude_seen=exclude_seen)
    n_q, n_cols = rec.items.shape
    keep = rec.scores.ravel() > -np.inf
    return pd.DataFrame(
        {
            "user": np.repeat(query, n_cols)[keep],
            "rank": np.tile(np.arange(1, n_cols + 1, dtype=np.int32), n_q)[keep],
            "item": rec.items.ravel()[keep],
            "score": rec.scores.ravel()[keep],
        }
    )


def _with_users(model, block, factors, block_users):
    import copy

    m = copy.copy(model)  # shallow: the item arrays are shared, never written
    m.users_ = block_users
    m._user_index = pd.Index(block_users)
    m.user_factors_ = factors[0]
    if hasattr(m, "item_bias_"):  # MatrixFactorization
        m.user_bias_ = (
            factors[1]
            if factors[1] is not None
            else np.zeros(len(block_users), dtype=factors[0].dtype)
        )
    m.user_items_ = seen_matrix(block, len(m.items_))
    return m
