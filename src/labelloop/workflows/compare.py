"""Every labeler that has answered the gold items, side by side, measured on those items.

A labeler here is a (model, prompt version) key of stored predictions: each LLM and prompt a
project has run, and the student and stack once `learn` has made them. Each is measured on
the gold items it answered (few-shot examples left out, as calibration does) with the same
computation `calibrate` uses, so the figures are those its calibration would give: accuracy
with its exact interval, AUROC of its raw confidence, ECE before and after (out-of-fold)
calibration, and the share of items people would review to reach a target accuracy. Cost and
speed come from every answer it gave, gold or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..calibration import CALIBRATORS, calibrate_report
from ..calibration.report import gold_accuracy_interval
from ..errors import InputError
from ..store import predictions
from .calibrate import MIN_GOLD, _gold_rows, score_matrix

if TYPE_CHECKING:
    from ..project import Project

DEFAULT_TARGET = 0.95


def _usage(project: Project, model: str, version: str) -> dict[str, Any]:
    """Cost and speed over every answer of one key (gold and pool)."""
    usage = predictions.key_usage(project.store, project.id, model, version)
    n, failed, tokens, cost, latency, first, last = usage
    span = (last - first).total_seconds() if n > 1 and first and last else 0.0
    return {
        "answers": n,
        "failed": failed,
        "tokens": int(tokens),
        "cost_usd": float(cost),
        "cost_per_1000_items_usd": 1000 * float(cost) / n if n else None,
        "seconds_per_item": float(latency) if latency is not None else None,
        # First to last stored answer: a run interrupted and resumed later reads slower.
        "items_per_s": (n - 1) / span if span > 0 else None,
    }


def _quality(
    project: Project, model: str, version: str, target: float, method: str, random_state: int
) -> dict[str, Any]:
    """Gold-set figures of one key, from the calibration report `calibrate` would make."""
    rows = _gold_rows(project, model, version)
    if len(rows) < MIN_GOLD:
        return {"n_gold": len(rows), "note": f"fewer than {MIN_GOLD} gold answers: not measured"}
    labels = project.labels
    if len({r.gold_label == r.label for r in rows}) < 2:
        # All right or all wrong: nothing to calibrate or rank, the counts say it all.
        right = sum(r.gold_label == r.label for r in rows)
        return {
            "n_gold": len(rows),
            "accuracy": gold_accuracy_interval(np.array([r.gold_label == r.label for r in rows])),
            "note": ("every gold answer right" if right else "every gold answer wrong"),
        }
    matrix = score_matrix([(r.label, r.probs, r.confidence) for r in rows], labels)
    scores = matrix if matrix is not None else np.array([r.confidence for r in rows], float)
    _, report = calibrate_report(
        scores,
        [r.label for r in rows],
        [r.gold_label for r in rows],
        method=method,
        target_accuracy=target,
        labels=labels if matrix is not None else None,
        random_state=random_state,
    )
    return {
        "n_gold": report["n_gold"],
        "accuracy": report["gold_accuracy"],
        "auroc": report["metrics_before"]["auroc"],
        "ece_before": report["ece_before"],
        "ece_after": report["ece_after"],
        "calibration": report["method"],
        "review_rate": report["review_rate"],
        "expected_accuracy": report["expected_accuracy"],
    }


def compare(
    project: Project,
    *,
    target_accuracy: float = DEFAULT_TARGET,
    method: str = "auto",
    random_state: int = 0,
) -> dict[str, Any]:
    """Every labeler that answered gold items, each measured on them (see the module doc).

    `review_rate` is the share of items whose calibrated confidence falls below the threshold
    that reaches `target_accuracy` overall (people label those); a labeler that cannot reach it
    even with everything reviewed shows review 1.0.
    """
    if not 0.0 < target_accuracy <= 1.0:
        raise InputError(f"the target accuracy must lie in (0, 1], not {target_accuracy}")
    if method != "auto" and method not in CALIBRATORS:
        choices = ", ".join(["auto", *sorted(CALIBRATORS)])
        raise InputError(f"unknown calibration method {method!r}; choose one of {choices}")
    active = project.active_predictor()
    labelers = []
    for model, version in predictions.keys_answering_gold(project.store, project.id):
        labelers.append(
            {
                "model": model,
                "prompt_version": version,
                "active": (model, version) == active,
                **_quality(project, model, version, target_accuracy, method, random_state),
                **_usage(project, model, version),
            }
        )
    return {"target_accuracy": target_accuracy, "labelers": labelers}
