"""Geometric strategies: cover the embedding space rather than chase the decision boundary."""

from __future__ import annotations

import numpy as np

from labelloop.active._distances import (
    NearestLabeledDistance,
    greedy_k_center,
    min_cosine_distance,
)
from labelloop.active.strategies.base import QueryStrategy, ScoreStrategy


def labeled_distance(embeddings: np.ndarray, labeled_mask: np.ndarray) -> np.ndarray:
    """Cosine distance of every pool item to its nearest labeled item (float32, blockwise)."""
    x = np.asarray(embeddings)
    return min_cosine_distance(x, x[labeled_mask], dtype=np.float32)


class _LabeledDistanceMixin:
    """Keeps the nearest-labeled distances between rounds: a new round costs a pass over the
    pool for the newly labeled items only."""

    def _distances(self, embeddings: np.ndarray, labeled_mask: np.ndarray) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", NearestLabeledDistance())
        return cache(embeddings, labeled_mask)


class Diversity(_LabeledDistanceMixin, ScoreStrategy):
    """Farthest from the labeled set (the seed's `diversity_sampling`), batch-aware."""

    name = "diversity"
    requires = frozenset({"embeddings"})

    def scores(
        self, *, embeddings: np.ndarray, labeled_mask: np.ndarray, **_: object
    ) -> np.ndarray:
        return self._distances(embeddings, labeled_mask)


class CoreSet(_LabeledDistanceMixin, QueryStrategy):
    """Greedy k-center core-set (Sener & Savarese, 2018): each pick is the item farthest from
    the labeled set *and* from the items already picked, so a batch spreads out."""

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
        distance = self._distances(embeddings, labeled_mask).copy()
        distance[labeled_mask] = -np.inf
        return greedy_k_center(embeddings, k, distance)
