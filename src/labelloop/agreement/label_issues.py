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


@dataclass(frozen=True)
class LabelSetIssues:
    """Suspect label decisions of multi-label items, most suspicious first: each pair (item,
    label) whose decision (the label in the item's set, or not) the model confidently
    disagrees with."""

    items: np.ndarray  # item index of each suspect decision
    labels: np.ndarray  # its label index
    given: np.ndarray  # whether the item's set holds the label
    scores: np.ndarray  # the model's probability of the given decision (low: likely wrong)


def find_label_set_issues(
    y: np.ndarray,
    pred_probs: np.ndarray,
    *,
    filter_by: FilterBy = "prune_by_noise_rate",
) -> LabelSetIssues:
    """Suspect decisions of multi-label items from their sets (`y`, items × labels, boolean)
    and out-of-fold per-label probabilities (`pred_probs`, each label's own probability).

    Each label is its own two-class problem (the label applies or not), searched by
    `find_label_issues` with per-class thresholds, as cleanlab's multi-label filter does; an
    item is suspect when any of its decisions is.
    """
    y, probs = np.asarray(y), np.asarray(pred_probs, dtype=np.float64)
    if y.ndim != 2 or y.shape != probs.shape:
        raise ValueError("y and pred_probs must both be items × labels")
    if y.dtype != np.bool_ and not np.isin(y, (0, 1)).all():
        raise ValueError("y must say 0/1 (or False/True) per item and label")
    if not np.all((probs >= 0.0) & (probs <= 1.0)):
        raise ValueError("pred_probs must be probabilities in [0, 1]")
    given = y.astype(bool)
    found: list[tuple[np.ndarray, int, np.ndarray]] = []
    for j in range(y.shape[1]):
        binary = np.column_stack([1.0 - probs[:, j], probs[:, j]])
        issues = find_label_issues(given[:, j].astype(np.int64), binary, filter_by=filter_by)
        found.append((issues.indices, j, issues.scores))
    items = np.concatenate([f[0] for f in found]).astype(np.int64)
    labels = np.concatenate([np.full(f[0].size, f[1]) for f in found]).astype(np.int64)
    scores = np.concatenate([f[2] for f in found])
    order = np.lexsort((labels, items, scores))
    items, labels, scores = items[order], labels[order], scores[order]
    return LabelSetIssues(items, labels, given[items, labels], scores)
