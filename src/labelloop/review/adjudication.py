"""Adjudication: a reviewer settles the items people could not.

An item of the pool goes to the adjudication queue when its standing answers (each person's
latest label) disagree and no task still waits for answers on it, when everyone who answered
rejected the suggestion (at least as many people as its task wanted), or when someone flagged it.
A reviewer (role `reviewer` or `admin`) sees every answer — the annotators' names or, when the
project hides them (`adjudication_show_names` off, the default), "Annotator 1, 2, …" — the
suggestion with its calibrated confidence, and the flags; picks the final label and may leave a
note. The decision is stored first; the item's label then becomes the decision's (source
`adjudicated`) and stays so whatever answers come later, until the decision is undone, which
recomputes the label from the answers (the label it had before, when they did not change).

On a multi-label project answers and decisions are label sets: two people disagree when their
sets differ, the reviewer sees each answer's set and decides with a set, and undoing the
decision recomputes the set from the answers.

Every query is in `labelloop.store.adjudication`; this module decides who may do what.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConflictError, ForbiddenError, InputError, NotFoundError
from ..store import GOLD
from ..store import adjudication as store
from ..store.labelsets import resolve_item_sets
from ..store.models import utcnow
from ..store.reviews import item_context
from ..vocabulary import Action
from .accounts import Principal
from .answers import checked_label, labels_and_settings_of, resolve_item
from .common import ProjectScope, Result, transaction
from .labelsets import checked_set, is_multi_label
from .queues import payload
from .waiting import pending_among, reasons_for, settle

#: The project setting that shows reviewers who gave each answer (off: blind adjudication).
SHOW_NAMES = "adjudication_show_names"
QUEUE_NAME = "adjudication"
MAX_NOTE = 2_000  # characters of a reviewer's note or a flag's reason
MAX_LISTED = 500


# ----------------------------------------------------------------------------- results
def _label_fields(label: str | None, labels: list[str] | None, multi: bool) -> dict[str, Any]:
    """A label as a reviewer is sent it: `label`, and on a multi-label project also the set,
    `labels` (`label` stays null there); single-label projects never send `labels`."""
    return {"label": label, "labels": labels} if multi else {"label": label}


@dataclass(frozen=True, slots=True)
class Waiting(Result):
    """An item of the adjudication queue: why it waits, and its label (or set) and source."""

    id: int
    uid: str
    reasons: list[str]
    label: str | None
    labels: list[str] | None
    label_source: str | None
    multi_label: bool  # not sent: whether `labels` is

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.uid,
            "reasons": list(self.reasons),
            **_label_fields(self.label, self.labels, self.multi_label),
            "label_source": self.label_source,
        }


@dataclass(frozen=True, slots=True)
class AdjudicationQueue(Result):
    """The adjudication queue: how many items wait, and the first of them."""

    count: int
    items: list[Waiting]

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "items": [item.to_dict() for item in self.items]}


@dataclass(frozen=True, slots=True)
class CaseAnswer(Result):
    """A live answer as the reviewer sees it: who (a name or "Annotator n") and what."""

    id: int
    annotator: str
    label: str | None
    labels: list[str] | None
    action: str
    created_at: str | None
    multi_label: bool  # not sent: whether `labels` is

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "annotator": self.annotator,
            **_label_fields(self.label, self.labels, self.multi_label),
            "action": self.action,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class CaseFlag(Result):
    """A live flag: who asked a reviewer to look, and why."""

    annotator: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class CaseDecision(Result):
    """The decision in force on an item."""

    id: int
    label: str | None
    labels: list[str] | None
    note: str | None
    multi_label: bool  # not sent: whether `labels` is

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **_label_fields(self.label, self.labels, self.multi_label),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Case(Result):
    """One item as a reviewer sees it: the item as people are shown it (`shown`, sent first,
    flat), why it waits, every live answer and flag, its label and the decision in force."""

    shown: dict[str, Any]  # `labelloop.review.queues.payload`
    reasons: list[str]
    answers: list[CaseAnswer]
    flags: list[CaseFlag]
    label: str | None
    labels: list[str] | None
    label_source: str | None
    label_posterior: float | None
    decision: CaseDecision | None
    multi_label: bool  # not sent: whether `labels` is

    @property
    def id(self) -> int:
        return int(self.shown["id"])

    @property
    def uid(self) -> str:
        return str(self.shown["uid"])

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.shown,
            "reasons": list(self.reasons),
            "answers": [a.to_dict() for a in self.answers],
            "flags": [f.to_dict() for f in self.flags],
            **_label_fields(self.label, self.labels, self.multi_label),
            "label_source": self.label_source,
            "label_posterior": self.label_posterior,
            "decision": None if self.decision is None else self.decision.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Decided(Result):
    """A decision just made: the item's label (or set) now, and what it replaced."""

    decision_id: int
    item_id: int
    label: str | None
    state: str
    previous_label: str | None
    previous_source: str | None
    note: str | None
    labels: list[str] | None
    previous_labels: list[str] | None
    multi_label: bool  # not sent: whether the sets are

    def to_dict(self) -> dict[str, Any]:
        sets = {"labels": self.labels, "previous_labels": self.previous_labels}
        return {
            "decision_id": self.decision_id,
            "item_id": self.item_id,
            "label": self.label,
            "state": self.state,
            "previous_label": self.previous_label,
            "previous_source": self.previous_source,
            "note": self.note,
            **(sets if self.multi_label else {}),
        }


@dataclass(frozen=True, slots=True)
class Undone(Result):
    """A withdrawn decision, and its item as `case` shows it now."""

    undone: int
    item: Case

    def to_dict(self) -> dict[str, Any]:
        return {"undone": self.undone, "item": self.item.to_dict()}


@dataclass(frozen=True, slots=True)
class Flagged(Result):
    """An item's flag by the caller after `flag` (True) or `unflag` (False, with how many of
    the caller's flags were cleared)."""

    item_id: int
    flagged: bool
    cleared: int | None = None

    def to_dict(self) -> dict[str, Any]:
        sent: dict[str, Any] = {"item_id": self.item_id, "flagged": self.flagged}
        if self.cleared is not None:
            sent["cleared"] = self.cleared
        return sent


@dataclass(frozen=True, slots=True)
class ShowNames(Result):
    """Whether reviewers now see who gave each answer."""

    shown: bool

    def to_dict(self) -> dict[str, Any]:
        return {SHOW_NAMES: self.shown}


def _item(conn: Any, item_id: int) -> Any:
    """An item known to exist (it holds answers or a decision), as answering needs it."""
    found = item_context(conn, item_id)
    if found is None:
        raise LookupError(f"item {item_id} vanished inside its transaction")
    return found


def show_names(settings: dict[str, Any]) -> bool:
    return bool(settings.get(SHOW_NAMES, False))


def set_show_names(project: ProjectScope, shown: bool) -> ShowNames:
    """Show reviewers the annotators' names (True) or hide them (False, the default)."""
    project.update_settings(**{SHOW_NAMES: bool(shown)})
    return ShowNames(bool(shown))


def check_reviewer(who: Principal) -> None:
    if not who.is_reviewer:
        raise ForbiddenError("reviewers and admins only")


def check_note(note: str | None) -> str | None:
    """A note or reason as stored: stripped, bounded, without control characters (newlines and
    tabs kept); empty is none."""
    if note is None:
        return None
    if len(note) > MAX_NOTE:
        raise InputError(f"a note may hold at most {MAX_NOTE} characters", value=len(note))
    kept = "".join(
        c for c in note if c in "\n\t" or not unicodedata.category(c).startswith("C")
    ).strip()
    return kept or None


# ----------------------------------------------------------------------------- the queue
def pending(project: ProjectScope, *, limit: int | None = None) -> list[tuple[int, list[str]]]:
    """(item id, reasons) of the items waiting for a reviewer, oldest item first."""
    with project.store.engine.connect() as conn:
        candidates = store.candidate_items(conn, project.id, is_multi_label(project.settings))
        found: list[tuple[int, list[str]]] = []
        for start in range(0, len(candidates), MAX_LISTED):
            found += pending_among(conn, candidates[start : start + MAX_LISTED])
            if limit is not None and len(found) >= limit:
                return found[:limit]
    return found


def queue(project: ProjectScope, who: Principal, *, limit: int = 100) -> AdjudicationQueue:
    """The adjudication queue for a reviewer: how many items wait, and the first `limit` of
    them (id, uid, reasons, the item's label, or set `labels` on a multi-label project, and
    its source)."""
    check_reviewer(who)
    waiting = pending(project)
    shown = waiting[: max(0, min(int(limit), MAX_LISTED))]
    with project.store.engine.connect() as conn:
        rows = {item_id: _item(conn, item_id) for item_id, _ in shown}
    items = [
        Waiting(
            item_id,
            rows[item_id].uid,
            reasons,
            rows[item_id].final_label,
            rows[item_id].final_labels,
            rows[item_id].final_source,
            _sets(rows[item_id]),
        )
        for item_id, reasons in shown
    ]
    return AdjudicationQueue(len(waiting), items)


def _sets(item: Any) -> bool:
    """Whether the item's project takes label sets."""
    return is_multi_label(labels_and_settings_of(item)[1])


def _people(rows: Sequence[Any], names: bool) -> dict[int | None, str]:
    """What the reviewer sees of each annotator: the name, or "Annotator n" by first answer."""
    shown: dict[int | None, str] = {}
    for row in rows:
        if row.annotator_id not in shown:
            blind = f"Annotator {len(shown) + 1}"
            shown[row.annotator_id] = (row.annotator or blind) if names else blind
    return shown


def _case(conn: Any, project: ProjectScope, item_id: int) -> Case:
    from ..data.formats.records import iso  # the formats load with a case, not with `stats`

    item = item_context(conn, item_id)
    if item is None or item.project_id != project.id:
        raise NotFoundError(f"no item with id {item_id}")
    answers = store.answers_of(conn, [item_id])[item_id]
    flags = store.flags_of(conn, [item_id])[item_id]
    tasks = store.open_tasks_of(conn, [item_id])[item_id]
    people = _people([*answers, *flags], show_names(labels_and_settings_of(item)[1]))
    decided = store.live_decision(conn, item_id)
    multi = _sets(item)
    return Case(
        shown=payload(conn, item_id, QUEUE_NAME),
        reasons=reasons_for(answers, flags, tasks) if decided is None else [],
        answers=[
            CaseAnswer(
                a.id,
                people[a.annotator_id],
                a.label,
                a.labels,
                a.action,
                iso(a.created_at),
                multi,
            )
            for a in answers
        ],
        flags=[CaseFlag(people[f.annotator_id], f.reason) for f in flags],
        label=item.final_label,
        labels=item.final_labels,
        label_source=item.final_source,
        label_posterior=item.label_posterior,
        decision=None
        if decided is None
        else CaseDecision(decided.id, decided.label, decided.labels, decided.note, multi),
        multi_label=multi,
    )


def case(project: ProjectScope, who: Principal, item_id: int) -> Case:
    """One item as the reviewer sees it: text, suggestion (with calibrated confidence), every
    live answer and flag, why it is in the queue, its label and the decision in force."""
    check_reviewer(who)
    with project.store.engine.connect() as conn:
        return _case(conn, project, item_id)


def next_case(project: ProjectScope, who: Principal, *, exclude: Sequence[int] = ()) -> Case | None:
    """The first item waiting for a reviewer that is not in `exclude`, as `case`; None when the
    queue is empty."""
    check_reviewer(who)
    skipped = set(exclude)
    for item_id, _ in pending(project, limit=len(skipped) + 1):
        if item_id not in skipped:
            return case(project, who, item_id)
    return None


# ----------------------------------------------------------------------------- decisions
def _decided(item: Any, label: str | None, labels: Sequence[str] | None) -> dict[str, Any]:
    """The label (single-label projects) or set (multi-label ones) a decision gives, checked
    against the project's labels, as the decision's columns."""
    label_set, settings = labels_and_settings_of(item)
    if is_multi_label(settings):
        if label is not None or labels is None:
            raise InputError("a multi-label item is decided with `labels`, a list of labels")
        chosen = checked_set(Action.LABEL, list(labels), None, label_set, settings)
        return {"label": None, "labels": chosen}
    if labels is not None or label is None:
        raise InputError("a single-label item is decided with `label`, not a list")
    return {"label": checked_label(label_set, label), "labels": None}


def _resolve(conn: Any, item: Any) -> tuple[str, str | None, list[str] | None]:
    """Recompute the item's state and final label or set (a decision in force outranks its
    answers): (state, label, set)."""
    label_set, settings = labels_and_settings_of(item)
    if is_multi_label(settings):
        state, final = resolve_item_sets(conn, item, label_set)
        return state, None, final
    result = resolve_item(conn, item, settings, 0)
    return result.state, result.label, None


def decide(
    project: ProjectScope,
    who: Principal,
    item_id: int,
    label: str | None = None,
    note: str | None = None,
    *,
    labels: Sequence[str] | None = None,
) -> Decided:
    """Settle an item: `label` (on a multi-label project the set `labels`) becomes its final
    label (source `adjudicated`), with the note.

    One transaction: the decision is stored first (with why the item was queued and the label
    or set it replaces), then the item's label follows it. Any pool item may be decided, queued
    or not; gold items keep their gold label.
    """
    check_reviewer(who)
    kept_note = check_note(note)
    with transaction(project) as conn:
        item = item_context(conn, item_id)
        if item is None or item.project_id != project.id:
            raise NotFoundError(f"no item with id {item_id}")
        if item.split == GOLD:
            raise ConflictError(f"item {item_id} is a gold item: its label is the gold label")
        chosen = _decided(item, label, labels)
        multi = chosen["labels"] is not None
        reasons = pending_among(conn, [item_id])
        decision_id = store.add_decision(
            conn,
            {
                "project_id": project.id,
                "item_id": item_id,
                "reviewer_id": who.id,
                **chosen,
                "note": kept_note,
                "reasons": ",".join(reasons[0][1]) if reasons else None,
                "previous_label": item.final_label,
                "previous_labels": item.final_labels if multi else None,
                "previous_source": item.final_source,
                "undone": False,
                "created_at": utcnow(),
            },
        )
        state, final_label, final_set = _resolve(conn, item)
        settle(conn, project.id, [item_id])
    return Decided(
        decision_id=decision_id,
        item_id=item_id,
        label=final_label,
        state=state,
        previous_label=item.final_label,
        previous_source=item.final_source,
        note=kept_note,
        labels=final_set,
        previous_labels=item.final_labels if multi else None,
        multi_label=multi,
    )


def undo(project: ProjectScope, who: Principal, decision_id: int | None = None) -> Undone:
    """Withdraw the caller's latest decision (or a given one: a reviewer's own, anyone's for an
    admin); the item's label is recomputed from its answers, and the item is returned as `case`
    shows it (back in the queue when it still needs a reviewer)."""
    check_reviewer(who)
    with transaction(project) as conn:
        if decision_id is None:
            found = store.last_decision_by(conn, project.id, who.id)
        else:
            found = store.decision(conn, decision_id)
        if found is None or found.project_id != project.id or found.undone:
            raise NotFoundError("there is no decision to undo")
        if found.reviewer_id != who.id and not who.is_admin:
            raise ForbiddenError("you can only undo your own decisions")
        store.mark_undone(conn, found.id)
        _resolve(conn, _item(conn, found.item_id))
        settle(conn, project.id, [found.item_id])
        shown = _case(conn, project, found.item_id)
    return Undone(found.id, shown)


# ----------------------------------------------------------------------------- flags
def flag(project: ProjectScope, who: Principal, item_id: int, reason: str | None = None) -> Flagged:
    """Ask a reviewer to look at an item. Annotators flag what they were served or answered;
    reviewers and admins any item. A flag on a gold item is taken and changes nothing (so that
    flagging tells nothing about the item); a second flag by the same person is one flag."""
    kept = check_note(reason)
    with transaction(project) as conn:
        if not store.item_exists(conn, project.id, item_id):
            raise NotFoundError(f"no item with id {item_id}")
        if not who.is_reviewer and not store.may_flag(conn, item_id, who.id):
            raise ConflictError(f"item {item_id} was not served to you; flag the items you see")
        if not store.has_live_flag(conn, item_id, who.id):
            values = {
                "project_id": project.id,
                "item_id": item_id,
                "annotator_id": who.id,
                "reason": kept,
                "cleared": False,
                "created_at": utcnow(),
            }
            store.add_flag(conn, values)
            settle(conn, project.id, [item_id])
    return Flagged(item_id, True)


def unflag(project: ProjectScope, who: Principal, item_id: int) -> Flagged:
    """Withdraw the caller's flag on an item (the item leaves the queue unless another reason
    or person keeps it there)."""
    with transaction(project) as conn:
        if not store.item_exists(conn, project.id, item_id):
            raise NotFoundError(f"no item with id {item_id}")
        cleared = store.clear_flags(conn, item_id, who.id)
        settle(conn, project.id, [item_id])
    return Flagged(item_id, False, cleared)


def reviewer_named(project: ProjectScope, name: str) -> Principal:
    """The account `name` as a caller (the CLI's `--as`): it must exist, be active and be a
    reviewer or an admin."""
    from .accounts import get_user

    user = get_user(project, name)
    if not user.active:
        raise InputError(f"the account {name!r} is disabled")
    who = Principal(user.id, user.name, user.role)
    if not who.is_reviewer:
        raise InputError(f"{name!r} is an {who.role}; decisions need a reviewer or an admin")
    return who
