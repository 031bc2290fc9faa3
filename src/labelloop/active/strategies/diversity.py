"""Geometric strategies: cover the embedding space rather than chase the decision boundary."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from labelloop.active._distances import greedy_k_center, min_cosine_distance
from labelloop.active._index import LabeledIndex, ReferenceIndex
from labelloop.active.strategies.base import (
    FloatArray,
    Pool,
    QueryStrategy,
    ScoreStrategy,
    Seed,
)


def labeled_distance(embeddings: FloatArray, labeled_mask: NDArray[np.bool_]) -> FloatArray:
    """Cosine distance of every pool item to its nearest labeled item (float32, blockwise)."""
    x = np.asarray(embeddings)
    return min_cosine_distance(x, x[labeled_mask], dtype=np.float32)


class _LabeledIndexMixin:
    """Keeps an index of the labeled items between rounds: a new round adds the newly
    labeled items only, and queries compute exact distances for the farthest items only."""

    def _index(self, pool: Pool) -> ReferenceIndex:
        cache: LabeledIndex = self.__dict__.setdefault("_cache", LabeledIndex())
        return cache(pool.need("embeddings"), pool.labeled_mask)


class Diversity(_LabeledIndexMixin, ScoreStrategy):
    """Farthest from the labeled set (the seed's `diversity_sampling`), batch-aware."""

    name = "diversity"
    requires = frozenset({"embeddings"})

    def scores(self, pool: Pool) -> FloatArray:
        return self._index(pool).exact(np.arange(len(pool.labeled_mask)))

    def candidates(self, n: int, pool: Pool) -> tuple[NDArray[np.intp], FloatArray]:
        return self._index(pool).top(n, ~pool.labeled_mask)


class CoreSet(_LabeledIndexMixin, QueryStrategy):
    """Greedy k-center core-set (Sener & Savarese, 2018): each pick is the item farthest from
    the labeled set *and* from the items already picked, so a batch spreads out.

    Exact. Picks only ever come from the items farthest from the labeled set: the greedy runs
    on the top candidates of the index and is trusted while each pick is farther than every
    item left out could be; when it is not, the candidate set grows and the greedy reruns.
    """

    name = "coreset"
    requires = frozenset({"embeddings"})

    def _select(self, k: int, pool: Pool, random_state: Seed) -> NDArray[np.intp]:
        index = self._index(pool)
        embeddings = pool.need("embeddings")
        eligible = ~pool.labeled_mask
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
