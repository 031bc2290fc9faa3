"""Hybrid: the seed's weighted sum of uncertainty and distance to the labeled set."""

from __future__ import annotations

import numpy as np

from labelloop.active.seed import hybrid_scores
from labelloop.active.strategies.base import ScoreStrategy
from labelloop.active.strategies.diversity import _LabeledDistanceMixin


class Hybrid(_LabeledDistanceMixin, ScoreStrategy):
    """`uncertainty_weight`·normalised entropy + (1 − weight)·normalised labeled distance."""

    name = "hybrid"
    requires = frozenset({"proba", "embeddings"})

    def __init__(self, uncertainty_weight: float = 0.6) -> None:
        self.uncertainty_weight = uncertainty_weight

    def scores(
        self, *, proba: np.ndarray, embeddings: np.ndarray, labeled_mask: np.ndarray, **_: object
    ) -> np.ndarray:
        distance = self._distances(embeddings, labeled_mask)
        return hybrid_scores(proba, embeddings, None, self.uncertainty_weight, distance)
