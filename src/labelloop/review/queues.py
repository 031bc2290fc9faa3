"""Review queues: tasks, their settings, and the leases that hand them out.

Each open `ReviewTask` belongs to one queue — `review` (routing), `active` (active learning),
`audit` (a sample of auto-accepted items), `recheck` (likely label issues) — and needs
`answers_needed` answers from different people (more than one when overlap is set, for
agreement), plus one for each live rejection (`store.reviews.task_done`). Gold checks are not
tasks: gold items are mixed into a person's stream at the configured rate, look like review
items, and each serving is a lease of its own (`GoldLease`): many people are served the same gold
item, each once.

Leases. Handing out a task takes a lease on it atomically (an UPDATE that only matches when the
lease is free or expired, checked by row count; on PostgreSQL the candidate row is also locked
with `FOR UPDATE SKIP LOCKED`), so two people never hold the same task at once, and an abandoned
lease frees itself after `lease_minutes`. Nobody is served an item they have already answered.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import InputError, NotFoundError
from ..multilabel.sets import MULTI_LABEL
from ..store import GOLD, Connection
from ..store import reviews as store
from ..store.items import splits_of
from ..store.reviews import Lease
from ..vocabulary import TASK_QUEUES, Queue
from . import common
from .common import ProjectScope, Result, transaction, writing
from .suggested_sets import SuggestedSet, suggested_set
from .waiting import settle

MAX_TEXT_SHOWN = 200_000  # characters of an item sent to the browser; longer texts are cut
MAX_EXCLUDE = 8
#: The queues whose tasks may want several answers (the overlap).
OVERLAP_QUEUES = (Queue.REVIEW, Queue.ACTIVE)
DEFAULT_SETTINGS: dict[str, Any] = {
    "overlap": 1,  # answers wanted per item (from different people)
    "overlap_share": 1.0,  # share of review/active items that get `overlap` answers
    "gold_rate": 0.0,  # share of served items that are gold checks
    "audit_rate": 0.0,  # share of auto-accepted items sampled for audit
    "lease_minutes": 10.0,
    # fixed: `overlap` answers per item; adaptive: another answer only while the item's label is
    # uncertain (its posterior under the annotator model below `overlap_target`), at most
    # `overlap_cap` answers (see `labelloop.review.answers.adaptive_needed`).
    "overlap_mode": "fixed",
    "overlap_target": 0.95,
    "overlap_cap": 5,
}


# ----------------------------------------------------------------------------- queue settings
@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: finite numbers within a range."""

    low: float
    high: float
    high_open: bool = False  # the high end itself is excluded
    whole: bool = False  # whole numbers only
    unit: str = ""  # as in "a number of minutes"

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        number = float(value)
        if not math.isfinite(number) or (self.whole and number != int(number)):
            return False
        return self.low <= number and (
            number < self.high if self.high_open else number <= self.high
        )

    def describe(self) -> str:
        kind = ("a whole number" if self.whole else "a number") + self.unit
        if self.high_open:
            return f"{kind} at least {self.low:g} and below {self.high:g}"
        return f"{kind} from {self.low:g} to {self.high:g}"

    def check(self, name: str, value: Any) -> float | int:
        """`value` as a number within bounds; anything else is bad input naming `name`."""
        if not self.holds(value):
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:80] + "…"
            raise InputError(f"{name} must be {self.describe()}, not {shown}")
        return int(value) if self.whole else float(value)


@dataclass(frozen=True)
class Choice:
    """The values a setting chosen by name may take."""

    names: tuple[str, ...]

    def holds(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.names

    def describe(self) -> str:
        return "one of " + ", ".join(self.names)

    def check(self, name: str, value: Any) -> str:
        if not self.holds(value):
            shown = repr(value)
            raise InputError(f"{name} must be {self.describe()}, not {shown[:80]}")
        return str(value)


#: The range of each queue setting. A lease shorter than a minute would run out while a person
#: reads an item and hand it to someone else (the double assignment leases exist to prevent);
#: longer than a day, an abandoned lease keeps an item from everyone for more than a working day.
SETTING_BOUNDS: dict[str, Bounds | Choice] = {
    "overlap": Bounds(1, 100, whole=True),
    "overlap_share": Bounds(0.0, 1.0),
    "gold_rate": Bounds(0.0, 1.0, high_open=True),  # 1 would serve nothing but gold checks
    "audit_rate": Bounds(0.0, 1.0),
    "lease_minutes": Bounds(1.0, 24 * 60, unit=" of minutes"),
    "overlap_mode": Choice(("fixed", "adaptive")),
    "overlap_target": Bounds(0.5, 1.0, high_open=True),  # 1 would never settle an item
    "overlap_cap": Bounds(1, 100, whole=True),
}


def check_setting(name: str, value: Any) -> float | int | str:
    """A queue setting's value, checked against `SETTING_BOUNDS` (InputError naming the range)."""
    return SETTING_BOUNDS[name].check(name, value)


@dataclass(frozen=True, slots=True)
class QueueSettings(Result):
    """A project's queue settings as `queue_settings_of` reads them (see `DEFAULT_SETTINGS`);
    `to_dict` is what the API and the dashboard send, in that order."""

    overlap: int
    overlap_share: float
    gold_rate: float
    audit_rate: float
    lease_minutes: float
    overlap_mode: str
    overlap_target: float
    overlap_cap: int


def queue_settings(project: ProjectScope) -> QueueSettings:
    return QueueSettings(**queue_settings_of(project.settings))


def set_queue_settings(project: ProjectScope, **values: Any) -> QueueSettings:
    """Change overlap, gold rate, audit rate or lease length, and apply them to the queues.

    Values of None are left as they are; each given value is checked against its range
    (`SETTING_BOUNDS`) before anything is stored.
    """
    unknown = set(values) - set(SETTING_BOUNDS)
    if unknown:
        raise InputError(f"unknown queue settings: {', '.join(sorted(unknown))}")
    given = {name: check_setting(name, v) for name, v in values.items() if v is not None}
    merged = {**queue_settings_of(project.settings), **given}
    project.update_settings(review=merged)
    apply_overlap(project)
    if "audit_rate" in given:
        sample_audit(project)
    return QueueSettings(**merged)


def apply_overlap(project: ProjectScope) -> int:
    """Set `answers_needed` of review and active tasks from the overlap settings.

    With adaptive overlap, a task with no answer yet needs one, and answered tasks are left to
    the answer path and the refit of the annotator model (`answers.settle_adaptive`).

    Call after routing or selection adds tasks. A task is done once it has `answers_needed`
    answers plus one per live rejection (`store.reviews.task_done`): the rejections are counted
    on the task, so re-applying the overlap never drops the extra answer a rejection asked for.
    Only tasks whose values change are written (the server applies it at every start: rewriting
    a million unchanged rows would bloat the store). Returns the number of tasks changed.
    """
    settings = queue_settings(project)
    with writing(project) as session:
        changed = store.set_answers_needed(
            session,
            project.id,
            OVERLAP_QUEUES,
            overlap=int(settings.overlap),
            share=float(settings.overlap_share),
            adaptive=settings.overlap_mode == "adaptive",
        )
        if changed:  # rejections wait for as many people as a task wants
            settle(session.connection(), project.id)
        return changed


def enqueue(
    project: ProjectScope,
    item_ids: Sequence[int],
    *,
    queue: str = Queue.ACTIVE,
    priorities: Sequence[float] | None = None,
) -> int:
    """Queue items (store ids) for people; earlier ids are served first unless priorities say.

    Items already in that queue are left as they are, and gold items are left out: they are
    checks served at the gold rate, never work in a queue. Returns the number of new tasks.
    """
    if queue not in TASK_QUEUES:
        raise InputError(f"queue must be one of {', '.join(TASK_QUEUES)}, not {queue!r}")
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    if priorities is None:
        priorities = [i / max(len(ids), 1) for i in range(len(ids))]
    elif len(priorities) != len(item_ids):
        raise InputError("give one priority per item")
    priority_of = dict(zip((int(i) for i in item_ids), priorities, strict=True))
    added = 0
    with writing(project) as session:
        for start in range(0, len(ids), store.CHUNK):
            chunk = ids[start : start + store.CHUNK]
            split_of = splits_of(session, project.id, chunk)
            if len(split_of) != len(chunk):
                missing = next(i for i in chunk if i not in split_of)
                raise NotFoundError(f"no item with store id {missing}")
            queued = store.queued_in(session, chunk, queue)
            new = {
                i: float(priority_of[i]) for i in chunk if i not in queued and split_of[i] != GOLD
            }
            added += store.add_tasks(session, project.id, queue, new)
            settle(session.connection(), project.id, list(new))  # disagreements wait for them
    if queue != Queue.AUDIT:
        apply_overlap(project)
    return added


def sample_audit(project: ProjectScope, rate: float | None = None, random_state: Any = None) -> int:
    """Queue a random share of auto-accepted items for audit (up to `rate` of all of them).

    Idempotent: a second call with the same rate adds only what new auto-accepted items need.
    """
    if rate is None:
        rate = queue_settings(project).audit_rate
    rate = float(check_setting("audit_rate", rate))
    rng = random.Random(random_state)
    with writing(project) as session:
        # Audited items that people have since answered left the auto-accepted state; they
        # still count toward the share, so that answering audits never triggers more of them.
        audited, unaudited = store.audit_counts(session, project.id)
        wanted = round(rate * (unaudited + audited)) - audited
        if wanted <= 0:
            return 0
        candidates = store.unaudited_auto_accepted(session, project.id)
        chosen = rng.sample(candidates, min(wanted, len(candidates)))
        for start in range(0, len(chosen), store.CHUNK):
            chunk = chosen[start : start + store.CHUNK]
            store.mark_audited(session, chunk)
            store.add_tasks(session, project.id, Queue.AUDIT, {i: rng.random() for i in chunk})
            settle(session.connection(), project.id, chunk)
        return len(chosen)


# ----------------------------------------------------------------------------- serving items
# The serving path (next item, answer, undo) runs one short transaction per request, whose
# statements (`labelloop.store.reviews`) each touch a handful of rows through an index: its cost
# does not grow with the store. `bench/bench_server.py` measures it with 1,000,000 queued items.
def queue_settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """The queue settings stored in a project's settings; a value out of range (stored before
    ranges were checked) reads as the default."""
    stored = settings.get("review") or {}
    merged = dict(DEFAULT_SETTINGS)
    for name, value in stored.items():
        bounds = SETTING_BOUNDS.get(name)
        if bounds is not None and bounds.holds(value):
            merged[name] = value
    return merged


def settings_in(conn: Connection, project: ProjectScope) -> dict[str, Any]:
    """The queue settings read inside the caller's transaction."""
    return queue_settings_of(store.stored_settings(conn, project.id))


@dataclass(frozen=True, slots=True)
class Suggestion(Result):
    """The label suggested to a person, with its confidence (calibrated when a calibration is
    in force) and the labeler's reasoning."""

    label: str
    confidence: float | None
    calibrated: bool
    reasoning: str | None


@dataclass(frozen=True, slots=True)
class ReviewItem(Result):
    """An item as a person is shown it (`next_item`); `to_dict` is what the review API sends.

    Gold checks look like review items, so that people cannot tell them apart: their `queue`
    is the review queue's. `suggested_set` is sent on a multi-label project only."""

    id: int
    uid: str
    text: str  # cut at `MAX_TEXT_SHOWN`
    truncated: bool
    suggestion: Suggestion | None
    queue: str
    suggested_set: SuggestedSet | None = None
    multi_label: bool = False  # not sent: whether `suggested_set` is

    def to_dict(self) -> dict[str, Any]:
        sent: dict[str, Any] = {
            "id": self.id,
            "uid": self.uid,
            "text": self.text,
            "truncated": self.truncated,
            "suggestion": None if self.suggestion is None else self.suggestion.to_dict(),
            "queue": self.queue,
        }
        if self.multi_label:
            shown = self.suggested_set
            sent["suggested_set"] = None if shown is None else shown.to_dict()
        return sent


def payload(conn: Connection, item_id: int, queue: str) -> ReviewItem:
    """An item as a person is shown it: text (cut at `MAX_TEXT_SHOWN`) and suggestion, and
    on a multi-label project the suggested set with each label's probability."""
    item = store.shown_item(conn, item_id)
    calibrated = item.calibrated_confidence
    suggestion = None
    if item.llm_label is not None:
        suggestion = Suggestion(
            label=item.llm_label,
            confidence=calibrated if calibrated is not None else item.confidence,
            calibrated=calibrated is not None,
            reasoning=item.reasoning,
        )
    multi = bool((item.settings or {}).get(MULTI_LABEL))
    return ReviewItem(
        id=item.id,
        uid=item.uid,
        text=item.text[:MAX_TEXT_SHOWN],
        truncated=len(item.text) > MAX_TEXT_SHOWN,
        suggestion=suggestion,
        queue=Queue.REVIEW if queue == Queue.GOLD else queue,
        suggested_set=suggested_set(conn, item_id) if multi else None,
        multi_label=multi,
    )


def _gold_item(conn: Connection, lease: Lease) -> int | None:
    candidates = store.gold_candidates(conn, lease)
    return random.choice(candidates) if candidates else None


def next_item(
    project: ProjectScope, annotator_id: int, *, exclude: Sequence[int] = ()
) -> ReviewItem | None:
    """The caller's next item (leased to them), or None when nothing is left for them.

    A lease the caller already holds is served again first (a reload shows the same item),
    gold check or not; `exclude` lists item ids the caller already has on screen or prefetched.
    """
    with transaction(project) as conn:
        return next_in(conn, project, annotator_id, exclude, settings_in(conn, project))


def lease_for(
    project: ProjectScope,
    annotator_id: int,
    settings: dict[str, Any],
    exclude: Sequence[int] = (),
) -> Lease:
    """A lease taken now by `annotator_id`, for `lease_minutes` of the queue settings."""
    now = common.now()
    expires = now + timedelta(minutes=float(settings["lease_minutes"]))
    return Lease(project.id, annotator_id, now, expires, tuple(exclude))


def next_in(
    conn: Connection,
    project: ProjectScope,
    annotator_id: int,
    exclude: Sequence[int],
    settings: dict[str, Any],
) -> ReviewItem | None:
    """`next_item` inside the caller's transaction."""
    lease = lease_for(project, annotator_id, settings, [int(i) for i in exclude][:MAX_EXCLUDE])
    held = store.held_task(conn, lease)
    if held is not None:
        return payload(conn, held.item_id, held.queue)
    gold_rate = float(settings["gold_rate"])
    if gold_rate > 0:
        gold = store.held_gold(conn, lease)
        # Gold checks are mixed into a stream that is not over yet.
        if gold is None and random.random() < gold_rate and store.has_free_task(conn, lease):
            gold = _gold_item(conn, lease)
        if gold is not None:
            store.lease_gold(conn, lease, gold)
            return payload(conn, gold, Queue.GOLD)
    task = store.take_task(conn, lease)
    return payload(conn, task.item_id, task.queue) if task is not None else None


def release_leases(project: ProjectScope, annotator_id: int) -> int:
    """Give back every lease a person holds, gold checks included (logout, or leaving the
    review page); they can no longer answer those items until they are served them again."""
    with transaction(project) as conn:
        return store.release_leases(conn, project.id, annotator_id)
