"""Mix gold items into an annotator's queue so that they cannot be told apart from the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def mix_gold(
    queue: Sequence[T],
    gold: Sequence[T],
    rate: float,
    random_state: int | np.random.Generator | None = None,
) -> tuple[list[T], np.ndarray]:
    """The queue with gold items inserted at random places, and a mask of which ones are gold.

    `rate` is the share of the mixed queue that is gold (0 ≤ rate < 1). Gold items are drawn
    without replacement, so fewer are used when too few exist. The queue's own order (its
    priority) is kept; positions of gold items are uniform, so nothing in the order gives them
    away.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError("rate must lie in [0, 1)")
    rng = np.random.default_rng(random_state)
    n_gold = min(len(gold), round(rate / (1.0 - rate) * len(queue)))
    chosen = [gold[i] for i in rng.choice(len(gold), size=n_gold, replace=False)]
    total = len(queue) + n_gold
    is_gold = np.zeros(total, dtype=bool)
    is_gold[rng.choice(total, size=n_gold, replace=False)] = True
    pending_queue, pending_gold = iter(queue), iter(chosen)
    mixed = [next(pending_gold) if flag else next(pending_queue) for flag in is_gold]
    return mixed, is_gold
