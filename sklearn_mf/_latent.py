"""What models with factors add: similarity search and dot-product scores.

:class:`LatentFactorMixin` gives every model with user and item vectors
``similar_items`` and ``similar_users`` (cosine similarity of the vectors,
ranked by the routine of :meth:`RecommenderMixin.recommend`) and the optional
approximate index of ``build_similarity_index`` (``_ann.py``).  A model without
factors does not inherit it, so it has no ``similar_items`` at all.

Hooks (defaults shown):

``_user_embeddings(user_codes)``
    ``user_factors_[user_codes]``.
``_item_embeddings()``
    ``(item_factors_, None)``: item vectors and a per-item additive score.

:class:`DotProductMixin` is for the models whose prediction is
:math:`\\mu + b_u + b_i + p_u^\\top q_i` (matrix factorization, SVD++, BPR):
from ``_biases()`` -> ``(mu, user biases or None, item biases or None)`` they
get ``_predict_codes`` (the ``_predict_fast`` kernel), ``_item_embeddings``
and ``_user_offsets``.
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from sklearn_mf._base import Recommendations, RecommenderMixin, known_codes
from sklearn_mf._ids import _ids_from_codes
from sklearn_mf._training import rating_predictions
from sklearn_mf._utils import effective_n_threads
from sklearn_mf._validation import check_n


def _cosine_normalise(V):
    norms = np.linalg.norm(V, axis=1)
    norms[norms == 0] = 1
    return V / norms[:, None]


class LatentFactorMixin(RecommenderMixin):
    """:class:`RecommenderMixin` plus similarity search in factor space.

    For models with user and item factors: ``similar_items``,
    ``similar_users`` and ``build_similarity_index``.  See the module
    docstring of ``sklearn_mf._latent`` for the hooks.

    Examples
    --------
    >>> from sklearn_mf import ImplicitALS, LatentFactorMixin
    >>> from sklearn_mf.datasets import make_ratings
    >>> X, _ = make_ratings(n_users=100, n_items=80, n_ratings=2000, random_state=0)
    >>> model = ImplicitALS(n_factors=4, random_state=0, n_jobs=1).fit(X)
    >>> isinstance(model, LatentFactorMixin)
    True
    >>> model.similar_items(model.items_[:3], n=5).items.shape
    (3, 5)
    """

    def _user_embeddings(self, user_codes):
        return self.user_factors_[user_codes]

    def _item_embeddings(self):
        """(item vectors, per-item additive score or None)."""
        return self.item_factors_, None

    def _similar(self, ids, n, vectors, index, raw_ids, what):
        check_is_fitted(self)
        query, codes = known_codes(index, ids, what, "; similarity needs fitted factors.")
        m = len(raw_ids)
        n = check_n(n, m - 1, what)
        Vn = _cosine_normalise(np.asarray(vectors))
        self_excl = sp.csr_matrix(
            (
                np.ones(m, dtype=np.float32),
                np.arange(m, dtype=np.int32),
                np.arange(m + 1, dtype=np.int32),
            ),
            shape=(m, m),
        )
        ids, scores = self._rank(
            codes,
            n,
            np.arange(m, dtype=np.intp),
            raw_ids,
            exclude=self_excl,
            score_rows=lambda rows: np.ascontiguousarray(Vn[rows] @ Vn.T),
        )
        return Recommendations(query, ids, scores, np.zeros(len(query), dtype=bool))

    def similar_items(self, items, n=10, *, exact=None):
        """The ``n`` items closest to each given item (cosine similarity of factors).

        Parameters
        ----------
        items : id or array-like of ids
            Raw item ids seen in ``fit``.
        n : int, default=10
            Neighbours per item (the item itself is excluded).
        exact : bool, default=None
            None: use the approximate index when one was built with
            :meth:`build_similarity_index`, exact search otherwise.  True:
            always exact.  False: require the index.

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` and ``scores`` (cosine similarity) of shape (n_items, n).
        """
        V, _ = self._item_embeddings()
        index = getattr(self, "similarity_index_", None)
        if exact is False and index is None:
            raise ValueError("exact=False needs an index: call build_similarity_index first.")
        if exact or index is None:
            return self._similar(items, n, V, self._item_index, self.items_, "items")
        from sklearn_mf._ann import fingerprint

        if index.fingerprint != fingerprint(V):
            raise ValueError(
                "The item factors changed since build_similarity_index (refit or "
                "partial_fit); rebuild the index or pass exact=True."
            )
        query, codes = known_codes(
            self._item_index, items, "items", "; similarity needs fitted factors."
        )
        n = check_n(n, len(self.items_) - 1, "items")
        out_codes, out_scores = index.query(np.asarray(V)[codes], codes, n)
        return Recommendations(
            query,
            _ids_from_codes(self.items_, out_codes),
            out_scores,
            np.zeros(len(query), dtype=bool),
        )

    def build_similarity_index(
        self, method="hnsw", *, M=16, ef_construction=200, ef_search=100, random_state=0
    ):
        """Build an approximate nearest-neighbour index for :meth:`similar_items`.

        Exact search (the default until this is called) scores every item for
        each query; for catalogues of millions of items an HNSW graph (from
        the optional dependency ``hnswlib``) answers far faster, at the cost
        of occasionally missing a true neighbour.  Once built, ``similar_items``
        uses the index unless called with ``exact=True``.  The index is a
        snapshot: after ``fit`` or ``partial_fit`` ``similar_items`` raises
        until the index is rebuilt.

        Parameters
        ----------
        method : {"hnsw"}, default="hnsw"
            Index type (hnswlib, cosine space).
        M : int, default=16
            Links per node of the graph.
        ef_construction : int, default=200
            Candidate list size while building.
        ef_search : int, default=100
            Candidate list size while querying (raised to ``n + 1`` when
            smaller); larger is slower and more accurate.
        random_state : int, default=0
            Seed of the graph's level generator.

        Returns
        -------
        self : estimator
            With ``similarity_index_`` set.

        Examples
        --------
        >>> from sklearn_mf import ImplicitALS
        >>> from sklearn_mf.datasets import make_ratings
        >>> X, _ = make_ratings(n_users=200, n_items=300, n_ratings=5000, random_state=0)
        >>> model = ImplicitALS(n_factors=8, random_state=0, n_jobs=1).fit(X)
        >>> model = model.build_similarity_index(M=16, ef_search=50)  # doctest: +SKIP
        >>> items, scores = model.similar_items(model.items_[:2], n=5)
        >>> items.shape
        (2, 5)
        """
        from sklearn_mf._ann import SimilarityIndex

        check_is_fitted(self)
        if method != "hnsw":
            raise ValueError(f"method must be 'hnsw', got {method!r}.")
        for name, value in (
            ("M", M),
            ("ef_construction", ef_construction),
            ("ef_search", ef_search),
        ):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        V, _ = self._item_embeddings()
        self.similarity_index_ = SimilarityIndex(
            V,
            M=int(M),
            ef_construction=int(ef_construction),
            ef_search=int(ef_search),
            random_state=int(random_state),
            n_threads=effective_n_threads(getattr(self, "n_jobs", None)),
        )
        return self

    def similar_users(self, users, n=10):
        """The ``n`` users closest to each given user (cosine similarity of factors).

        Parameters
        ----------
        users : id or array-like of ids
            Raw user ids seen in ``fit``.
        n : int, default=10
            Neighbours per user (the user itself is excluded).

        Returns
        -------
        neighbours : :class:`Recommendations`
            ``items`` holds the neighbouring *user* ids, ``scores`` the cosine
            similarities.
        """
        U = self._user_embeddings(np.arange(len(self.users_)))
        return self._similar(users, n, U, self._user_index, self.users_, "users")


class DotProductMixin:
    """Prediction :math:`\\mu + b_u + b_i + p_u^\\top q_i` of the factor models.

    ``_biases()`` -> ``(mu, user biases or None, item biases or None)``
    defaults to ``global_mean_``, ``user_bias_`` and ``item_bias_`` when
    ``biased`` (a model with other biases overrides it); ``_user_embeddings``
    gives :math:`p_u` (SVD++: the effective vectors) and ``item_factors_``
    :math:`q_i`.  Unknown ids (code -1) contribute nothing, so an unknown user
    keeps :math:`\\mu + b_i`.
    """

    def _biases(self):
        if not self.biased:
            return self.global_mean_, None, None
        return self.global_mean_, self.user_bias_, self.item_bias_

    def _predict_codes(self, user_codes, item_codes):
        mu, bu, bi = self._biases()
        out = rating_predictions(
            user_codes,
            item_codes,
            self._user_embeddings(slice(None)),
            self.item_factors_,
            bu,
            bi,
            mu,
            None,
            effective_n_threads(self.n_jobs),
        )
        return self._clip_predictions(out)

    def _item_embeddings(self):
        return self.item_factors_, self._biases()[2]

    def _user_offsets(self, user_codes):
        mu, bu, _ = self._biases()
        return None if bu is None else mu + bu[user_codes]
