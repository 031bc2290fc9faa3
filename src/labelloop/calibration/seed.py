"""`find_optimal_threshold`: the seed's function, same signature and return shape, made exact.

With `thresholds=None` every distinct confidence is a candidate (exact search, O(n log n)); with
a grid such as the seed's `np.arange(0.5, 1.0, 0.05)` it computes exactly what the seed's loop
computes, rounding and tie-breaking included, in vectorised form.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import as_confidences, labels_equal
from .thresholds import max_review_count, threshold_curve

_ROW_KEYS = ("threshold", "auto_accuracy", "human_fraction", "overall_accuracy", "within_budget")


def find_optimal_threshold(
    confidences: ArrayLike,
    llm_labels: ArrayLike,
    gold_labels: ArrayLike,
    budget_fraction: float = 0.3,
    thresholds: ArrayLike | None = None,
    include_table: bool = True,
) -> dict[str, Any]:
    """Find the confidence threshold that maximises overall accuracy within a review budget.

    Items with confidence >= threshold are auto-accepted with the LLM label; the rest go to people,
    who are assumed right. Returns the seed's dict: `optimal_threshold`, `expected_accuracy`,
    `human_review_rate` and `all_thresholds` (one row per candidate with the seed's keys; the
    exact search lists every distinct confidence, highest first, and keeps thresholds unrounded
    because rounding them would change which items are accepted). `include_table=False` leaves
    `all_thresholds` empty, for very large inputs.

    Raises ValueError when no candidate threshold keeps review within `budget_fraction` (only
    possible with a grid: the exact search can always accept everything); the message names the
    smallest review rate the grid reaches.
    """
    conf = as_confidences(confidences)
    correct = labels_equal(llm_labels, gold_labels)
    if correct.size != conf.size:
        raise ValueError(f"{conf.size} confidences but {correct.size} labels")
    if conf.size == 0:
        raise ValueError("find_optimal_threshold needs at least one item")
    budget = float(budget_fraction)
    if np.isnan(budget) or budget < 0:
        raise ValueError(f"budget_fraction must be >= 0, got {budget_fraction}")
    if thresholds is None:
        return _exact(conf, correct, budget, include_table)
    return _grid(conf, correct, budget, np.asarray(thresholds, dtype=np.float64), include_table)


def _exact(
    conf: np.ndarray, correct: np.ndarray, budget: float, include_table: bool
) -> dict[str, Any]:
    curve = threshold_curve(conf, correct)
    n = curve.n
    human = curve.n_review / n
    overall = curve.overall_correct / n
    auto_acc = curve.n_auto_correct / np.maximum(curve.n_auto, 1)
    within = curve.n_review <= max_review_count(min(budget, 1.0), n)
    feasible = np.flatnonzero(within)
    best_correct = curve.overall_correct[feasible].max()
    j = int(feasible[curve.overall_correct[feasible] == best_correct][-1])
    rows = (
        _rows(curve.thresholds.tolist(), auto_acc, human, overall, within) if include_table else []
    )
    return {
        "optimal_threshold": float(curve.thresholds[j]),
        "expected_accuracy": round(float(overall[j]), 4),
        "human_review_rate": round(float(human[j]), 4),
        "all_thresholds": rows,
    }


def _grid(
    conf: np.ndarray, correct: np.ndarray, budget: float, grid: np.ndarray, include_table: bool
) -> dict[str, Any]:
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError("thresholds must be a non-empty 1-D sequence of finite numbers")
    n = conf.size
    order = np.argsort(conf, kind="stable")
    sorted_conf = conf[order]
    cum_correct = np.r_[0, np.cumsum(correct[order])]
    n_human = np.searchsorted(sorted_conf, grid, side="left")  # items with conf < thresh
    n_auto = n - n_human
    auto_correct = cum_correct[-1] - cum_correct[n_human]
    auto_acc = np.round(auto_correct / np.maximum(n_auto, 1), 4)
    human = np.round(n_human / n, 4)
    overall = np.round((auto_correct + n_human) / n, 4)
    within = (n_human / n) <= budget
    if not within.any():
        k = int(np.argmin(n_human))
        raise ValueError(
            f"budget_fraction={budget} is infeasible on this threshold grid: the smallest review "
            f"rate it reaches is {n_human[k] / n:.4f} (threshold {round(float(grid[k]), 2)}); "
            "raise the budget, add lower thresholds, or use thresholds=None for the exact search"
        )
    # The seed keeps the first row with the highest rounded overall accuracy.
    valid = np.flatnonzero(within)
    j = int(valid[np.argmax(overall[valid])])
    thresholds = np.round(grid, 2).tolist()
    return {
        "optimal_threshold": thresholds[j],
        "expected_accuracy": float(overall[j]),
        "human_review_rate": float(human[j]),
        "all_thresholds": _rows(thresholds, auto_acc, human, overall, within)
        if include_table
        else [],
    }


def _rows(
    thresholds: list[float],
    auto_acc: np.ndarray,
    human: np.ndarray,
    overall: np.ndarray,
    within: np.ndarray,
) -> list[dict[str, Any]]:
    columns = (
        thresholds,
        np.round(auto_acc, 4).tolist(),
        np.round(human, 4).tolist(),
        np.round(overall, 4).tolist(),
        within.tolist(),
    )
    return [dict(zip(_ROW_KEYS, row, strict=True)) for row in zip(*columns, strict=True)]
