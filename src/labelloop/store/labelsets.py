"""Label sets in the store: what multi-label projects keep beside the single-label columns.

A multi-label item keeps its gold, final and suggested sets in `items.gold_labels`,
`final_labels` and `llm_labels`; a prediction its set in `predictions.labels` (with each label's
own probability in `probs`); an answer its set in `annotations.labels`. The single-label columns
stay null there. These are the statements that read and write them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from ..multilabel.sets import resolve_label_sets
from ..vocabulary import NO_LABEL_ACTIONS, Action, ItemState, LabelSource, Queue, Split
from .adjudication import live_decision
from .db import Record, Store
from .models import (
    Annotation,
    Annotator,
    Calibration,
    Item,
    Prediction,
    ProjectRow,
    ReviewTask,
    table_of,
    utcnow,
)

_ITEMS, _ANNOTATIONS, _TASKS = table_of(Item), table_of(Annotation), table_of(ReviewTask)
_PREDICTIONS, _CALIBRATIONS = table_of(Prediction), table_of(Calibration)
_PROJECTS = table_of(ProjectRow)

#: What answering a multi-label item needs to know of it (a row, or None).
ITEM_SETS = select(
    _ITEMS.c.id,
    _ITEMS.c.uid,
    _ITEMS.c.project_id,
    _ITEMS.c.split,
    _ITEMS.c.state,
    _ITEMS.c.final_labels,
    _ITEMS.c.llm_labels,
).where(_ITEMS.c.id == bindparam("item"))
#: What a person is shown of a multi-label item's suggestion: the suggested set, the labels
#: routing asks about, the project's label order, and the prediction's own probabilities.
_SHOWN_SET = (
    select(
        _ITEMS.c.project_id,
        _ITEMS.c.llm_labels,
        _ITEMS.c.uncertain_labels,
        _PROJECTS.c.labels,
        _PREDICTIONS.c.probs,
        _PREDICTIONS.c.model,
        _PREDICTIONS.c.prompt_version,
    )
    .select_from(_ITEMS)
    .join(_PROJECTS, _PROJECTS.c.id == _ITEMS.c.project_id)
    .join(_PREDICTIONS, _PREDICTIONS.c.id == _ITEMS.c.prediction_id)
    .where(_ITEMS.c.id == bindparam("item"), _PREDICTIONS.c.error.is_(None))
)
#: The calibrator in force for a predictor (the latest active calibration).
_CALIBRATOR = (
    select(_CALIBRATIONS.c.calibrator)
    .where(
        _CALIBRATIONS.c.project_id == bindparam("project"),
        _CALIBRATIONS.c.model == bindparam("model"),
        _CALIBRATIONS.c.prompt_version == bindparam("version"),
        _CALIBRATIONS.c.active.is_(True),
    )
    .order_by(_CALIBRATIONS.c.id.desc())
    .limit(1)
)
#: An answer on a gold item beside the item's gold set.
_GOLD_SET_ANSWER = (
    select(_ITEMS.c.gold_labels, _ANNOTATIONS.c.labels)
    .join_from(_ANNOTATIONS, _ITEMS, _ITEMS.c.id == _ANNOTATIONS.c.item_id)
    .where(_ANNOTATIONS.c.id == bindparam("annotation"))
)
_LIVE_SETS = (
    select(
        _ANNOTATIONS.c.id,
        _ANNOTATIONS.c.annotator_id,
        _ANNOTATIONS.c.labels,
        _ANNOTATIONS.c.action,
        _ANNOTATIONS.c.queue,
    )
    .where(_ANNOTATIONS.c.item_id == bindparam("item"), _ANNOTATIONS.c.undone.is_(False))
    .order_by(_ANNOTATIONS.c.id)
)
_SET_FINAL = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("item"))
    .values(
        state=bindparam("new_state"),
        final_labels=bindparam("new_labels"),
        final_source=bindparam("new_source"),
    )
)
_TASK_OF = select(_TASKS.c.answers_needed).where(
    _TASKS.c.item_id == bindparam("item"), _TASKS.c.queue == bindparam("task_queue")
)
_SETTLE = (
    update(_TASKS)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.queue == bindparam("task_queue"))
    .values(
        answers=bindparam("n_answers"),
        rejections=bindparam("n_rejections"),
        done=bindparam("is_done"),
        lease_owner=None,
        lease_expires=None,
    )
)
_OPEN_QUEUE = (
    select(_TASKS.c.queue)
    .where(_TASKS.c.item_id == bindparam("item"), _TASKS.c.done.is_(False))
    .order_by(_TASKS.c.priority)
    .limit(1)
)


def insert_answer(
    conn: Connection,
    item: Any,
    labels: Sequence[str] | None,
    action: str,
    *,
    annotator_id: int | None,
    queue: str | None,
    source: str,
    external_id: str | None = None,
    time_spent_s: float | None = None,
) -> int:
    """Store one answer's set (None for a rejection or a skip) and return its id."""
    inserted = conn.execute(
        insert(_ANNOTATIONS),
        {
            "project_id": item.project_id,
            "item_id": item.id,
            "annotator_id": annotator_id,
            "labels": None if labels is None else list(labels),
            "action": action,
            "queue": queue,
            "source": source,
            "external_id": external_id,
            "time_spent_s": time_spent_s,
            "undone": False,
            "created_at": utcnow(),
        },
    ).inserted_primary_key
    assert inserted is not None  # an INSERT of one row
    return int(inserted[0])


def gold_set_answer(conn: Connection, annotation_id: int) -> Record:
    """An answer on a gold item beside the item's gold set: (gold_labels, labels)."""
    return conn.execute(_GOLD_SET_ANSWER, {"annotation": annotation_id}).one()


def open_queue(conn: Connection, item_id: int) -> str | None:
    """The queue of the item's first open task, if any."""
    return conn.execute(_OPEN_QUEUE, {"item": item_id}).scalar()


def resolve_item_sets(
    conn: Connection, item: Any, labels: Sequence[str]
) -> tuple[str, list[str] | None]:
    """Recompute the item's state and final set from its live answers (gold items keep theirs).

    With a standing set the item is human-labeled; with only rejections or skips it is in
    review again, its set cleared. A reviewer's decision in force outranks the answers: its
    set is the item's (source `adjudicated`).
    """
    if item.split == "gold":
        return item.state, item.final_labels
    live = conn.execute(_LIVE_SETS, {"item": item.id}).all()
    given = [(a.annotator_id, a.labels) for a in live if a.action not in NO_LABEL_ACTIONS]
    final = resolve_label_sets(given, labels)
    decided = live_decision(conn, item.id)
    if decided is not None and decided.labels is not None:
        final = list(decided.labels)
        state, source = ItemState.HUMAN_LABELED, LabelSource.ADJUDICATED
    elif final is not None:
        state, source = ItemState.HUMAN_LABELED, LabelSource.HUMAN
    elif item.state == ItemState.HUMAN_LABELED or any(a.action == Action.REJECT for a in live):
        state, source = ItemState.IN_REVIEW, None
    else:
        return item.state, item.final_labels
    conn.execute(
        _SET_FINAL,
        {"item": item.id, "new_state": state, "new_labels": final, "new_source": source},
    )
    return state, final


def settle_task(conn: Connection, item_id: int, queue: str | None) -> None:
    """Recount the item's task in `queue` from its live answers there; free its lease."""
    if queue is None or queue == Queue.GOLD:
        return
    needed = conn.execute(_TASK_OF, {"item": item_id, "task_queue": queue}).scalar()
    if needed is None:
        return
    live = conn.execute(_LIVE_SETS, {"item": item_id}).all()
    actions = [a.action for a in live if a.queue == queue and a.action != Action.SKIP]
    rejections = actions.count(Action.REJECT)
    conn.execute(
        _SETTLE,
        {
            "item": item_id,
            "task_queue": queue,
            "n_answers": len(actions),
            "n_rejections": rejections,
            "is_done": len(actions) >= needed + rejections,
        },
    )


# ----------------------------------------------------------------------------- review page
def shown_set(conn: Connection, item_id: int) -> Record | None:
    """A multi-label item's suggestion as stored (None without a usable prediction)."""
    return conn.execute(_SHOWN_SET, {"item": item_id}).first()


def calibrator_in_force(
    conn: Connection, project_id: int, model: str, version: str
) -> dict[str, Any] | None:
    """The stored calibrator of the calibration in force for `model@version`, if any."""
    query = {"project": project_id, "model": model, "version": version}
    stored: dict[str, Any] | None = conn.execute(_CALIBRATOR, query).scalar()
    return stored


# ----------------------------------------------------------------------------- calibration
def gold_probabilities(
    session: Session, project_id: int, model: str, version: str
) -> list[tuple[dict[str, Any], list[str]]]:
    """(each label's probability, the gold set) of the gold items `model@version` answered."""
    rows = session.execute(
        select(Prediction.probs, Item.gold_labels)
        .join(Item, Item.id == Prediction.item_id)
        .where(
            Item.project_id == project_id,
            Item.split == Split.GOLD,
            Prediction.model == model,
            Prediction.prompt_version == version,
            Prediction.error.is_(None),
        )
        .order_by(Item.id)
    ).all()
    return [(probs, gold) for probs, gold in rows if probs and gold is not None]


def prediction_probabilities(
    session: Session,
    project_id: int,
    model: str,
    version: str,
    item_ids: Sequence[int] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """(prediction id, each label's probability) of every answer of `model@version` (or of its
    answers on these items)."""
    query = select(Prediction.id, Prediction.probs).where(
        Prediction.project_id == project_id,
        Prediction.model == model,
        Prediction.prompt_version == version,
        Prediction.error.is_(None),
    )
    if item_ids is not None:
        query = query.where(Prediction.item_id.in_(list(item_ids)))
    rows = session.execute(query).all()
    return [(pid, probs) for pid, probs in rows if probs]


def settle_routed_sets(session: Session, project_id: int, uncertain: dict[int, list[str]]) -> None:
    """After routing: auto-accepted items take their suggested set, items in review none (and
    the labels their reviewer is asked about, by item id in `uncertain`)."""
    mine = Item.project_id == project_id
    session.execute(
        update(Item)
        .where(mine, Item.state == ItemState.AUTO_ACCEPTED, Item.final_source == LabelSource.LLM)
        .values(final_labels=Item.llm_labels, final_label=None, uncertain_labels=None)
    )
    session.execute(
        update(Item)
        .where(mine, Item.state == ItemState.IN_REVIEW)
        .values(final_labels=None, final_label=None)
    )
    asked = [{"id": item_id, "uncertain_labels": labels} for item_id, labels in uncertain.items()]
    if asked:
        session.execute(update(Item), asked)


def predicted_items(session: Session, project_id: int) -> list[tuple[int, int]]:
    """(item id, prediction id) of every item showing a prediction."""
    rows = session.execute(
        select(Item.id, Item.prediction_id).where(
            Item.project_id == project_id, Item.prediction_id.is_not(None)
        )
    ).all()
    return [(item_id, pid) for item_id, pid in rows if pid is not None]


def pool_probabilities(
    session: Session, project_id: int, key: tuple[str, str]
) -> list[tuple[int, bool, dict[str, Any] | None, list[str] | None]]:
    """Per pool item, by id: (item id, whether people labeled it or it waits in the active
    queue, each label's probability from `key`'s prediction or None, its final set)."""
    model, version = key
    queued = (
        select(ReviewTask.id)
        .where(
            ReviewTask.item_id == Item.id,
            ReviewTask.queue == Queue.ACTIVE,
            ReviewTask.done.is_(False),
        )
        .exists()
    )
    rows = session.execute(
        select(Item.id, Item.state, queued, Prediction.probs, Prediction.error, Item.final_labels)
        .outerjoin(
            Prediction,
            (Prediction.item_id == Item.id)
            & (Prediction.model == model)
            & (Prediction.prompt_version == version),
        )
        .where(Item.project_id == project_id, Item.split == Split.POOL)
        .order_by(Item.id)
    ).all()
    return [
        (
            item_id,
            bool(is_queued) or state == ItemState.HUMAN_LABELED,
            probs if error is None and probs else None,
            final if state == ItemState.HUMAN_LABELED else None,
        )
        for item_id, state, is_queued, probs, error, final in rows
    ]


def answered_before(conn: Connection, item_id: int, annotator_id: int, annotation_id: int) -> bool:
    """Whether the annotator has another live answer (not a skip) on the item."""
    live = conn.execute(_LIVE_SETS, {"item": item_id}).all()
    return any(
        a.annotator_id == annotator_id and a.action != Action.SKIP and a.id != annotation_id
        for a in live
    )


def rater_sets(session: Session, project_id: int) -> list[tuple[str, int, list[str]]]:
    """(rater, item id, set) of every live answer that gave a set (people by name, in answer
    order, so a person's latest set comes last) and of every labeler's prediction (as
    `llm:model@version`, the calibrated set where there is one)."""
    answers = session.execute(
        select(Annotator.name, Annotation.annotator_id, Annotation.item_id, Annotation.labels)
        .outerjoin(Annotator, Annotator.id == Annotation.annotator_id)
        .where(
            Annotation.project_id == project_id,
            Annotation.undone.is_(False),
            Annotation.action.not_in(list(NO_LABEL_ACTIONS)),
        )
        .order_by(Annotation.id)
    ).all()
    predicted = session.execute(
        select(
            Prediction.model,
            Prediction.prompt_version,
            Prediction.item_id,
            func.coalesce(Prediction.calibrated_labels, Prediction.labels),
        ).where(Prediction.project_id == project_id, Prediction.error.is_(None))
    ).all()
    out = [
        (name or f"annotator {who}", item_id, labels)
        for name, who, item_id, labels in answers
        if labels is not None
    ]
    out += [
        (f"llm:{model}@{version}", item_id, labels)
        for model, version, item_id, labels in predicted
        if labels is not None
    ]
    return out


def labeled_set_probabilities(
    store: Store, project_id: int, model: str, version: str | None = None
) -> list[tuple[int, str, list[str], str | None, dict[str, Any]]]:
    """(item id, uid, final set, its source, each label's probability from `model`, of
    `version` when given) of every item with a final set and such a prediction, by item id:
    what finding likely mislabeled multi-label items compares."""
    query = (
        select(Item.id, Item.uid, Item.final_labels, Item.final_source, Prediction.probs)
        .join(Prediction, Prediction.item_id == Item.id)
        .where(
            Item.project_id == project_id,
            Prediction.model == model,
            Prediction.error.is_(None),
        )
        .order_by(Item.id)
    )
    if version is not None:
        query = query.where(Prediction.prompt_version == version)
    with store.session() as session:
        rows = session.execute(query).all()
    return [
        (item_id, uid, final, source, probs)
        for item_id, uid, final, source, probs in rows
        if final is not None and probs
    ]
