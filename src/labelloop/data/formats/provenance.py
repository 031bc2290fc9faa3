"""One row per item with its final label and where that label came from.

A row says which label the item ended with and who gave it (people, or the LLM accepted
automatically), which model and prompt version predicted what with which raw and calibrated
confidence and why, and every person's answer with its time. All tool formats are built from
these rows, and labelloop's own JSONL / CSV / Parquet / Hugging Face exports are these rows, so
importing them back restores the same items, labels and provenance.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ...multilabel.sets import MULTI_LABEL
from ...store import STATES, Annotation, Item, Prediction
from ...store.exchange import provenance_pages
from ...vocabulary import LABELING_ACTIONS, LabelSource
from .records import (
    HUMAN_ACTIONS,
    AnnotationIn,
    DecisionIn,
    FinalIn,
    ItemIn,
    PredictionIn,
    Where,
    as_float,
    as_time,
    iso,
    need,
)

if TYPE_CHECKING:
    from ...project import Project
#: Keys every export row has (the DESIGN contract of `export --format jsonl`), then provenance.
BASE_KEYS = (
    "id",
    "text",
    "state",
    "label",
    "label_source",
    "llm_label",
    "confidence",
    "calibrated_confidence",
)
INCLUDE_CHOICES = ("annotations", "predictions", "meta")
DEFAULT_INCLUDE = ("annotations", "meta")
CHUNK = 2_000


def parse_include(include: str | Iterable[str] | None) -> frozenset[str]:
    """`--include annotations,predictions`: which nested provenance the rows carry."""
    from ...errors import InputError

    if include is None:
        return frozenset(DEFAULT_INCLUDE)
    parts = include.split(",") if isinstance(include, str) else list(include)
    chosen = {p.strip().lower() for p in parts if p.strip()}
    if "all" in chosen:
        return frozenset(INCLUDE_CHOICES)
    unknown = chosen - set(INCLUDE_CHOICES)
    if unknown:
        raise InputError(
            f"unknown --include value(s) {', '.join(sorted(unknown))}; "
            f"use a comma-separated subset of {', '.join(INCLUDE_CHOICES)} or 'all'"
        )
    return frozenset(chosen)


def _prediction_dict(p: Prediction) -> dict[str, Any]:
    return {
        "model": p.model,
        "prompt_version": p.prompt_version,
        "label": p.label,
        "confidence": p.confidence,
        "calibrated_confidence": p.calibrated_confidence,
        "calibrated_label": p.calibrated_label,
        "probs": p.probs,
        "reasoning": p.reasoning,
        "created_at": iso(p.created_at),
        **({"labels": p.labels} if p.labels is not None else {}),
    }


def iter_provenance_rows(
    project: Project, include: str | Iterable[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item of the project, in id order, with the provenance of its label."""
    wanted = parse_include(include)
    multi = bool(project.settings.get(MULTI_LABEL))
    pages = provenance_pages(
        project.store, project.id, with_predictions="predictions" in wanted, size=CHUNK
    )
    for page in pages:
        answers: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for annotation, name in page.answers:
            answers[annotation.item_id].append(_answer_dict(annotation, name, multi))
        every: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for p in page.predictions:
            every[p.item_id].append(_prediction_dict(p))
        for item in page.items:
            shown = page.shown.get(item.prediction_id) if item.prediction_id else None
            row = _row(item, shown, answers[item.id], every, wanted)
            decision = page.decisions.get(item.id)
            row["adjudication"] = _decision_dict(decision) if decision is not None else None
            if decision is not None and item.final_source == LabelSource.ADJUDICATED:
                row["labeled_at"] = row["adjudication"]["decided_at"]
            yield with_label_sets(row, item, shown) if multi else row


def _answer_dict(annotation: Annotation, name: str | None, multi: bool = False) -> dict[str, Any]:
    return {
        "annotator": name,
        "label": annotation.label,
        "action": annotation.action,
        "suggested_label": annotation.suggested_label,
        "source": annotation.source,
        "external_id": annotation.external_id,
        "queue": annotation.queue,
        "time_spent_s": annotation.time_spent_s,
        "created_at": iso(annotation.created_at),
        **({"labels": annotation.labels} if multi else {}),
    }


def _decision_dict(decision: dict[str, Any]) -> dict[str, Any]:
    """A reviewer's decision as exported: the label (on a multi-label item also the set,
    `labels`), who decided, the note, why the item was queued, the label (or set) it replaced,
    and when."""
    sets = decision.get("labels") is not None
    return {
        "label": decision["label"],
        "reviewer": decision["reviewer"],
        "note": decision["note"],
        "reasons": decision["reasons"].split(",") if decision["reasons"] else [],
        "previous_label": decision["previous_label"],
        "previous_source": decision["previous_source"],
        "decided_at": iso(decision["created_at"]),
        **(
            {"labels": decision["labels"], "previous_labels": decision["previous_labels"]}
            if sets
            else {}
        ),
    }


def _row(
    item: Item,
    prediction: Prediction | None,
    answers: list[dict[str, Any]],
    every: dict[int, list[dict[str, Any]]],
    wanted: frozenset[str],
) -> dict[str, Any]:
    labeling = [a for a in answers if a["action"] in LABELING_ACTIONS]
    if item.final_source == LabelSource.HUMAN:
        labeled_at = labeling[-1]["created_at"] if labeling else None
    elif item.final_source == LabelSource.LLM and prediction is not None:
        labeled_at = iso(prediction.created_at)
    else:
        labeled_at = None
    row: dict[str, Any] = {
        "id": item.uid,
        "text": item.text,
        "state": item.state,
        "label": item.final_label,
        "label_source": item.final_source,
        # The weighted consensus's posterior of each label, where it set the label from answers.
        "label_posterior": item.label_posterior,
        "llm_label": item.llm_label,
        "confidence": item.confidence,
        "calibrated_confidence": item.calibrated_confidence,
        # The labeler's own answer; llm_label differs from it where calibration moved the label.
        "labeler_label": prediction.label if prediction else None,
        "split": item.split,
        "gold_label": item.gold_label,
        "model": prediction.model if prediction else None,
        "prompt_version": prediction.prompt_version if prediction else None,
        "reasoning": prediction.reasoning if prediction else None,
        "probs": prediction.probs if prediction else None,
        "predicted_at": iso(prediction.created_at) if prediction else None,
        "labeled_at": labeled_at,
        "annotators": sorted({a["annotator"] for a in labeling if a["annotator"]}),
    }
    if "annotations" in wanted:
        row["annotations"] = answers
    if "predictions" in wanted:
        row["predictions"] = every[item.id]
    if "meta" in wanted:
        row["meta"] = item.meta
    return row


def with_label_sets(
    row: dict[str, Any], item: Item, prediction: Prediction | None
) -> dict[str, Any]:
    """A multi-label item's row: its final, suggested, predicted and gold sets beside the
    single-label keys (which stay null)."""
    return {
        **row,
        "labels": item.final_labels,
        "llm_labels": item.llm_labels,
        "labeler_labels": prediction.labels if prediction else None,
        "gold_labels": item.gold_labels,
        # The labels routing found uncertain: what the item's reviewer is asked about.
        "uncertain_labels": item.uncertain_labels,
    }


# ----------------------------------------------------------------------------- reading back
def _nested(value: Any, where: Where, field_name: str) -> Any:
    """Nested values come back as JSON text from CSV and Parquet (empty: missing)."""
    if value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise where.error(f"not valid JSON ({exc.msg})", field_name, value) from exc
    return value


def _label_list(value: Any, where: Where, field_name: str) -> list[str] | None:
    """A label set as an export row holds it: a list of names (JSON text in CSV and Parquet
    cells), or missing. Checked against the project's labels when ingested."""
    value = _nested(value, where, field_name)
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "tolist"):  # a NumPy array from Parquet
        value = value.tolist()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error("a label set must be a list of label names", field_name, value)
    return value


def _optional_str(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    return str(value)


def row_prediction_labels(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the labeler's answer, the label calibration moved it to or None) of an export row.

    `llm_label` is the label after calibration and `labeler_label` the answer; rows written
    before `labeler_label` existed carry only `llm_label`, the answer."""
    shown = _optional_str(row, "llm_label")
    answer = _optional_str(row, "labeler_label")
    if answer is None:
        return shown, None
    return answer, shown if shown != answer else None


def _prediction_in(p: dict[str, Any], where: Where, field_name: str, active: bool) -> PredictionIn:
    if not isinstance(p, dict):
        raise where.error("a prediction must be an object", field_name, p)
    probs = _nested(p.get("probs"), where, f"{field_name}.probs")
    if probs is not None and not isinstance(probs, dict):
        raise where.error("probs must map labels to numbers", f"{field_name}.probs", probs)
    if active:
        label, calibrated_label = row_prediction_labels(p)
    else:
        label, calibrated_label = _optional_str(p, "label"), _optional_str(p, "calibrated_label")
    return PredictionIn(
        model=str(need(p, "model", where)),
        prompt_version=str(need(p, "prompt_version", where)),
        label=label,
        calibrated_label=calibrated_label,
        confidence=as_float(p.get("confidence"), where, f"{field_name}.confidence"),
        calibrated_confidence=as_float(
            p.get("calibrated_confidence"), where, f"{field_name}.calibrated_confidence"
        ),
        probs=probs,
        reasoning=p["reasoning"] if isinstance(p.get("reasoning"), str) else None,
        labels=_label_list(p.get("labeler_labels" if active else "labels"), where, field_name),
        created_at=as_time(
            p.get("created_at", p.get("predicted_at")), where, f"{field_name}.created_at"
        ),
        active=active,
    )


def annotation_in(a: Any, where: Where, field_name: str = "annotations") -> AnnotationIn:
    if not isinstance(a, dict):
        raise where.error("an annotation must be an object", field_name, a)
    action = need(a, "action", where)
    if action not in HUMAN_ACTIONS:
        raise where.error(
            f"unknown action; use one of {', '.join(HUMAN_ACTIONS)}", f"{field_name}.action", action
        )
    return AnnotationIn(
        annotator=_optional_str(a, "annotator"),
        action=action,
        label=_optional_str(a, "label"),
        source=_optional_str(a, "source") or "labelloop",
        external_id=_optional_str(a, "external_id"),
        suggested_label=_optional_str(a, "suggested_label"),
        time_spent_s=as_float(a.get("time_spent_s"), where, f"{field_name}.time_spent_s"),
        created_at=as_time(a.get("created_at"), where, f"{field_name}.created_at"),
        queue=_optional_str(a, "queue"),
        labels=_label_list(a.get("labels"), where, f"{field_name}.labels"),
    )


def decision_in(value: Any, where: Where, field_name: str = "adjudication") -> DecisionIn | None:
    """An exported decision (`_decision_dict`) back into a record; None when there is none."""
    value = _nested(value, where, field_name)
    if value is None:
        return None
    sets = isinstance(value, dict) and isinstance(value.get("labels"), list)
    if not isinstance(value, dict) or not (sets or isinstance(value.get("label"), str)):
        raise where.error("adjudication must be an object with a label", field_name, value)
    reasons = value.get("reasons") or []
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise where.error("adjudication reasons must be a list of words", field_name, reasons)
    return DecisionIn(
        label=None if sets else value["label"],
        labels=list(value["labels"]) if sets else None,
        previous_labels=value.get("previous_labels") if sets else None,
        reviewer=_optional_str(value, "reviewer"),
        note=_optional_str(value, "note"),
        reasons=reasons,
        previous_label=_optional_str(value, "previous_label"),
        previous_source=_optional_str(value, "previous_source"),
        decided_at=as_time(value.get("decided_at"), where, f"{field_name}.decided_at"),
    )


def item_from_row(row: dict[str, Any], where: Where) -> ItemIn:
    """A labelloop export row (any of its file formats) back into an item to import."""
    uid = need(row, "id", where, (str, int))
    text = need(row, "text", where)
    state = need(row, "state", where)
    if state not in STATES:
        raise where.error(f"unknown state; use one of {', '.join(STATES)}", "state", state)
    source = _optional_str(row, "label_source")
    if source is not None and source not in tuple(LabelSource):
        raise where.error(
            "label_source must be human, adjudicated, llm or empty", "label_source", source
        )
    predictions: list[PredictionIn] = []
    if _optional_str(row, "model") and _optional_str(row, "prompt_version"):
        predictions.append(_prediction_in(row, where, "model", active=True))
    for p in _nested(row.get("predictions"), where, "predictions") or []:
        candidate = _prediction_in(p, where, "predictions", active=False)
        if not any(
            (q.model, q.prompt_version) == (candidate.model, candidate.prompt_version)
            for q in predictions
        ):
            predictions.append(candidate)
    annotations = _nested(row.get("annotations"), where, "annotations") or []
    if not isinstance(annotations, list):
        raise where.error("annotations must be a list", "annotations", annotations)
    meta = _nested(row.get("meta"), where, "meta")
    if meta is not None and not isinstance(meta, dict):
        raise where.error("meta must be an object", "meta", meta)
    posterior = _nested(row.get("label_posterior"), where, "label_posterior")
    if posterior is not None and not (
        isinstance(posterior, dict)
        and all(isinstance(p, (int, float)) and 0 <= p <= 1 for p in posterior.values())
    ):
        raise where.error(
            "label_posterior must map labels to probabilities", "label_posterior", posterior
        )
    return ItemIn(
        uid=str(uid),
        text=text,
        where=where,
        split=_optional_str(row, "split") or "pool",
        gold_label=_optional_str(row, "gold_label"),
        meta=meta,
        predictions=predictions,
        annotations=[annotation_in(a, where) for a in annotations],
        final=FinalIn(
            state=state,
            label=_optional_str(row, "label"),
            source=source,
            posterior=posterior,
            labels=_label_list(row.get("labels"), where, "labels"),
        ),
        decision=decision_in(row.get("adjudication"), where),
        gold_labels=_label_list(row.get("gold_labels"), where, "gold_labels"),
    )


def is_provenance_row(row: dict[str, Any]) -> bool:
    """Whether a record looks like one of labelloop's own export rows."""
    return all(key in row for key in ("id", "text", "state", "label_source"))
