"""Hybrid: the seed's weighted sum of uncertainty and distance to the labeled set."""

from __future__ import annotations

import numpy as np

from labelloop.active.seed import hybrid_top, normalised_entropy
from labelloop.active.strategies.base import ScoreStrategy
from labelloop.active.strategies.diversity import _LabeledIndexMixin


class Hybrid(_LabeledIndexMixin, ScoreStrategy):
    """`uncertainty_weight`·normalised entropy + (1 − weight)·normalised labeled distance."""

    name = "hybrid"
    requires = frozenset({"proba", "embeddings"})

    def __init__(self, uncertainty_weight: float = 0.6) -> None:
        self.uncertainty_weight = uncertainty_weight

    def scores(
        self, *, proba: np.ndarray, embeddings: np.ndarray, labeled_mask: np.ndarray, **_: object
    ) -> np.ndarray:
        inputs = {"proba": proba, "embeddings": embeddings, "labeled_mask": labeled_mask}
        rows, combined = self.candidates(len(proba), **inputs)
        out = np.full(len(proba), -np.inf)
        out[rows] = combined
        return out

    def candidates(
        self,
        n: int,
        *,
        proba: np.ndarray,
        embeddings: np.ndarray,
        labeled_mask: np.ndarray,
        **_: object,
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self._index(embeddings, labeled_mask)
        uncertainty = normalised_entropy(proba)
        return hybrid_top(index, uncertainty, n, self.uncertainty_weight, labeled_mask)
