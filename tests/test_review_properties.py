"""The review queues' invariants under random sequences of work (hypothesis), on both stores.

People are served items, answer them (accept, correct, reject, skip), undo, give leases back;
an admin changes the settings, routing and retraining re-apply them, active learning enqueues,
and time passes (the queues' clock is moved by hand). After every step:

- every item in review has an open task or a live lease (nothing is stranded);
- a task's counts are its live answers, and it is done exactly when it has them all;
- nobody is served an item twice, or an item someone else holds, or one already answered enough;
- an answer is taken exactly when the rule says so (`review.answers.answer_queue`), and a refused
  answer changes nothing;
- no answer is lost or counted twice, and `stats` and the queue counts agree with the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from labelloop import Project, review
from labelloop.store import GOLD, IN_REVIEW, Annotation, GoldLease, Item, ReviewTask
from test_review_service import LABELS, Clock, seed, user

pytestmark = pytest.mark.usefixtures("fast_password_hashing")
ACTIONS = ("accept", "correct", "reject", "skip")
EXAMPLES = {"sqlite": 20, "postgres": 6}


def utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes (stored in UTC)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(frozen=True, order=True)
class Task:
    id: int
    item_id: int
    queue: str
    answers_needed: int
    answers: int
    rejections: int
    done: bool
    lease_owner: int | None
    lease_expires: datetime | None


class Store:
    """The queues as the store holds them, read in one go."""

    def __init__(self, project: Project, now: datetime) -> None:
        with project.store.session() as session:
            self.tasks = [
                Task(
                    t.id,
                    t.item_id,
                    t.queue,
                    t.answers_needed,
                    t.answers,
                    t.rejections,
                    t.done,
                    t.lease_owner,
                    utc(t.lease_expires),
                )
                for t in session.scalars(
                    select(ReviewTask).where(ReviewTask.project_id == project.id)
                )
            ]
            self.answers = session.execute(
                select(
                    Annotation.id,
                    Annotation.item_id,
                    Annotation.annotator_id,
                    Annotation.action,
                    Annotation.queue,
                    Annotation.undone,
                ).where(Annotation.project_id == project.id)
            ).all()
            self.items = {
                i: (state, split)
                for i, state, split in session.execute(
                    select(Item.id, Item.state, Item.split).where(Item.project_id == project.id)
                )
            }
            self.gold_leases = {
                (item, who): utc(expires)
                for item, who, expires in session.execute(
                    select(GoldLease.item_id, GoldLease.annotator_id, GoldLease.lease_expires)
                )
            }
        self.now = now

    def key(self) -> tuple:
        return (sorted(self.tasks), sorted(self.answers), self.items, self.gold_leases)

    def live(self, **where: Any) -> list[Any]:
        rows = [a for a in self.answers if not a.undone]
        return [a for a in rows if all(getattr(a, k) == v for k, v in where.items())]

    def answered(self, item: int, who: int, *, skips: bool = True) -> bool:
        return any(skips or a.action != "skip" for a in self.live(item_id=item, annotator_id=who))

    def open_tasks(self, item: int) -> list[Task]:
        return [t for t in self.tasks if t.item_id == item and not t.done]

    def live_lease(self, task: Task) -> int | None:
        """Who holds the task now, if anyone."""
        if task.lease_owner is None or task.lease_expires < self.now:
            return None
        return task.lease_owner


class Queues(RuleBasedStateMachine):
    """One project per example; `project_factory` and `clock` are set by the test."""

    project_factory: Any = None
    clock: Clock = None  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.clock.now = datetime.now(UTC)
        self.project = self.project_factory()
        self.ids = seed(self.project, 4, n_confident=1, n_gold=1)
        self.people = [user(self.project, "ann"), user(self.project, "bob")]
        self.people.append(user(self.project, "boss", role="admin"))
        self.items = sorted(i for group in self.ids.values() for i in group)
        self.live: dict[int, int] = {}  # answer id -> who: what the service told us it kept
        self.shown: dict[int, list[int]] = {who.id: [] for who in self.people}

    def teardown(self) -> None:
        self.project.close()

    def store(self) -> Store:
        return Store(self.project, self.clock())

    # ------------------------------------------------------------------ rules
    @rule(person=st.integers(0, 2), held=st.booleans())
    def serve(self, person: int, held: bool) -> None:
        who = self.people[person]
        exclude = self.shown[who.id][-3:] if held else []
        before = self.store()
        self.check_served(
            before, who, exclude, review.next_item(self.project, who.id, exclude=exclude)
        )

    @rule(person=st.integers(0, 2), action=st.sampled_from(ACTIONS), then_next=st.booleans())
    def answer_served(self, person: int, action: str, then_next: bool) -> None:
        """What the review page does: answer the item on screen, maybe bringing the next."""
        who = self.people[person]
        if self.shown[who.id]:
            self.answer(who, self.shown[who.id][-1], action, then_next)

    @rule(person=st.integers(0, 2), action=st.sampled_from(ACTIONS), data=st.data())
    def answer_any(self, person: int, action: str, data: st.DataObject) -> None:
        """What a careless or curious script does: answer any item."""
        item = data.draw(st.sampled_from(self.items), label="item")
        self.answer(self.people[person], item, action, then_next=False)

    def answer(self, who: review.Principal, item: int, action: str, then_next: bool) -> None:
        before = self.store()
        may = self.may_answer(before, who, item, action)
        label = LABELS[1] if action == "correct" else None
        try:
            done = review.submit(
                self.project, who, item, action=action, label=label, then_next=then_next
            )
        except review.ConflictError:
            assert not may, f"{who.name} was refused {action} on {item}"
            assert self.store().key() == before.key(), "a refused answer changed the store"
            return
        assert may, f"{who.name} answered {item} ({action}) without holding it"
        self.live[done.annotation_id] = who.id
        self.shown[who.id] = [i for i in self.shown[who.id] if i != item]
        if then_next:  # served in the same transaction, from the store as it was before
            self.check_served(before, who, [item], done.next)

    def check_served(
        self, before: Store, who: review.Principal, exclude: list[int], item: Any
    ) -> None:
        if item is None:
            # Nothing left for them: no open task they could have taken.
            for task in before.tasks:
                takeable = not task.done and before.live_lease(task) in (None, who.id)
                assert not (
                    takeable
                    and task.item_id not in exclude
                    and not before.answered(task.item_id, who.id)
                ), f"{task} was left out"
            return
        served = item["id"]
        assert item["queue"] != "gold" and served not in exclude
        assert not before.answered(served, who.id), "served an item they answered"
        after = self.store()
        if before.items[served][1] == GOLD:
            assert (served, who.id) in after.gold_leases
        else:
            (task,) = [t for t in after.open_tasks(served) if after.live_lease(t) == who.id]
            (was,) = [t for t in before.tasks if t.id == task.id]
            assert not was.done, "served a task already done"
            assert was.answers < was.answers_needed + was.rejections, "served beyond the overlap"
            assert before.live_lease(was) in (None, who.id), "served someone else's item"
        self.shown[who.id] = [i for i in self.shown[who.id] if i != served] + [served]

    def may_answer(self, store: Store, who: review.Principal, item: int, action: str) -> bool:
        """The answer rule, restated: hold it (task lease or gold check), or be an admin
        labeling an item nobody else holds; and not have answered it already."""
        if store.answered(item, who.id, skips=False):
            return False
        if store.items[item][1] == GOLD:
            return (item, who.id) in store.gold_leases
        tasks = store.open_tasks(item)
        if any(t.lease_owner == who.id for t in tasks):
            return True
        if not who.is_admin:
            return False
        if not tasks:
            return action != "reject" and action != "skip"
        return any(store.live_lease(t) is None for t in tasks)

    @rule(person=st.integers(0, 2))
    def undo(self, person: int) -> None:
        who = self.people[person]
        mine = [a for a, owner in self.live.items() if owner == who.id]
        if not mine:
            with pytest.raises(review.NotFoundError):
                review.undo(self.project, who)
            return
        assert review.undo(self.project, who).undone == max(mine)
        del self.live[max(mine)]

    @rule(person=st.integers(0, 2))
    def release(self, person: int) -> None:
        review.release_leases(self.project, self.people[person].id)

    @rule()
    def route(self) -> None:
        self.project.route()

    @rule()
    def retrain(self) -> None:
        review.apply_overlap(self.project)  # what a background retraining ends with

    @rule(data=st.data())
    def enqueue(self, data: st.DataObject) -> None:
        picked = data.draw(st.lists(st.sampled_from(self.items), max_size=3, unique=True))
        self.project.enqueue(picked, queue="active")

    @rule(
        overlap=st.none() | st.integers(1, 3),
        overlap_share=st.none() | st.sampled_from([0.0, 0.5, 1.0]),
        gold_rate=st.none() | st.sampled_from([0.0, 0.5]),
        audit_rate=st.none() | st.sampled_from([0.0, 0.5]),
        lease_minutes=st.none() | st.sampled_from([1.0, 10.0]),
    )
    def change_settings(self, **values: Any) -> None:
        self.project.set_queue_settings(**values)

    @rule(minutes=st.sampled_from([0.5, 2.0, 11.0]))
    def time_passes(self, minutes: float) -> None:
        self.clock.advance(minutes=minutes)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def queues_hold(self) -> None:
        store = self.store()
        self.answers_are_kept_once(store)
        self.tasks_count_their_live_answers(store)
        self.nothing_in_review_is_stranded(store)
        self.stats_agree_with_the_queues(store)

    def answers_are_kept_once(self, store: Store) -> None:
        assert {a.id: a.annotator_id for a in store.live()} == self.live
        for item in self.items:
            for who in self.people:
                given = store.live(item_id=item, annotator_id=who.id)
                assert len([a for a in given if a.action != "skip"]) <= 1

    def tasks_count_their_live_answers(self, store: Store) -> None:
        queue_settings = review.queue_settings(self.project)
        share = round(queue_settings.overlap_share * 1000)
        for t in store.tasks:
            given = [a for a in store.live(item_id=t.item_id, queue=t.queue) if a.action != "skip"]
            assert t.answers == len(given), t
            assert t.rejections == len([a for a in given if a.action == "reject"]), t
            assert t.done == (t.answers >= t.answers_needed + t.rejections), t
            overlap = queue_settings.overlap if t.item_id * 7919 % 1000 < share else 1
            assert t.answers_needed == (overlap if t.queue in ("review", "active") else 1), t

    def nothing_in_review_is_stranded(self, store: Store) -> None:
        for item, (state, _) in store.items.items():
            if state == IN_REVIEW:
                tasks = [t for t in store.tasks if t.item_id == item]
                assert any(not t.done or store.live_lease(t) for t in tasks), f"{item} stranded"

    def stats_agree_with_the_queues(self, store: Store) -> None:
        stats = self.project.stats()
        for state in ("auto_accepted", "in_review", "human_labeled", "unresolved"):
            assert getattr(stats, state) == sum(s == state for s, _ in store.items.values())
        counts = review.queue_counts(self.project)
        for queue in {t.queue for t in store.tasks}:
            tasks = [t for t in store.tasks if t.queue == queue]
            leased = [t for t in tasks if not t.done and store.live_lease(t) is not None]
            assert counts[queue].open == sum(not t.done for t in tasks)
            assert counts[queue].done == sum(t.done for t in tasks)
            assert counts[queue].leased == len(leased)
            assert counts[queue].answers == sum(a.action != "skip" for a in store.live(queue=queue))


def test_queue_invariants_hold_under_random_work(make_project, db_url, monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(review.common, "clock", clock)
    Queues.project_factory = staticmethod(make_project)
    Queues.clock = clock
    store = "sqlite" if db_url.startswith("sqlite") else "postgres"
    run_state_machine_as_test(
        Queues,
        settings=settings(
            max_examples=EXAMPLES[store],
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,  # a failure prints the steps that reproduce it
        ),
    )
