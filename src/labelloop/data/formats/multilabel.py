"""Multi-label projects' exports in other tools' formats (each tool's one reader takes sets
through `records.LabelPolicy`, in the tool's own module).

- Label Studio: `<Choices choice="multiple">`, results with several `choices`; the prediction's
  `score` is the set's, each label's probability rides under `labelloop`.
- Argilla: a `MultiLabelQuestion` (`multi_label_selection`) with list values; the suggestion's
  `score` is a list, one per suggested label.
- Prodigy: `options` + `accept` (the ids of the accepted options); `meta.scores` per label.
- Hugging Face: `Sequence(ClassLabel)` columns `labels`, `llm_labels`, `labeler_labels`,
  `gold_labels`; per-label probabilities in `probs` (JSON text).

As for single-label projects, every export also carries the whole provenance row (final,
suggested, predicted and gold sets, per-label probabilities, every answer) where the tool keeps
it, so that importing the file back restores it all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...vocabulary import LABELING_ACTIONS, NO_LABEL_ACTIONS
from . import argilla, hf, labelstudio, prodigy
from ._optional import require
from .provenance import iter_provenance_rows
from .tabular import write_jsonl

if TYPE_CHECKING:
    from ...project import Project

QUESTION = argilla.SET_QUESTION  # the Argilla question and the Label Studio <Choices> name


# ----------------------------------------------------------------------------- Label Studio
def label_config(labels: list[str], data_key: str = "text") -> str:
    """A config for the project's labels: one text, one multiple-choice question."""
    return labelstudio.default_label_config(labels, data_key, multiple=True)


def _ls_result(chosen: list[str], config: labelstudio.LabelConfig) -> list[dict[str, Any]]:
    return [labelstudio.prediction_result(chosen, None, config)]


def ls_task(row: dict[str, Any], config: labelstudio.LabelConfig) -> dict[str, Any]:
    """One export row as a Label Studio task: the suggested set as the prediction, each
    answer's set as an annotation, the gold set as a ground-truth annotation."""
    predictions = []
    if row.get("model") and row.get("llm_labels") is not None:
        score = row.get("calibrated_confidence")
        predictions.append(
            {
                "model_version": f"{row['model']}@{row['prompt_version']}",
                "score": row.get("confidence") if score is None else score,
                "result": _ls_result(row["llm_labels"], config),
                labelstudio.PROVENANCE_KEY: {"probs": row.get("probs")},
            }
        )
    annotations = [
        {
            "result": _ls_result(a.get("labels") or [], config)
            if a["action"] in LABELING_ACTIONS
            else [],
            "was_cancelled": a["action"] in NO_LABEL_ACTIONS,
            "lead_time": a.get("time_spent_s"),
            "created_at": a.get("created_at"),
        }
        for a in row.get("annotations") or []
    ]
    if row.get("split") == "gold" and row.get("gold_labels") is not None:
        annotations.append({"result": _ls_result(row["gold_labels"], config), "ground_truth": True})
    provenance = {k: v for k, v in row.items() if k != "text"}
    return {
        "data": {
            config.data_key: row["text"],
            labelstudio.ID_KEY: row["id"],
            labelstudio.PROVENANCE_KEY: provenance,
        },
        "annotations": annotations,
        "predictions": predictions,
    }


def export_labelstudio(project: Project, out: Path, include: Any) -> int:
    """A JSON array of tasks and, beside it, the multiple-choice label config."""
    return labelstudio.export_labelstudio(project, out, include, task=ls_task)


# ----------------------------------------------------------------------------- Argilla
def argilla_record(row: dict[str, Any]) -> Any:
    """One export row as an `rg.Record` of a `MultiLabelQuestion`."""
    rg = require("argilla")
    suggestions = []
    if row.get("llm_labels") is not None and row.get("model"):
        probs = row.get("probs") or {}
        suggestions.append(
            rg.Suggestion(
                question_name=QUESTION,
                value=row["llm_labels"],
                score=[float(probs.get(label, 0.0)) for label in row["llm_labels"]],
                agent=f"{row['model']}@{row['prompt_version']}",
                type="model",
            )
        )
    responses = [
        rg.Response(
            question_name=QUESTION,
            value=a.get("labels") if a["action"] in LABELING_ACTIONS else None,
            user_id=argilla.user_id(a.get("annotator")),
            status="submitted" if a["action"] in LABELING_ACTIONS else "discarded",
        )
        for a in row.get("annotations") or []
    ]
    metadata = {k: row.get(k) for k in argilla.SCALARS if row.get(k) is not None}
    rest = {k: v for k, v in row.items() if k != "text"}
    metadata[argilla.PROVENANCE_KEY] = json.dumps(rest, ensure_ascii=False)
    return rg.Record(
        id=row["id"],
        fields={argilla.FIELD: row["text"]},
        metadata=metadata,
        suggestions=suggestions,
        responses=responses,
    )


def argilla_settings(labels: list[str], guidelines: str | None = None) -> dict[str, Any]:
    """The dataset settings with a `MultiLabelQuestion`, as `rg.Settings.serialize()` writes."""
    settings = argilla.settings_dict(labels, guidelines)
    settings["questions"] = [
        {
            "name": QUESTION,
            "title": QUESTION,
            "description": None,
            "required": True,
            "type": "multi_label_selection",
            "settings": {
                "type": "multi_label_selection",
                "options": [{"value": v, "text": v} for v in labels],
                "visible_options": len(labels) if len(labels) >= 3 else None,
                "options_order": "natural",
            },
        }
    ]
    return settings


def export_argilla(project: Project, out: Path, include: Any) -> int:
    """Records with a `MultiLabelQuestion` as JSONL and the dataset settings beside them."""
    return argilla.export_argilla(
        project, out, include, record=argilla_record, settings_of=argilla_settings
    )


# ----------------------------------------------------------------------------- Prodigy
def prodigy_task(row: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """One export row as a Prodigy choice task: every label an option, the final set (else the
    suggested one, answered `ignore`) accepted; each label's probability in `meta.scores`."""
    if row.get("labels") is not None:
        accepted, answer = row["labels"], "accept"
    else:
        accepted, answer = row.get("llm_labels") or [], "ignore"
    meta = {"id": row["id"]}
    meta |= {k: row[k] for k in prodigy.META_KEYS if row.get(k) is not None}
    if row.get("probs"):
        meta["scores"] = row["probs"]
    return {
        "text": row["text"],
        "options": [{"id": label, "text": label} for label in labels],
        "accept": list(accepted),
        "answer": answer,
        "meta": meta,
        prodigy.PROVENANCE_KEY: row,
    }


def export_prodigy(project: Project, out: Path, include: Any) -> int:
    labels = project.labels
    rows = iter_provenance_rows(project, include)
    return write_jsonl((prodigy_task(row, labels) for row in rows), out)


# ----------------------------------------------------------------------------- Hugging Face
SET_COLUMNS = ("labels", "llm_labels", "labeler_labels", "gold_labels", "uncertain_labels")


def export_hf(project: Project, out: Path, include: Any) -> int:
    """A `datasets` folder whose set columns are `Sequence(ClassLabel(names=labels))`; the
    answers' sets are lists of names."""
    datasets = require("datasets")
    labels = project.labels
    classes = datasets.Sequence(datasets.ClassLabel(names=labels))

    def features(wanted: frozenset[str]) -> Any:
        base = dict(hf.features_for(wanted))
        base |= {name: classes for name in SET_COLUMNS}
        for nested in ("annotations", "predictions"):  # lists of answers or predictions
            if nested in base:
                inner = base[nested].feature
                base[nested] = [{**inner, "labels": [datasets.Value("string")]}]
        return datasets.Features(base)

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        index = {label: k for k, label in enumerate(labels)}
        flat = hf.flatten(row)
        for name in SET_COLUMNS:
            chosen = row.get(name)
            flat[name] = None if chosen is None else [index[label] for label in chosen]
        return flat

    return hf.save_rows(project, out, include, features, encode)
