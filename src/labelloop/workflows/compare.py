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

from dataclasses import dataclass, fields
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


@dataclass(frozen=True, slots=True)
class Usage:
    """Cost and speed over every answer of one labeler (gold and pool)."""

    answers: int
    failed: int
    tokens: int
    cost_usd: float
    cost_per_1000_items_usd: float | None
    seconds_per_item: float | None
    #: First to last stored answer: a run interrupted and resumed later reads slower.
    items_per_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class GoldQuality:
    """A labeler's figures on the gold items, as its calibration would give them; `note` says
    why the figures past `accuracy` (or past `n_gold`) are missing."""

    n_gold: int
    accuracy: dict[str, Any] | None = None
    auroc: float | None = None
    ece_before: float | None = None
    ece_after: float | None = None
    calibration: str | None = None
    review_rate: float | None = None
    expected_accuracy: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Measured: every figure. Not measured: `n_gold`, the accuracy if known, the note."""
        if self.note is None:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "note"}
        known = {"accuracy": self.accuracy} if self.accuracy is not None else {}
        return {"n_gold": self.n_gold, **known, "note": self.note}


@dataclass(frozen=True, slots=True)
class LabelerFigures:
    """One (model, prompt version) key: whether routing uses it, its gold figures, its usage."""

    model: str
    prompt_version: str
    active: bool
    quality: GoldQuality
    usage: Usage

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt_version": self.prompt_version,
            "active": self.active,
            **self.quality.to_dict(),
            **self.usage.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every labeler that answered gold items, oldest first, measured for one target."""

    target_accuracy: float
    labelers: tuple[LabelerFigures, ...]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` form."""
        return {
            "target_accuracy": self.target_accuracy,
            "labelers": [labeler.to_dict() for labeler in self.labelers],
        }


def _usage(project: Project, model: str, version: str) -> Usage:
    """Cost and speed over every answer of one key (gold and pool)."""
    usage = predictions.key_usage(project.store, project.id, model, version)
    n, failed, tokens, cost, latency, first, last = usage
    span = (last - first).total_seconds() if n > 1 and first and last else 0.0
    return Usage(
        answers=n,
        failed=failed,
        tokens=int(tokens),
        cost_usd=float(cost),
        cost_per_1000_items_usd=1000 * float(cost) / n if n else None,
        seconds_per_item=float(latency) if latency is not None else None,
        items_per_s=(n - 1) / span if span > 0 else None,
    )


def _quality(
    project: Project, model: str, version: str, target: float, method: str, random_state: int
) -> GoldQuality:
    """Gold-set figures of one key, from the calibration report `calibrate` would make."""
    rows = _gold_rows(project, model, version)
    if len(rows) < MIN_GOLD:
        return GoldQuality(len(rows), note=f"fewer than {MIN_GOLD} gold answers: not measured")
    labels = project.labels
    if len({r.gold_label == r.label for r in rows}) < 2:
        # All right or all wrong: nothing to calibrate or rank, the counts say it all.
        right = sum(r.gold_label == r.label for r in rows)
        return GoldQuality(
            len(rows),
            accuracy=gold_accuracy_interval(np.array([r.gold_label == r.label for r in rows])),
            note="every gold answer right" if right else "every gold answer wrong",
        )
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
    return GoldQuality(
        report["n_gold"],
        accuracy=report["gold_accuracy"],
        auroc=report["metrics_before"]["auroc"],
        ece_before=report["ece_before"],
        ece_after=report["ece_after"],
        calibration=report["method"],
        review_rate=report["review_rate"],
        expected_accuracy=report["expected_accuracy"],
    )


def compare(
    project: Project,
    *,
    target_accuracy: float = DEFAULT_TARGET,
    method: str = "auto",
    random_state: int = 0,
) -> Comparison:
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
    labelers = tuple(
        LabelerFigures(
            model,
            version,
            (model, version) == active,
            _quality(project, model, version, target_accuracy, method, random_state),
            _usage(project, model, version),
        )
        for model, version in predictions.keys_answering_gold(project.store, project.id)
    )
    return Comparison(target_accuracy, labelers)
