"""BADGE (Ash et al., 2020): k-means++ seeding over gradient embeddings.

Uncertain items have long gradients, and k-means++ spreads the batch across gradient
directions, so one batch is both uncertain and diverse.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.utils import check_random_state

from labelloop.active._distances import inverse_norms
from labelloop.active.strategies.base import DUPLICATE_SIMILARITY, Pool, QueryStrategy, Seed


class Badge(QueryStrategy):
    """Gradient embedding g = (p − e_ŷ) ⊗ (x, 1) of the logistic student's loss at its own
    prediction ŷ. Inner products factorise, ⟨g_i, g_j⟩ = ⟨a_i, a_j⟩·(⟨x_i, x_j⟩ + 1), so the
    (n × C·d) gradient matrix is never built: each k-means++ step costs one pass of O(n·d).
    """

    name = "badge"
    requires = frozenset({"proba", "embeddings"})

    def _select(self, k: int, pool: Pool, random_state: Seed) -> NDArray[np.intp]:
        rng = check_random_state(random_state)
        x = np.asarray(pool.need("embeddings"), dtype=np.float32)
        a = np.asarray(pool.need("proba"), dtype=np.float64).copy()
        a[np.arange(len(a)), a.argmax(axis=1)] -= 1.0
        inv = inverse_norms(x)
        x_sq = np.einsum("ij,ij->i", x, x).astype(np.float64) + 1.0
        g_sq = np.einsum("ij,ij->i", a, a) * x_sq
        available = ~pool.labeled_mask
        d2 = np.where(available, np.inf, 0.0)
        picked = [int(np.argmax(np.where(available, g_sq, -np.inf)))]
        while True:
            c = picked[-1]
            dot_x = (x @ x[c]).astype(np.float64)
            dist = g_sq + g_sq[c] - 2.0 * (a @ a[c]) * (dot_x + 1.0)
            np.minimum(d2, np.clip(dist, 0.0, None), out=d2)
            d2[dot_x * inv * inv[c] > DUPLICATE_SIMILARITY] = 0.0
            d2[picked] = 0.0
            if len(picked) == k:
                break
            total = d2.sum()
            if total > 0:
                picked.append(int(rng.choice(len(d2), p=d2 / total)))
            else:  # every remaining item duplicates a pick: fall back to any unlabeled one
                rest = np.setdiff1d(np.flatnonzero(available), picked)
                if not len(rest):
                    break
                picked.append(int(rest[0]))
        return np.asarray(picked, dtype=np.intp)
