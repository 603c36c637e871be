"""``sklearn_mf.dask.ImplicitALS`` and ``MatrixFactorization``: ALS on a cluster.

The client side of distributed ALS: it validates the parameters, builds the
task graph of each half-step with ``distributed.Client.submit`` and keeps the
futures of the blocks; the task bodies are in :mod:`sklearn_mf.dask._blocks`.
"""

import numbers
import time
import uuid
from operator import getitem

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from sklearn_mf._ids import _as_id_array, factorize_ids
from sklearn_mf._implicit import ImplicitALS as _LocalImplicitALS
from sklearn_mf._mf import MatrixFactorization as _LocalMF
from sklearn_mf._progress import EpochProgress
from sklearn_mf._utils import check_dtype
from sklearn_mf.dask import _blocks

# rows of initial factors drawn (and shipped) per chunk
_INIT_CHUNK = 1 << 16
# default blocks hold at most this many interactions, which bounds the
# temporary memory of building one (about 50 bytes per interaction)
_BLOCK_NNZ = 2_000_000
_BUILD_BYTES = 50
# share of the smallest worker's memory limit that the factor rows gathered
# by one solve may take (beyond it the block is solved in row chunks), and
# that the messages of the solves in flight may take
_GATHER_SHARE = 1 / 32
_IN_FLIGHT_SHARE = 1 / 4
# a solve receives one message per other worker (True) or per other block;
# the switches below exist for the ablation rows of benchmarks/bench_dask.py
_GROUP_MESSAGES = True
# a solve reads the factor blocks of its own worker in place (else: messages)
_READ_IN_PLACE = True
# blocks placed on workers by their interactions (else: round robin)
_PLACE_BY_NNZ = True
# iteration it + 1 submitted before the objective of it is awaited
_AHEAD = True


def initial_factor_chunks(random_state, sizes, n_factors, init_std, dtype, chunk=_INIT_CHUNK):
    """Yield ``(matrix index, first row, rows)`` of the local estimators' initial factors.

    ``ImplicitALS`` and ``MatrixFactorization`` draw their user and then their
    item factors from one ``numpy.random.Generator`` seeded by
    ``random_state``; consecutive draws from a generator are the same numbers
    whether taken at once or in chunks, so this reproduces them exactly
    without holding a whole matrix.
    """
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31))
    for which, n in enumerate(sizes):
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            yield which, start, rng.normal(0, init_std, (rows, n_factors)).astype(dtype)


def _get_client():
    from distributed import get_client

    try:
        return get_client()
    except ValueError as exc:
        raise RuntimeError(
            "sklearn_mf.dask estimators run on a dask.distributed cluster: create a "
            "distributed.Client (for example Client(LocalCluster())) before fit."
        ) from exc


class _DaskALS(BaseEstimator):
    """Shared fit loop, ``to_local`` and ``recommend_all`` of the dask ALS models."""

    _local_class = None
    _model = None  # "implicit" or "explicit"

    # ------------------------------------------------------------- input
    def _partitions(self, X, y):
        import dask.array as da
        import dask.dataframe as dd
        from dask import delayed

        if isinstance(X, dd.DataFrame):
            n_cols = len(X.columns)
            names = [c for c in X.columns[:2]]
            parts = X.to_delayed()
        elif isinstance(X, da.Array):
            if X.ndim != 2:
                raise ValueError(f"A dask array X must be 2-d, got shape {X.shape}.")
            if len(X.chunks[1]) != 1:
                X = X.rechunk({1: -1})
            n_cols, names = X.shape[1], None
            parts = list(X.to_delayed().ravel())
        else:
            raise TypeError(
                "X must be a dask.dataframe.DataFrame or a dask.array.Array of "
                f"(user, item[, value]) rows, got {type(X).__name__}; use the "
                "sklearn_mf estimators for in-memory data."
            )
        if n_cols < 2:
            raise ValueError(f"X needs a user and an item column, got {n_cols} column(s).")
        y_parts = [None] * len(parts)
        if y is not None:
            if isinstance(y, (dd.Series, dd.DataFrame)):
                y_parts = y.to_delayed()
            elif isinstance(y, da.Array):
                y_parts = list(y.to_delayed().ravel())
            else:
                raise TypeError(
                    "y must be a dask Series or array partitioned like X, "
                    f"or None; got {type(y).__name__}."
                )
            if len(y_parts) != len(parts):
                raise ValueError(
                    f"y has {len(y_parts)} partitions but X has {len(parts)}; partition y like X."
                )
        has_value = n_cols >= 3 or y is not None
        if self._model == "explicit" and not has_value:
            raise ValueError(
                "MatrixFactorization needs ratings: a third column of X (user, item, rating) or y."
            )
        self.n_features_in_ = 2
        if names is not None and all(isinstance(c, str) for c in names):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        frame = delayed(_blocks.frame_partition, pure=True)
        return [frame(p, yp, has_value) for p, yp in zip(parts, y_parts)]

    def _vocabularies(self, client, parts):
        """Distributed unique of the ids (a tree of merges) and the input checks."""
        from dask import delayed

        level = [delayed(_blocks.partition_summary, pure=True)(p) for p in parts]
        while len(level) > 1:
            level = [
                delayed(_blocks.merge_summaries, pure=True)(*level[a : a + 8])
                for a in range(0, len(level), 8)
            ]
        s = client.compute(level[0]).result()
        if s["n"] == 0:
            raise ValueError("X holds no interaction (every partition is empty).")
        if s["null_ids"]:
            raise ValueError(f"{s['null_ids']} missing (NaN/None) user or item id(s) in X.")
        if s["non_finite"]:
            raise ValueError(f"{s['non_finite']} rating(s) or strength(s) are NaN or infinite.")
        if self._model == "implicit":
            if s["negative"]:
                raise ValueError(
                    f"{s['negative']} negative interaction strength(s); "
                    "implicit feedback needs y >= 0."
                )
            if not s["positive"]:
                raise ValueError(
                    "y holds no positive interaction strength: every value is "
                    "0, so there is no observed preference to learn from."
                )
        users = factorize_ids(pd.Series(s["users"]).infer_objects().to_numpy())[1]
        items = factorize_ids(pd.Series(s["items"]).infer_objects().to_numpy())[1]
        return users, items, s

    # ------------------------------------------------------------- blocks
    def _n_blocks(self, client, nnz):
        if self.n_blocks is not None:
            return int(self.n_blocks)
        threads = sum(client.nthreads().values())
        per_block = _BLOCK_NNZ
        limit = _worker_memory(client)
        if limit:
            # building a block takes ~50 bytes per interaction of temporaries:
            # keep that under a quarter of the smallest worker's memory
            per_block = min(per_block, max(1, limit // (4 * _BUILD_BYTES)))
        n = max(1, 2 * threads, -(-nnz // per_block))
        # a multiple of the threads: every round of solves keeps them all busy
        return -(-n // max(threads, 1)) * max(threads, 1)

    def _warm_start(self):
        """Whether a half-step starts from the factors it replaces (CG)."""
        return self._model == "implicit" or getattr(self, "als_solver", "cholesky") == "cg"

    def _build_blocks(self, client, parts, n_users, n_items, B, params, uid):
        """Shuffle the interactions into user blocks, then into item blocks.

        The sides are shuffled one after the other (the input partitions are
        read twice), so that only one side's pieces are ever in memory.
        """
        from dask import delayed
        from distributed import wait

        threads = client.nthreads()
        workers = sorted(threads)
        value_dtype = np.float32 if self._model == "implicit" or not self._inexact32 else np.float64
        uidx = _put(client, pd.Index(self.users_), f"mf-{uid}-users")
        iidx = _put(client, pd.Index(self.items_), f"mf-{uid}-items")
        split = delayed(_blocks.split_partition, pure=True)
        blocks = {}
        for side, n_rows_total, n_cols in (("u", n_users, n_items), ("i", n_items, n_users)):
            rows_idx, cols_idx = (uidx, iidx) if side == "u" else (iidx, uidx)
            side_pieces = client.compute(
                [split(p, rows_idx, cols_idx, B, value_dtype, side == "i") for p in parts]
            )
            # each block on the worker that keeps the workers' interactions
            # (the work of a half-step) most even
            lengths = client.gather(
                [
                    client.submit(_blocks.piece_lengths, f, key=f"mf-{uid}-len{side}-{p}")
                    for p, f in enumerate(side_pieces)
                ]
            )
            loads = np.sum(lengths, axis=0) if lengths else np.zeros(B)
            place = _blocks.balanced_placement(loads, [threads[w] for w in workers])
            if not _PLACE_BY_NNZ:
                place = np.arange(B) % len(workers)
            # in rounds of one block per worker: a worker with builds queued
            # while another idles would have them stolen (the restriction is
            # loose, so that a lost worker's blocks can be rebuilt anywhere)
            rank = np.zeros(B, dtype=np.int64)
            for w in range(len(workers)):
                mine = np.flatnonzero(place == w)
                rank[mine] = np.arange(len(mine))
            out = [None] * B
            for r in range(int(rank.max()) + 1 if B else 0):
                round_ = []
                for b in np.flatnonzero(rank == r):
                    b = int(b)
                    pieces = [
                        client.submit(getitem, f, b, key=f"mf-{uid}-piece{side}-{p}-{b}")
                        for p, f in enumerate(side_pieces)
                    ]
                    n_rows = len(range(b, n_rows_total, B))
                    out[b] = client.submit(
                        _blocks.build_block,
                        n_rows,
                        n_cols,
                        B,
                        f"{self._model}-{side}",
                        params,
                        *pieces,
                        key=f"mf-{uid}-block{side}-{b}",
                        workers=[workers[place[b]]],
                        allow_other_workers=True,
                    )
                    round_.append(out[b])
                wait(round_)
            del side_pieces, pieces
            blocks[side] = out
        return blocks["u"], blocks["i"]

    def _at(self, block):
        """Task options that run a task on the worker holding ``block``."""
        return {"workers": [self._home[block.key]], "allow_other_workers": True}

    def _initial_factors(self, client, n_users, n_items, B, params, uid, dtype, ublocks, iblocks):
        """Scatter the local estimator's initial factors into blocks, chunk by chunk."""
        chunks = {0: [[] for _ in range(B)], 1: [[] for _ in range(B)]}
        for which, start, rows in initial_factor_chunks(
            self.random_state, (n_users, n_items), self.n_factors, self.init_std, dtype
        ):
            if which == 0 and not self._warm_start():
                continue  # the first user half-step does not read the user factors
            codes = np.arange(start, start + len(rows))
            for b in range(B):
                sel = rows[codes % B == b]
                if len(sel):
                    chunks[which][b].append(_put(client, sel, f"mf-{uid}-draw{which}-{start}-{b}"))
        facs = []
        for which, n_total in ((0, n_users), (1, n_items)):
            side = []
            for b in range(B):
                n_b = len(range(b, n_total, B))
                if which == 0 and not self._warm_start():
                    side.append(None)
                    continue
                at = self._at((ublocks, iblocks)[which][b])
                F = client.submit(
                    _blocks.concat_rows, *chunks[which][b], key=f"mf-{uid}-init{which}-{b}", **at
                )
                bias = None
                if self._model == "explicit":
                    bias = np.zeros(n_b, dtype=dtype)
                side.append(
                    client.submit(
                        _blocks.as_factors, F, bias, params, key=f"mf-{uid}-fac{which}-0-{b}", **at
                    )
                )
            facs.append(side)
        return facs

    # ---------------------------------------------------------------- fit
    def _fit(self, X, y):
        client = _get_client()
        dtype = check_dtype(self.dtype)
        parts = self._partitions(X, y)
        users, items, summary = self._vocabularies(client, parts)
        self.users_, self.items_ = users, items
        n_users, n_items = len(users), len(items)
        B = self._n_blocks(client, summary["n"])
        params = self._block_params(dtype)
        params["global_mean"] = self._global_mean(summary)
        if self._model == "explicit":
            self.global_mean_ = params["global_mean"]
            self.rating_range_ = (summary["min"], summary["max"])
        self._n_ratings, self._inexact32 = summary["n"], summary["inexact32"]
        uid = uuid.uuid4().hex[:8]
        from distributed import wait

        ublocks, iblocks = self._build_blocks(client, parts, n_users, n_items, B, params, uid)
        wait(ublocks + iblocks)
        # every later task of a block runs where the block was built (a loose
        # restriction: if that worker is lost, anywhere)
        self._home = {k: sorted(v)[0] for k, v in client.who_has(ublocks + iblocks).items()}
        self._links = {
            blk.key: client.submit(
                _blocks.out_links, blk, key=blk.key.replace("block", "links", 1), **self._at(blk)
            )
            for blk in ublocks + iblocks
        }
        ufac, ifac = self._initial_factors(
            client, n_users, n_items, B, params, uid, dtype, ublocks, iblocks
        )
        wait([f for f in ufac + ifac if f is not None])  # before the iterations are timed
        sizes = client.gather([client.submit(_blocks.block_nnz, blk) for blk in ublocks + iblocks])
        # rows shipped per half-step: distinct (item, user block) and (user, item block) pairs
        self.message_rows_ = {
            "to_users": int(sum(sum(s["out"]) for s in sizes[B:])),
            "to_items": int(sum(sum(s["out"]) for s in sizes[:B])),
        }
        self._plan_memory(client, sizes, B, params, dtype)
        self._client, self._uid, self.n_blocks_ = client, uid, B
        self._user_blocks, self._item_blocks = ublocks, iblocks
        self._iterate(client, ublocks, iblocks, ufac, ifac, params, B, uid)
        return self

    def _plan_memory(self, client, sizes, B, params, dtype):
        """Row-chunk size of the solves and the window of solves in flight.

        From the smallest worker's memory limit (none: whole blocks and a
        window of every block): a solve's gathered factor rows take
        at most ``_GATHER_SHARE`` of it, and the messages of the solves in
        flight (held twice while they travel: by the sender and by the
        receiver) at most ``_IN_FLIGHT_SHARE`` of the cluster's memory.  When
        fewer than two solves per worker fit, the half-steps also run one
        after the other.
        """
        n_workers = max(1, len(client.nthreads()))
        row_bytes = (self.n_factors + 1) * np.dtype(dtype).itemsize
        limit = _worker_memory(client)
        params["max_gathered_rows"] = (
            max(1, int(limit * _GATHER_SHARE) // row_bytes) if limit else None
        )
        self._max_gathered_rows = params["max_gathered_rows"]
        # every block of a half-step at once when the messages fit: a window
        # smaller than the blocks makes the client wait for a solve before
        # it submits the next block's messages (a round trip per block)
        self._window, self._serial = B, False
        if limit:
            # rows received by the block solved, per block of either side
            received = [sum(s["out"][b] for s in sizes[B:]) for b in range(B)]
            received += [sum(s["out"][b] for s in sizes[:B]) for b in range(B)]
            biggest = max(max(received) * row_bytes, 1)
            fits = int(limit * n_workers * _IN_FLIGHT_SHARE) // (2 * biggest)
            self._window = max(1, min(B, fits))
            self._serial = fits < 2 * n_workers

    def _global_mean(self, s):
        if self._model == "explicit" and self.biased:
            return s["sum"] / s["n"]
        return 0.0

    def _half_step(
        self, client, solve, fixed, fixed_fac, solved_fac, G, params, B, tag, with_loss=False
    ):
        """Give each block of ``solve`` the rows of ``fixed_fac`` it needs, and solve it.

        A solve reads the factor blocks of its own worker in place; each
        other worker sends it one message holding the rows of all its
        blocks (``send_group``).  Messages run before solves (a higher
        priority), so that a block's rows leave as soon as it is solved and
        travel while the worker solves its next block.  Blocks are
        submitted in a sliding window (every block, fewer when the messages
        would not fit the workers' memory): Dask would otherwise compute
        every message of the half-step at once (they are all ready),
        holding all of them in memory.
        """
        from distributed import as_completed, wait

        window = self._window
        # in-place reads and one message per worker only when every block's
        # messages fit (no memory-bounded window): under a tight memory limit
        # they made workers exceed their budget (30M ratings on 4 x 512 MB)
        roomy = window >= B and not self._serial
        in_place, grouped = _READ_IN_PLACE and roomy, _GROUP_MESSAGES and roomy
        running = as_completed()
        first = {} if self._serial else {"priority": 1}
        new = []
        for b in range(B):
            if b >= window:
                next(running)
            here = self._home[solve[b].key]
            plan, inputs, remote = [], [], {}
            for j in range(B):
                there = self._home[fixed[j].key]
                if there == here and in_place:
                    plan.append(("l", j))
                    inputs += [fixed_fac[j], self._links[fixed[j].key]]
                else:
                    remote.setdefault(there, []).append(j)
            for there in sorted(remote):
                # one message per worker, or per block (_GROUP_MESSAGES False)
                groups = [remote[there]] if grouped else [[j] for j in remote[there]]
                for js in groups:
                    links = [x for j in js for x in (self._links[fixed[j].key], fixed_fac[j])]
                    plan.append(("m", js))
                    inputs.append(
                        client.submit(
                            _blocks.send_group,
                            b,
                            *links,
                            key=f"mf-msg-{tag}-{js[0]}-{b}",
                            workers=[there],
                            allow_other_workers=True,
                            **first,
                        )
                    )
            new.append(
                client.submit(
                    _blocks.solve_block_from,
                    solve[b],
                    solved_fac[b] if self._warm_start() else None,
                    G,
                    params,
                    with_loss,
                    b,
                    plan,
                    *inputs,
                    key=f"mf-solve-{tag}-{b}",
                    **self._at(solve[b]),
                )
            )
            running.add(new[-1])
        if self._serial:
            wait(new)  # the next half-step's messages would not fit beside these
        return new

    def _gram(self, client, facs, tag):
        grams = [
            client.submit(_blocks.factor_gram, f, key=f"mf-gram-{tag}-{b}")
            for b, f in enumerate(facs)
        ]
        return client.submit(_blocks.sum_grams, *grams, key=f"mf-gramsum-{tag}")

    def _submit_iteration(self, client, it, ublocks, iblocks, ufac, ifac, G_i, params, B, uid):
        """Submit iteration ``it``: both half-steps and the pieces of its objective."""
        implicit = self._model == "implicit"
        # keys "mf-<kind>-<uid>-<iteration>-...": the scheduler estimates the
        # duration of a task from its kind (the words before the uid), so that
        # a message (milliseconds) never looks worth stealing with its inputs
        tag = f"{uid}-{it}"
        ufac = self._half_step(client, ublocks, iblocks, ifac, ufac, G_i, params, B, f"{tag}-u")
        G_u = self._gram(client, ufac, f"{tag}-u") if implicit else None
        ifac = self._half_step(
            client, iblocks, ublocks, ufac, ifac, G_u, params, B, f"{tag}-i", with_loss=True
        )
        if implicit:
            G_i = self._gram(client, ifac, f"{tag}-i")
            obs = [
                client.submit(_data_term, f, key=f"mf-loss-{tag}-{j}") for j, f in enumerate(ifac)
            ]
            parts = [obs, G_u, G_i]
        else:
            parts = [
                [
                    client.submit(getitem, f, 2, key=f"mf-stats-{tag}-{s}-{b}")
                    for b, f in enumerate(side)
                ]
                for s, side in (("u", ufac), ("i", ifac))
            ]
        return ufac, ifac, G_i, parts

    def _objective(self, values, params):
        """The objective of an iteration from its gathered pieces."""
        if self._model == "implicit":
            data, G_u_val, G_i_val = values
            G_u_val, G_i_val = np.asarray(G_u_val), np.asarray(G_i_val)
            return float(
                sum(data)
                + float(np.sum(G_u_val * G_i_val))
                + params["reg"] * (np.trace(G_u_val) + np.trace(G_i_val))
            )
        st_u, st_i = values
        data = [s["data"] for s in st_i]
        st = st_u + st_i
        pen = sum(s["pen"] for s in st)
        pen_b = sum(s["pen_b"] for s in st)
        loss = sum(data) + params["reg"] * pen + params["reg_b"] * pen_b
        return float(loss / max(float(self._n_ratings), 1e-300))

    def _iterate(self, client, ublocks, iblocks, ufac, ifac, params, B, uid):
        """The ALS iterations, one submitted ahead of the one whose objective is awaited.

        The client submits iteration ``it + 1`` (its inputs are the futures
        of iteration ``it``) before it waits for the objective of ``it``, so
        that the workers never wait for the client between iterations.  When
        ``tol`` stops the fit after ``it``, iteration ``it + 1`` is dropped
        (its futures released) and the factors of ``it`` are kept: the
        result is that of running the iterations one by one.  (Not when memory makes the half-steps
        run in a window of blocks: the next iteration would hold its
        messages beside this one's.)
        """
        self.loss_curve_ = []
        self.bytes_per_iteration_ = []
        self.seconds_per_iteration_ = []
        implicit = self._model == "implicit"
        G_i = self._gram(client, ifac, f"{uid}-0-i") if implicit else None
        # ahead only when a half-step's messages all fit beside the others
        ahead = _AHEAD and not self._serial and self._window >= B
        progress = EpochProgress(
            self.verbose, self.max_iter, unit="iteration", desc=type(self).__name__
        )
        with progress:
            t0, sent0 = time.perf_counter(), _bytes_sent(client)
            current = self._submit_iteration(
                client, 1, ublocks, iblocks, ufac, ifac, G_i, params, B, uid
            )
            for it in range(1, self.max_iter + 1):
                nxt = None
                if ahead and it < self.max_iter:
                    nxt = self._submit_iteration(
                        client, it + 1, ublocks, iblocks, *current[:3], params, B, uid
                    )
                ufac, ifac, _, parts = current
                loss = self._objective(client.gather(parts), params)
                t1, sent1 = time.perf_counter(), _bytes_sent(client)
                self.loss_curve_.append(loss)
                self.n_iter_ = it
                self.seconds_per_iteration_.append(t1 - t0)
                self.bytes_per_iteration_.append(sent1 - sent0)
                t0, sent0 = t1, sent1
                self._user_factors, self._item_factors = ufac, ifac
                progress.update(it, {"objective": loss})
                if self._should_stop(it) or it == self.max_iter:
                    # the iteration computed ahead, if any, is not wanted: its
                    # futures are released (the scheduler then forgets its
                    # tasks; client.cancel trips an assertion of distributed
                    # on the dependencies no client holds)
                    del nxt
                    break
                if nxt is None:
                    nxt = self._submit_iteration(
                        client, it + 1, ublocks, iblocks, *current[:3], params, B, uid
                    )
                current = nxt
        self._gather_items(client, ifac)

    def _gather_items(self, client, ifac):
        """The item side in client memory, rows in code order."""
        facs = client.gather(ifac)
        B = len(facs)
        n_items, k = len(self.items_), self.n_factors
        Q = np.empty((n_items, k), dtype=facs[0][0].dtype)
        for b, (F, _bias, _) in enumerate(facs):
            Q[b::B] = F
        self.item_factors_ = Q
        if self._model == "explicit":
            bi = np.zeros(n_items, dtype=Q.dtype)
            if self.biased:
                for b, (_, bias, _) in enumerate(facs):
                    bi[b::B] = bias
            self.item_bias_ = bi
        pop = np.zeros(n_items, dtype=np.int64)
        counts = client.gather([client.submit(_item_counts, blk) for blk in self._item_blocks])
        for b, c in enumerate(counts):
            pop[b::B] = c
        self.item_popularity_ = pop

    # ---------------------------------------------------------- to_local
    def user_factor_blocks(self):
        """The futures of the user factor blocks (block ``b``: users ``b::n_blocks_``).

        Returns
        -------
        blocks : list of distributed.Future
            Each resolves to ``(factors, biases or None, statistics)``.
        """
        check_is_fitted(self, "item_factors_")
        return list(self._user_factors)

    def to_local(self):
        """The fitted single-machine estimator (gathers the user side).

        Returns
        -------
        model : sklearn_mf.ImplicitALS or sklearn_mf.MatrixFactorization
            A fitted local estimator with the same parameters, factors, ids
            and training interactions: it pickles, recommends, folds in and
            takes ``partial_fit`` like one fitted in memory.
        """
        check_is_fitted(self, "item_factors_")
        client, B = self._client, self.n_blocks_
        n_users, n_items = len(self.users_), len(self.items_)
        facs = client.gather(self._user_factors)
        inter = client.gather(
            [
                client.submit(_blocks.block_interactions, blk, B, b)
                for b, blk in enumerate(self._user_blocks)
            ]
        )
        local = self._local_class(**self._local_params())
        dtype = self.item_factors_.dtype
        P = np.empty((n_users, self.n_factors), dtype=dtype)
        for b, (F, _, _) in enumerate(facs):
            P[b::B] = F
        u = np.concatenate([x[0] for x in inter])
        i = np.concatenate([x[1] for x in inter])
        yv = np.concatenate([x[2] for x in inter])
        local.users_, local.items_ = self.users_, self.items_
        local._user_index, local._item_index = pd.Index(self.users_), pd.Index(self.items_)
        local._set_training_interactions(u, i, yv)
        local.item_popularity_ = self.item_popularity_.copy()  # raw rows, not cells
        local.user_factors_, local.item_factors_ = P, self.item_factors_.copy()
        for name in ("n_features_in_", "feature_names_in_", "n_iter_"):
            if hasattr(self, name):
                setattr(local, name, getattr(self, name))
        local.loss_curve_ = list(self.loss_curve_)
        if self._model == "explicit":
            from sklearn_mf._als import RowMatrix

            bu = np.zeros(n_users, dtype=dtype)
            if self.biased:
                for b, (_, bias, _) in enumerate(facs):
                    bu[b::B] = bias
            local.user_bias_, local.item_bias_ = bu, self.item_bias_.copy()
            local.global_mean_, local.rating_range_ = self.global_mean_, self.rating_range_
            local.validation_scores_ = local.best_iteration_ = None
            t = np.concatenate([x[3] for x in inter])
            local._als_ratings = RowMatrix.from_codes(u, i, n_users, n_items, t=t)
        return local

    # ------------------------------------------------------- recommend_all
    def recommend_all(self, n=100, *, exclude_seen=True, users=None):
        """Top-``n`` items of every user, as a dask DataFrame computed block by block.

        Each user block's recommendations are computed on the worker that
        holds the block (its user factors and seen items) against the item
        factors, which are broadcast once; nothing is computed until the
        result is (for example ``.to_parquet(path)``).

        Parameters
        ----------
        n : int, default=100
            Items per user, best first (fewer when a user has seen almost
            every item and ``exclude_seen``).
        exclude_seen : bool, default=True
            Remove the items each user interacted with in ``fit``.
        users : array-like of ids, default=None
            Recommend for these users only (None: every user of ``fit``).
            Users without factors (not seen in ``fit``) get the popularity
            list, as in the local ``recommend``.

        Returns
        -------
        recommendations : dask.dataframe.DataFrame
            Columns ``user``, ``rank`` (1 = best), ``item`` and ``score``; one
            partition per user block (plus one for unknown users).
        """
        import dask.dataframe as dd
        from dask import delayed

        check_is_fitted(self, "item_factors_")
        client, B = self._client, self.n_blocks_
        if users is None:
            query = [self.users_[b::B] for b in range(B)]
            unknown = self.users_[:0]
        else:
            ids = _as_id_array(users)
            codes = pd.Index(self.users_).get_indexer(ids)
            query = [ids[(codes >= 0) & (codes % B == b)] for b in range(B)]
            unknown = ids[codes < 0]
        model = self._item_model()
        model_f = _put(client, model, f"mf-{self._uid}-item-model-{uuid.uuid4().hex[:8]}")
        rec = delayed(_blocks.recommend_block, pure=True)
        parts = [
            rec(
                self._user_blocks[b],
                self._user_factors[b],
                model_f,
                self.users_[b::B],
                query[b],
                n,
                exclude_seen,
            )
            for b in range(B)
            if len(query[b])
        ]
        if len(unknown):
            parts.append(
                rec(
                    self._user_blocks[0],
                    self._user_factors[0],
                    model_f,
                    self.users_[0::B],
                    unknown,
                    n,
                    exclude_seen,
                )
            )
        meta = pd.DataFrame(
            {
                "user": self.users_[:0],
                "rank": np.zeros(0, np.int32),
                "item": self.items_[:0],
                "score": np.zeros(0),
            }
        )
        if not parts:
            return dd.from_pandas(meta, npartitions=1)
        return dd.from_delayed(parts, meta=meta, verify_meta=False)

    def _item_model(self):
        """A local estimator holding the item side only (the user side comes per block)."""
        m = self._local_class(**self._local_params())
        m.items_, m._item_index = self.items_, pd.Index(self.items_)
        m.item_factors_, m.item_popularity_ = self.item_factors_, self.item_popularity_
        m.n_features_in_ = 2
        if self._model == "explicit":
            m.item_bias_, m.global_mean_ = self.item_bias_, self.global_mean_
            m.rating_range_ = self.rating_range_
        m.n_jobs = 1 if self.n_jobs is None else self.n_jobs
        return m


def _data_term(factors):
    return factors[2]["data"]


def _identity(obj):
    return obj


def _put(client, obj, key):
    """Ship ``obj`` in a task rather than by ``scatter``: the scheduler keeps the
    task, so Dask can recompute the value if the worker holding it is lost
    (scattered data has no lineage and would be gone)."""
    return client.submit(_identity, obj, key=key, pure=False)


def _item_counts(block):
    """Training interactions per row of an item block (the popularity)."""
    return block["raw_counts"]


def _no_sample_weight(sample_weight):
    if sample_weight is not None:
        raise ValueError(
            "sample_weight is not supported by the sklearn_mf.dask estimators: the "
            "weights would have to travel through the shuffle and the weighted "
            "penalties be summed per block, which is not implemented; fit the local "
            "estimator (sklearn_mf.MatrixFactorization(solver='als')) for weighted ratings."
        )


def _worker_memory(client):
    """The smallest worker memory limit in bytes (0: some worker has none)."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return int(min(limits)) if limits else 0


def _bytes_sent(client):
    """Bytes the workers have sent each other (and the client) so far.

    A worker lost since the last call is skipped (the counters are a
    measurement; the fit does not depend on them).
    """
    try:
        counts = client.run(_worker_bytes_sent, on_error="return")
    except OSError:
        return 0
    return sum(v for v in counts.values() if isinstance(v, int))


def _worker_bytes_sent(dask_worker):
    return int(dask_worker.transfer_outgoing_bytes_total)


_COMMON = (
    "n_factors",
    "regularization",
    "max_iter",
    "tol",
    "init_std",
    "dtype",
    "handle_unknown",
    "random_state",
    "n_jobs",
    "verbose",
)


class ImplicitALS(_DaskALS):
    r"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on a Dask cluster.

    The model, its parameters and, for a fixed ``random_state``, its result
    are those of :class:`sklearn_mf.ImplicitALS`; only where the work runs
    differs.  ``fit`` reads a dask DataFrame (or array) of (user, item[,
    strength]) rows on the current ``distributed.Client``, encodes the ids on
    the cluster, shuffles the interactions once into user blocks and item
    blocks that stay on the workers, and runs every half-step block by block
    with the local estimator's half-step function, shipping each factor
    vector only to the blocks that need it (see :ref:`cluster`).

    Parameters
    ----------
    n_factors : int, default=64
        Dimension of the user and item embeddings.
    alpha : float, default=1.0
        Confidence scale: an interaction of strength :math:`y` weighs
        :math:`1 + \alpha y`.
    regularization : float, default=0.05
        L2 penalty on the embeddings.
    max_iter : int, default=15
        ALS iterations.
    solver : {"cg", "cholesky"}, default="cg"
        Per-row solver, as in the local estimator.
    cg_steps : int, default=3
        Conjugate-gradient steps per row and half-step.
    tol : float or None, default=None
        Stop when the objective decreased by less than ``tol`` times its
        value (``0``: once it stops decreasing); None runs every iteration.
    init_std : float, default=0.01
        Standard deviation of the initial embeddings.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the factors.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        Passed to the local estimator of :meth:`to_local`.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation (the same draws as the local estimator).
    n_jobs : int or None, default=None
        OpenMP threads *per task*; None means 1 (Dask's worker threads are the
        parallelism).  Use more with workers of ``threads_per_worker=1`` that
        own several cores.
    verbose : int, default=0
        As in the local estimator.
    n_blocks : int or None, default=None
        User blocks and item blocks (each); None: twice the cluster's worker
        threads, or more so that a block holds at most 2 million
        interactions, rounded up to a multiple of the worker threads.

    Attributes
    ----------
    users_, items_ : ndarray
        Raw ids (sorted when comparable: the local estimator's codes).
    item_factors_ : ndarray of shape (n_items, n_factors)
        In client memory.  The user factors stay on the cluster
        (:meth:`user_factor_blocks`).
    item_popularity_ : ndarray of shape (n_items,)
    n_blocks_ : int
    n_iter_ : int
    loss_curve_ : list of float
        The objective after each iteration (that of the local estimator).
    seconds_per_iteration_ : list of float
    bytes_per_iteration_ : list of int
        Bytes the workers sent during each iteration (Dask's
        ``transfer_outgoing_bytes_total`` counters).
    message_rows_ : dict
        Factor rows shipped per iteration: ``"to_users"`` (item rows sent to
        the user blocks: distinct (item, user block) pairs) and
        ``"to_items"``; times ``n_factors * itemsize`` this is the formula
        of :ref:`cluster`.
    n_features_in_ : int
        2 (the id columns).

    See Also
    --------
    sklearn_mf.ImplicitALS : The single-machine estimator.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> from distributed import Client, LocalCluster
    >>> from sklearn_mf.dask import ImplicitALS
    >>> cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
    ...                        dashboard_address=None)
    >>> client = Client(cluster)
    >>> df = pd.DataFrame({"user": ["ann", "ann", "bob", "bob", "bob", "cat", "cat", "dan"],
    ...                    "item": ["jazz", "blues", "jazz", "blues", "soul", "rock",
    ...                             "metal", "rock"]})
    >>> model = ImplicitALS(n_factors=2, max_iter=10, random_state=0).fit(
    ...     dd.from_pandas(df, npartitions=2))
    >>> model.to_local().recommend(["ann", "dan"], n=1).items.tolist()
    [['soul'], ['metal']]
    >>> client.close(); cluster.close()
    """

    _local_class = _LocalImplicitALS
    _model = "implicit"
    _parameter_constraints: dict = {
        **{
            k: _LocalImplicitALS._parameter_constraints[k]
            for k in _COMMON + ("alpha", "solver", "cg_steps")
        },
        "n_blocks": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_factors=64,
        *,
        alpha=1.0,
        regularization=0.05,
        max_iter=15,
        solver="cg",
        cg_steps=3,
        tol=None,
        init_std=0.01,
        dtype=np.float32,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
        verbose=0,
        n_blocks=None,
    ):
        self.n_factors = n_factors
        self.alpha = alpha
        self.regularization = regularization
        self.max_iter = max_iter
        self.solver = solver
        self.cg_steps = cg_steps
        self.tol = tol
        self.init_std = init_std
        self.dtype = dtype
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.n_blocks = n_blocks

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit on a dask DataFrame or array of (user, item[, strength]) rows.

        Parameters
        ----------
        X : dask.dataframe.DataFrame or dask.array.Array
            Column 0 user ids, column 1 item ids (any hashable values),
            column 2, if present and ``y`` is None, the non-negative strength
            (1 when absent).  Repeated (user, item) rows add up.
        y : dask Series or array, default=None
            Strengths partitioned like ``X`` (instead of column 2).
        sample_weight : None
            Not supported on the cluster (a ``ValueError`` says so): scale
            the strengths instead (see :ref:`cluster`).

        Returns
        -------
        self : ImplicitALS
            The fitted estimator.
        """
        _no_sample_weight(sample_weight)
        return self._fit(X, y)

    def _block_params(self, dtype):
        from sklearn_mf._utils import effective_n_threads

        return {
            "model": "implicit",
            "dtype": dtype,
            "n_factors": self.n_factors,
            "alpha": float(self.alpha),
            "reg": float(self.regularization),
            "solver": self.solver,
            "cg_steps": self.cg_steps,
            "n_threads": 1 if self.n_jobs is None else effective_n_threads(self.n_jobs),
        }

    def _should_stop(self, it):
        c = self.loss_curve_
        return self.tol is not None and it > 1 and c[-2] - c[-1] <= self.tol * abs(c[-2])

    def _local_params(self):
        p = {k: getattr(self, k) for k in _COMMON + ("alpha", "solver", "cg_steps")}
        return p


class MatrixFactorization(_DaskALS):
    r"""Biased matrix factorization of explicit ratings by ALS, on a Dask cluster.

    :class:`sklearn_mf.MatrixFactorization` with ``solver="als"``
    (weighted-lambda ALS with user and item biases), trained on a
    ``distributed`` cluster: the same model, parameters and, for a fixed
    ``random_state``, the same result.  The layout and what moves per
    iteration are those of :class:`ImplicitALS` (see :ref:`cluster`); the
    biases travel with the factors (one more number per shipped row).
    ``early_stopping`` and ``sample_weight`` are not available here.

    Parameters
    ----------
    n_factors : int, default=100
        Dimension of the embeddings.
    max_iter : int, default=15
        ALS iterations.
    regularization : float, default=0.08
        L2 penalty on the embeddings (times each row's rating count under
        ``regularization_scaling="occurrence"``).
    bias_regularization : float or None, default=None
        Penalty on the biases (None: ``regularization``).
    regularization_scaling : {"occurrence", "none"}, default="occurrence"
        Scale the penalties by each row's rating count (weighted-lambda
        ALS), or not.
    als_solver : {"cholesky", "cg"}, default="cholesky"
        Exact row solves, or ``cg_steps`` conjugate-gradient steps
        warm-started from the current factors, as in the local estimator
        (the CG fit then also ships the initial user factors).
    cg_steps : int, default=3
        Conjugate-gradient steps per row and half-step (``als_solver="cg"``).
    biased : bool, default=True
        Learn the global mean and the biases.
    init_std : float, default=0.1
        Standard deviation of the initial embeddings.
    dtype : {np.float32, np.float64}, default=np.float32
        Floating type of the factors.
    tol : float, default=1e-4
        Stop when the objective decreased by less than ``tol`` times its value.
    clip_predictions : bool, default=True
        Passed to the local estimator of :meth:`to_local`.
    handle_unknown : {"fallback", "nan", "error"}, default="fallback"
        Passed to the local estimator of :meth:`to_local`.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation (the same draws as the local estimator).
    n_jobs : int or None, default=None
        OpenMP threads per task; None means 1.
    verbose : int, default=0
        As in the local estimator.
    n_blocks : int or None, default=None
        User blocks and item blocks (each); None: twice the worker threads,
        or more so that a block holds at most 2 million interactions,
        rounded up to a multiple of the worker threads.

    Attributes
    ----------
    users_, items_ : ndarray
        Raw ids (sorted when comparable).
    item_factors_ : ndarray of shape (n_items, n_factors)
    item_bias_ : ndarray of shape (n_items,)
    global_mean_ : float
    rating_range_ : tuple of float
    item_popularity_ : ndarray of shape (n_items,)
    n_blocks_ : int
    n_iter_ : int
    loss_curve_ : list of float
        The regularised objective divided by the number of ratings.
    seconds_per_iteration_ : list of float
    bytes_per_iteration_ : list of int
    message_rows_ : dict
        As in :class:`ImplicitALS` (each row also carries its bias).
    n_features_in_ : int

    See Also
    --------
    sklearn_mf.MatrixFactorization : The single-machine estimator.

    Examples
    --------
    >>> import pandas as pd, dask.dataframe as dd
    >>> from distributed import Client, LocalCluster
    >>> from sklearn_mf.dask import MatrixFactorization
    >>> cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
    ...                        dashboard_address=None)
    >>> client = Client(cluster)
    >>> df = pd.DataFrame({"user": ["alice", "alice", "bob", "bob", "carol", "carol"],
    ...                    "item": ["matrix", "up", "matrix", "heat", "up", "heat"],
    ...                    "rating": [5.0, 3.0, 4.0, 2.0, 4.0, 1.0]})
    >>> mf = MatrixFactorization(n_factors=2, random_state=0).fit(
    ...     dd.from_pandas(df, npartitions=2))
    >>> mf.to_local().predict(pd.DataFrame({"user": ["alice"], "item": ["heat"]})).shape
    (1,)
    >>> client.close(); cluster.close()
    """

    _local_class = _LocalMF
    _model = "explicit"
    _EXTRA = (
        "bias_regularization",
        "regularization_scaling",
        "als_solver",
        "cg_steps",
        "biased",
        "clip_predictions",
    )
    _parameter_constraints: dict = {
        **{k: _LocalMF._parameter_constraints[k] for k in _COMMON + _EXTRA},
        "n_blocks": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(
        self,
        n_factors=100,
        *,
        max_iter=15,
        regularization=0.08,
        bias_regularization=None,
        regularization_scaling="occurrence",
        als_solver="cholesky",
        cg_steps=3,
        biased=True,
        init_std=0.1,
        dtype=np.float32,
        tol=1e-4,
        clip_predictions=True,
        handle_unknown="fallback",
        random_state=None,
        n_jobs=None,
        verbose=0,
        n_blocks=None,
    ):
        self.n_factors = n_factors
        self.max_iter = max_iter
        self.regularization = regularization
        self.bias_regularization = bias_regularization
        self.regularization_scaling = regularization_scaling
        self.als_solver = als_solver
        self.cg_steps = cg_steps
        self.biased = biased
        self.init_std = init_std
        self.dtype = dtype
        self.tol = tol
        self.clip_predictions = clip_predictions
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.n_blocks = n_blocks

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None):
        """Fit on a dask DataFrame or array of (user, item, rating) rows.

        Parameters
        ----------
        X : dask.dataframe.DataFrame or dask.array.Array
            Column 0 user ids, column 1 item ids (any hashable values),
            column 2 the rating (unless ``y`` is given).
        y : dask Series or array, default=None
            Ratings partitioned like ``X``.
        sample_weight : None
            Not supported on the cluster (a ``ValueError`` says so and why).

        Returns
        -------
        self : MatrixFactorization
            The fitted estimator.
        """
        _no_sample_weight(sample_weight)
        return self._fit(X, y)

    def _block_params(self, dtype):
        from sklearn_mf._utils import effective_n_threads

        reg = float(self.regularization)
        reg_b = reg if self.bias_regularization is None else float(self.bias_regularization)
        return {
            "model": "explicit",
            "dtype": dtype,
            "n_factors": self.n_factors,
            "reg": reg,
            "reg_b": reg_b,
            "biased": bool(self.biased),
            "scale": self.regularization_scaling == "occurrence",
            "solver": self.als_solver,
            "cg_steps": self.cg_steps,
            "n_threads": 1 if self.n_jobs is None else effective_n_threads(self.n_jobs),
        }

    def _should_stop(self, it):
        c = self.loss_curve_
        return self.tol is not None and it > 1 and c[-2] - c[-1] <= self.tol * abs(c[-2])

    def _local_params(self):
        p = {k: getattr(self, k) for k in _COMMON + self._EXTRA}
        p["solver"] = "als"
        return p
