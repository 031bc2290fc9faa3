"""Exchange with other labeling tools: export in their formats, import from them.

Imports are all-or-nothing: every record is read and validated first, then items, predictions,
annotators and annotations are written in one transaction, so a bad file imports nothing.
Re-importing the same file adds nothing twice (predictions are keyed by item, model and prompt
version; annotations by their source and external id).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from .. import routing
from ..data.formats import EXPORTERS, IMPORTERS, format_names
from ..data.formats.records import AnnotationIn, ItemIn, PredictionIn, iso
from ..data.importer import MAX_ID_CHARS, MAX_TEXT_CHARS, canonical_labels, match_label, text_hash
from ..errors import InputError
from ..multilabel.sets import ALLOW_EMPTY, MULTI_LABEL, parse_label_set, resolve_label_sets
from ..review import MAX_LABELSTUDIO_USER, user_name_problem, waiting
from ..review.common import Result
from ..store import (
    GOLD,
    HUMAN_LABELED,
    POOL,
    STATES,
    Session,
    predictions,
    projects,
)
from ..store import adjudication as adjudications
from ..store import exchange as rows
from ..store import items as stored_items
from ..store.models import UNRESOLVED, utcnow
from ..vocabulary import LABELING_ACTIONS, NO_LABEL_ACTIONS, LabelSource

if TYPE_CHECKING:
    from ..project import Project

CHUNK = 5_000  # ids per IN (...) query


@dataclass(frozen=True, slots=True)
class Exported(Result):
    """What `Project.export` wrote: how many rows, where, in which format."""

    rows: int
    out: str
    format: str


@dataclass(frozen=True, slots=True)
class Imported(Result):
    """What an import from another tool's file added (`Project.import_from`); `to_dict` is what
    `import --format TOOL --json` sends. Every tool's records are read into the same `ItemIn`
    records, so the counts are the same for every format."""

    format: str  # the tool format read
    items: int  # distinct items in the file
    added: int  # items new to the project
    existing: int  # items the project already had (same id and text)
    predictions: int  # predictions added
    annotations: int  # people's answers added
    decisions: int  # reviewers' decisions added


def export_project(
    project: Project, out: str | Path, fmt: str, *, include: str | Sequence[str] | None = None
) -> Exported:
    """Write the project's items with provenance in `fmt` (see `data.formats`)."""
    key = fmt.lower()
    if key not in EXPORTERS:
        raise InputError(f"unknown export format {fmt!r}; use one of {format_names(EXPORTERS)}")
    count = EXPORTERS[key](project, Path(out), include)
    return Exported(rows=count, out=str(out), format=key)


def import_project(project: Project, path: str | Path, fmt: str, **options: Any) -> Imported:
    """Read a file in a tool's format and add its items, predictions and answers."""
    key = fmt.lower()
    if key not in IMPORTERS:
        raise InputError(f"unknown import format {fmt!r}; use one of {format_names(IMPORTERS)}")
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", file=str(path))
    records = IMPORTERS[key](project, path, **options)
    return ingest(project, records, key)


# ----------------------------------------------------------------------------- validation
class _Labels:
    """Map any spelling of a label in a file to the project's own, or fail naming the place."""

    def __init__(
        self, labels: Sequence[str], multi_label: bool = False, allow_empty: bool = False
    ) -> None:
        self.labels = list(labels)
        self.canonical = canonical_labels(labels)
        self.multi_label, self.allow_empty = multi_label, allow_empty

    def sets(self, value: list[str] | None, item: ItemIn, field: str) -> list[str] | None:
        """A label set in the project's spelling and order, or fail naming the place."""
        try:
            return parse_label_set(value, self.labels, allow_empty=self.allow_empty)
        except InputError as exc:
            raise item.where.error(str(exc), field, value) from exc

    @overload
    def __call__(self, value: str, item: ItemIn, field: str) -> str: ...

    @overload
    def __call__(self, value: None, item: ItemIn, field: str) -> None: ...

    @overload
    def __call__(self, value: str | None, item: ItemIn, field: str) -> str | None: ...

    def __call__(self, value: str | None, item: ItemIn, field: str) -> str | None:
        if value is None:
            return None
        matched = match_label(value, self.canonical)
        if matched is None:
            raise item.where.error(
                f"label not in the project's label set ({', '.join(self.labels)})", field, value
            )
        return matched


def _validate(item: ItemIn, label: _Labels) -> None:
    where = item.where
    if not item.uid.strip() or len(item.uid) > MAX_ID_CHARS:
        raise where.error(f"the id must have 1 to {MAX_ID_CHARS} characters", "id", item.uid)
    if not isinstance(item.text, str) or not item.text.strip():
        raise where.error("the text is missing or empty", "text")
    if len(item.text) > MAX_TEXT_CHARS:
        raise where.error(f"the text is longer than {MAX_TEXT_CHARS:,} characters", "text")
    if "\x00" in item.text:
        raise where.error("the text holds a NUL character", "text")
    if item.split not in (POOL, GOLD):
        raise where.error("split must be 'pool' or 'gold'", "split", item.split)
    item.gold_label = label(item.gold_label, item, "gold_label")
    if label.multi_label:
        _validate_sets(item, label)
    elif item.split == GOLD and item.gold_label is None:
        raise where.error("a gold item needs a gold label", "gold_label")
    for p in item.predictions:
        p.label = label(p.label, item, "prediction.label")
        p.calibrated_label = label(p.calibrated_label, item, "prediction.calibrated_label")
        if p.probs is not None:
            p.probs = _probabilities(p.probs, item, label)
        for name, value in (("confidence", p.confidence), ("calibrated", p.calibrated_confidence)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise where.error("a confidence must lie in [0, 1]", name, value)
    for a in item.annotations:
        if a.annotator is not None and (problem := user_name_problem(a.annotator)):
            raise where.error(problem, "annotation.annotator", a.annotator)
        a.label = label(a.label, item, "annotation.label")
        a.suggested_label = label(a.suggested_label, item, "annotation.suggested_label")
        if a.action in LABELING_ACTIONS and a.label is None and not label.multi_label:
            raise where.error(f"the answer {a.action!r} needs a label", "annotation.label")
    if item.final is not None:
        if item.final.state not in STATES:
            raise where.error("unknown state", "state", item.final.state)
        item.final.label = label(item.final.label, item, "label")
    if item.decision is not None:
        _validate_decision(item, label)


def _probabilities(probs: Any, item: ItemIn, label: _Labels) -> dict[str, float]:
    """A prediction's label -> probability map, each a number in [0, 1] under a project label,
    or fail naming the place (a file's probabilities feed calibration and learning)."""
    if not isinstance(probs, dict):
        raise item.where.error("probs must map labels to numbers", "prediction.probs", probs)
    checked = {}
    for name, value in probs.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not 0.0 <= number <= 1.0:  # NaN fails too
            raise item.where.error(
                "a probability must be a number in [0, 1]", "prediction.probs", {name: value}
            )
        checked[label(name, item, "prediction.probs")] = number
    return checked


def _validate_decision(item: ItemIn, label: _Labels) -> None:
    """A decision's label is in the label set, its reviewer a valid name, its note bounded."""
    from ..review.adjudication import check_note

    d, where = item.decision, item.where
    assert d is not None
    if label.multi_label:
        if d.labels is None:
            raise where.error("a multi-label item's decision needs its labels", "adjudication")
        d.labels = label.sets(d.labels, item, "adjudication.labels")
        d.previous_labels = label.sets(d.previous_labels, item, "adjudication.previous_labels")
    else:
        if d.label is None:
            raise where.error("a decision needs its label", "adjudication.label")
        d.label = label(d.label, item, "adjudication.label")
        d.previous_label = label(d.previous_label, item, "adjudication.previous_label")
    if d.reviewer is not None and (problem := user_name_problem(d.reviewer)):
        raise where.error(problem, "adjudication.reviewer", d.reviewer)
    try:
        d.note = check_note(d.note)
    except InputError as exc:
        raise where.error(str(exc), "adjudication.note") from None


def _validate_sets(item: ItemIn, label: _Labels) -> None:
    """A multi-label item's sets: gold, predicted, answered and final."""
    item.gold_labels = label.sets(item.gold_labels, item, "gold_labels")
    if item.split == GOLD and item.gold_labels is None:
        raise item.where.error("a gold item needs its gold labels", "gold_labels")
    for p in item.predictions:
        p.labels = label.sets(p.labels, item, "prediction.labels")
    for a in item.annotations:
        a.labels = None if a.action in NO_LABEL_ACTIONS else label.sets(a.labels, item, "labels")
        if a.action in LABELING_ACTIONS and a.labels is None:
            raise item.where.error(f"the answer {a.action!r} needs its labels", "annotation")
    if item.final is not None:
        item.final.labels = label.sets(item.final.labels, item, "labels")


def _merge(items: Iterable[ItemIn], label: _Labels) -> list[ItemIn]:
    """Validate every record; records of the same id (one per annotator) become one item."""
    merged: dict[str, ItemIn] = {}
    for item in items:
        _validate(item, label)
        known = merged.get(item.uid)
        if known is None:
            merged[item.uid] = item
            continue
        if known.text != item.text:
            raise item.where.error(f"the id {item.uid!r} appears earlier with another text", "id")
        known.predictions.extend(item.predictions)
        known.annotations.extend(item.annotations)
        known.final = item.final or known.final
    return list(merged.values())


# ----------------------------------------------------------------------------- writing
def ingest(project: Project, records: Iterable[ItemIn], fmt: str) -> Imported:
    """Validate all records (read from a file in the tool format `fmt`), then write them in
    one transaction."""
    settings = project.settings
    multi, allow_empty = bool(settings.get(MULTI_LABEL)), bool(settings.get(ALLOW_EMPTY))
    label_set = project.labels
    items = _merge(records, _Labels(label_set, multi, allow_empty))
    counts = Counter(items=len(items), added=0, existing=0, predictions=0, annotations=0)
    with project.store.session() as session:
        ids = _ensure_items(session, project.id, items, counts)
        row = projects.project_row(session, project.id)
        settings = dict(row.settings or {})
        active = settings.get("active_predictor")
        if active is None:
            keys = Counter(
                (p.model, p.prompt_version) for i in items for p in i.predictions if p.active
            )
            if keys:
                (model, version), _ = keys.most_common(1)[0]
                active = {"model": model, "prompt_version": version}
                row.settings = {**settings, "active_predictor": active}
        active_key = (active["model"], active["prompt_version"]) if active else None
        _add_predictions(session, project.id, items, ids, counts)
        names = _annotators(session, project.id, items)
        _add_annotations(session, project.id, items, ids, names, counts)
        decisions = _add_decisions(session, project.id, items, ids, names)
        session.flush()
        for start in range(0, len(items), CHUNK):
            _settle(
                session,
                project.id,
                items[start : start + CHUNK],
                ids,
                active_key,
                label_set if multi else None,
            )
        waiting.settle(session.connection(), project.id, list(ids.values()))
    return Imported(
        format=fmt,
        items=counts["items"],
        added=counts["added"],
        existing=counts["existing"],
        predictions=counts["predictions"],
        annotations=counts["annotations"],
        decisions=decisions,
    )


def _ensure_items(
    session: Session, project_id: int, items: list[ItemIn], counts: Counter
) -> dict[str, int]:
    found = rows.items_by_uid(session, project_id, [item.uid for item in items])
    new = []
    for item in items:
        digest = text_hash(item.text)
        if item.uid in found:
            if found[item.uid][1] != digest:
                raise item.where.error(
                    f"the id {item.uid!r} is already in the project with another text", "id"
                )
            counts["existing"] += 1
            continue
        gold = item.split == GOLD
        new.append(
            {
                "project_id": project_id,
                "uid": item.uid,
                "text": item.text,
                "text_hash": digest,
                "meta": item.meta,
                "split": item.split,
                "gold_label": item.gold_label,
                "gold_labels": item.gold_labels,
                "state": HUMAN_LABELED if gold else UNRESOLVED,
                "final_label": item.gold_label if gold else None,
                "final_labels": item.gold_labels if gold else None,
                "final_source": LabelSource.HUMAN if gold else None,
                "audit": False,
            }
        )
    ids = {uid: pair[0] for uid, pair in found.items()}
    ids.update(rows.insert_items_returning_ids(session, new))
    counts["added"] += len(new)
    return ids


def _add_predictions(
    session: Session, project_id: int, items: list[ItemIn], ids: dict[str, int], counts: Counter
) -> None:
    done = rows.prediction_keys(session, list(ids.values()))
    new: list[dict[str, Any]] = []
    for item in items:
        for p in item.predictions:
            key = (ids[item.uid], p.model, p.prompt_version)
            if key in done:
                continue
            done.add(key)
            new.append(_prediction_row(project_id, key[0], p))
    predictions.add_predictions(session, new)
    counts["predictions"] += len(new)


def _prediction_row(project_id: int, item_id: int, p: PredictionIn) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "item_id": item_id,
        "model": p.model,
        "prompt_version": p.prompt_version,
        "label": p.label,
        "probs": p.probs,
        "confidence": p.confidence,
        "calibrated_confidence": p.calibrated_confidence,
        "calibrated_label": p.calibrated_label,
        "reasoning": p.reasoning,
        "created_at": p.created_at or utcnow(),
        "labels": p.labels,
    }


def _annotators(session: Session, project_id: int, items: list[ItemIn]) -> dict[str, int]:
    wanted = {a.annotator for item in items for a in item.annotations if a.annotator}
    wanted |= {i.decision.reviewer for i in items if i.decision and i.decision.reviewer}
    return rows.ensure_annotators(session, project_id, wanted)


def _add_decisions(
    session: Session,
    project_id: int,
    items: list[ItemIn],
    ids: dict[str, int],
    names: dict[str, int],
) -> int:
    """Store the reviewers' decisions a file carries, for items whose label it says was
    adjudicated and that have no decision in force yet (importing twice adds none)."""
    added = 0
    conn = session.connection()
    for item in items:
        d = item.decision
        if d is None or item.final is None or item.final.source != LabelSource.ADJUDICATED:
            continue
        if adjudications.live_decision(conn, ids[item.uid]) is not None:
            continue
        adjudications.add_decision(
            conn,
            {
                "project_id": project_id,
                "item_id": ids[item.uid],
                "reviewer_id": names.get(d.reviewer) if d.reviewer else None,
                "label": d.label,
                "labels": d.labels,
                "note": d.note,
                "reasons": ",".join(d.reasons) or None,
                "previous_label": d.previous_label,
                "previous_labels": d.previous_labels,
                "previous_source": d.previous_source,
                "undone": False,
                "created_at": d.decided_at or utcnow(),
            },
        )
        added += 1
    return added


def _add_annotations(
    session: Session,
    project_id: int,
    items: list[ItemIn],
    ids: dict[str, int],
    names: dict[str, int],
    counts: Counter,
) -> None:
    seen = {
        _answer_key(row.item_id, row.source, row.external_id, tuple(row[3:]))
        for row in rows.answers_on(session, list(ids.values()))
    }
    new: list[dict[str, Any]] = []
    for item in items:
        item_id = ids[item.uid]
        for a in item.annotations:
            annotator = names.get(a.annotator) if a.annotator else None
            key = _answer_key(
                item_id, a.source, a.external_id, (annotator, a.action, a.label, a.created_at)
            )
            if key in seen:
                continue
            seen.add(key)
            new.append(_annotation_row(project_id, item_id, a, names))
    rows.insert_answers(session, new)
    counts["annotations"] += len(new)


def _answer_key(item_id: int, source: str, external_id: str | None, rest: tuple) -> tuple:
    """Answers are the same when their tool's id is; without one, when who, what and when are."""
    if external_id is not None:
        return (item_id, source, external_id)
    annotator, action, label, created_at = rest
    return (item_id, source, annotator, action, label, iso(created_at))


def _annotation_row(
    project_id: int, item_id: int, a: AnnotationIn, names: dict[str, int]
) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "item_id": item_id,
        "annotator_id": names.get(a.annotator) if a.annotator else None,
        "label": None if a.action in NO_LABEL_ACTIONS else a.label,
        "action": a.action,
        "suggested_label": a.suggested_label,
        "queue": a.queue,
        "source": a.source,
        "external_id": a.external_id,
        "time_spent_s": a.time_spent_s,
        "undone": False,
        "created_at": a.created_at or utcnow(),
        "labels": None if a.action in NO_LABEL_ACTIONS else a.labels,
    }


def _settle(
    session: Session,
    project_id: int,
    items: list[ItemIn],
    ids: dict[str, int],
    active: tuple[str, str] | None,
    labels: list[str] | None = None,
) -> None:
    """Point items at the active predictor's prediction and set their final labels: a
    reviewer's decision in force, else as recorded in the file when it says, else from people's
    answers. `labels`: the label set of a multi-label project, whose items get final sets."""
    chunk = [ids[item.uid] for item in items]
    splits = stored_items.splits_of(session, project_id, chunk)
    if active is not None:
        predictions.show_active_prediction(session, project_id, *active, chunk)
    votes: dict[int, list[routing.Vote]] = defaultdict(list)
    sets: dict[int, list[tuple[Any, list[str]]]] = defaultdict(list)
    for a in stored_items.standing_answers(session, chunk):
        votes[a.item_id].append(routing.Vote(a.annotator_id, a.label, a.action, a.id))
        if a.action not in NO_LABEL_ACTIONS and a.labels is not None:
            sets[a.item_id].append((a.annotator_id, a.labels))
    decided = adjudications.decisions_of(session.connection(), chunk)
    finals = []
    for item in items:
        item_id = ids[item.uid]
        final_set = None
        if item_id in decided:  # a reviewer's decision in force outranks the file and answers
            label = decided[item_id]["label"]
            final_set = decided[item_id]["labels"]
            final: tuple[str, str | None, str | None, dict[str, Any] | None] = (
                HUMAN_LABELED,
                label,
                LabelSource.ADJUDICATED,
                None,
            )
        elif item.final is not None:
            final = (item.final.state, item.final.label, item.final.source, item.final.posterior)
            final_set = item.final.labels
        elif labels is not None:  # a multi-label project
            final_set = resolve_label_sets(sets[item_id], labels)
            if final_set is None or splits[item_id] == GOLD:
                continue
            final = (HUMAN_LABELED, None, LabelSource.HUMAN, None)
        else:
            human = routing.resolve_human_label(votes[item_id])
            if human is None or splits[item_id] == GOLD:
                continue
            final = (HUMAN_LABELED, human, LabelSource.HUMAN, None)
        finals.append(
            {
                "id": item_id,
                "state": final[0],
                "final_label": final[1],
                "final_source": final[2],
                "label_posterior": final[3],
                **({"final_labels": final_set} if labels is not None else {}),
            }
        )
    stored_items.set_final_labels(session, finals)


# ----------------------------------------------------------------------------- Label Studio
REQUEST = "the Label Studio request"


def ensure_tasks(
    project: Project, tasks: Sequence[Any], config: Any, id_key: str | None = None
) -> list[str]:
    """Make every task Label Studio sends an item of the project; returns their item ids."""
    from ..data.formats.labelstudio import task_uid
    from ..data.formats.records import Where

    items = []
    for number, task in enumerate(tasks, start=1):
        where = Where(REQUEST, record=number)
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise where.error("a task must be an object with 'data'", "data")
        text = task["data"].get(config.data_key)
        if not isinstance(text, str):
            raise where.error(f"no text in data.{config.data_key}", f"data.{config.data_key}")
        meta = {"labelstudio_task": task.get("id")} if task.get("id") is not None else None
        items.append(ItemIn(uid=task_uid(task, id_key), text=text, where=where, meta=meta))
    known = stored_items.known_uids(project.store, project.id, [item.uid for item in items])
    missing = [item for item in items if item.uid not in known]
    if missing:
        ingest(project, missing, "labelstudio")
    return [item.uid for item in items]


def _answer(
    item_id: int, label: Any, labels: Any, row: Any, key: tuple[str, str] | None
) -> dict[str, Any]:
    """A stored answer as the Label Studio routes read it: the label, or on a multi-label
    project the set (`labels`) with each label's own probability (`probs`), the confidences,
    and the (model, prompt version) key that answered."""
    return {
        "item_id": item_id,
        "label": label,
        "labels": labels,
        "probs": row.probs if labels is not None else None,
        "confidence": row.confidence,
        "calibrated_confidence": row.calibrated_confidence,
        "key": key,
    }


def has_answer(project: Project, answer: dict[str, Any]) -> bool:
    """Whether an answer of `item_predictions` or `labeler_predictions` holds a prediction:
    a label, or on a multi-label project a set (which may be empty)."""
    return answer["labels" if project.multi_label else "label"] is not None


def item_predictions(project: Project, uids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """uid → the active prediction shown for the item (label or set, confidences, item id)."""
    multi = project.multi_label
    return {
        r.uid: _answer(
            r.id,
            None if multi else r.llm_label,
            r.llm_labels if multi else None,
            r,
            (r.model, r.prompt_version) if r.model is not None else None,
        )
        for r in predictions.shown_by_uid(project.store, project.id, uids)
    }


def _examples(project: Project) -> list[tuple[str, str]]:
    """The few-shot examples of the last pre-labeling run (so the prompt version matches)."""
    from ..workflows.prelabel import few_shot_examples

    chosen = project.settings.get("few_shot_item_ids")
    if chosen is None:
        return [(text, label) for _, text, label in few_shot_examples(project)]
    found = stored_items.texts_and_labels(project.store, chosen)
    shown = [found[i] for i in chosen if i in found]
    return [(text, label) for text, label in shown if label is not None]


def labeler_key(project: Project, labeler: Any) -> tuple[Any, str, str]:
    """The task a labeler answers for this project, and its (model, prompt version) key: the
    few-shot examples of the last pre-labeling run, so its calibration applies."""
    task = project.label_task(_examples(project))
    return task, labeler.model_id, labeler.prompt_version(task)


def label_items(project: Project, labeler: Any, item_ids: Sequence[int]) -> int:
    """Pre-label just these items (the ones Label Studio asked about), calibrated when the
    project has a calibration for this labeler."""
    from ..workflows.calibrate import active_calibration, write_calibrated

    if not item_ids:
        return 0
    task, model, version = labeler_key(project, labeler)
    if project.active_predictor() is None:
        project.set_active_predictor(model, version)
    texts = stored_items.texts_of(project.store, item_ids)
    ids = [i for i in item_ids if i in texts]
    results = list(labeler.label_stream([texts[i] for i in ids], task))
    saved = project.save_predictions(model, version, [(ids[index], r) for index, r in results])
    if project.multi_label:
        from . import multilabel

        per_label = multilabel.calibrator_in_force(project, (model, version))
        if per_label is not None:
            multilabel.apply(project, model, version, per_label, ids)
        project.refresh_item_predictions(ids)
        return saved
    calibration = active_calibration(project, model, version)
    if calibration is not None:
        with project.store.session() as session:
            found = predictions.to_calibrate(session, project.id, model, version, ids)
            write_calibrated(session, found, project.labels, calibration)
    project.refresh_item_predictions(ids)
    return saved


def labeler_predictions(
    project: Project, labeler: Any, item_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """item id → the labeler's stored answer for it (calibrated label or set, confidences),
    for the items it has answered under its current key. A failed answer has none."""
    _, model, version = labeler_key(project, labeler)
    multi = project.multi_label
    return {
        r.item_id: _answer(
            r.item_id,
            None if multi else r.label,
            r.labels if multi else None,
            r,
            (model, version),
        )
        for r in predictions.key_answers(project.store, project.id, model, version, item_ids)
    }


def model_version(project: Project, labeler: Any = None) -> str:
    """What Label Studio records on predictions: predictor, prompt version and calibration.

    A new calibration changes it, so Label Studio asks again for predictions it already has.
    """
    active = project.active_predictor()
    if active is None:
        return f"labelloop:{labeler.model_id}" if labeler is not None else "labelloop"
    calibration = predictions.active_calibration_id(project.store, project.id, *active)
    suffix = f"+cal{calibration}" if calibration is not None else ""
    return f"labelloop:{active[0]}@{active[1]}{suffix}"


def labelstudio_predictions(
    project: Project,
    tasks: Sequence[Any],
    config: Any,
    *,
    labeler: Any = None,
    id_key: str | None = None,
    max_new: int | None = None,
) -> list[dict[str, Any]]:
    """One Label Studio prediction per task, in order: the item's prediction if it has one,
    else the labeler's (when there is one), else an empty result.

    Tasks never seen become items; the labeler answers those it has not answered before, at
    most `max_new` per call (the first ones, in order). When more were waiting, the answer is
    the first task's prediction alone: Label Studio takes a one-item answer to a batch as "ask
    task by task", and does, so every request stays bounded. Answers are stored as they come,
    so asking again calls no labeler. `score` is the calibrated confidence where the project
    has a calibration for the labeler, else its raw confidence.
    """
    uids = ensure_tasks(project, tasks, config, id_key)
    shown = item_predictions(project, uids)
    answered = len(uids)
    missing = [shown[uid]["item_id"] for uid in uids if not has_answer(project, shown[uid])]
    if missing and labeler is not None:
        if project.multi_label:
            from ..labelers.multilabel import as_multi_labeler

            labeler = as_multi_labeler(labeler)
        own = labeler_predictions(project, labeler, missing)
        todo = [i for i in dict.fromkeys(missing) if i not in own]
        if max_new is not None and len(todo) > max_new:
            answered, todo = 1, todo[:max_new]
        if todo:
            label_items(project, labeler, todo)
            shown = item_predictions(project, uids)
            own = labeler_predictions(project, labeler, missing)
        for uid in uids:
            if not has_answer(project, shown[uid]) and shown[uid]["item_id"] in own:
                shown[uid] = own[shown[uid]["item_id"]]
    version = model_version(project, labeler)
    chosen = [shown[uid] for uid in uids[:answered]]
    if project.multi_label:
        return _set_predictions(project, chosen, config, version)
    return [_label_prediction(p, config, version) for p in chosen]


def _score(answer: dict[str, Any]) -> float | None:
    """The item-level confidence Label Studio records: calibrated where there is a calibration."""
    score = answer["calibrated_confidence"]
    return answer["confidence"] if score is None else score


def _label_prediction(answer: dict[str, Any], config: Any, version: str) -> dict[str, Any]:
    from ..data.formats.labelstudio import prediction_result

    label, score = answer["label"], _score(answer)
    if label is None or label not in config.choices:
        return {"result": [], "score": 0.0, "model_version": version}
    return {
        "result": [prediction_result(label, score, config)],
        "score": score,
        "model_version": version,
    }


def _set_predictions(
    project: Project, answers: Sequence[dict[str, Any]], config: Any, version: str
) -> list[dict[str, Any]]:
    """Multi-label answers as Label Studio predictions: the calibrated set as one result with
    several choices, `score` the item's confidence (every decision on it right), each label's
    calibrated probability in the result's `meta`. An empty set is an empty result."""
    from ..data.formats.labelstudio import prediction_result
    from .multilabel import label_scores

    by_key: dict[tuple[str, str], list[int]] = {}
    for k, answer in enumerate(answers):
        if answer["probs"] and answer["key"] is not None:
            by_key.setdefault(answer["key"], []).append(k)
    scores: list[dict[str, float | None] | None] = [None] * len(answers)
    for key, ks in by_key.items():
        found = label_scores(project, key, [answers[k]["probs"] for k in ks])
        for k, per_label in zip(ks, found, strict=True):
            scores[k] = per_label
    out = []
    for answer, per_label in zip(answers, scores, strict=True):
        chosen = [lab for lab in answer["labels"] or [] if lab in config.choices]
        score = _score(answer) if answer["labels"] is not None else 0.0
        result = []
        if chosen:
            entry = prediction_result(chosen, score, config)
            if per_label is not None:
                entry["meta"] = {"probs": per_label}
            result.append(entry)
        out.append({"result": result, "score": score, "model_version": version})
    return out


def _annotation_ids(project: Project, external_ids: Sequence[str | None]) -> list[int]:
    return rows.labelstudio_answer_ids(project.store, project.id, external_ids)


EVENTS_THAT_TEACH = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
DELETE_EVENTS = ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED")


def labelstudio_annotator(project: Project, annotation: dict[str, Any]) -> int:
    """The account an answer made in Label Studio is credited to (its annotator id).

    Label Studio names the person by `completed_by` (a user id, or an object with one): the
    account linked to that user (`labelloop user link`), else the one named `labelstudio:<id>`,
    made on first use. Names written elsewhere in the payload are never believed.
    """
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("id")
    if who is None:
        return project.annotator_id("labelstudio")
    if isinstance(who, bool) or not isinstance(who, int) or not 0 <= who <= MAX_LABELSTUDIO_USER:
        raise InputError("annotation.completed_by must be a Label Studio user id", value=who)
    linked = rows.labelstudio_account(project.store, project.id, who)
    return linked if linked is not None else project.annotator_id(f"labelstudio:{who}")


@dataclass(frozen=True, slots=True)
class WebhookReply(Result):
    """What a Label Studio event did: answers withdrawn (`undone`), or replaced and recorded
    (`answer`, the last one), or nothing (`ignored`); `retrain` says whether the caller should
    retrain in the background. `to_dict` is the reply Label Studio is sent (without `retrain`,
    which is for the server)."""

    action: str
    retrain: bool
    undone: int | None = None
    ignored: bool = False
    replaced: int | None = None
    answer: Result | None = None  # `Answer`, or `SetAnswer` on a multi-label project

    def to_dict(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"action": self.action}
        if self.undone is not None:
            reply["undone"] = self.undone
        if self.ignored:
            reply["ignored"] = True
        if self.replaced is not None:
            reply["replaced"] = self.replaced
        if self.answer is not None:
            reply.update(self.answer.to_dict())
        return reply


@dataclass(frozen=True, slots=True)
class Retrained(Result):
    """A retraining after new human labels: `learn` ("done", or why not) with the best
    predictor when done, and `calibrate` when the options last used were re-applied."""

    learn: str
    best: str | None = None
    calibrate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        done: dict[str, Any] = {"learn": self.learn}
        if self.best is not None:
            done["best"] = self.best
        if self.calibrate is not None:
            done["calibrate"] = self.calibrate
        return done


def labelstudio_event(
    project: Project, payload: Any, config: Any, id_key: str | None = None
) -> WebhookReply:
    """Apply a Label Studio webhook event to the store. Returns what was done and whether the
    predictor should be recalibrated / retrained (which the caller does in the background).

    Answers are read from what Label Studio recorded and credited to its `completed_by` user
    (`labelstudio_annotator`); delete events withdraw only answers that came from Label Studio.
    """
    from ..data.formats.labelstudio import PROVENANCE_KEY, annotation_from_ls
    from ..data.formats.records import LabelPolicy, Where

    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise InputError("a Label Studio webhook needs an 'action'")
    action = payload["action"]
    where = Where(REQUEST)
    if action in DELETE_EVENTS:
        found = payload.get("annotations") or [payload.get("annotation") or {}]
        ids = [str(a["id"]) for a in found if isinstance(a, dict) and a.get("id") is not None]
        undone = [project.undo_annotation(i) for i in _annotation_ids(project, ids)]
        return WebhookReply(action, retrain=bool(undone), undone=len(undone))
    if action == "START_TRAINING":
        return WebhookReply(action, retrain=True)
    if action not in EVENTS_THAT_TEACH:
        return WebhookReply(action, retrain=False, ignored=True)
    annotations, tasks = payload.get("annotation"), payload.get("task")
    if not isinstance(annotations, list):  # ANNOTATIONS_CREATED sends lists, the others one
        annotations, tasks = [annotations], [tasks]
    if not isinstance(tasks, list) or len(tasks) != len(annotations):
        raise InputError(f"{action} needs as many 'task' objects as 'annotation' objects")
    policy = LabelPolicy.of(project)
    read = []  # every answer is read and checked before any is stored: a bad one stores none
    for annotation, task in zip(annotations, tasks, strict=True):
        if not isinstance(annotation, dict) or not isinstance(task, dict):
            raise InputError(f"{action} needs 'annotation' and 'task' objects")
        (uid,) = ensure_tasks(project, [task], config, id_key)
        shown = item_predictions(project, [uid])[uid]
        # What Label Studio itself recorded, not provenance riding along under our key.
        made_in_studio = {k: v for k, v in annotation.items() if k != PROVENANCE_KEY}
        suggestion = shown["labels" if policy.sets else "label"]
        answer = annotation_from_ls(made_in_studio, config, where, suggestion, policy)
        _check_answer(project, answer)  # a refused update leaves the answer it would replace
        read.append((uid, answer, labelstudio_annotator(project, annotation)))
    replaced_in_all, answered = 0, None
    for uid, answer, annotator in read:
        given = {"labels": answer.labels} if policy.sets else {"label": answer.label}
        replaced = _annotation_ids(project, [answer.external_id])
        replaced_in_all += len([project.undo_annotation(i) for i in replaced])
        answered = project.annotate(
            uid,
            action=answer.action,
            annotator=annotator,
            time_spent_s=answer.time_spent_s,
            source="labelstudio",
            external_id=answer.external_id,
            **given,
        )
    return WebhookReply(action, retrain=True, replaced=replaced_in_all, answer=answered)


def _check_answer(project: Project, answer: AnnotationIn) -> None:
    """Refuse an answer whose label or set is not the project's, before anything is changed."""
    from ..review.answers import checked_label
    from ..review.labelsets import checked_set

    if project.multi_label:
        checked_set(answer.action, answer.labels, None, project.labels, project.settings)
    elif answer.label is not None:
        checked_label(project.labels, answer.label)


def retrain(project: Project) -> Retrained:
    """Retrain student and stack after new human labels; `learn` recalibrates and re-routes with
    the options last used. A project not ready to learn (too few trusted labels) is still
    recalibrated with those options; a project not ready for either is left as it is."""
    try:
        report = project.learn()
        return Retrained("done", report.best)
    except InputError as exc:  # NotReadyError included
        not_learned = f"not ready: {exc}"
    options = project.settings.get("calibration_options")
    if options is None:
        return Retrained(not_learned)
    try:
        project.calibrate(**options)
        calibrated = "done"
    except InputError as exc:
        calibrated = f"not ready: {exc}"
    return Retrained(not_learned, calibrate=calibrated)
