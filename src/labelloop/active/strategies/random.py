"""Random sampling: the baseline every other strategy must beat."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.utils import check_random_state

from labelloop.active.strategies.base import Pool, QueryStrategy, Seed


class RandomSampling(QueryStrategy):
    """Uniform over unlabeled items; needs nothing and never cold-starts differently."""

    name = "random"
    cold_starts = False

    def _select(self, k: int, pool: Pool, random_state: Seed) -> NDArray[np.intp]:
        rng = check_random_state(random_state)
        return rng.choice(pool.unlabeled, size=k, replace=False).astype(np.intp)
