"""Multi-label projects in other tools' formats, both ways.

- Label Studio: `<Choices choice="multiple">`, results with several `choices`; the prediction's
  `score` is the set's, each label's probability rides under `labelloop`.
- Argilla: a `MultiLabelQuestion` (`multi_label_selection`) with list values; the suggestion's
  `score` is a list, one per suggested label.
- Prodigy: `options` + `accept` (the ids of the accepted options); `meta.scores` per label.
- Hugging Face: `Sequence(ClassLabel)` columns `labels`, `llm_labels`, `labeler_labels`,
  `gold_labels`; per-label probabilities in `probs` (JSON text).

As for single-label projects, every export also carries the whole provenance row (final,
suggested, predicted and gold sets, per-label probabilities, every answer) where the tool keeps
it, so that importing the file back restores it all; files made by the tools themselves are read
from their own fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...vocabulary import LABELING_ACTIONS, NO_LABEL_ACTIONS, Action
from ..readers import read_jsonl
from . import argilla, hf, labelstudio, prodigy
from ._optional import require
from .provenance import is_provenance_row, item_from_row, iter_provenance_rows
from .records import AnnotationIn, ItemIn, PredictionIn, Where, as_float, as_time, need
from .tabular import write_jsonl

if TYPE_CHECKING:
    from ...project import Project

QUESTION = "labels"  # the Argilla question and the Label Studio <Choices> name


def _answer_action(chosen: list[str] | None, suggested: list[str] | None) -> Action:
    """The labelloop action a person's set amounts to, given the suggested set."""
    if chosen is None:
        return Action.SKIP
    if suggested is None:
        return Action.LABEL
    return Action.ACCEPT if set(chosen) == set(suggested) else Action.CORRECT


def _names(value: Any, where: Where, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error("a label set must be a list of label names", field, value)
    return list(value)


# ----------------------------------------------------------------------------- Label Studio
def label_config(labels: list[str], data_key: str = "text") -> str:
    """A config for the project's labels: one text, one multiple-choice question."""
    return labelstudio.default_label_config(labels, data_key, multiple=True)


def _ls_result(chosen: list[str], config: labelstudio.LabelConfig) -> list[dict[str, Any]]:
    value = {"choices": chosen}
    entry = {"from_name": config.from_name, "to_name": config.to_name, "type": "choices"}
    return [{**entry, "value": value}]


def ls_choices(
    results: Any, config: labelstudio.LabelConfig | None, where: Where, field: str
) -> list[str]:
    """The labels chosen in a Label Studio result list (empty when none was ticked)."""
    return labelstudio.choices_of(results, config, where, field) or []


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
    config = _ls_config(project)
    rows = iter_provenance_rows(project, _with_annotations(include))
    count = _write_json_array((ls_task(row, config) for row in rows), out)
    out.with_name(out.stem + ".label_config.xml").write_text(config.xml + "\n", encoding="utf-8")
    return count


def _ls_config(project: Project) -> labelstudio.LabelConfig:
    return labelstudio.project_label_config(project)


def _with_annotations(include: Any) -> str:
    if include is None:
        return "annotations,meta"
    parts = include.split(",") if isinstance(include, str) else list(include)
    return ",".join(sorted({*parts, "annotations"}))


def _write_json_array(records: Iterable[dict[str, Any]], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    count = 0
    with partial.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for record in records:
            handle.write(("," if count else "") + "\n" + json.dumps(record, ensure_ascii=False))
            count += 1
        handle.write("\n]\n")
    partial.replace(out)
    return count


def ls_item(task: Any, config: labelstudio.LabelConfig, where: Where) -> ItemIn:
    """A Label Studio task (ours, or made in Label Studio) as a multi-label item."""
    if not isinstance(task, dict):
        raise where.error("a task must be a JSON object", None, task)
    data = need(task, "data", where, dict)
    ours = data.get(labelstudio.PROVENANCE_KEY)
    text = data.get(config.data_key)
    if not isinstance(text, str):
        raise where.error(f"the task has no text in data.{config.data_key}", config.data_key)
    if isinstance(ours, dict) and is_provenance_row({**ours, "text": text}):
        return item_from_row({**ours, "text": text}, where)
    predictions = [
        PredictionIn(
            model=str(p.get("model_version") or "labelstudio"),
            prompt_version="labelstudio",
            label=None,
            labels=ls_choices(p.get("result", []), config, where, "predictions.result"),
            confidence=as_float(p.get("score"), where, "predictions.score"),
            active=k == 0,
        )
        for k, p in enumerate(p for p in task.get("predictions") or [] if isinstance(p, dict))
    ]
    suggested = predictions[0].labels if predictions else None
    annotations, gold = [], None
    for a in task.get("annotations") or []:
        if not isinstance(a, dict):
            raise where.error("an annotation must be an object", "annotations", a)
        if a.get("ground_truth"):
            gold = ls_choices(a.get("result", []), config, where, "annotations.result")
            continue
        annotations.append(ls_annotation(a, config, where, suggested))
    return ItemIn(
        uid=labelstudio.task_uid(task),
        text=text,
        where=where,
        split="gold" if gold is not None else "pool",
        gold_labels=gold,
        predictions=predictions,
        annotations=annotations,
    )


def ls_annotation(
    annotation: dict[str, Any],
    config: labelstudio.LabelConfig | None,
    where: Where,
    suggested: list[str] | None,
) -> AnnotationIn:
    """A Label Studio annotation as a person's set (a cancelled one is a skip)."""
    chosen = ls_choices(annotation.get("result", []), config, where, "annotations.result")
    given = None if annotation.get("was_cancelled") else chosen
    return AnnotationIn(
        annotator=labelstudio.annotator_name(annotation),
        action=_answer_action(given, suggested),
        label=None,
        labels=given,
        source="labelstudio",
        external_id=None if annotation.get("id") is None else str(annotation["id"]),
        time_spent_s=as_float(annotation.get("lead_time"), where, "annotations.lead_time"),
        created_at=as_time(annotation.get("created_at"), where, "annotations.created_at"),
    )


def read_labelstudio(
    project: Project, path: Path, *, label_config: str | Path | None = None, **_: Any
) -> Iterator[ItemIn]:
    """Tasks of a Label Studio JSON export (or of `export_labelstudio`)."""
    beside = path.with_name(path.stem + ".label_config.xml")
    source = Path(label_config) if label_config is not None else beside
    config = (
        labelstudio.parse_label_config(source.read_text(encoding="utf-8"))
        if source.is_file()
        else _ls_config(project)
    )
    for number, task in enumerate(_json_array(path), start=1):
        yield ls_item(task, config, Where(str(path), record=number))


def _json_array(path: Path) -> list[Any]:
    from ...errors import InputError

    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a JSON export: {exc}", file=str(path)) from exc
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list):
        raise InputError("expected a JSON array of tasks", file=str(path))
    return tasks


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
    rows = iter_provenance_rows(project, "annotations,meta" if include is None else include)
    count = write_jsonl((argilla_record(row).to_dict() for row in rows), out)
    settings = argilla_settings(project.labels, project.task)
    out.with_name(out.stem + ".settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return count


def argilla_item(data: dict[str, Any], where: Where, text_field: str = argilla.FIELD) -> ItemIn:
    """An Argilla record dict of a multi-label question as an item."""
    record, metadata, text, restored = argilla.parse_record(data, where, text_field)
    if restored is not None:
        return restored
    if record.id is None:
        raise where.error("the record has no id", "id")
    predictions = []
    suggestion = record.suggestions[QUESTION] if QUESTION in record.suggestions.to_dict() else None
    if suggestion is not None and suggestion.value is not None:
        chosen = _names(suggestion.value, where, "suggestions.value")
        scores = suggestion.score if isinstance(suggestion.score, list) else []
        predictions.append(
            PredictionIn(
                model=suggestion.agent or "argilla",
                prompt_version="argilla",
                label=None,
                labels=chosen,
                probs=dict(zip(chosen, map(float, scores), strict=False)) or None,
                active=True,
            )
        )
    suggested = predictions[0].labels if predictions else None
    annotations = []
    for response in record.responses:
        if response.question_name != QUESTION:
            continue
        given = None if response.value is None else _names(response.value, where, "responses")
        annotations.append(
            AnnotationIn(
                annotator=f"argilla:{response.user_id}",
                action=_answer_action(given, suggested),
                label=None,
                labels=given,
                source="argilla",
            )
        )
    return ItemIn(
        uid=str(record.id),
        text=text,
        where=where,
        meta={k: v for k, v in metadata.items() if v is not None} or None,
        predictions=predictions,
        annotations=annotations,
    )


def read_argilla(
    project: Project, path: Path, *, text_field: str = argilla.FIELD
) -> Iterator[ItemIn]:
    """Records from a JSONL file of `rg.Record.to_dict()`."""
    for number, data in read_jsonl(path):
        where = Where(str(path), line=number)
        if "fields" not in data:
            raise where.error("an Argilla record needs 'fields'", "fields")
        yield argilla_item(data, where, text_field)


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


def prodigy_item(task: dict[str, Any], where: Where) -> ItemIn:
    """A Prodigy choice task (one annotator's answer): the accepted options are the set."""
    if isinstance(task.get(prodigy.PROVENANCE_KEY), dict):
        return item_from_row(task[prodigy.PROVENANCE_KEY], where)
    text, action = prodigy.read_answer(task, where)
    names = {
        str(o.get("id")): o.get("text") for o in task.get("options") or [] if isinstance(o, dict)
    }
    accepted = [str(names.get(str(a)) or a) for a in task.get("accept") or []]
    chosen = accepted if action == Action.LABEL else None
    return prodigy.answer_item(task, where, text, action=action, label=None, labels=chosen)


def read_prodigy(project: Project, path: Path) -> Iterator[ItemIn]:
    for line, task in read_jsonl(path):
        where = Where(str(path), line=line)
        yield item_from_row(task, where) if is_provenance_row(task) else prodigy_item(task, where)


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


def read_hf(project: Project, path: Path, *, text_col: str = "text") -> Iterator[ItemIn]:
    """A labelloop export (set columns of class ids), or any dataset whose `labels` column is a
    `Sequence(ClassLabel)` (it becomes `source_label` in the item's metadata, as a plain
    import does)."""
    dataset = hf.load(path)
    names = {
        name: feature.feature.names
        for name, feature in dataset.features.items()
        if hasattr(getattr(feature, "feature", None), "names")
    }
    for number, row in enumerate(dataset, start=1):
        where = Where(str(path), record=number)
        decoded = dict(row)
        for name, classes in names.items():  # class ids back to names; None stays no set
            if decoded.get(name) is not None:
                decoded[name] = [classes[k] for k in decoded[name]]
        if is_provenance_row(decoded):
            yield item_from_row(decoded, where)
            continue
        yield hf.plain_item(decoded, where, text_col, label_col="labels")
