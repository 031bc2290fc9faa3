"""Answers on multi-label items: a person gives a set of labels (possibly empty).

`accept` takes the suggested set; `label` and `correct` need a set; `reject` and `skip` give
none. The answer is stored first, in one transaction with the item's new state and final set
(per-label majority of each person's latest set) and the recount of the task it counted for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConflictError, InputError, NotFoundError
from ..multilabel.sets import ALLOW_EMPTY, MULTI_LABEL, check_multilabel_names, parse_label_set
from ..store import Connection, labelsets, reviews
from ..store.guidelines import description_in_force
from ..vocabulary import NO_LABEL_ACTIONS, Action, Queue
from .accounts import Principal
from .answers import Submitted, answer_queue, check_action, check_time, gold_feedback_on
from .common import ProjectScope, Result, transaction
from .queues import next_in, queue_settings_of
from .waiting import settle


def is_multi_label(settings: dict[str, Any] | None) -> bool:
    """Whether a project's items take label sets."""
    return bool((settings or {}).get(MULTI_LABEL))


@dataclass(frozen=True)
class SetAnswerIn:
    """One person's answer on a multi-label item, as given."""

    action: str
    labels: Sequence[str] | None = None
    annotator_id: int | None = None
    time_spent_s: float | None = None
    source: str = "labelloop"
    external_id: str | None = None


def checked_set(
    action: str,
    labels: Any,
    suggested: list[str] | None,
    label_set: Sequence[str],
    settings: dict[str, Any],
) -> list[str] | None:
    """The set an answer gives, checked against the project's labels (None: no set)."""
    check_action(action)
    if action in NO_LABEL_ACTIONS:
        return None
    if action == Action.ACCEPT and labels is None:
        if suggested is None:
            raise InputError("there is no suggestion to accept; give the labels")
        return list(suggested)
    if labels is None:
        raise InputError(f"the action {action!r} needs a list of labels (it may be empty)")
    allow_empty = bool(settings.get(ALLOW_EMPTY))
    checked = parse_label_set(labels, label_set, allow_empty=allow_empty)
    assert checked is not None  # labels is not None
    return checked


@dataclass(frozen=True, slots=True)
class SetAnswer(Result):
    """A set-valued answer just recorded and the item it left behind (`Project.annotate`)."""

    annotation_id: int
    item: str  # the item's id
    state: str
    labels: list[str] | None  # the item's final set, None while unresolved


def annotate_set(
    project: ProjectScope, item_id: int, answer: SetAnswerIn, *, queue: str | None = None
) -> SetAnswer:
    """Record a trusted answer (Python, CLI, imports): no lease is needed.

    It counts for the item's task in `queue`, else for its first open task, if any.
    """
    label_set, settings = project.labels, project.settings
    with transaction(project) as conn:
        item = conn.execute(labelsets.ITEM_SETS, {"item": item_id}).first()
        if item is None or item.project_id != project.id:
            raise InputError(f"no item with id {item_id!r}")
        chosen = checked_set(answer.action, answer.labels, item.llm_labels, label_set, settings)
        if queue is None:
            queue = labelsets.open_queue(conn, item_id)
        annotation_id = labelsets.insert_answer(
            conn,
            item,
            chosen,
            answer.action,
            annotator_id=answer.annotator_id,
            queue=queue,
            source=answer.source,
            external_id=answer.external_id,
            time_spent_s=answer.time_spent_s,
        )
        state, final = labelsets.resolve_item_sets(conn, item, label_set)
        if answer.action != Action.SKIP:
            labelsets.settle_task(conn, item_id, queue)
        settle(conn, project.id, [item_id])
    return SetAnswer(annotation_id, item.uid, state, final)


def multi_label_settings(
    labels: Sequence[str], multi_label: bool, allow_empty: bool
) -> dict[str, Any]:
    """The settings a new project starts with; `allow_empty` needs `multi_label`."""
    if not multi_label:
        if allow_empty:
            raise InputError("--allow-empty needs --multi-label")
        return {}
    check_multilabel_names(labels)
    return {MULTI_LABEL: True, ALLOW_EMPTY: bool(allow_empty)}


def submit_set(
    project: ProjectScope,
    who: Principal,
    item_id: int,
    *,
    action: str,
    labels: Sequence[str] | None = None,
    time_spent_s: float | None = None,
    then_next: bool = False,
    exclude: Sequence[int] = (),
) -> Submitted:
    """The review API's answer on a multi-label item the caller holds (`answers.answer_queue`
    says which): one transaction, as `answers.submit`; a refusal changes nothing."""
    check_action(action)
    spent = check_time(time_spent_s)
    label_set, settings = project.labels, project.settings
    with transaction(project) as conn:
        item = reviews.answer_context(conn, item_id, who.id)
        if item is None or item.project_id != project.id:
            raise NotFoundError(f"no item with id {item_id}")
        sets = conn.execute(labelsets.ITEM_SETS, {"item": item_id}).one()
        chosen = checked_set(action, labels, sets.llm_labels, label_set, settings)
        queue = answer_queue(conn, who, item, action)
        annotation_id = labelsets.insert_answer(
            conn,
            sets,
            chosen,
            action,
            annotator_id=who.id,
            queue=queue,
            source="review",
            time_spent_s=spent,
        )
        if labelsets.answered_before(conn, item_id, who.id, annotation_id):
            raise ConflictError(f"you already answered item {item_id}; undo that answer first")
        labelsets.resolve_item_sets(conn, sets, label_set)
        if action != Action.SKIP:
            labelsets.settle_task(conn, item_id, queue)
        feedback = None
        if queue == Queue.GOLD:
            reviews.return_gold(conn, item_id, who.id)
            if action != Action.SKIP and gold_feedback_on(settings):
                feedback = gold_set_feedback(conn, project, annotation_id)
        settle(conn, project.id, [item_id])
        following = None
        if then_next:
            following = next_in(conn, project, who.id, exclude, queue_settings_of(settings))
    return Submitted(annotation_id, item_id, action, feedback, then_next, following)


@dataclass(frozen=True, slots=True)
class SetGoldFeedback(Result):
    """What a person is shown after answering a gold check on a multi-label project (when the
    project shows it): the gold set, theirs, the labels they missed and the ones they added,
    and those labels' descriptions in the guidelines in force (what to read again)."""

    expected_labels: list[str]
    your_labels: list[str] | None  # None: a rejection gives no set
    correct: bool
    missing: list[str]
    extra: list[str]
    descriptions: dict[str, str]  # of the missed and added labels that have one
    guidelines_version: int | None


def gold_set_feedback(
    conn: Connection, project: ProjectScope, annotation_id: int
) -> SetGoldFeedback:
    """The gold check's feedback on a person's set."""
    row = labelsets.gold_set_answer(conn, annotation_id)
    expected, given = list(row.gold_labels or []), row.labels
    chosen = set(given or [])
    missing = [label for label in expected if label not in chosen]
    extra = [label for label in project.labels if label in chosen and label not in expected]
    found = {label: description_in_force(conn, project.id, label)[0] for label in missing + extra}
    version = description_in_force(conn, project.id, "")[1]  # the guidelines in force
    return SetGoldFeedback(
        expected_labels=expected,
        your_labels=None if given is None else list(given),
        correct=given is not None and not missing and not extra,
        missing=missing,
        extra=extra,
        descriptions={label: text for label, text in found.items() if text},
        guidelines_version=version,
    )
