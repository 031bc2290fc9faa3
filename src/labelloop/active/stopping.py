"""Stopping rules: when more labels stop paying for themselves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import beta
from sklearn.metrics import cohen_kappa_score


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop, and a sentence saying why (shown to the user)."""

    stop: bool
    reason: str
    value: float | None = None


def label_budget(n_labeled: int, budget: int) -> StopDecision:
    """Stop once `budget` labels have been spent."""
    stop = n_labeled >= budget
    return StopDecision(stop, f"{n_labeled} of {budget} labels used", float(n_labeled))


def target_accuracy(
    y_gold: np.ndarray, y_pred: np.ndarray, target: float, confidence: float = 0.95
) -> StopDecision:
    """Stop when accuracy on gold items reaches `target` with `confidence`.

    Uses the Clopper–Pearson lower bound rather than the point estimate, so a handful of gold
    items that happen to be right cannot stop the loop early.
    """
    y_gold, y_pred = np.asarray(y_gold), np.asarray(y_pred)
    n = len(y_gold)
    if n == 0:
        return StopDecision(False, "no gold items to estimate accuracy on")
    correct = int(np.sum(y_gold == y_pred))
    lower = float(beta.ppf(1 - confidence, correct, n - correct + 1)) if correct else 0.0
    return StopDecision(
        lower >= target,
        f"gold accuracy {correct / n:.3f} (lower {confidence:.0%} bound {lower:.3f}, "
        f"target {target:.3f}, n={n})",
        lower,
    )


@dataclass
class StabilizingPredictions:
    """Stop when predictions on a fixed stop set no longer change (Bloodgood &
    Vijay-Shanker, 2009): Cohen's kappa between successive rounds above `threshold` for
    `window` rounds in a row. The stop set needs no labels, so this rule is free."""

    threshold: float = 0.99
    window: int = 3
    kappas: list[float] = field(default_factory=list)
    _previous: np.ndarray | None = None

    def update(self, predictions: np.ndarray) -> StopDecision:
        """Record this round's predictions on the stop set and decide."""
        predictions = np.asarray(predictions)
        if self._previous is not None:
            if len(predictions) != len(self._previous):
                raise ValueError("the stop set must stay the same between rounds")
            self.kappas.append(_agreement(self._previous, predictions))
        self._previous = predictions
        recent = self.kappas[-self.window :]
        stop = len(recent) == self.window and min(recent) > self.threshold
        shown = ", ".join(f"{k:.3f}" for k in recent) or "none yet"
        return StopDecision(stop, f"kappa between rounds: {shown}", recent[-1] if recent else None)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa, defined as 1 when both rounds predict one identical constant."""
    if np.array_equal(a, b):
        return 1.0
    return float(cohen_kappa_score(a, b))
