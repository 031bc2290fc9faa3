"""Expected model change: ask where a label would move the student the most."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from labelloop.active._distances import inverse_norms
from labelloop.active.strategies.base import FloatArray, Pool, ScoreStrategy


def expected_gradient_length(proba: FloatArray, embeddings: FloatArray) -> NDArray[np.float64]:
    """E_y~p ‖∇ log-loss‖ for softmax regression on (x, 1) (Settles & Craven, 2008).

    The gradient for label y is (p − e_y) ⊗ (x, 1), whose norm factorises as
    ‖p − e_y‖·‖(x, 1)‖, so no gradient is ever materialised.
    """
    p = np.asarray(proba, dtype=np.float64)
    squared = np.sum(p * p, axis=1, keepdims=True) - 2.0 * p + 1.0
    residual = np.sqrt(np.clip(squared, 0.0, None))
    inv = inverse_norms(embeddings).astype(np.float64)
    x_norm = np.divide(1.0, inv, out=np.zeros_like(inv), where=inv > 0)
    return np.sum(p * residual, axis=1) * np.sqrt(x_norm**2 + 1.0)


class ExpectedModelChange(ScoreStrategy):
    """Expected gradient length of the logistic student's loss."""

    name = "expected-model-change"
    requires = frozenset({"proba", "embeddings"})

    def scores(self, pool: Pool) -> FloatArray:
        return expected_gradient_length(pool.need("proba"), pool.need("embeddings"))
