"""Routing decisions and final-label resolution, as pure functions.

Routing: an item is auto-accepted when its (calibrated) confidence reaches the threshold of its
predicted label; everything else without a human label goes to review, including items that were
never pre-labeled. Resolution: human labels win, then an auto-accepted LLM label, else none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .vocabulary import LABELING_ACTIONS

DEFAULT_THRESHOLD = 0.85  # the seed's threshold, used until a calibration chooses one


def threshold_for(
    label: str | None, threshold: float, label_thresholds: Mapping[str, float] | None
) -> float:
    if label is not None and label_thresholds and label in label_thresholds:
        return float(label_thresholds[label])
    return threshold


def is_confident(
    label: str | None,
    confidence: float | None,
    threshold: float,
    label_thresholds: Mapping[str, float] | None = None,
) -> bool:
    """True when the prediction may be accepted without a person."""
    if label is None or confidence is None or confidence != confidence:  # NaN is not confident
        return False
    return confidence >= threshold_for(label, threshold, label_thresholds)


@dataclass(frozen=True)
class Vote:
    annotator: int | None
    label: str | None
    action: str
    order: int  # later answers have larger numbers


def resolve_human_label(votes: Sequence[Vote]) -> str | None:
    """The label people gave: each annotator's latest labeling answer, then the majority.

    A tie is broken by the most recent answer, so a reviewer correcting an earlier answer wins.
    Rejections and skips give no label.
    """
    latest: dict[int | None, Vote] = {}
    for vote in sorted(votes, key=lambda v: v.order):
        if vote.action in LABELING_ACTIONS and vote.label is not None:
            latest[vote.annotator] = vote
    if not latest:
        return None
    counts = Counter(v.label for v in latest.values())
    best = max(counts.values())
    tied = {label for label, n in counts.items() if n == best}
    return max((v for v in latest.values() if v.label in tied), key=lambda v: v.order).label
