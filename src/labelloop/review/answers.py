"""Answers: recording, withdrawing and resolving people's answers on items.

One path for every answer, trusted or not: `record` stores it inside the caller's transaction,
recomputes the item's state and final label from its live answers (`resolve_item`), recounts the
task it counted for and ends the answerer's lease. `annotate` is the trusted path (Python, CLI,
Label Studio: no lease needed); `submit` and `undo` are the review API's, where an answer needs
the caller's lease (`answer_queue`): otherwise it is refused and changes nothing.

The path runs the store's prebuilt statements (`labelloop.store.reviews`), each touching a few
rows through the primary key or an index: its cost does not grow with the store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .. import routing
from ..data.importer import canonical_labels, match_label
from ..errors import ConflictError, ForbiddenError, InputError, NotFoundError
from ..multilabel.sets import MULTI_LABEL
from ..store import AUTO_ACCEPTED, GOLD, HUMAN_LABELED, IN_REVIEW, Connection, labelsets
from ..store import reviews as store
from ..store.adjudication import live_decision
from ..store.guidelines import description_in_force
from ..store.models import utcnow
from ..vocabulary import LABELING_ACTIONS, NO_LABEL_ACTIONS, Action, LabelSource, Queue
from . import common, consensus
from .accounts import Principal
from .common import ProjectScope, Result, transaction
from .queues import (
    OVERLAP_QUEUES,
    ReviewItem,
    lease_for,
    next_in,
    payload,
    queue_settings_of,
    settings_in,
)
from .waiting import settle

if TYPE_CHECKING:
    from .labelsets import SetGoldFeedback

ACTIONS = tuple(Action)
#: The project setting that shows annotators the expected label after a gold check.
GOLD_FEEDBACK = "gold_feedback"


@dataclass(frozen=True)
class AnswerIn:
    """One person's answer as given: what they did, who they are and where it came from."""

    action: str
    label: str | None = None
    annotator_id: int | None = None
    time_spent_s: float | None = None
    source: str = "labelloop"
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer(Result):
    """An answer just recorded (or withdrawn) and the item it left behind; `to_dict` is what
    callers outside the service see (the Label Studio backend's replies)."""

    annotation_id: int
    item_uid: str
    state: str
    label: str | None
    live: Sequence[Any]  # the item's live answers: (id, annotator_id, label, action, queue)
    posterior: dict[str, float] | None = None  # of the weighted consensus, where it set the label

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotation_id": self.annotation_id,
            "item": self.item_uid,
            "state": self.state,
            "label": self.label,
        }


def _settle_task(
    conn: Connection, answer: Answer, item_id: int, queue: str | None, settings: dict[str, Any]
) -> None:
    """Recount the item's task in `queue` from the item's live answers given in that queue.

    Recounting (rather than adding one) keeps a task's count equal to its answers whatever
    happened before: answers, undos, rejections, overlap changes. With adaptive overlap and a
    posterior, the answers the task needs are set again too (`adaptive_needed`).
    """
    if queue is None or queue == Queue.GOLD:  # no task to count for
        return
    actions = [a.action for a in answer.live if a.queue == queue and a.action != Action.SKIP]
    n_answers, n_rejections = len(actions), actions.count(Action.REJECT)
    review = queue_settings_of(settings)
    if queue in OVERLAP_QUEUES and review["overlap_mode"] == "adaptive" and answer.posterior:
        votes = [routing.Vote(a.annotator_id, a.label, a.action, a.id) for a in answer.live]
        standing = len(consensus.latest_labels(votes))
        labeled_here = n_answers - n_rejections
        more = adaptive_needs_more(answer.posterior, standing, review)
        needed = labeled_here + int(more)
        store.count_task(conn, item_id, queue, n_answers, n_rejections, needed)
    else:
        store.count_task(conn, item_id, queue, n_answers, n_rejections)


def adaptive_needs_more(
    posterior: dict[str, float], n_answers: int, review: dict[str, Any]
) -> bool:
    """Whether an item needs another answer under adaptive overlap: its leading label's
    posterior is below `overlap_target` and it has fewer than `overlap_cap` answers
    (`labelloop.agreement.OverlapPolicy`)."""
    import numpy as np

    from ..agreement import OverlapPolicy

    policy = OverlapPolicy(
        target=float(review["overlap_target"]), max_answers=int(review["overlap_cap"])
    )
    return bool(policy.needs_more(np.array([list(posterior.values())]), n_answers)[0])


def settle_overlap(
    conn: Connection, answer: Answer, item_id: int, settings: dict[str, Any]
) -> None:
    """Recount the item's review and active tasks under adaptive overlap (after a refit moved
    its posterior); a fixed overlap does not depend on the posterior, so nothing is done."""
    if queue_settings_of(settings)["overlap_mode"] != "adaptive":
        return
    for queue in OVERLAP_QUEUES:
        _settle_task(conn, answer, item_id, queue, settings)


def labels_and_settings_of(row: Any) -> tuple[list[str], dict[str, Any]]:
    """The label set and settings from a row holding the project's `labels` and `settings`."""
    return list(row.labels), dict(row.settings or {})


@lru_cache(maxsize=64)
def _canonical(labels: tuple[str, ...]) -> dict[str, str]:
    return canonical_labels(labels)


def checked_label(labels: Sequence[str], label: str) -> str:
    """`label` as the label set spells it (case and spacing forgiven); InputError otherwise."""
    canonical = _canonical(tuple(labels))
    matched = match_label(label, canonical)
    if matched is None:
        raise InputError(
            f"label {label!r} is not in the label set ({', '.join(canonical.values())})"
        )
    return matched


def check_action(action: str, allowed: Sequence[str] = ACTIONS) -> None:
    if action not in allowed:
        raise InputError(f"action must be one of {', '.join(allowed)}, not {action!r}")


# ----------------------------------------------------------------------------- one answer
def record(conn: Connection, item: Any, answer: AnswerIn, queue: str | None) -> Answer:
    """Store `answer` on `item` (a row of `store.reviews.item_context`) in `queue`, in the
    caller's transaction.

    `accept` takes the suggestion's label; `correct` and `label` need a label; `reject` says the
    suggestion is wrong without giving a label; `skip` gives nothing. The answer recounts the
    item's task in `queue` (`_settle_task`) and ends the answerer's own lease on the item; other
    people's stay theirs.
    """
    check_action(answer.action)
    labels, settings = labels_and_settings_of(item)
    action, label = answer.action, answer.label
    if action == Action.ACCEPT and label is None:
        label = item.llm_label
        if label is None:
            raise InputError("there is no suggestion to accept; give a label")
    if action in (Action.LABEL, Action.CORRECT) and label is None:
        raise InputError(f"the action {action!r} needs a label")
    if label is not None:
        label = checked_label(labels, label)
    if action in NO_LABEL_ACTIONS:
        label = None
    annotation_id = store.add_answer(
        conn,
        project_id=item.project_id,
        item_id=item.id,
        annotator_id=answer.annotator_id,
        label=label,
        action=action,
        suggested_label=item.llm_label,
        queue=queue,
        source=answer.source,
        external_id=answer.external_id,
        time_spent_s=answer.time_spent_s,
    )
    result = resolve_item(conn, item, settings, annotation_id)
    if action != Action.SKIP:
        _settle_task(conn, result, item.id, queue, settings)
    if answer.annotator_id is not None:
        store.release_item(conn, item.id, answer.annotator_id)
    settle(conn, item.project_id, [item.id])
    return result


def withdraw(conn: Connection, project_id: int, annotation_id: int) -> Answer:
    """Mark an answer undone, in the caller's transaction: the item's state and the task the
    answer counted for are recounted (see `record`)."""
    found = store.answer_of(conn, annotation_id)
    if found is None or found.project_id != project_id or found.undone:
        raise InputError(f"no answer {annotation_id} to undo")
    store.mark_undone(conn, annotation_id)
    item = store.item_context(conn, found.item_id)
    assert item is not None  # an answer's item stays while the answer does
    labels, settings = labels_and_settings_of(item)
    if settings.get(MULTI_LABEL):  # label sets: resolved label by label
        result = _withdraw_set(conn, item, labels, found, annotation_id)
    else:
        result = resolve_item(conn, item, settings, annotation_id)
        if found.action != Action.SKIP:
            _settle_task(conn, result, found.item_id, found.queue, settings)
    settle(conn, project_id, [found.item_id])
    return result


def _withdraw_set(
    conn: Connection, item: Any, labels: list[str], found: Any, annotation_id: int
) -> Answer:
    """`withdraw` on a multi-label item: its final set and task recounted from the live sets."""
    sets = conn.execute(labelsets.ITEM_SETS, {"item": item.id}).one()
    state, _ = labelsets.resolve_item_sets(conn, sets, labels)
    if found.action != Action.SKIP:
        labelsets.settle_task(conn, item.id, found.queue)
    return Answer(annotation_id, item.uid, state, None, store.live_answers(conn, item.id))


def resolve_item(
    conn: Connection, item: Any, settings: dict[str, Any], annotation_id: int
) -> Answer:
    """Recompute the item's state, final label and its posterior from its live answers, or from
    the reviewer's decision in force (`labelloop.review.adjudication`), written if changed."""
    live = store.live_answers(conn, item.id)
    before = (item.state, item.final_label, item.final_source, item.label_posterior)
    resolved = before
    if item.split != GOLD:  # gold labels are trusted; answers on gold measure annotators
        votes = [routing.Vote(a.annotator_id, a.label, a.action, a.id) for a in live]
        resolved = resolved_state(item, votes, settings)
        decided = live_decision(conn, item.id)  # a reviewer's decision outranks the answers
        if decided is not None:
            resolved = (HUMAN_LABELED, decided.label, LabelSource.ADJUDICATED, None)
    if resolved != before:
        store.set_item_state(conn, item.id, *resolved)
    return Answer(annotation_id, item.uid, resolved[0], resolved[1], live, resolved[3])


def resolved_state(
    item: Any, votes: Sequence[routing.Vote], settings: dict[str, Any]
) -> tuple[str, str | None, str | None, dict[str, float] | None]:
    """The state, final label, its source and its posterior that an item's answers (`votes`)
    give it: with people's answers, the weighted consensus of the project's fitted annotator
    model (`final_label` = weighted, once fitted) or the majority; else the suggestion when it is
    confident and nobody rejected it."""
    standing = consensus.latest_labels(votes)
    if standing:
        model = None
        if consensus.final_label_method(settings) == consensus.WEIGHTED:
            model = consensus.stored_model(settings, list(item.labels))
        if model is None:
            return HUMAN_LABELED, routing.resolve_human_label(votes), LabelSource.HUMAN, None
        prior = consensus.model_row(list(item.labels), item.llm_label, item.calibrated_confidence)
        label, posterior = consensus.weighted_label(model, standing, prior)
        return HUMAN_LABELED, label, LabelSource.HUMAN, posterior
    confident = routing.is_confident(
        item.llm_label,
        item.calibrated_confidence if item.calibrated_confidence is not None else item.confidence,
        float(settings.get("threshold", routing.DEFAULT_THRESHOLD)),
        settings.get("label_thresholds"),
    )
    if confident and not any(vote.action == Action.REJECT for vote in votes):
        return AUTO_ACCEPTED, item.llm_label, LabelSource.LLM, None
    return IN_REVIEW, None, None, None


# ----------------------------------------------------------------------------- trusted path
def annotate(
    project: ProjectScope,
    item_id: int,
    answer: AnswerIn,
    *,
    queue: str | None = None,
    shown_as: str | int | None = None,
) -> Answer:
    """Record a trusted answer (Python, CLI, Label Studio): no lease is needed.

    The answer counts for the item's task in `queue`, or without one for the item's open task
    the answerer holds, else its first open task (`store.reviews.open_task_of`), if any, and is
    recorded in that
    task's queue. `shown_as` is how the caller named the item, for the error message.
    """
    with project.store.engine.begin() as conn:
        item = store.item_context(conn, item_id)
        if item is None or item.project_id != project.id:
            raise InputError(f"no item with id {item_id if shown_as is None else shown_as!r}")
        if queue is None:
            task = store.open_task_of(conn, item_id, answer.annotator_id, utcnow())
            queue = task.queue if task is not None else None
        return record(conn, item, answer, queue)


def unannotate(project: ProjectScope, annotation_id: int) -> Answer:
    """Withdraw an answer (the review UI's Backspace, a re-import) and restore the item."""
    with project.store.engine.begin() as conn:
        return withdraw(conn, project.id, annotation_id)


# ----------------------------------------------------------------------------- review API
@dataclass(frozen=True, slots=True)
class GoldFeedback(Result):
    """What a person is shown after answering a gold check (when the project shows it)."""

    expected_label: str | None
    your_label: str | None
    correct: bool
    description: str | None  # the expected label's, in the guidelines in force
    guidelines_version: int | None


@dataclass(frozen=True, slots=True)
class Submitted(Result):
    """An answer taken through the review API (a label, or a set on a multi-label project:
    `labelsets.submit_set`), and what its reply carries besides."""

    annotation_id: int
    item_id: int
    action: str
    # after a gold check, when the project shows it (on a set: `labelsets.SetGoldFeedback`)
    gold_feedback: GoldFeedback | SetGoldFeedback | None = None
    next_asked: bool = False  # the caller asked for their next item in the same reply
    next: ReviewItem | None = None  # that item (None: nothing is left for them)

    def to_dict(self) -> dict[str, Any]:
        """The API's reply: `gold_feedback` only when shown, `next` only when asked for."""
        reply: dict[str, Any] = {
            "annotation_id": self.annotation_id,
            "item_id": self.item_id,
            "action": self.action,
        }
        if self.gold_feedback is not None:
            reply["gold_feedback"] = self.gold_feedback.to_dict()
        if self.next_asked:
            reply["next"] = None if self.next is None else self.next.to_dict()
        return reply


@dataclass(frozen=True, slots=True)
class Undone(Result):
    """An answer withdrawn through the review API, and its item given back to the caller."""

    undone: int  # the answer's id
    item: ReviewItem  # the item as `next_item` shows it

    def to_dict(self) -> dict[str, Any]:
        return {"undone": self.undone, "item": self.item.to_dict()}


def check_time(time_spent_s: float | None) -> float | None:
    if time_spent_s is None:
        return None
    value = float(time_spent_s)
    if not math.isfinite(value) or not 0.0 <= value <= 86_400.0:
        raise InputError("time_spent_s must lie between 0 and 86400 seconds", value=time_spent_s)
    return value


def answer_queue(conn: Connection, who: Principal, item: Any, action: str) -> str | None:
    """The queue an answer counts for; ConflictError when the caller may not answer the item.

    People answer what they hold: an open task whose lease names them (a lease that ran out
    still counts until someone else takes the task, so a slow reader's answer is not thrown
    away), or a gold check served to them. An admin may also answer an item directly when
    nobody else holds it: the answer counts for its first open task whose lease is free; on an
    item without an open task only a label is taken (a rejection there would leave the item in
    review with nobody asked). A task someone else holds is never taken from them. Everything
    else is refused with the same error, gold check or not, so a refusal tells nothing about
    the item.
    """
    if item.split == GOLD:
        if item.gold_held:
            return Queue.GOLD
    elif item.held_queue is not None:
        return item.held_queue
    elif who.is_admin:
        task = store.open_task_of(conn, item.id, who.id, common.now())
        if task is None and action in LABELING_ACTIONS:
            return None
        if task is not None and task.free:
            return task.queue
    raise ConflictError(f"item {item.id} is not leased to you; answer the items you are served")


def submit(
    project: ProjectScope,
    who: Principal,
    item_id: int,
    *,
    action: str,
    label: str | None = None,
    time_spent_s: float | None = None,
    then_next: bool = False,
    exclude: Sequence[int] = (),
) -> Submitted:
    """Record a person's answer on an item they hold (see `answer_queue`), and free its lease.

    One transaction: the answer, the item's new state, the task's count and the lease; a
    refusal changes nothing. With `then_next` the same transaction also serves the caller's
    next item (as `next_item` with `exclude`, as `next`): one round trip per answer for a
    review page or a script.
    """
    check_action(action)
    spent = check_time(time_spent_s)
    with transaction(project) as conn:
        item = store.answer_context(conn, item_id, who.id)
        if item is None or item.project_id != project.id:
            raise NotFoundError(f"no item with id {item_id}")
        if label is not None:  # bad input whatever the item, before the item is looked at
            checked_label(list(item.labels), label)
        queue = answer_queue(conn, who, item, action)
        given = AnswerIn(action, label, who.id, spent, source="review")
        answer = record(conn, item, given, queue)
        _refuse_second_answer(answer, who, item_id)
        feedback = None
        if queue == Queue.GOLD:
            feedback = _gold_checked(conn, project, who, item, answer, action)
        following = None
        if then_next:
            settings = queue_settings_of(labels_and_settings_of(item)[1])
            following = next_in(conn, project, who.id, exclude, settings)
    return Submitted(answer.annotation_id, item_id, action, feedback, then_next, following)


def _refuse_second_answer(answer: Answer, who: Principal, item_id: int) -> None:
    """ConflictError when the caller already had a live answer on the item. Checked on the
    item's answers, the new one included: the refusal rolls the whole transaction back."""
    if any(
        a.annotator_id == who.id and a.action != Action.SKIP and a.id != answer.annotation_id
        for a in answer.live
    ):
        raise ConflictError(f"you already answered item {item_id}; undo that answer first")


def _gold_checked(
    conn: Connection, project: ProjectScope, who: Principal, item: Any, answer: Answer, action: str
) -> GoldFeedback | None:
    """End the caller's gold check (each person is served it once); what they are shown of
    it, when the project shows the expected label."""
    store.return_gold(conn, item.id, who.id)
    if action == Action.SKIP or not gold_feedback_on(item.settings):
        return None
    return gold_feedback(conn, project.id, answer.annotation_id)


def gold_feedback_on(settings: dict[str, Any] | None) -> bool:
    """Whether annotators are shown the expected label after a gold check (off by default)."""
    return bool((settings or {}).get(GOLD_FEEDBACK))


def gold_feedback(conn: Connection, project_id: int, annotation_id: int) -> GoldFeedback:
    """What a person is shown after answering a gold check: the expected label, theirs, and the
    expected label's description in the guidelines in force."""
    row = store.gold_answer(conn, annotation_id)
    description, version = description_in_force(conn, project_id, row.gold_label)
    return GoldFeedback(
        expected_label=row.gold_label,
        your_label=row.label,
        correct=row.label is not None and row.label == row.gold_label,
        description=description,
        guidelines_version=version,
    )


def undo(project: ProjectScope, who: Principal, annotation_id: int | None = None) -> Undone:
    """Withdraw the caller's last answer (or a given one) and give the item back to them.

    The caller gets the lease back, so that they can answer again: on a gold check always, on
    a task when nobody else took it meanwhile (otherwise answering it again is refused, as for
    any item not leased to them). Returns the item as `next_item` would, so the review page can
    show it again.
    """
    with transaction(project) as conn:
        row = store.last_live_answer(conn, project.id, who.id, annotation_id)
        if row is None:
            raise NotFoundError("there is no answer to undo")
        if row.annotator_id != who.id and not who.is_admin:
            raise ForbiddenError("you can only undo your own answers")
        if row.queue == Queue.GOLD and gold_feedback_on(store.stored_settings(conn, project.id)):
            # The expected label was shown: answering again would measure nothing.
            raise ConflictError("a gold check whose expected label was shown cannot be undone")
        withdraw(conn, project.id, row.id)
        lease = lease_for(project, who.id, settings_in(conn, project))
        if row.queue == Queue.GOLD:
            store.lease_gold(conn, lease, row.item_id)
        else:
            store.give_back(conn, lease, row.item_id, row.queue)
        item = payload(conn, row.item_id, row.queue or Queue.REVIEW)
    return Undone(row.id, item)
