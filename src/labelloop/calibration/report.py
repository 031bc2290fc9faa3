"""`calibrate_report`: fit a calibrator on gold items, choose the threshold, say how good both are.

This is the whole of `labelloop calibrate` minus storage: the service layer loads predictions and
gold labels, calls this, stores `calibrator.to_dict()` per (model, prompt version) and the report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta, binomtest

from ._validation import labels_equal, split_scores
from .calibrators import Calibrator
from .evaluate import calibrated_correctness, evaluate_calibration, select_calibrator
from .thresholds import (
    certify_threshold,
    evaluate_threshold,
    per_label_thresholds,
    threshold_for_accuracy,
    threshold_for_budget,
)


def _jsonable(value: Any) -> Any:
    """NaN and infinities become None; NumPy scalars and arrays become Python values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _targets(
    scores: ArrayLike, predicted: ArrayLike, gold: ArrayLike, labels: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray]:
    """The calibrator target (label indices or correctness) and correctness."""
    _, proba = split_scores(scores)
    correct = labels_equal(predicted, gold)
    if proba is None:
        return correct.astype(np.float64), correct
    if labels is None or len(labels) != proba.shape[1]:  # type: ignore[arg-type]
        raise ValueError("a probability matrix needs `labels`, one name per column")
    names = [str(x) for x in np.asarray(labels).tolist()]
    column = {name: i for i, name in enumerate(names)}
    pred_idx = np.array([column.get(str(p), -1) for p in np.asarray(predicted).tolist()])
    rows = np.arange(proba.shape[0])
    if np.any(pred_idx < 0) or np.any(proba[rows, pred_idx] < proba.max(axis=1) - 1e-9):
        raise ValueError("with a probability matrix, each predicted label must be its row's argmax")
    y = np.array([column.get(str(g), -1) for g in np.asarray(gold).tolist()], dtype=np.intp)
    return y, correct


def calibrate_report(
    scores: ArrayLike,
    predicted: ArrayLike,
    gold: ArrayLike,
    method: str = "auto",
    budget: float | None = None,
    target_accuracy: float | None = None,
    confidence_level: float | None = None,
    labels: ArrayLike | None = None,
    n_splits: int = 5,
    random_state: int = 0,
) -> tuple[Calibrator, dict[str, Any]]:
    """Fit a calibrator on gold items and choose the routing threshold.

    `scores`: top confidences (1-D) or a per-label probability matrix (2-D, columns named by
    `labels`, predicted label = argmax). Give `budget` (maximum share sent to review; default 0.3)
    or `target_accuracy`. With `target_accuracy`, the threshold is the least review reaching that
    overall accuracy; adding `confidence_level` makes it the certified threshold whose
    auto-accepted accuracy is at least the target with that probability. With `budget` and
    `confidence_level`, the report gives a lower confidence bound on auto-accepted accuracy.

    Thresholds apply to calibrated confidences. ECE and the other "after" metrics are measured on
    out-of-fold calibrated confidences only. Returns (fitted calibrator, JSON-able report).
    """
    if budget is not None and target_accuracy is not None:
        raise ValueError("give budget or target_accuracy, not both")
    if budget is None and target_accuracy is None:
        budget = 0.3
    target, correct = _targets(scores, predicted, gold, labels)
    if correct.size == 0:
        raise ValueError("calibration needs gold items with predictions; none were given")
    selection = select_calibrator(scores, target, method, n_splits, random_state)
    calibrator = selection.calibrator
    report: dict[str, Any] = {
        "method": selection.method,
        "requested_method": method,
        "fallback": selection.fallback,
        "n_gold": int(correct.size),
        "cv_log_loss": selection.cv_log_loss,
        "calibrator": calibrator.to_dict(),
    }
    evaluation = evaluate_calibration(scores, target, selection.method, n_splits, random_state)
    report |= {
        "gold_accuracy": gold_accuracy_interval(correct),
        "labeler_check": labeler_check(correct, gold, evaluation["after"]["auroc"]),
        "ece_before": evaluation["before"]["ece"],
        "ece_after": evaluation["after"]["ece"],
        "metrics_before": evaluation["before"],
        "metrics_after": evaluation["after"],
    }
    # Thresholds apply to the label the calibrator vouches for, which vector scaling can move.
    calibrated = calibrator.transform(scores)
    after_correct = calibrated_correctness(calibrator, scores, target).astype(bool)
    after_predicted = np.asarray(predicted)
    if calibrator.relabels and labels is not None:
        names = np.array([str(x) for x in np.asarray(labels).tolist()], dtype=object)
        after_predicted = names[calibrator.predict(scores)]
        report["relabeled_gold"] = int(np.count_nonzero(after_predicted != np.asarray(predicted)))
    report |= _threshold_part(
        calibrated, after_correct, after_predicted, budget, target_accuracy, confidence_level
    )
    return calibrator, _jsonable(report)


def gold_accuracy_interval(correct: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """The labeler's accuracy on the gold items with its exact (Clopper–Pearson) interval.

    It is the resolution of everything fitted on those items: a calibrated confidence cannot
    know the labeler's accuracy better than its gold set does (with 200 gold items at 73%
    accuracy the interval spans about ±6 points).
    """
    n, right = int(correct.size), int(np.count_nonzero(correct))
    interval = binomtest(right, n).proportion_ci(confidence_level=level, method="exact")
    return {
        "accuracy": right / n,
        "low": float(interval.low),
        "high": float(interval.high),
        "level": level,
        "n": n,
    }


def labeler_check(
    correct: ArrayLike, gold: ArrayLike, auroc_after: float, level: float = 0.95
) -> dict[str, Any]:
    """Whether a labeler is worth routing on: does it beat always answering the majority gold
    label, and do its calibrated confidences rank right answers above wrong ones?

    Calibration cannot make a useless labeler useful: with confidences that are all alike it
    reports a perfect ECE and a threshold that auto-accepts everything. The labeler passes when
    the lower end of its accuracy's Clopper–Pearson interval is above the majority label's share
    and, when it made mistakes on gold, the Hanley–McNeil interval of the (out-of-fold) AUROC lies
    above 0.5 (all-equal confidences give exactly 0.5).
    """
    correct = np.asarray(correct, bool)
    _, counts = np.unique(np.asarray(gold, dtype=object).astype(str), return_counts=True)
    majority = float(counts.max() / counts.sum())
    accuracy = gold_accuracy_interval(correct, level)
    reasons = []
    if accuracy["low"] <= majority:
        reasons.append(
            f"its gold accuracy {accuracy['accuracy']:.3f} (interval {accuracy['low']:.3f}–"
            f"{accuracy['high']:.3f}) does not beat always answering the majority label "
            f"({majority:.3f})"
        )
    right, wrong = int(correct.sum()), int((~correct).sum())
    ranking = None
    if right and wrong and math.isfinite(auroc_after):
        half = _z(level) * _hanley_mcneil_se(auroc_after, right, wrong)
        ranking = {"auroc": auroc_after, "low": auroc_after - half, "high": auroc_after + half}
        if ranking["low"] <= 0.5:
            reasons.append(
                f"its calibrated confidences do not tell right answers from wrong ones (AUROC "
                f"{auroc_after:.3f}, interval {ranking['low']:.3f}–{ranking['high']:.3f})"
            )
    return {
        "useful": not reasons,
        "reasons": reasons,
        "majority_share": majority,
        "accuracy": accuracy,
        "auroc": ranking,
    }


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def _hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUROC from its value and class sizes (Hanley & McNeil, 1982)."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    return math.sqrt(max(var, 0.0))


def _threshold_part(
    calibrated: np.ndarray,
    correct: np.ndarray,
    predicted: ArrayLike,
    budget: float | None,
    target_accuracy: float | None,
    confidence_level: float | None,
) -> dict[str, Any]:
    guarantee: dict[str, Any] | None = None
    if target_accuracy is not None and confidence_level is not None:
        cert = certify_threshold(calibrated, correct, target_accuracy, confidence_level)
        guarantee = cert.to_dict()
        chosen = evaluate_threshold(calibrated, correct, cert.threshold)  # type: ignore[arg-type]
        rule = "certified accuracy of auto-accepted items"
    elif target_accuracy is not None:
        chosen = threshold_for_accuracy(calibrated, correct, target_accuracy)
        rule = "least review reaching the target overall accuracy"
    else:
        chosen = threshold_for_budget(calibrated, correct, float(budget))  # type: ignore[arg-type]
        rule = "best overall accuracy within the review budget"
        if confidence_level is not None:
            guarantee = _accepted_lower_bound(chosen.n_auto, chosen.auto_accuracy, confidence_level)
    per_label = per_label_thresholds(
        calibrated,
        correct,
        predicted,
        budget=budget if target_accuracy is None else None,
        target_accuracy=target_accuracy,
    )
    return {
        "threshold": chosen.threshold,
        "threshold_rule": rule,
        "budget": budget,
        "target_accuracy": target_accuracy,
        "expected_accuracy": chosen.expected_accuracy,
        "review_rate": chosen.review_rate,
        "auto_accuracy": chosen.auto_accuracy,
        "guarantee": guarantee,
        "per_label_thresholds": per_label.thresholds,
        "per_label": per_label.to_dict(),
    }


def _accepted_lower_bound(
    n_auto: int, auto_accuracy: float | None, confidence_level: float
) -> dict[str, Any]:
    """One-sided Clopper–Pearson lower bound on the accuracy of the auto-accepted gold items."""
    right = round((auto_accuracy or 0.0) * n_auto)
    lower = float(beta.ppf(1.0 - confidence_level, right, n_auto - right + 1)) if right else 0.0
    return {
        "confidence_level": confidence_level,
        "n_accepted_gold": n_auto,
        "accuracy_lower_bound": lower,
        "message": (
            f"auto-accepted accuracy >= {lower:.3f} with {confidence_level:.0%} confidence "
            f"({n_auto} auto-accepted gold items)"
        ),
    }
