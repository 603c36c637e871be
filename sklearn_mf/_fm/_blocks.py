"""Relational blocks of the Bayesian FM: feature groups shared by many rows.

A relational block (the "relational data" design of Rendle 2013 and of myfm)
is a set of columns whose values depend only on a *block row* of each
training row: the items a user rated (weights ``1 / sqrt|N(u)|``, Bayesian
SVD++) are the same for every rating of that user, the users who rated an
item the same for every rating of the item.  Materialised, such a block would
hold ``sum_u |N(u)|^2`` non-zeros; kept as the block-row matrix ``B`` and the
map ``row_of`` (training row -> block row) it holds ``nnz(B)`` and the
sampler works through per-block-row sums (``_mcmc_fast.block_sweep``), so a
sweep stays linear in the number of ratings.

:class:`BlockSampler` holds the blocks' parameters and per-block-row terms
for :func:`sklearn_mf._fm._mcmc.run_mcmc`: it adds the blocks to the cached
predictions, draws their priors (one Normal-Gamma group per block), runs
their Gibbs pass after the plain columns' and averages their kept draws.
"""

import numpy as np
import scipy.sparse as sp

from sklearn_mf._fm import _mcmc_fast


def _intp(a):
    return np.ascontiguousarray(a, dtype=np.intp)


def _block_seed(seed, t):
    """The seed of block ``t``'s normal draws: a stream apart from the plain
    columns' and the other blocks'."""
    return (seed ^ (0xA24BAED4963EE407 * (t + 1))) % 2**64


class BlockSampler:
    """Gibbs-sampling state of the relational blocks ``blocks``.

    ``blocks`` is a sequence of ``(row_of, B)``: ``row_of`` of shape
    (n_rows,) the block row of every training row, ``B`` a sparse matrix of
    shape (n_block_rows, d_B).  The parameters start as the plain columns'
    do: ``w = 0`` and ``V ~ N(0, init_std^2)`` (0 for columns without data).
    """

    def __init__(self, blocks, n_rows, k, dtype, init_std, rng, n_threads):
        self.k, self.n_threads = k, n_threads
        self._fused = None  # the arguments of fused_coordinate_sweep, made on first use
        self.blocks = []
        for row_of, B in blocks:
            row_of = _intp(row_of)
            B = sp.csr_matrix(B, dtype=dtype)
            B.sum_duplicates()
            if row_of.shape != (n_rows,):
                raise ValueError(f"row_of has shape {row_of.shape}, expected ({n_rows},).")
            if n_rows and (row_of.min() < 0 or row_of.max() >= B.shape[0]):
                raise ValueError(f"row_of must index the {B.shape[0]} rows of the block.")
            Bc = B.tocsc()
            counts = np.diff(Bc.indptr)
            d = B.shape[1]
            V = rng.normal(0.0, init_std, (d, k)).astype(dtype)
            V[counts == 0] = 0
            self.blocks.append(
                dict(
                    row_of=row_of,
                    csr=(np.ascontiguousarray(B.data), _intp(B.indices), _intp(B.indptr)),
                    csc=(np.ascontiguousarray(Bc.data), _intp(Bc.indices), _intp(Bc.indptr)),
                    columns=_intp(np.flatnonzero(counts > 0)),
                    group_ptr=_intp(
                        np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=B.shape[0]))])
                    ),
                    group_rows=_intp(np.argsort(row_of, kind="stable")),
                    w=np.zeros(d, dtype=dtype),
                    V=V,
                    s=np.zeros((B.shape[0], k)),
                    T=np.zeros(B.shape[0]),
                    lam=np.ones(k + 1),
                    mu=np.zeros(k + 1),
                    w_sum=np.zeros(d),
                    draws=[],
                )
            )

    def add_to_caches(self, pred, q):
        """Recompute every block's terms and add them to fresh caches."""
        for b in self.blocks:
            _mcmc_fast.block_state(*b["csr"], b["w"], b["V"], b["s"], b["T"], self.n_threads)
            _mcmc_fast.block_add(b["row_of"], b["s"], b["T"], pred, q, self.n_threads)

    def sample_priors(self, sample_prior, rng):
        """Draw each block's prior mean and precision given its parameters."""
        for b in self.blocks:
            cols = b["columns"]
            if len(cols):
                theta = np.column_stack([b["w"], b["V"]])[cols].astype(np.float64)
                b["mu"], b["lam"] = sample_prior(theta, b["lam"], rng)

    def sweep(self, yt, swt, pred, q, alpha, seed):
        """The Gibbs pass over every block; returns the number of failed draws."""
        n_bad = 0
        for t, b in enumerate(self.blocks):
            n_bad += _mcmc_fast.block_sweep(
                *b["csc"],
                b["columns"],
                b["row_of"],
                b["group_ptr"],
                b["group_rows"],
                yt,
                swt,
                b["w"],
                b["V"],
                b["s"],
                b["T"],
                pred,
                q,
                alpha,
                b["lam"],
                b["mu"],
                _block_seed(seed, t),
                self.n_threads,
            )
            if n_bad:
                break
        return n_bad

    def _weights(self, swt):
        """Each block's block-row weights ``N`` (``_mcmc_fast.block_row_weights``),
        computed on first use (the weights of a fit do not change)."""
        for b in self.blocks:
            if "N" not in b:
                b["N"] = _mcmc_fast.block_row_weights(b["row_of"], swt, b["s"].shape[0])

    def coordinate_pass(self, swt, e, qf, coord, alpha, seed):
        """Coordinate ``coord`` (0: ``w``, 1 + f: factor f) of every block by
        scalar draws (``_mcmc_fast.block_coordinate_pass``), with the
        residuals ``e`` and factor sums ``qf`` of the training rows; returns
        the number of failed draws."""
        self._weights(swt)
        for t, b in enumerate(self.blocks):
            f = coord - 1
            n_bad = _mcmc_fast.block_coordinate_pass(
                *b["csc"],
                b["columns"],
                b["row_of"],
                b["N"],
                swt,
                e,
                qf,
                b["V"][:, f] if coord else b["w"],
                b["s"][:, f] if coord else b["T"][:0],
                b["T"],
                alpha,
                float(b["lam"][coord]),
                float(b["mu"][coord]),
                coord,
                self.k,
                _block_seed(seed, t),
                self.n_threads,
            )
            if n_bad:
                return n_bad
        return 0

    def fused_coordinate_sweep(self, yt, swt, pred, q, alpha, seed):
        """The blocks' coordinate draws of a ``"mixed"`` sweep in one kernel
        call (``_mcmc_fast.blocks_coordinate_sweep``): the draws of
        ``coordinate_draws(..., columns_too=False)``, bit for bit, with one
        walk over the training rows per (coordinate, block) step instead of
        two and no copies of the factor sums.  Returns the number of failed
        draws."""
        if self._fused is None:
            self._weights(swt)
            args = [
                (*b["csc"], b["columns"], b["row_of"], b["N"], b["w"], b["V"], b["s"], b["T"])
                for b in self.blocks
            ]
            max_nb = max(b["s"].shape[0] for b in self.blocks)
            buffers = _mcmc_fast.sweep_buffers(len(pred), self.k, max_nb, pred.dtype)
            self._fused = (args, np.empty(len(pred), dtype=pred.dtype), buffers)
        args, e, buffers = self._fused
        lam = np.array([b["lam"] for b in self.blocks], dtype=np.float64)
        mu = np.array([b["mu"] for b in self.blocks], dtype=np.float64)
        seeds = np.array([_block_seed(seed, t) for t in range(len(self.blocks))], dtype=np.uint64)
        return _mcmc_fast.blocks_coordinate_sweep(
            args, yt, swt, pred, q, e, alpha, lam, mu, seeds, self.n_threads, buffers
        )

    def keep_draw(self):
        for b in self.blocks:
            b["w_sum"] += b["w"]
            b["draws"].append(b["V"].copy())

    def posterior_means(self, y_sd):
        """``(w, V)`` of each block as in the posterior-mean FM: the mean of
        the kept ``w`` and the kept ``V`` side by side, back on the target's
        scale (as ``run_mcmc`` maps the plain columns)."""
        out = []
        for b in self.blocks:
            n_kept = len(b["draws"])
            dtype = b["V"].dtype
            out.append(
                (
                    (y_sd * b["w_sum"] / n_kept).astype(dtype),
                    np.ascontiguousarray(
                        np.concatenate(b["draws"], axis=1) * np.sqrt(y_sd / n_kept), dtype=dtype
                    ),
                )
            )
        return out
