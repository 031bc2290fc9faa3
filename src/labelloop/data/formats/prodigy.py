"""Prodigy JSONL: one task per line, `{"text", "label", "answer", "meta"}`.

Exports write one line per item in Prodigy's binary text-classification shape: the final label
with `answer: accept`, a rejected suggestion with `answer: reject`, and `ignore` when nobody
decided. `meta` (shown in Prodigy's UI) holds the provenance in brief; `_labelloop` holds all of
it for a lossless round trip. Imports read Prodigy's own annotations too: one line per answer,
the annotator in `_annotator_id` / `_session_id`, choice tasks through `options` and `accept`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...vocabulary import Action
from ..readers import read_jsonl
from .provenance import is_provenance_row, item_from_row, iter_provenance_rows
from .records import AnnotationIn, ItemIn, LabelPolicy, Where, as_time, listed, need
from .tabular import write_jsonl

if TYPE_CHECKING:
    from ...project import Project

ANSWERS = ("accept", "reject", "ignore")
PROVENANCE_KEY = "_labelloop"
META_KEYS = ("state", "label_source", "model", "prompt_version", "confidence")
SINGLE = LabelPolicy()


def task_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """One labelloop export row as a Prodigy task with its answer."""
    rejected = next(
        (
            a.get("suggested_label")
            for a in row.get("annotations") or []
            if a["action"] == Action.REJECT
        ),
        None,
    )
    if row["label"] is not None:
        label, answer = row["label"], "accept"
    elif rejected is not None:
        label, answer = rejected, "reject"
    else:
        label, answer = row.get("llm_label"), "ignore"
    meta = {"id": row["id"], **{k: row.get(k) for k in META_KEYS if row.get(k) is not None}}
    if row.get("calibrated_confidence") is not None:
        meta["score"] = row["calibrated_confidence"]
    if row.get("adjudication"):  # shown in Prodigy's card: who settled the item, and why
        meta["adjudicated_by"] = row["adjudication"]["reviewer"]
        if row["adjudication"]["note"]:
            meta["adjudication_note"] = row["adjudication"]["note"]
    task = {"text": row["text"], "label": label, "answer": answer, "meta": meta}
    if label is None:
        del task["label"]
    task[PROVENANCE_KEY] = row
    return task


def export_prodigy(project: Project, out: Path, include: Any) -> int:
    return write_jsonl((task_from_row(r) for r in iter_provenance_rows(project, include)), out)


def _uid(task: dict[str, Any]) -> str | None:
    meta = task.get("meta")
    if not isinstance(meta, dict):
        meta = {}
    for value in (task.get("id"), meta.get("id")):
        if value not in (None, ""):
            return str(value)
    if task.get("_input_hash") is not None:
        return f"prodigy-{task['_input_hash']}"
    return None


def _label(task: dict[str, Any], where: Where) -> str | None:
    """The label a Prodigy line is about: `label`, or the single accepted option."""
    if task.get("label") not in (None, ""):
        return str(task["label"])
    accepted = task.get("accept")
    if accepted is None:
        return None
    if not isinstance(accepted, list) or len(accepted) > 1:
        raise where.error("accept must list at most one option (single-label)", "accept", accepted)
    if not accepted:
        return None
    return _accepted(task, where)[0]


def _accepted(task: dict[str, Any], where: Where) -> list[str]:
    """A choice task's accepted options, by their text where the options name one."""
    options = listed(task, "options", where)
    names = {str(o.get("id")): o.get("text") for o in options if isinstance(o, dict)}
    return [str(names.get(str(a)) or a) for a in listed(task, "accept", where)]


def item_from_task(task: dict[str, Any], where: Where, policy: LabelPolicy = SINGLE) -> ItemIn:
    """A Prodigy line (an answer from one annotator) as an item with that answer: a label, or
    (sets) the accepted options of a choice task."""
    if isinstance(task.get(PROVENANCE_KEY), dict):
        return item_from_row(task[PROVENANCE_KEY], where)
    text, action = read_answer(task, where)
    if policy.sets:
        chosen = _accepted(task, where) if action == Action.LABEL else None
        return answer_item(task, where, text, action=action, label=None, labels=chosen)
    label = _label(task, where)
    if action == Action.LABEL and label is None:
        raise where.error("an accepted task needs a label (or an accepted option)", "label")
    return answer_item(
        task,
        where,
        text,
        action=action,
        label=label if action == Action.LABEL else None,
        suggested_label=label if action == Action.REJECT else None,
    )


def read_answer(task: dict[str, Any], where: Where) -> tuple[str, Action]:
    """A Prodigy line's text and the labelloop action its answer amounts to."""
    text = need(task, "text", where)
    answer = need(task, "answer", where)
    if answer not in ANSWERS:
        raise where.error(f"answer must be one of {', '.join(ANSWERS)}", "answer", answer)
    return text, {"accept": Action.LABEL, "reject": Action.REJECT, "ignore": Action.SKIP}[answer]


def answer_item(task: dict[str, Any], where: Where, text: str, **answer: Any) -> ItemIn:
    """The item of a Prodigy line with its one answer (`answer`: the `AnnotationIn` fields
    that say what was answered)."""
    from ..importer import text_hash

    who = task.get("_annotator_id") or task.get("_session_id")
    return ItemIn(
        uid=_uid(task) or text_hash(text)[:20],
        text=text,
        where=where,
        meta=task.get("meta") if isinstance(task.get("meta"), dict) else None,
        annotations=[
            AnnotationIn(
                annotator=f"prodigy:{who}" if who else "prodigy",
                source="prodigy",
                external_id=None if task.get("_task_hash") is None else str(task["_task_hash"]),
                created_at=as_time(task.get("_timestamp"), where, "_timestamp"),
                **answer,
            )
        ],
    )


def read_prodigy(project: Project, path: Path) -> Iterator[ItemIn]:
    """Prodigy's JSONL (or an export of ours), with labels or, on a multi-label project, the
    sets of choice tasks (`LabelPolicy`)."""
    policy = LabelPolicy.of(project)
    for line, task in read_jsonl(path):
        where = Where(str(path), line=line)
        if is_provenance_row(task):
            yield item_from_row(task, where)
        else:
            yield item_from_task(task, where, policy)


__all__ = ["export_prodigy", "item_from_task", "read_prodigy", "task_from_row"]
