"""Calibration and selective-prediction metrics on NumPy arrays.

Conventions: `confidences` is the confidence of the predicted label, `correct` says whether that
prediction was right. Where a probability matrix exists, log loss and Brier score are the
multi-class ones (of the true label); otherwise they score confidence against correctness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import roc_auc_score

from ._validation import EPS, as_confidences, as_correct, as_label_index, as_proba

BinStrategy = Literal["uniform", "quantile"]


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin mean confidence, accuracy and count (empty bins dropped)."""

    confidence: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    count: NDArray[np.int64]

    @property
    def gap(self) -> NDArray[np.float64]:
        return np.abs(self.accuracy - self.confidence)


def reliability_bins(
    confidences: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> ReliabilityBins:
    """Group items into bins of confidence.

    `uniform` bins split [0, 1] into equal widths; `quantile` bins hold (nearly) equal numbers of
    items, which keeps every bin's accuracy estimate usable when confidences crowd near 1.
    """
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    if conf.size == 0:
        empty = np.zeros(0)
        return ReliabilityBins(empty, empty, np.zeros(0, dtype=np.int64))
    if strategy == "uniform":
        bin_id = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    elif strategy == "quantile":
        # Rank-based equal-mass bins; tied confidences share a bin so a bin edge never splits them.
        order = np.argsort(conf, kind="stable")
        rank_bin = (np.arange(conf.size) * n_bins) // conf.size
        sorted_conf = conf[order]
        first_of_value = np.searchsorted(sorted_conf, sorted_conf, side="left")
        bin_id = np.empty(conf.size, dtype=np.int64)
        bin_id[order] = rank_bin[first_of_value]
    else:
        raise ValueError(f"unknown bin strategy {strategy!r}; use 'uniform' or 'quantile'")
    count = np.bincount(bin_id, minlength=n_bins)
    conf_sum = np.bincount(bin_id, weights=conf, minlength=n_bins)
    corr_sum = np.bincount(bin_id, weights=corr, minlength=n_bins)
    keep = count > 0
    return ReliabilityBins(
        conf_sum[keep] / count[keep], corr_sum[keep] / count[keep], count[keep].astype(np.int64)
    )


def expected_calibration_error(
    confidences: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> float:
    """ECE: the item-weighted mean |accuracy - confidence| over bins."""
    bins = reliability_bins(confidences, correct, n_bins, strategy)
    total = bins.count.sum()
    return float((bins.gap * bins.count).sum() / total) if total else float("nan")


def maximum_calibration_error(
    confidences: ArrayLike,
    correct: ArrayLike,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
) -> float:
    """MCE: the largest |accuracy - confidence| over non-empty bins."""
    bins = reliability_bins(confidences, correct, n_bins, strategy)
    return float(bins.gap.max()) if bins.count.size else float("nan")


def accuracy(predicted: ArrayLike, gold: ArrayLike) -> float:
    """Share of predictions equal to the gold label."""
    pred, true = np.asarray(predicted), np.asarray(gold)
    if pred.shape != true.shape:
        raise ValueError(f"predicted and gold differ in shape: {pred.shape} vs {true.shape}")
    return float(np.mean(pred == true)) if pred.size else float("nan")


def brier_score(scores: ArrayLike, target: ArrayLike) -> float:
    """Brier score: multi-class (sum over labels) for a probability matrix and true label indices,
    binary (confidence vs correctness) for a confidence vector."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 2:
        proba = as_proba(arr)
        y = as_label_index(target, proba.shape[0], proba.shape[1])
        onehot = np.zeros_like(proba)
        rows = np.flatnonzero(y >= 0)
        onehot[rows, y[rows]] = 1.0
        return float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    conf = as_confidences(arr)
    corr = as_correct(target, conf.size)
    return float(np.mean((conf - corr) ** 2))


def log_loss(scores: ArrayLike, target: ArrayLike) -> float:
    """Mean negative log-likelihood: of the true label for a probability matrix, of correctness
    for a confidence vector. Probabilities are clipped to [1e-12, 1 - 1e-12]."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 2:
        proba = as_proba(arr)
        y = as_label_index(target, proba.shape[0], proba.shape[1])
        p_true = np.where(y >= 0, proba[np.arange(y.size), np.maximum(y, 0)], 0.0)
        return float(-np.mean(np.log(np.clip(p_true, EPS, 1.0))))
    conf = np.clip(as_confidences(arr), EPS, 1.0 - EPS)
    corr = as_correct(target, conf.size)
    return float(-np.mean(corr * np.log(conf) + (1.0 - corr) * np.log1p(-conf)))


def auroc(confidences: ArrayLike, correct: ArrayLike) -> float:
    """Area under the ROC curve of confidence as a detector of correct predictions.

    NaN when all predictions are right or all are wrong (the curve is undefined)."""
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size)
    if corr.size == 0 or corr.min() == corr.max():
        return float("nan")
    return float(roc_auc_score(corr, conf))


def accuracy_coverage_curve(
    confidences: ArrayLike, correct: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Accuracy of the `k` most confident items for k = 1..n, as (coverage k/n, accuracy).

    Tied confidences cannot be ordered, so within a tie group each item counts with the group's
    mean correctness: the curve is the expectation over random tie-breaking.
    """
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size)
    n = conf.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    sorted_conf, sorted_corr = conf[order], corr[order]
    starts = np.flatnonzero(np.r_[True, sorted_conf[1:] != sorted_conf[:-1]])
    sizes = np.diff(np.r_[starts, n])
    group_mean = np.add.reduceat(sorted_corr, starts) / sizes
    expected = np.repeat(group_mean, sizes)
    k = np.arange(1, n + 1, dtype=np.float64)
    return k / n, np.cumsum(expected) / k


def area_under_accuracy_coverage(confidences: ArrayLike, correct: ArrayLike) -> float:
    """Mean accuracy of the top-k items over all k = 1..n (higher is better).

    This is 1 - AURC, the area under the risk-coverage curve of selective prediction: a perfect
    ranking of an accuracy-`a` model scores above `a`, a random ranking scores about `a`.
    """
    _, acc = accuracy_coverage_curve(confidences, correct)
    return float(acc.mean()) if acc.size else float("nan")


def calibration_summary(
    confidences: ArrayLike,
    correct: ArrayLike,
    proba: ArrayLike | None = None,
    y: ArrayLike | None = None,
    n_bins: int = 15,
) -> dict[str, float | int | str]:
    """Every metric of this module for one set of predictions, as a JSON-able dict."""
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size)
    if proba is not None and y is not None:
        brier, loss, loss_kind = brier_score(proba, y), log_loss(proba, y), "multiclass"
    else:
        brier, loss, loss_kind = brier_score(conf, corr), log_loss(conf, corr), "binary"
    return {
        "n": int(conf.size),
        "accuracy": float(corr.mean()) if conf.size else float("nan"),
        "mean_confidence": float(conf.mean()) if conf.size else float("nan"),
        "ece": expected_calibration_error(conf, corr, n_bins, "uniform"),
        "ece_equal_mass": expected_calibration_error(conf, corr, n_bins, "quantile"),
        "mce": maximum_calibration_error(conf, corr, n_bins, "uniform"),
        "brier": brier,
        "log_loss": loss,
        "log_loss_kind": loss_kind,
        "auroc": auroc(conf, corr),
        "area_under_accuracy_coverage": area_under_accuracy_coverage(conf, corr),
    }
