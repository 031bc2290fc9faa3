"""Stopping rules: when more labels stop paying for themselves."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


#: Items whose predictions are compared across rounds (`stop_set`).
STOP_SET_SIZE = 2_000


def stop_set(ids: Sequence[int], size: int = STOP_SET_SIZE) -> np.ndarray:
    """Positions of a fixed pseudo-random subset of the items `ids`, whose predictions the
    stabilising rules compare across rounds: the same items each round, whatever was added."""
    keys = [hashlib.blake2b(str(i).encode(), digest_size=8).digest() for i in ids]
    return np.argsort(keys)[:size]


def label_budget(n_labeled: int, budget: int) -> StopDecision:
    """Stop once `budget` labels have been spent."""
    stop = n_labeled >= budget
    return StopDecision(stop, f"{n_labeled} of {budget} labels used", float(n_labeled))


def target_accuracy(
    y_gold: np.ndarray,
    y_pred: np.ndarray,
    target: float,
    confidence: float = 0.95,
    *,
    measure: str = "accuracy",
) -> StopDecision:
    """Stop when accuracy on gold items reaches `target` with `confidence`.

    Uses the Clopper–Pearson lower bound rather than the point estimate, so a handful of gold
    items that happen to be right cannot stop the loop early.
    """
    y_gold, y_pred = np.asarray(y_gold), np.asarray(y_pred)
    n = len(y_gold)
    if n == 0:
        return StopDecision(False, f"no gold items to estimate {measure} on")
    correct = int(np.sum(y_gold == y_pred))
    lower = float(beta.ppf(1 - confidence, correct, n - correct + 1)) if correct else 0.0
    return StopDecision(
        lower >= target,
        f"gold {measure} {correct / n:.3f} (lower {confidence:.0%} bound {lower:.3f}, "
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


@dataclass
class StabilizingLabelSets:
    """`StabilizingPredictions` for label sets: each label's decisions (applies or not) on the
    fixed stop set are compared with the previous round's by Cohen's kappa, and a round counts
    as stable when its least stable label's kappa is above `threshold`; stop after `window`
    such rounds in a row. Every label must have settled, so a rare label that still flips
    holds the loop, however steady the others are. `labels` name the columns in the reason."""

    threshold: float = 0.99
    window: int = 3
    labels: Sequence[str] = ()
    kappas: list[float] = field(default_factory=list)  # per round, the least stable label's
    per_label: list[float] = field(default_factory=list)  # the latest round's, per label
    _previous: np.ndarray | None = None

    def update(self, decisions: np.ndarray) -> StopDecision:
        """Record this round's decisions on the stop set (items x labels, true where the label
        applies) and decide."""
        current = np.asarray(decisions, dtype=bool)
        if current.ndim != 2:
            raise ValueError(
                "label-set decisions are a matrix: one row per item, one column per label"
            )
        if self._previous is not None:
            if current.shape != self._previous.shape:
                raise ValueError("the stop set and the labels must stay the same between rounds")
            self.per_label = [
                _agreement(self._previous[:, j], current[:, j]) for j in range(current.shape[1])
            ]
            self.kappas.append(min(self.per_label, default=1.0))
        self._previous = current
        recent = self.kappas[-self.window :]
        stop = len(recent) == self.window and min(recent) > self.threshold
        if not recent:
            return StopDecision(False, "least per-label kappa between rounds: none yet")
        shown = ", ".join(f"{k:.3f}" for k in recent)
        least = int(np.argmin(self.per_label)) if self.per_label else 0
        name = f" (now {self.labels[least]!r})" if least < len(self.labels) else ""
        return StopDecision(
            stop, f"least per-label kappa between rounds{name}: {shown}", recent[-1]
        )


def pool_uncertainty(proba: np.ndarray, bound: float, labels: Sequence[str] = ()) -> StopDecision:
    """Stop when, for every label, the mean uncertainty min(p, 1 - p) of the decisions on the
    items people have not labeled is at most `bound` (the overall-uncertainty rule of Zhu,
    Wang & Hovy, 2008, per label). With calibrated probabilities that mean is the expected
    share of wrong decisions on the label, so more answers have little left to correct."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError("probabilities are a matrix: one row per item, one column per label")
    if len(p) == 0:
        return StopDecision(True, "no unlabeled items left", 0.0)
    per_label = np.minimum(p, 1.0 - p).mean(axis=0)
    worst = int(np.argmax(per_label))
    name = f" ({labels[worst]!r})" if worst < len(labels) else ""
    value = float(per_label[worst])
    return StopDecision(
        value <= bound,
        f"largest mean per-label uncertainty on {len(p)} unlabeled items{name}: {value:.3f} "
        f"(bound {bound:.3f})",
        value,
    )


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa, defined as 1 when both rounds predict one identical constant."""
    if np.array_equal(a, b):
        return 1.0
    return float(cohen_kappa_score(a, b))
