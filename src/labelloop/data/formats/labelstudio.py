"""Label Studio: label configs, and tasks with predictions and annotations, both ways.

A Label Studio task is `{"id", "data": {...}, "annotations": [...], "predictions": [...]}`; a
single-label classification answer is a result entry of type `choices` whose `from_name` is the
`<Choices>` tag and `to_name` the `<Text>` tag it labels. labelloop's provenance that Label Studio
has no place for rides along under `labelloop` keys, which Label Studio ignores on import.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from ...errors import InputError
from ...vocabulary import LABELING_ACTIONS, NO_LABEL_ACTIONS
from .provenance import (
    annotation_in,
    decision_in,
    is_provenance_row,
    item_from_row,
    iter_provenance_rows,
    row_prediction_labels,
)
from .records import (
    AnnotationIn,
    Chosen,
    FinalIn,
    ItemIn,
    LabelPolicy,
    PredictionIn,
    Where,
    as_float,
    as_time,
    listed,
    need,
)
from .tabular import write_json_array

if TYPE_CHECKING:
    from ...project import Project

ID_KEY = "labelloop_id"  # the data field that carries labelloop's item id
PROVENANCE_KEY = "labelloop"
SETTINGS_KEY = "labelstudio"  # project settings: {"label_config": "<View>…", "id_key": ...}
MAX_CONFIG_CHARS = 1_000_000
SINGLE = LabelPolicy()

try:  # defusedxml refuses entity expansion and external references outright
    from defusedxml.ElementTree import fromstring as _parse_xml
except ImportError:  # expat (≥ 2.4.1, bundled with Python 3.11) limits entity amplification
    _parse_xml = ElementTree.fromstring


@dataclass(frozen=True)
class LabelConfig:
    """The parts of a Label Studio `<View>` that a single-label text task uses."""

    from_name: str  # the <Choices name=...>
    to_name: str  # its toName: the <Text name=...> it labels
    data_key: str  # the task data field the <Text> shows ($text → "text")
    choices: tuple[str, ...]
    xml: str
    multiple: bool = False  # choice="multiple": a question that takes a set of labels


#: The name of the default config's question: single labels, label sets.
QUESTION, SET_QUESTION = "label", "labels"


def default_label_config(
    labels: Sequence[str], data_key: str = "text", *, multiple: bool = False
) -> str:
    """A minimal config for the project's labels: one text, one single-choice question (a
    multiple-choice one for a multi-label project)."""
    view = ElementTree.Element("View")
    ElementTree.SubElement(view, "Text", name="text", value=f"${data_key}")
    choices = ElementTree.SubElement(
        view,
        "Choices",
        name=SET_QUESTION if multiple else QUESTION,
        toName="text",
        choice="multiple" if multiple else "single",
        showInLine="true",
    )
    for label in labels:
        ElementTree.SubElement(choices, "Choice", value=label)
    return ElementTree.tostring(view, encoding="unicode")


def parse_label_config(xml: str) -> LabelConfig:
    """Find the `<Choices>` question and the `<Text>` it labels; fail clearly otherwise."""
    if not isinstance(xml, str) or not xml.strip():
        raise InputError("the Label Studio label config is empty")
    if len(xml) > MAX_CONFIG_CHARS:
        raise InputError("the Label Studio label config is too large")
    try:
        root = _parse_xml(xml)
    except Exception as exc:  # ParseError, or defusedxml's refusal of entities
        raise InputError(f"the Label Studio label config is not valid XML: {exc}") from exc
    choices = next((el for el in root.iter("Choices") if el.get("name") and el.get("toName")), None)
    if choices is None:
        raise InputError(
            "the Label Studio label config has no <Choices name=... toName=...> question; "
            "labelloop serves single-label classification"
        )
    to_name = choices.get("toName", "").split(",")[0].strip()
    target = next((el for el in root.iter() if el.get("name") == to_name), None)
    value = (target.get("value") or "") if target is not None else ""
    data_key = value[1:] if value.startswith("$") else to_name
    values = tuple(c.get("value") or c.get("alias") or "" for c in choices.iter("Choice"))
    multiple = choices.get("choice", "single").strip().lower() == "multiple"
    return LabelConfig(choices.get("name", ""), to_name, data_key, values, xml, multiple)


def project_label_config(project: Project) -> LabelConfig:
    """The config stored with the project (set by Label Studio's /setup), else the default."""
    stored = (project.settings.get(SETTINGS_KEY) or {}).get("label_config")
    default = default_label_config(project.labels, multiple=project.multi_label)
    return parse_label_config(stored or default)


def task_uid(task: dict[str, Any], id_key: str | None = None) -> str:
    """labelloop's item id for a Label Studio task: its id field if it has one, else `ls-<id>`."""
    data = task.get("data") or {}
    for key in (id_key, ID_KEY):
        if key and data.get(key) not in (None, ""):
            return str(data[key])
    return f"ls-{task.get('id')}"


def choices_of(
    results: Any, config: LabelConfig | None, where: Where, field: str
) -> list[str] | None:
    """The labels chosen in a result list's `choices` entry (None when it has none)."""
    if not isinstance(results, list):
        raise where.error("result must be a list", field, results)
    for entry in results:
        if not isinstance(entry, dict) or entry.get("type", "choices") != "choices":
            continue
        if config is not None and entry.get("from_name") not in (None, config.from_name):
            continue
        value = entry.get("value")
        chosen = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
            raise where.error(
                "a choices result needs value.choices, a list of labels", field, entry
            )
        return chosen
    return None


def choice_of(results: Any, config: LabelConfig | None, where: Where, field: str) -> str | None:
    """The single label chosen in a result list (None when the question was left empty)."""
    chosen = choices_of(results, config, where, field)
    if chosen is None:
        return None
    if not chosen:
        raise where.error("a choices result needs value.choices", field, results)
    if len(chosen) > 1:
        raise where.error("more than one choice; labelloop projects are single-label", field)
    return str(chosen[0])


def prediction_result(
    label: str | Sequence[str], score: float | None, config: LabelConfig
) -> dict[str, Any]:
    """One `choices` result: the label, or a multi-label project's set, with its score."""
    entry: dict[str, Any] = {
        "from_name": config.from_name,
        "to_name": config.to_name,
        "type": "choices",
        "value": {"choices": [label] if isinstance(label, str) else list(label)},
    }
    if score is not None:
        entry["score"] = score
    return entry


# ----------------------------------------------------------------------------- export
def _ls_prediction(p: dict[str, Any], config: LabelConfig) -> dict[str, Any] | None:
    if p.get("label") is None:
        return None
    score = p.get("calibrated_confidence")
    score = p.get("confidence") if score is None else score
    shown = p.get("calibrated_label") or p["label"]  # the label after calibration, if it moved
    return {
        "model_version": f"{p['model']}@{p['prompt_version']}",
        "score": score,
        "result": [prediction_result(shown, score, config)],
        PROVENANCE_KEY: {k: p.get(k) for k in PREDICTION_KEYS},
    }


PREDICTION_KEYS = (
    "model",
    "prompt_version",
    "label",
    "confidence",
    "calibrated_confidence",
    "calibrated_label",
    "probs",
    "reasoning",
    "created_at",
)


def task_from_row(row: dict[str, Any], config: LabelConfig) -> dict[str, Any]:
    """One labelloop export row as a Label Studio task to import."""
    answer, moved_to = row_prediction_labels(row)
    active = {
        "model": row.get("model"),
        "prompt_version": row.get("prompt_version"),
        "label": answer,
        "confidence": row.get("confidence"),
        "calibrated_confidence": row.get("calibrated_confidence"),
        "calibrated_label": moved_to,
        "probs": row.get("probs"),
        "reasoning": row.get("reasoning"),
        "created_at": row.get("predicted_at"),
    }
    predictions = []
    if active["model"]:
        predictions.append(_ls_prediction(active, config))
    for p in row.get("predictions") or []:
        if (p["model"], p["prompt_version"]) != (active["model"], active["prompt_version"]):
            predictions.append(_ls_prediction(p, config))
    annotations = []
    for a in row.get("annotations") or []:
        label = a["label"] if a["action"] in LABELING_ACTIONS else None
        annotations.append(
            {
                "result": [prediction_result(label, None, config)] if label else [],
                "was_cancelled": a["action"] in NO_LABEL_ACTIONS,
                "lead_time": a.get("time_spent_s"),
                "created_at": a.get("created_at"),
                PROVENANCE_KEY: a,
            }
        )
    if row.get("split") == "gold" and row.get("gold_label"):
        annotations.append(
            {
                "result": [prediction_result(row["gold_label"], None, config)],
                "ground_truth": True,
                PROVENANCE_KEY: {"gold": True},
            }
        )
    state = {k: row.get(k) for k in ("state", "label", "label_source", "split", "labeled_at")}
    return {
        "data": {
            config.data_key: row["text"],
            ID_KEY: row["id"],
            PROVENANCE_KEY: {
                **state,
                "annotators": row.get("annotators"),
                "adjudication": row.get("adjudication"),
                "meta": row.get("meta"),
            },
        },
        "annotations": annotations,
        "predictions": [p for p in predictions if p is not None],
    }


def export_labelstudio(
    project: Project,
    out: Path,
    include: Any,
    task: Callable[[dict[str, Any], LabelConfig], dict[str, Any]] = task_from_row,
) -> int:
    """A JSON array of tasks (Label Studio's import format) and the label config beside it;
    `task` builds one task from a provenance row (multi-label projects pass theirs)."""
    config = project_label_config(project)
    wanted = "annotations,meta" if include is None else include
    rows = iter_provenance_rows(project, _with_annotations(wanted))
    count = write_json_array((task(row, config) for row in rows), out)
    out.with_name(out.stem + ".label_config.xml").write_text(config.xml + "\n", encoding="utf-8")
    return count


def _with_annotations(include: Any) -> str:
    parts = include.split(",") if isinstance(include, str) else list(include)
    return ",".join(sorted({*parts, "annotations"}))


# ----------------------------------------------------------------------------- import
def annotator_name(annotation: dict[str, Any]) -> str:
    """Who made a Label Studio annotation, as an import names them: `labelstudio:<user>`."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"labelstudio:{who}" if who not in (None, "") else "labelstudio"


def chosen_in(
    results: Any, config: LabelConfig | None, where: Where, field: str, policy: LabelPolicy
) -> Chosen:
    """What a result list chose: the single label (None when the question was left empty), or
    with a set policy the labels ticked (empty when none was)."""
    if policy.sets:
        return choices_of(results, config, where, field) or []
    return choice_of(results, config, where, field)


def annotation_from_ls(
    annotation: dict[str, Any],
    config: LabelConfig | None,
    where: Where,
    suggestion: Chosen,
    policy: LabelPolicy = SINGLE,
) -> AnnotationIn:
    """A Label Studio annotation as a person's answer, a label or a set (`policy`); a cancelled
    one is a skip."""
    ours = annotation.get(PROVENANCE_KEY)
    if isinstance(ours, dict) and "action" in ours:
        return annotation_in(ours, where, "annotations.labelloop")
    chosen = chosen_in(annotation.get("result", []), config, where, "annotations.result", policy)
    if annotation.get("was_cancelled"):
        chosen = None
    return AnnotationIn(
        annotator=annotator_name(annotation),
        source="labelstudio",
        external_id=None if annotation.get("id") is None else str(annotation["id"]),
        time_spent_s=as_float(annotation.get("lead_time"), where, "annotations.lead_time"),
        created_at=as_time(annotation.get("created_at"), where, "annotations.created_at"),
        **policy.answer(chosen, suggestion),
    )


def _prediction_from_ls(
    p: dict[str, Any], config: LabelConfig, where: Where, policy: LabelPolicy
) -> PredictionIn:
    ours = p.get(PROVENANCE_KEY)
    if isinstance(ours, dict) and ours.get("model"):
        return PredictionIn(
            model=str(ours["model"]),
            prompt_version=str(ours["prompt_version"]),
            label=ours.get("label"),
            confidence=as_float(ours.get("confidence"), where, "predictions.confidence"),
            calibrated_confidence=as_float(
                ours.get("calibrated_confidence"), where, "predictions.calibrated_confidence"
            ),
            calibrated_label=ours.get("calibrated_label"),
            probs=ours.get("probs"),
            reasoning=ours.get("reasoning"),
            created_at=as_time(ours.get("created_at"), where, "predictions.created_at"),
        )
    chosen = chosen_in(p.get("result", []), config, where, "predictions.result", policy)
    return PredictionIn(
        model=str(p.get("model_version") or "labelstudio"),
        prompt_version="labelstudio",
        confidence=as_float(p.get("score"), where, "predictions.score"),
        created_at=as_time(p.get("created_at"), where, "predictions.created_at"),
        **policy.prediction(chosen),
    )


def _is_gold(annotation: dict[str, Any], policy: LabelPolicy) -> bool:
    """Whether an annotation holds the gold answer: labelloop's mark, or (sets) Label
    Studio's own ground truth."""
    ours = annotation.get(PROVENANCE_KEY)
    return bool(isinstance(ours, dict) and ours.get("gold")) or (
        policy.sets and bool(annotation.get("ground_truth"))
    )


def item_from_task(
    task: Any,
    config: LabelConfig,
    where: Where,
    id_key: str | None = None,
    policy: LabelPolicy = SINGLE,
) -> ItemIn:
    """A Label Studio task (from an export or a request) as an item to import, its answers
    labels or sets (`policy`). A multi-label export carries its whole provenance row."""
    if not isinstance(task, dict):
        raise where.error("a task must be a JSON object", None, task)
    data = need(task, "data", where, dict)
    text = data.get(config.data_key)
    if not isinstance(text, str):
        raise where.error(
            f"the task has no text in data.{config.data_key} (the field the label config shows)",
            f"data.{config.data_key}",
        )
    ours = data.get(PROVENANCE_KEY) if isinstance(data.get(PROVENANCE_KEY), dict) else {}
    if is_provenance_row({**ours, "text": text}):
        return item_from_row({**ours, "text": text}, where)
    predictions = [
        _prediction_from_ls(p, config, where, policy)
        for p in listed(task, "predictions", where)
        if isinstance(p, dict)  # Label Studio exports list bare prediction ids by default
    ]
    if predictions:
        predictions[0].active = True
    suggestion = policy.suggestion(predictions)
    annotations, gold = [], None
    for a in listed(task, "annotations", where):
        if not isinstance(a, dict):
            raise where.error("an annotation must be an object", "annotations", a)
        if _is_gold(a, policy):
            gold = chosen_in(a.get("result", []), config, where, "annotations.result", policy)
            continue
        annotations.append(annotation_from_ls(a, config, where, suggestion, policy))
    final = None
    if ours.get("state"):
        final = FinalIn(ours["state"], ours.get("label"), ours.get("label_source"))
    return ItemIn(
        uid=task_uid(task, id_key),
        text=text,
        where=where,
        split="gold" if gold is not None else str(ours.get("split") or "pool"),
        meta=ours.get("meta"),
        **policy.gold(gold),
        predictions=predictions,
        annotations=annotations,
        final=final,
        decision=decision_in(ours.get("adjudication"), where, "data.labelloop.adjudication"),
    )


def read_labelstudio(
    project: Project,
    path: Path,
    *,
    label_config: str | Path | None = None,
    id_key: str | None = None,
) -> Iterator[ItemIn]:
    """Tasks from a Label Studio JSON export (or a file written by `export_labelstudio`), with
    labels or, on a multi-label project, sets (`LabelPolicy`)."""
    policy = LabelPolicy.of(project)
    if label_config is not None:
        xml = Path(label_config).read_text(encoding="utf-8")
        config = parse_label_config(xml)
    else:
        beside = path.with_name(path.stem + ".label_config.xml")
        config = (
            parse_label_config(beside.read_text(encoding="utf-8"))
            if beside.is_file()
            else project_label_config(project)
        )
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a Label Studio JSON export: {exc}", file=str(path)) from exc
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise InputError("expected a JSON array of Label Studio tasks", file=str(path))
    for number, task in enumerate(tasks, start=1):
        yield item_from_task(task, config, Where(str(path), record=number), id_key, policy)
