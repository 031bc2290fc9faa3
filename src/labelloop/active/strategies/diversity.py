"""Geometric strategies: cover the embedding space rather than chase the decision boundary."""

from __future__ import annotations

import numpy as np

from labelloop.active._distances import greedy_k_center, min_cosine_distance
from labelloop.active._index import LabeledIndex, ReferenceIndex
from labelloop.active.strategies.base import QueryStrategy, ScoreStrategy


def labeled_distance(embeddings: np.ndarray, labeled_mask: np.ndarray) -> np.ndarray:
    """Cosine distance of every pool item to its nearest labeled item (float32, blockwise)."""
    x = np.asarray(embeddings)
    return min_cosine_distance(x, x[labeled_mask], dtype=np.float32)


class _LabeledIndexMixin:
    """Keeps an index of the labeled items between rounds: a new round adds the newly
    labeled items only, and queries compute exact distances for the farthest items only."""

    def _index(self, embeddings: np.ndarray, labeled_mask: np.ndarray) -> ReferenceIndex:
        cache = self.__dict__.setdefault("_cache", LabeledIndex())
        return cache(embeddings, labeled_mask)


class Diversity(_LabeledIndexMixin, ScoreStrategy):
    """Farthest from the labeled set (the seed's `diversity_sampling`), batch-aware."""

    name = "diversity"
    requires = frozenset({"embeddings"})

    def scores(
        self, *, embeddings: np.ndarray, labeled_mask: np.ndarray, **_: object
    ) -> np.ndarray:
        return self._index(embeddings, labeled_mask).exact(np.arange(len(embeddings)))

    def candidates(
        self, n: int, *, embeddings: np.ndarray, labeled_mask: np.ndarray, **_: object
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._index(embeddings, labeled_mask).top(n, ~labeled_mask)


class CoreSet(_LabeledIndexMixin, QueryStrategy):
    """Greedy k-center core-set (Sener & Savarese, 2018): each pick is the item farthest from
    the labeled set *and* from the items already picked, so a batch spreads out.

    Exact. Picks only ever come from the items farthest from the labeled set: the greedy runs
    on the top candidates of the index and is trusted while each pick is farther than every
    item left out could be; when it is not, the candidate set grows and the greedy reruns.
    """

    name = "coreset"
    requires = frozenset({"embeddings"})

    def _select(
        self,
        k: int,
        *,
        embeddings: np.ndarray,
        labeled_mask: np.ndarray,
        random_state: object = None,
        **_: object,
    ) -> np.ndarray:
        index = self._index(embeddings, labeled_mask)
        eligible = ~labeled_mask
        n_free = int(np.count_nonzero(eligible))
        n = min(n_free, 4 * k)
        while True:
            rows, distance = index.top(n, eligible)
            order = np.argsort(rows)  # ties go to the lowest pool index, as over the pool
            rows, distance = rows[order], distance[order]
            left_out = eligible.copy()
            left_out[rows] = False
            bound = float(index.upper[left_out].max()) if left_out.any() else -np.inf
            picked = greedy_k_center(embeddings[rows], k, distance, stop_at=bound)
            if len(picked) == k or not left_out.any():
                return rows[picked]
            n = min(n_free, 4 * n)
