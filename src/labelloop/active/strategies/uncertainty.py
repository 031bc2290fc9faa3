"""Uncertainty sampling: ask about the items the student is least sure of."""

from __future__ import annotations

import numpy as np

from labelloop.active.seed import entropy
from labelloop.active.strategies.base import FloatArray, Pool, ScoreStrategy


class LeastConfidence(ScoreStrategy):
    """1 − max probability: the item whose top label the student believes least."""

    name = "least-confidence"
    requires = frozenset({"proba"})

    def scores(self, pool: Pool) -> FloatArray:
        return 1.0 - pool.need("proba").max(axis=1)


class Margin(ScoreStrategy):
    """Smallest gap between the two most probable labels (Scheffer et al., 2001).

    Equal margins are broken by higher entropy (more mass spread over the other labels), then
    by pool index, so the same inputs always give the same batch.
    """

    name = "margin"
    requires = frozenset({"proba"})

    def scores(self, pool: Pool) -> FloatArray:
        proba = pool.need("proba")
        if proba.shape[1] < 2:
            return np.zeros(len(proba))
        top2 = -np.partition(-proba, 1, axis=1)[:, :2]
        return -(top2[:, 0] - top2[:, 1])

    def tie_break(self, pool: Pool) -> FloatArray:
        return entropy(pool.need("proba"))


class Entropy(ScoreStrategy):
    """Predictive entropy (the seed's `uncertainty_sampling`), batch-aware."""

    name = "entropy"
    requires = frozenset({"proba"})

    def scores(self, pool: Pool) -> FloatArray:
        return entropy(pool.need("proba"))
