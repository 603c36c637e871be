"""Approximate nearest-neighbour index of item factors for ``similar_items``.

Exact ``similar_items`` computes the cosine similarity of the query items with
*every* item (a matrix product, O(n_items * k) per query).  For catalogues of
millions of items an approximate index answers in roughly logarithmic time.
:class:`SimilarityIndex` wraps an HNSW graph (``hnswlib``, an optional
dependency: ``pip install sklearn_mf[ann]``) built on the item factors in
cosine space; :meth:`LatentFactorMixin.build_similarity_index` attaches one to a
fitted model, after which ``similar_items`` uses it.

The index is a snapshot of the factors.  It stores a fingerprint of the
factor matrix (shape, dtype and a CRC of a strided sample of its rows plus
the first and last rows) and refuses to answer once the factors changed (a
refit or ``partial_fit``): rebuild it then.
"""

import zlib

import numpy as np

# At most this many rows enter the fingerprint (plus the first and last).
_FINGERPRINT_ROWS = 4096


def fingerprint(V):
    """Cheap identity of a factor matrix: shape, dtype and a CRC of sampled rows."""
    V = np.asarray(V)
    if len(V) == 0:
        return (V.shape, V.dtype.str, 0)
    step = max(1, len(V) // _FINGERPRINT_ROWS)
    sample = np.ascontiguousarray(V[::step])
    crc = zlib.crc32(sample.tobytes())
    crc = zlib.crc32(np.ascontiguousarray(V[[0, -1]]).tobytes(), crc)
    return (V.shape, V.dtype.str, crc)


def import_hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "method='hnsw' needs the optional dependency hnswlib: "
            "pip install hnswlib (or pip install 'sklearn_mf[ann]')."
        ) from exc
    return hnswlib


class SimilarityIndex:
    """HNSW index of item vectors in cosine space.

    Built by :meth:`LatentFactorMixin.build_similarity_index`; not meant to be
    created directly.

    Parameters
    ----------
    vectors : ndarray of shape (n_items, n_factors)
        Item factors (row = internal item code).
    M : int
        Graph degree (links per node); more is more accurate, slower to build
        and larger.
    ef_construction : int
        Candidate list size while building.
    ef_search : int
        Candidate list size while querying (at least ``n + 1`` is used).
    random_state : int
        Seed of the level generator.
    n_threads : int
        Threads used to build and to query.

    Attributes
    ----------
    method : str
        ``"hnsw"``.
    params : dict
        ``M``, ``ef_construction``, ``ef_search``.
    fingerprint : tuple
        Identity of the factors the index was built from.
    """

    method = "hnsw"

    def __init__(self, vectors, *, M, ef_construction, ef_search, random_state, n_threads):
        hnswlib = import_hnswlib()
        V = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = V.shape
        self.params = {"M": M, "ef_construction": ef_construction, "ef_search": ef_search}
        self.fingerprint = fingerprint(vectors)
        self.n_threads = n_threads
        self._index = hnswlib.Index(space="cosine", dim=dim)
        self._index.init_index(
            max_elements=max(n, 1), M=M, ef_construction=ef_construction, random_seed=random_state
        )
        self._index.add_items(V, np.arange(n), num_threads=n_threads)
        self._index.set_ef(ef_search)

    def query(self, vectors, codes, n):
        """Approximate top-``n`` neighbours of each row, itself excluded.

        ``codes[r]`` is the code of the item in row ``r`` (dropped from its own
        result).  Returns ``(codes, cosine similarities)``, best first; slots
        the graph did not fill are -1 / -inf.
        """
        m = self._index.get_current_count()
        k = min(n + 1, m)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ef = max(self.params["ef_search"], k)
        while True:
            self._index.set_ef(ef)
            try:
                labels, dist = self._index.knn_query(vectors, k=k, num_threads=self.n_threads)
                break
            except RuntimeError as exc:
                # a sparse graph (small M) can leave fewer than k results:
                # widen the search, up to the whole catalogue
                if ef >= m:
                    raise ValueError(
                        f"The HNSW graph (M={self.params['M']}) is too sparse to return "
                        f"{k - 1} neighbours; rebuild it with a larger M or ef_construction."
                    ) from exc
                ef = min(4 * ef, m)
        labels = labels.astype(np.intp)
        sims = 1.0 - dist.astype(np.float64)
        keep = labels != np.asarray(codes)[:, None]
        # move each row's kept entries to the front, in order, and cut at n
        order = np.argsort(~keep, axis=1, kind="stable")[:, :n]
        out_codes = np.take_along_axis(labels, order, axis=1)
        out_sims = np.take_along_axis(sims, order, axis=1)
        valid = np.take_along_axis(keep, order, axis=1)
        if order.shape[1] < n:  # tiny catalogue: fewer neighbours than n
            pad = n - order.shape[1]
            out_codes = np.pad(out_codes, ((0, 0), (0, pad)), constant_values=-1)
            out_sims = np.pad(out_sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            valid = np.pad(valid, ((0, 0), (0, pad)), constant_values=False)
        out_codes[~valid] = -1
        out_sims[~valid] = -np.inf
        return out_codes, out_sims

    def __repr__(self):
        shape = self.fingerprint[0]
        return f"SimilarityIndex(method='hnsw', n_items={shape[0]}, params={self.params})"
