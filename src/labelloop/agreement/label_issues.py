"""Likely-mislabeled items by confident learning (Northcutt, Jiang & Chuang, 2021).

Input: the given labels and out-of-fold predicted probabilities (from a model that never saw the
item's own label, e.g. the student cross-fitted on the final labels). An item is suspect when
the model is confidently sure of another class, "confidently" meaning above that class's own
threshold: the model's mean probability for the class on the items that carry it. Per-class
thresholds make the test fair to classes the model is shy about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

FilterBy = Literal["prune_by_noise_rate", "confident_joint"]
RankBy = Literal["self_confidence", "normalized_margin"]


@dataclass(frozen=True)
class LabelIssues:
    """Suspects, most suspicious first, with what the model believes instead."""

    indices: np.ndarray  # item indices of the suspects
    scores: np.ndarray  # their label-quality score (lower = more likely wrong)
    suggested: np.ndarray  # the class the model is confident about for each suspect
    thresholds: np.ndarray  # (K,) per-class confidence thresholds
    confident_joint: np.ndarray  # (K, K) counts: given label × confidently predicted label


def _check(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, pred_probs = np.asarray(labels), np.asarray(pred_probs, dtype=np.float64)
    if pred_probs.ndim != 2 or labels.shape != pred_probs.shape[:1]:
        raise ValueError("pred_probs must be items × classes with one label per item")
    if labels.size == 0:
        raise ValueError("no items")
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= pred_probs.shape[1]:
        raise ValueError("labels must be class indices 0..K-1 matching pred_probs columns")
    if not np.all(np.isfinite(pred_probs)):
        raise ValueError("pred_probs must be finite")
    return labels.astype(np.int64), pred_probs


def label_quality_scores(
    labels: np.ndarray, pred_probs: np.ndarray, method: RankBy = "self_confidence"
) -> np.ndarray:
    """Per-item score in [0, 1]; low means the given label is probably wrong.

    ``self_confidence`` is the probability of the given label; ``normalized_margin`` is
    (p_given - max p_other + 1) / 2.
    """
    labels, pred_probs = _check(labels, pred_probs)
    given = pred_probs[np.arange(labels.size), labels]
    if method == "self_confidence":
        return given
    if method == "normalized_margin":
        others = pred_probs.copy()
        others[np.arange(labels.size), labels] = -np.inf
        return (given - others.max(axis=1) + 1.0) / 2.0
    raise ValueError(f"unknown ranking method {method!r}")


def confident_joint(
    labels: np.ndarray, pred_probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class thresholds, each item's confident class (-1 if none) and the K × K joint.

    A class nobody carries gets an unreachable threshold: its items cannot be told apart.
    """
    labels, pred_probs = _check(labels, pred_probs)
    k = pred_probs.shape[1]
    sums = np.bincount(labels, weights=None, minlength=k).astype(np.float64)
    totals = np.zeros(k)
    np.add.at(totals, labels, pred_probs[np.arange(labels.size), labels])
    with np.errstate(divide="ignore", invalid="ignore"):
        thresholds = np.where(sums > 0, totals / sums, np.inf)
    above = pred_probs >= thresholds - 1e-12
    masked = np.where(above, pred_probs, -np.inf)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    has = confident >= 0
    joint = np.bincount(labels[has] * k + confident[has], minlength=k * k).reshape(k, k)
    return thresholds, confident, joint


def _prune_by_noise_rate(
    labels: np.ndarray, pred_probs: np.ndarray, joint: np.ndarray
) -> np.ndarray:
    """For each (given y, true j), the items labeled y with the largest p_j - p_y, as many as the
    calibrated joint estimates to be mislabeled y-for-j."""
    k = joint.shape[0]
    label_counts = np.bincount(labels, minlength=k)
    row = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        calibrated = np.where(row > 0, joint / row, 0.0) * label_counts[:, None]
    to_remove = np.rint(calibrated).astype(np.int64)
    flagged = np.zeros(labels.size, dtype=bool)
    for y in range(k):
        members = np.flatnonzero(labels == y)
        budget = max(members.size - 1, 0)  # never empty a class entirely
        for j in range(k):
            n = min(to_remove[y, j], budget) if j != y else 0
            if n <= 0:
                continue
            margin = pred_probs[members, j] - pred_probs[members, y]
            flagged[members[np.argpartition(-margin, n - 1)[:n]]] = True
    return flagged


def find_label_issues(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
    rank_by: RankBy = "self_confidence",
    max_issues: int | None = None,
) -> LabelIssues:
    """Likely-mislabeled items from given labels (0..K-1) and out-of-fold probabilities.

    ``confident_joint`` flags every item confidently predicted as another class;
    ``prune_by_noise_rate`` (default, as cleanlab) flags, per pair of classes, the estimated number
    of mislabeled items, those with the largest margin. Both match cleanlab's
    ``confident_learning`` and ``prune_by_noise_rate`` filters. Suspects are sorted
    by `rank_by`, lowest score first, and cut to `max_issues`.
    """
    labels, pred_probs = _check(labels, pred_probs)
    thresholds, confident, joint = confident_joint(labels, pred_probs)
    if filter_by == "confident_joint":
        flagged = (confident >= 0) & (confident != labels)
    elif filter_by == "prune_by_noise_rate":
        flagged = _prune_by_noise_rate(labels, pred_probs, joint)
    else:
        raise ValueError(f"unknown filter {filter_by!r}")
    scores = label_quality_scores(labels, pred_probs, rank_by)
    indices = np.flatnonzero(flagged)
    indices = indices[np.argsort(scores[indices], kind="stable")][:max_issues]
    others = pred_probs[indices].copy()
    others[np.arange(indices.size), labels[indices]] = -np.inf
    return LabelIssues(indices, scores[indices], others.argmax(axis=1), thresholds, joint)
