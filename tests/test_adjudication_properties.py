"""Final labels, their sources and the adjudication queue under random work (hypothesis), on
both stores.

Annotators answer (every action), withdraw answers, flag and unflag items; a reviewer flags and
unflags any item, decides, undoes decisions, and decides-then-undoes at once; an admin switches
the final-label method, the overlap, fixed or adaptive overlap, and whether reviewers see names;
routing runs again.
After every step, checked against a model of what was done (not against the service's own
code):

- an item with a live decision has the newest one's label, source `adjudicated`, state
  `human_labeled`; no other item has the source `adjudicated` (gold items never);
- an item without a decision takes its source from its standing answers: `human` when someone's
  latest answer gives a label (under the majority, a label someone gave), else never `human`;
- the adjudication queue holds exactly the pool items without a live decision whose standing
  answers disagree once their tasks are done, that everyone rejected (as many people as their
  task wanted), or that someone flagged; exactly those items carry the `needs_reviewer` flag,
  and `stats` counts them;
- undoing a decision right after making it gives back the item's label, source, state and
  posterior, and its place in the queue.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from labelloop import review
from labelloop.review import adjudication
from labelloop.review.answers import AnswerIn
from labelloop.store import Item, ReviewTask
from test_review_service import LABELS, seed, user

pytestmark = pytest.mark.usefixtures("fast_password_hashing")
ACTIONS = ("label", "accept", "correct", "reject", "skip")
EXAMPLES = {"sqlite": 25, "postgres": 6}


class Adjudication(RuleBasedStateMachine):
    """One project per example; `project_factory` is set by the test."""

    project_factory: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.project = self.project_factory()
        ids = seed(self.project, 2, n_gold=1)
        self.pool, self.gold = ids["review"], ids["gold"]
        self.items = [*self.pool, *self.gold]
        self.project.set_queue_settings(overlap=3)
        self.people = [user(self.project, name) for name in ("ann", "bob", "cat")]
        self.rita = user(self.project, "rita", role="reviewer")
        # The model: live answers per item (id, who, label, action), decisions, flags.
        self.answers: dict[int, list[tuple[int, int, str | None, str]]] = {
            i: [] for i in self.items
        }
        self.decisions: list[tuple[int, int, str]] = []  # (decision id, item, label), live
        self.flags: set[tuple[int, int]] = set()  # (item, who)

    def teardown(self) -> None:
        self.project.close()

    # ------------------------------------------------------------------ rules
    @rule(
        person=st.integers(0, 2),
        item=st.integers(0, 2),
        action=st.sampled_from(ACTIONS),
        label=st.sampled_from(LABELS),
    )
    def answer(self, person: int, item: int, action: str, label: str) -> None:
        who, item_id = self.people[person], self.items[item]
        given = label if action in ("label", "correct") else None
        done = review.annotate(self.project, item_id, AnswerIn(action, given, who.id))
        kept = self.item_row(item_id).llm_label if action == "accept" else given
        self.answers[item_id].append((done.annotation_id, who.id, kept, action))

    @rule(data=st.data())
    def withdraw_answer(self, data: st.DataObject) -> None:
        live = [(item, a) for item, answers in self.answers.items() for a in answers]
        if not live:
            return
        item, answer = data.draw(st.sampled_from(live), label="answer")
        review.unannotate(self.project, answer[0])
        self.answers[item].remove(answer)

    @rule(person=st.integers(0, 2), item=st.integers(0, 2), on=st.booleans())
    def flag(self, person: int, item: int, on: bool) -> None:
        who, item_id = self.people[person], self.items[item]
        if not on:
            adjudication.unflag(self.project, who, item_id)
            self.flags.discard((item_id, who.id))
            return
        answered = any(a[1] == who.id for a in self.answers[item_id])
        try:
            adjudication.flag(self.project, who, item_id, "why?")
        except review.ConflictError:
            assert not answered  # only what one was served or answered
            return
        assert answered
        self.flags.add((item_id, who.id))

    @rule(item=st.integers(0, 2), on=st.booleans())
    def reviewer_flags(self, item: int, on: bool) -> None:
        """A reviewer flags any item, answered or not, and withdraws the flag."""
        item_id = self.items[item]
        if on:
            adjudication.flag(self.project, self.rita, item_id, "look again")
            self.flags.add((item_id, self.rita.id))
        else:
            adjudication.unflag(self.project, self.rita, item_id)
            self.flags.discard((item_id, self.rita.id))

    @rule(item=st.integers(0, 2), label=st.sampled_from(LABELS))
    def decide(self, item: int, label: str) -> None:
        item_id = self.items[item]
        try:
            made = adjudication.decide(self.project, self.rita, item_id, label, "note").to_dict()
        except review.ConflictError:
            assert item_id in self.gold
            return
        assert item_id not in self.gold
        self.decisions.append((made["decision_id"], item_id, label))

    @rule()
    def undo_decision(self) -> None:
        try:
            undone = adjudication.undo(self.project, self.rita).to_dict()
        except review.NotFoundError:
            assert not self.decisions
            return
        assert undone["undone"] == self.decisions[-1][0]  # the reviewer's latest
        self.decisions.pop()

    @rule(item=st.integers(0, 1), label=st.sampled_from(LABELS))
    def decide_then_undo(self, item: int, label: str) -> None:
        item_id = self.pool[item]
        before, queued = self.snapshot(item_id), self.queued()
        adjudication.decide(self.project, self.rita, item_id, label)
        assert self.item_row(item_id).final_source == "adjudicated"
        adjudication.undo(self.project, self.rita)
        assert self.snapshot(item_id) == before
        assert self.queued() == queued

    @rule(
        method=st.sampled_from(["weighted", "majority"]),
        overlap=st.integers(1, 3),
        mode=st.sampled_from(["fixed", "adaptive"]),
        names=st.booleans(),
    )
    def change_settings(self, method: str, overlap: int, mode: str, names: bool) -> None:
        review.set_queue_settings(self.project, overlap=overlap, overlap_mode=mode)
        adjudication.set_show_names(self.project, names)
        self.project.resolve(final_label=method)

    @rule()
    def route(self) -> None:
        self.project.route(threshold=0.85)

    # ------------------------------------------------------------------ checks
    def item_row(self, item_id: int) -> Any:
        with self.project.store.session() as session:
            return session.get(Item, item_id)

    def snapshot(self, item_id: int) -> tuple:
        row = self.item_row(item_id)
        return row.state, row.final_label, row.final_source, row.label_posterior

    def queued(self) -> set[int]:
        return {item for item, _ in adjudication.pending(self.project)}

    def standing(self, item_id: int) -> dict[int, str]:
        """Each person's latest labeling answer on the item (the model's `latest_labels`)."""
        latest: dict[int, str] = {}
        for _, who, label, action in self.answers[item_id]:
            if action in ("label", "accept", "correct") and label is not None:
                latest[who] = label
        return latest

    def decided(self) -> dict[int, str]:
        return {item: label for _, item, label in self.decisions}  # the newest wins

    @invariant()
    def labels_follow_decisions_then_answers(self) -> None:
        decided = self.decided()
        method = self.project.settings.get("final_label", "weighted")
        for item_id in self.items:
            row = self.item_row(item_id)
            if item_id in decided:
                assert (row.state, row.final_label, row.final_source) == (
                    "human_labeled",
                    decided[item_id],
                    "adjudicated",
                )
                continue
            assert row.final_source != "adjudicated"
            if item_id in self.gold:
                continue
            standing = set(self.standing(item_id).values())
            assert (row.final_source == "human") == bool(standing)
            if standing and method == "majority":
                assert row.final_label in standing

    @invariant()
    def the_queue_is_what_was_done(self) -> None:
        with self.project.store.session() as session:
            tasks = session.execute(
                select(ReviewTask.item_id, ReviewTask.answers_needed, ReviewTask.done)
            ).all()
        decided = self.decided()
        expected = set()
        for item_id in self.pool:
            if item_id in decided:
                continue
            mine = [t for t in tasks if t.item_id == item_id]
            standing = set(self.standing(item_id).values())
            rejecters = {who for _, who, _, action in self.answers[item_id] if action == "reject"}
            wanted = max([t.answers_needed for t in mine], default=1)
            if (
                (len(standing) > 1 and all(t.done for t in mine))
                or (not standing and rejecters and len(rejecters) >= wanted)
                or any(item == item_id for item, _ in self.flags)
            ):
                expected.add(item_id)
        assert self.queued() == expected
        # Each item's kept flag says the same as the rule, and `stats` counts it.
        mine = select(Item.id).where(Item.project_id == self.project.id)
        with self.project.store.session() as session:
            flagged = set(session.scalars(mine.where(Item.needs_reviewer.is_(True))))
            unsettled = session.scalar(mine.where(Item.needs_reviewer.is_(None)))
        assert flagged == expected and unsettled is None
        assert self.project.stats().adjudication_waiting == len(expected)


def test_labels_sources_and_queue_stay_consistent(make_project, db_url) -> None:
    Adjudication.project_factory = staticmethod(make_project)
    store = "sqlite" if db_url.startswith("sqlite") else "postgres"
    run_state_machine_as_test(
        Adjudication,
        settings=settings(
            max_examples=EXAMPLES[store],
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,  # a failure prints the steps that reproduce it
        ),
    )
