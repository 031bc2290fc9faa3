"""Random sampling: the baseline every other strategy must beat."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from labelloop.active.strategies.base import QueryStrategy


class RandomSampling(QueryStrategy):
    """Uniform over unlabeled items; needs nothing and never cold-starts differently."""

    name = "random"
    cold_starts = False

    def _select(
        self,
        k: int,
        *,
        labeled_mask: np.ndarray,
        random_state: int | np.random.RandomState | None,
        **_: object,
    ) -> np.ndarray:
        rng = check_random_state(random_state)
        return rng.choice(np.flatnonzero(~labeled_mask), size=k, replace=False).astype(np.intp)
