"""Fit a calibrator on gold items, apply it to every prediction, choose the threshold."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..calibration import calibrate_report, calibrator_from_dict, plots
from ..calibration.calibrators import CALIBRATORS, TemperatureScaling, VectorScaling
from ..calibration.evaluate import cross_fit
from ..errors import InputError, NotReadyError
from ..review.common import Result
from ..store import Session, predictions, projects
from ..store.predictions import CalibrationRecord

if TYPE_CHECKING:
    from ..project import Project

MIN_GOLD = 10
#: The keys of `labelloop calibrate --json` that summarise a calibration.
SUMMARY_KEYS = (
    "method",
    "threshold",
    "ece_before",
    "ece_after",
    "expected_accuracy",
    "review_rate",
)
APPLY_BATCH = 20_000
#: The calibration plots, and the file beside them that says which calibration they show.
PLOTS = {
    "reliability": "reliability.png",
    "accuracy_coverage": "accuracy_coverage.png",
    "review_rate": "review_rate.png",
}
PLOTS_RECORD = "calibration-plots.json"
_drawing = threading.Lock()  # pyplot keeps global state: one drawing at a time per process


@dataclass(frozen=True, slots=True)
class Calibrated(Result):
    """A calibration of the active predictor (`Project.calibrate`): which predictor, on how
    many gold items, how many predictions it calibrated, and the calibration report.

    The report's keys depend on the method (a single-label method: its cross-validated log
    loss, gold accuracy interval, labeler check, guarantee, `relabeled_gold` for a method that
    moves labels; the per-label one: each label's method and ECE), so it is carried whole as
    `details`, in the order calibration wrote it; the keys every method has are read through
    typed properties. `to_dict` (what `calibrate --json` sends) is the four fields followed by
    the report."""

    model: str
    prompt_version: str
    n_gold: int
    calibrated_predictions: int
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt_version": self.prompt_version,
            "n_gold": self.n_gold,
            "calibrated_predictions": self.calibrated_predictions,
            **self.details,
        }

    @property
    def method(self) -> str:
        return str(self.details["method"])

    @property
    def threshold(self) -> float:
        return float(self.details["threshold"])

    @property
    def ece_before(self) -> float:
        return float(self.details["ece_before"])

    @property
    def ece_after(self) -> float:
        return float(self.details["ece_after"])

    @property
    def expected_accuracy(self) -> float | None:
        return self.details.get("expected_accuracy")

    @property
    def review_rate(self) -> float | None:
        return self.details.get("review_rate")

    @property
    def warnings(self) -> list[str]:
        """Said to the person at work (on stderr by the command line)."""
        return list(self.details.get("warnings", []))


def score_matrix(
    rows: list[tuple[str | None, dict | None, float | None]], labels: list[str]
) -> np.ndarray | None:
    """Per-label probabilities in label order when every row has them and agrees with its label.

    Otherwise None: calibration then works on the scalar confidence.
    """
    if not rows:
        return None
    values = []
    for label, probs, _ in rows:
        if label is None or not probs or any(name not in probs for name in labels):
            return None
        values.append([float(probs[name]) for name in labels])
    matrix = np.array(values, dtype=float).reshape(len(rows), len(labels))
    first = matrix.argmax(axis=1).tolist()  # the first largest, as `np.argmax` of each row
    if any(labels[j] != label for j, (label, _, _) in zip(first, rows, strict=True)):
        return None
    return matrix


def _gold_rows(project: Project, model: str, version: str) -> list[Any]:
    excluded = set(project.settings.get("few_shot_item_ids") or [])
    rows = predictions.gold_answers(project.store, project.id, model, version)
    # Items shown to the model as few-shot examples would flatter it.
    return [row for row in rows if row.id not in excluded]


#: Calibration methods that need a probability per label, not one confidence.
MATRIX_METHODS = (TemperatureScaling.method, VectorScaling.method)


def _gold_scores(rows: list[Any], labels: list[str]) -> tuple[np.ndarray, list, list]:
    """(scores, predicted labels, gold labels) of gold rows: per-label probabilities when every
    row has them, else the confidences."""
    matrix = score_matrix([(r.label, r.probs, r.confidence) for r in rows], labels)
    scores = matrix if matrix is not None else np.array([r.confidence for r in rows], float)
    return scores, [r.label for r in rows], [r.gold_label for r in rows]


def check_options(
    method: str,
    budget: float | None,
    target_accuracy: float | None,
    confidence_level: float | None,
) -> None:
    """The caller's choices, checked before any work: the only bad input calibration has."""
    if budget is not None and target_accuracy is not None:
        raise InputError("give either --budget or --target-accuracy, not both")
    for name, value in (
        ("budget", budget),
        ("target accuracy", target_accuracy),
        ("confidence level", confidence_level),
    ):
        if value is not None and not 0.0 < value <= 1.0:
            raise InputError(f"the {name} must lie in (0, 1], not {value}")
    if method != "auto" and method not in CALIBRATORS:
        choices = ", ".join(["auto", *sorted(CALIBRATORS)])
        raise InputError(f"unknown calibration method {method!r}; choose one of {choices}")


def calibrate(
    project: Project,
    *,
    method: str = "auto",
    budget: float | None = None,
    target_accuracy: float | None = None,
    confidence_level: float | None = None,
    per_label: bool = False,
    plots_dir: str | Path | None = None,
    random_state: int = 0,
) -> Calibrated:
    """Calibrate the active predictor on gold items and set the routing threshold."""
    check_options(method, budget, target_accuracy, confidence_level)
    active = project.active_predictor()
    if active is None:
        raise NotReadyError("there are no predictions to calibrate; run `labelloop prelabel`")
    model, version = active
    labels = project.labels
    rows = _gold_rows(project, model, version)
    if len(rows) < MIN_GOLD:
        raise NotReadyError(
            f"calibration needs at least {MIN_GOLD} gold items with predictions from {model}; "
            f"found {len(rows)}. Import gold items with `labelloop import FILE --split gold` "
            "and run `labelloop prelabel` again"
        )
    scores, predicted, gold = _gold_scores(rows, labels)
    matrix = scores if scores.ndim == 2 else None
    if matrix is None and method in MATRIX_METHODS:
        raise InputError(
            f"{method} scaling needs per-label probabilities, which the active predictor does "
            "not give; use platt, isotonic or histogram"
        )
    calibrator, report = calibrate_report(
        scores,
        predicted,
        gold,
        method=method,
        budget=budget,
        target_accuracy=target_accuracy,
        confidence_level=confidence_level,
        labels=labels if matrix is not None else None,
        random_state=random_state,
    )
    state = calibrator.to_dict()
    scores_kind = "probabilities" if matrix is not None else "confidence"
    stored = predictions.save_calibration(
        project.store,
        project.id,
        model,
        version,
        method=report["method"],
        calibrator={**state, "scores": scores_kind},
        threshold=float(report["threshold"]),
        label_thresholds=report.get("per_label_thresholds") if per_label else None,
        report=report,
    )
    applied = apply_calibration(project, model, version)
    project.update_settings(
        threshold=float(report["threshold"]),
        label_thresholds=report.get("per_label_thresholds") if per_label else None,
        # Remembered so that retraining can recalibrate the same way.
        calibration_options={
            "method": method,
            "budget": budget,
            "target_accuracy": target_accuracy,
            "confidence_level": confidence_level,
            "per_label": per_label,
        },
        # Routing reads it: a labeler that is no better than the majority label, or whose
        # confidences do not rank, has everything sent to review unless the caller insists.
        labeler_check={"model": model, "prompt_version": version, **report["labeler_check"]},
    )
    report["warnings"] = [
        f"{model} is not worth routing on: {reason}; `route` sends every item to review "
        "(`route --trust-labeler` to route on it anyway)"
        for reason in report["labeler_check"]["reasons"]
    ]
    if plots_dir is not None:
        report["plots"] = _draw(Path(plots_dir), stored, scores, predicted, gold, labels)
    return Calibrated(model, version, len(rows), applied, report)


def summary(calibrated: Calibrated) -> dict[str, Any]:
    """The keys of a calibration that retraining and the demo report."""
    return {key: calibrated.details.get(key) for key in SUMMARY_KEYS}


def active_calibration(project: Project, model: str, version: str) -> CalibrationRecord | None:
    """The calibration in force for a (model, prompt version) key of the project, or None."""
    return predictions.active_calibration(project.store, project.id, model, version)


def apply_calibration(project: Project, model: str, version: str) -> int:
    """Write calibrated labels and confidences for every prediction of (model, version)."""
    calibration = active_calibration(project, model, version)
    if calibration is None:
        return 0
    count = 0
    with project.store.session() as session:
        rows = predictions.to_calibrate(session, project.id, model, version)
        for start in range(0, len(rows), APPLY_BATCH):
            count += write_calibrated(
                session, rows[start : start + APPLY_BATCH], project.labels, calibration
            )
    project.refresh_item_predictions()
    return count


def write_calibrated(
    session: Session, rows: Sequence[Any], labels: list[str], calibration: CalibrationRecord
) -> int:
    """Store the calibrated label and confidence of these prediction rows (id, label, probs,
    confidence, and the calibrated label and confidence they hold now: rows that already hold
    theirs are not rewritten); returns how many could be calibrated."""
    calibrator = calibrator_from_dict(calibration.calibrator)
    use_matrix = calibration.calibrator.get("scores") == "probabilities"
    values = _calibrated(rows, labels, calibrator, use_matrix)
    changed = []
    for row, (label, confidence) in zip(rows, values, strict=True):
        moved = label if label != row.label else None
        if moved != row.calibrated_label or confidence != row.calibrated_confidence:
            changed.append(
                {"id": row.id, "calibrated_label": moved, "calibrated_confidence": confidence}
            )
    projects.replace_predictions(session, changed)
    return sum(confidence is not None for _, confidence in values)


def _calibrated(
    batch: Sequence[Any], labels: list[str], calibrator: Any, use_matrix: bool
) -> list[tuple[str | None, float | None]]:
    """(label, confidence) after calibration per row; (None, None) where it cannot apply."""
    out: list[tuple[str | None, float | None]] = [(None, None)] * len(batch)
    usable = [
        i for i, row in enumerate(batch) if row.label is not None and row.confidence is not None
    ]
    if not use_matrix:
        values = calibrator.transform(np.array([batch[i].confidence for i in usable], float))
        for i, value in zip(usable, np.asarray(values, dtype=float).tolist(), strict=True):
            out[i] = (batch[i].label, value)
        return out
    matrix = score_matrix([(batch[i].label, batch[i].probs, None) for i in usable], labels)
    groups: list[tuple[list[int], np.ndarray | None]]
    if matrix is not None:
        groups = [(usable, matrix)]
    else:  # some rows lack probabilities: calibrate row by row where possible
        groups = [
            ([i], score_matrix([(batch[i].label, batch[i].probs, None)], labels)) for i in usable
        ]
    for group, rows in groups:
        if rows is None:
            continue
        values = np.asarray(calibrator.transform(rows), dtype=float).tolist()
        predicted = np.asarray(calibrator.predict(rows)).astype(int).tolist()
        for i, value, column in zip(group, values, predicted, strict=True):
            out[i] = (labels[column], value)
    return out


def _draw(
    folder: Path,
    calibration: CalibrationRecord,
    scores: np.ndarray,
    predicted: list,
    gold: list,
    labels: list[str],
) -> dict[str, str]:
    """Reliability diagram, accuracy–coverage curve and review rate against threshold of a
    calibration, and the record of which calibration they show (`PLOTS_RECORD`).

    "After" uses out-of-fold calibrated confidences: no item is judged by a calibrator that
    was fitted on it. Each file is drawn beside its final name and renamed, so that a page
    never shows a half-written plot.
    """
    folder.mkdir(parents=True, exist_ok=True)
    correct = np.array([p == g for p, g in zip(predicted, gold, strict=True)], float)
    before = scores.max(axis=1) if scores.ndim == 2 else scores
    target = np.array([labels.index(g) for g in gold]) if scores.ndim == 2 else correct
    fit = cross_fit(scores, target, calibration.method)
    after, after_correct = fit["confidence"], fit["correct"]
    draw = {
        "reliability": lambda out: plots.plot_reliability(
            correct, before, after, out, correct_after=after_correct
        ),
        "accuracy_coverage": lambda out: plots.plot_accuracy_coverage(after, after_correct, out),
        "review_rate": lambda out: plots.plot_review_rate(
            after, after_correct, out, threshold=calibration.threshold
        ),
    }
    with _drawing:
        for kind, name in PLOTS.items():
            partial = folder / f".{name}.partial"
            draw[kind](partial)
            os.replace(partial, folder / name)
        created = calibration.created_at
        record = {
            "calibration_id": calibration.id,
            "calibrated_at": (created if created.tzinfo else created.replace(tzinfo=UTC)).isoformat(
                timespec="seconds"
            ),
            "model": calibration.model,
            "prompt_version": calibration.prompt_version,
            "method": calibration.method,
            "threshold": calibration.threshold,
            "n_gold": len(gold),
            "files": dict(PLOTS),
        }
        partial = folder / f".{PLOTS_RECORD}.partial"
        partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, folder / PLOTS_RECORD)
    return {kind: str(folder / name) for kind, name in PLOTS.items()}


def plots_record(folder: Path) -> dict[str, Any] | None:
    """Which calibration the plots in `folder` show (None: no calibration plots there)."""
    try:
        record = json.loads((folder / PLOTS_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all((folder / n).is_file() for n in PLOTS.values()):
        return None
    return record


def current_plots(project: Project, folder: Path | None = None) -> dict[str, Any] | None:
    """The record of the calibration plots in `folder` (default: the project's `plots/`),
    redrawn first when they do not show the calibration that routing uses now; `current` says
    whether they do.

    Calibration changes without anyone asking for plots (`learn`, retraining in the server);
    whoever looks at the plots gets those of the calibration in force. When that cannot be
    drawn (no calibration for the routing predictor, too few gold items left), the plots there
    stay, and their record says whose they are.
    """
    folder = folder or Path(project.path) / "plots"
    record = plots_record(folder)
    active = project.active_predictor()
    calibration = active_calibration(project, *active) if active else None
    if calibration is not None and not (record and record["calibration_id"] == calibration.id):
        rows = _gold_rows(project, calibration.model, calibration.prompt_version)
        if len(rows) >= MIN_GOLD:
            scores, predicted, gold = _gold_scores(rows, project.labels)
            _draw(folder, calibration, scores, predicted, gold, project.labels)
            record = plots_record(folder)
    if record is None:
        return None
    current = calibration is not None and record.get("calibration_id") == calibration.id
    return {**record, "current": current}
