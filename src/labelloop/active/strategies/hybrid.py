"""Hybrid: the seed's weighted sum of uncertainty and distance to the labeled set."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from labelloop.active.seed import hybrid_top, normalised_entropy
from labelloop.active.strategies.base import FloatArray, Pool, ScoreStrategy
from labelloop.active.strategies.diversity import _LabeledIndexMixin


class Hybrid(_LabeledIndexMixin, ScoreStrategy):
    """`uncertainty_weight`·normalised entropy + (1 − weight)·normalised labeled distance."""

    name = "hybrid"
    requires = frozenset({"proba", "embeddings"})

    def __init__(self, uncertainty_weight: float = 0.6) -> None:
        self.uncertainty_weight = uncertainty_weight

    def scores(self, pool: Pool) -> FloatArray:
        n_pool = len(pool.labeled_mask)
        rows, combined = self.candidates(n_pool, pool)
        out = np.full(n_pool, -np.inf)
        out[rows] = combined
        return out

    def candidates(self, n: int, pool: Pool) -> tuple[NDArray[np.intp], FloatArray]:
        uncertainty = normalised_entropy(pool.need("proba"))
        return hybrid_top(
            self._index(pool), uncertainty, n, self.uncertainty_weight, pool.labeled_mask
        )
