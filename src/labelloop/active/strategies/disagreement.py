"""LLM–student disagreement: where the two predictors differ, one of them is wrong."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from labelloop.active.strategies.base import FloatArray, Pool, ScoreStrategy

_EPS = 1e-12


def jensen_shannon(p: FloatArray, q: FloatArray) -> NDArray[np.float64]:
    """Jensen–Shannon divergence per row (natural log, in [0, log 2]): symmetric, bounded."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0)
    q = np.clip(np.asarray(q, dtype=np.float64), _EPS, 1.0)
    m = 0.5 * (p + q)
    return 0.5 * np.sum(p * np.log(p / m), axis=1) + 0.5 * np.sum(q * np.log(q / m), axis=1)


class LLMDisagreement(ScoreStrategy):
    """Jensen–Shannon divergence between the student's and the LLM's distributions.

    Items where the LLM's pre-label and the student disagree are where a human label both
    corrects a likely pre-label error and teaches the student.
    """

    name = "disagreement"
    requires = frozenset({"proba", "llm_proba"})

    def scores(self, pool: Pool) -> FloatArray:
        proba, llm_proba = pool.need("proba"), pool.need("llm_proba")
        if proba.shape != llm_proba.shape:
            raise ValueError(f"proba {proba.shape} and llm_proba {llm_proba.shape} differ")
        return jensen_shannon(proba, llm_proba)
