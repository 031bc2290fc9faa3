"""Argilla v2 records, built and read with the argilla SDK's own classes.

An export is a JSONL file of `rg.Record.to_dict()`, one record per line (load it with
`dataset.records.log([rg.Record.from_dict(d) for d in ...])`), and beside it
`<name>.settings.json` in the shape `rg.Settings.serialize()` gives (a text field and a
single-label question). The LLM's label is the record's suggestion (score = calibrated
confidence, agent = model@prompt version); people's answers are its responses. Argilla keeps a
response's value and user id only, so the rest of the provenance (annotator names, actions,
times, raw confidences, reasoning) rides in the record's metadata.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...vocabulary import LABELING_ACTIONS
from ..readers import read_jsonl
from ._optional import require
from .provenance import item_from_row, iter_provenance_rows
from .records import AnnotationIn, Chosen, ItemIn, LabelPolicy, PredictionIn, Where, as_float
from .tabular import write_jsonl

if TYPE_CHECKING:
    from ...project import Project

QUESTION = "label"
SET_QUESTION = "labels"  # multi-label projects: a `MultiLabelQuestion`
SINGLE = LabelPolicy()
FIELD = "text"
PROVENANCE_KEY = "labelloop_provenance"  # JSON text: the whole export row but the text
USER_NAMESPACE = uuid.UUID("6f1c0c51-3e7a-4f43-9a5e-1a2b3c4d5e6f")
SCALARS = (
    "state",
    "label_source",
    "split",
    "gold_label",
    "model",
    "prompt_version",
    "confidence",
    "calibrated_confidence",
    "labeled_at",
)


def user_id(name: str | None) -> uuid.UUID:
    """A stable Argilla user id for a labelloop annotator name."""
    return uuid.uuid5(USER_NAMESPACE, name or "anonymous")


def record_from_row(row: dict[str, Any]) -> Any:
    """One export row as an `rg.Record`."""
    rg = require("argilla")
    suggestions = []
    if row.get("llm_label") is not None:
        score = row.get("calibrated_confidence")
        suggestions.append(
            rg.Suggestion(
                question_name=QUESTION,
                value=row["llm_label"],
                score=row.get("confidence") if score is None else score,
                agent=f"{row['model']}@{row['prompt_version']}",
                type="model",
            )
        )
    responses = [
        rg.Response(
            question_name=QUESTION,
            value=a["label"] if a["action"] in LABELING_ACTIONS else None,
            user_id=user_id(a.get("annotator")),
            status="submitted" if a["action"] in LABELING_ACTIONS else "discarded",
        )
        for a in row.get("annotations") or []
    ]
    metadata = {k: row.get(k) for k in SCALARS if row.get(k) is not None}
    rest = {k: v for k, v in row.items() if k != "text"}
    metadata[PROVENANCE_KEY] = json.dumps(rest, ensure_ascii=False)
    return rg.Record(
        id=row["id"],
        fields={FIELD: row["text"]},
        metadata=metadata,
        suggestions=suggestions,
        responses=responses,
    )


def settings_dict(labels: list[str], guidelines: str | None = None) -> dict[str, Any]:
    """The dataset settings, as `rg.Settings.serialize()` writes them."""
    return {
        "guidelines": guidelines,
        "questions": [
            {
                "name": QUESTION,
                "title": QUESTION,
                "description": None,
                "required": True,
                "settings": {
                    "type": "label_selection",
                    "options": [{"value": v, "text": v, "description": None} for v in labels],
                    "visible_options": max(3, len(labels)) if len(labels) >= 3 else None,
                },
            }
        ],
        "fields": [
            {
                "name": FIELD,
                "title": FIELD,
                "required": True,
                "description": None,
                "settings": {"type": "text", "use_markdown": False},
            }
        ],
        "vectors": [],
        "metadata": [],
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "mapping": None,
    }


def export_argilla(
    project: Project,
    out: Path,
    include: Any,
    record: Callable[[dict[str, Any]], Any] = record_from_row,
    settings_of: Callable[[list[str], str | None], dict[str, Any]] = settings_dict,
) -> int:
    """Argilla records as JSONL and the dataset settings beside them; `record` and
    `settings_of` build them (multi-label projects pass theirs)."""
    rows = iter_provenance_rows(project, "annotations,meta" if include is None else include)
    count = write_jsonl((record(row).to_dict() for row in rows), out)
    settings = settings_of(project.labels, project.task)
    out.with_name(out.stem + ".settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return count


def parse_record(
    data: dict[str, Any], where: Where, text_field: str = FIELD
) -> tuple[Any, dict[str, Any], str, ItemIn | None]:
    """The `rg.Record`, its metadata and text, and the item its labelloop provenance restores
    (None for a record made elsewhere)."""
    rg = require("argilla")
    try:
        record = rg.Record.from_dict(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise where.error(f"not an Argilla record ({exc})") from exc
    metadata = dict(record.metadata)
    text = record.fields.get(text_field)
    if not isinstance(text, str):
        raise where.error(f"the record has no text field {text_field!r}", f"fields.{text_field}")
    restored = None
    if isinstance(metadata.get(PROVENANCE_KEY), str):
        restored = item_from_row(
            {**_provenance(metadata[PROVENANCE_KEY], where), "text": text}, where
        )
    return record, metadata, text, restored


def _provenance(value: str, where: Where) -> dict[str, Any]:
    """labelloop's export row riding in a record's metadata (JSON text), else bad input."""
    field = f"metadata.{PROVENANCE_KEY}"
    try:
        row = json.loads(value)
    except json.JSONDecodeError as exc:
        raise where.error(f"not JSON ({exc})", field) from exc
    if not isinstance(row, dict):
        raise where.error("must hold a JSON object (labelloop's export row)", field)
    return row


def _suggestion(suggestion: Any, where: Where, policy: LabelPolicy) -> PredictionIn:
    """A record's suggestion as the active prediction: a label with its score, or (sets) the
    suggested labels with one score each, kept as their probabilities."""
    model = suggestion.agent or "argilla"
    if not policy.sets:
        return PredictionIn(
            model=model,
            prompt_version="argilla",
            label=str(suggestion.value),
            confidence=as_float(suggestion.score, where, "suggestions.score"),
            active=True,
        )
    chosen = policy.names(suggestion.value, where, "suggestions.value")
    scores = suggestion.score if isinstance(suggestion.score, list) else []
    return PredictionIn(
        model=model,
        prompt_version="argilla",
        label=None,
        labels=chosen,
        probs=dict(zip(chosen, map(float, scores), strict=False)) or None,
        active=True,
    )


def item_from_record(
    data: dict[str, Any], where: Where, text_field: str = FIELD, policy: LabelPolicy = SINGLE
) -> ItemIn:
    """An Argilla record dict (as `to_dict()` gives it) as an item to import: the answers of
    its label question, or (sets) of its `MultiLabelQuestion`."""
    record, metadata, text, restored = parse_record(data, where, text_field)
    if restored is not None:
        return restored
    if record.id is None:
        raise where.error("the record has no id", "id")
    question = SET_QUESTION if policy.sets else QUESTION
    suggestion = record.suggestions[question] if question in record.suggestions.to_dict() else None
    predictions = []
    if suggestion is not None and suggestion.value is not None:
        predictions.append(_suggestion(suggestion, where, policy))
    suggested = policy.suggestion(predictions)
    annotations = []
    for response in record.responses:
        if response.question_name != question:
            continue
        chosen: Chosen = None
        if response.value is not None:
            chosen = (
                policy.names(response.value, where, "responses")
                if policy.sets
                else str(response.value)
            )
        annotations.append(
            AnnotationIn(
                annotator=f"argilla:{response.user_id}",
                source="argilla",
                **policy.answer(chosen, suggested),
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


def read_argilla(project: Project, path: Path, *, text_field: str = FIELD) -> Iterator[ItemIn]:
    """Records from a JSONL file of `rg.Record.to_dict()` (or a JSON array of them), with
    labels or, on a multi-label project, sets (`LabelPolicy`)."""
    policy = LabelPolicy.of(project)
    if path.suffix.lower() == ".json":
        from ..readers import read_json

        lines = read_json(path)
    else:
        lines = read_jsonl(path)
    for number, data in lines:
        where = Where(str(path), line=number)
        if "fields" not in data:
            raise where.error("an Argilla record needs 'fields'", "fields")
        yield item_from_record(data, where, text_field, policy)
