"""Review queues, leases, accounts and the dashboard at the service layer, on both databases."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from labelloop import review
from labelloop.labelers.base import LabelResult
from labelloop.review import Principal
from labelloop.store import Annotation, Annotator, ApiToken, GoldLease, Item, ReviewTask

LABELS = ("positive", "negative", "neutral")


pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def seed(project, n_review: int, *, n_confident: int = 0, n_gold: int = 0) -> dict[str, list]:
    """Items with predictions: `n_review` uncertain (queued), `n_confident` auto-accepted, gold.

    Uncertain item i gets confidence 0.30 + i / (10 n): lower confidence is served first.
    Returns the store ids per group.
    """
    rows = [{"id": f"r{i}", "text": f"review text {i}"} for i in range(n_review)]
    rows += [{"id": f"c{i}", "text": f"confident text {i}"} for i in range(n_confident)]
    if rows:
        project.add_items(rows, id_col="id")
    if n_gold:
        gold = [
            {"id": f"g{i}", "text": f"gold text {i}", "label": LABELS[i % 3]} for i in range(n_gold)
        ]
        project.add_items(gold, id_col="id", label_col="label", split="gold")
    ids = {
        "review": [project.item_id(f"r{i}") for i in range(n_review)],
        "confident": [project.item_id(f"c{i}") for i in range(n_confident)],
        "gold": [project.item_id(f"g{i}") for i in range(n_gold)],
    }
    results = [
        (item, LabelResult(LABELS[i % 3], None, 0.30 + i / (10 * max(n_review, 1)), f"why {i}"))
        for i, item in enumerate(ids["review"])
    ]
    results += [(item, LabelResult("positive", None, 0.97, "sure")) for item in ids["confident"]]
    # Gold items are predicted "positive": right on a third of them.
    results += [(item, LabelResult("positive", None, 0.95, "gold guess")) for item in ids["gold"]]
    project.save_predictions("fake", "v1", results)
    project.set_active_predictor("fake", "v1")
    project.route(threshold=0.85)
    return ids


class Clock:
    """The queues' clock, moved by hand: leases run out without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(review.common, "clock", clock)
    return clock


def drain(project, who: Principal, action: str = "accept", limit: int = 10_000) -> list[int]:
    """Answer everything served to `who`; returns the item ids in the order served."""
    seen = []
    for _ in range(limit):
        item = review.next_item(project, who.id)
        if item is None:
            return seen
        seen.append(item.id)
        review.submit(project, who, item.id, action=action, time_spent_s=1.0)
    raise AssertionError("the queue never ran dry")


def user(project, name: str, role: str = "annotator") -> Principal:
    made = review.add_user(project, name, role=role, password="password-" + name)
    return Principal(made.id, made.name, made.role)


def test_serves_lowest_confidence_first_with_suggestion_and_reasoning(make_project) -> None:
    project = make_project()
    ids = seed(project, 5, n_confident=3)
    ann = user(project, "ann")
    first = review.next_item(project, ann.id)
    assert first.id == ids["review"][0]
    assert first.queue == "review"
    # What the review API sends of it, in order (`suggested_set` on multi-label projects only).
    assert list(first.to_dict()) == ["id", "uid", "text", "truncated", "suggestion", "queue"]
    assert first.to_dict()["suggestion"] == {
        "label": "positive",
        "confidence": pytest.approx(0.30),
        "calibrated": False,
        "reasoning": "why 0",
    }
    # A lease held is served again (a reload shows the same item) unless it is excluded.
    assert review.next_item(project, ann.id).id == first.id
    assert review.next_item(project, ann.id, exclude=[first.id]).id == ids["review"][1]
    served = drain(project, ann)
    assert sorted(served) == sorted(ids["review"])  # confident items are not queued
    assert review.next_item(project, ann.id) is None


def test_two_annotators_never_share_a_leased_item(make_project) -> None:
    project = make_project()
    ids = seed(project, 4)
    ann, bob = user(project, "ann"), user(project, "bob")
    a = review.next_item(project, ann.id)
    b = review.next_item(project, bob.id)
    assert a.id != b.id
    # An expired lease is free again: bob takes ann's item after her lease ran out.
    with project.store.session() as session:
        session.execute(
            update(ReviewTask)
            .where(ReviewTask.item_id == a.id)
            .values(lease_expires=datetime.now(UTC) - timedelta(seconds=1))
        )
    c = review.next_item(project, bob.id, exclude=[b.id])
    assert c.id == a.id == ids["review"][0]


def test_parallel_annotators_lose_nothing_and_duplicate_nothing(make_project) -> None:
    project = make_project()
    ids = seed(project, 60)
    people = [user(project, f"p{i}") for i in range(4)]
    served: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(who: Principal) -> None:
        try:
            served[who.name] = drain(project, who)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(who,)) for who in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    everything = [item for items in served.values() for item in items]
    assert sorted(everything) == sorted(ids["review"])  # each item exactly once
    with project.store.session() as session:
        answers = session.scalar(select(func.count()).select_from(Annotation))
        open_tasks = session.scalar(
            select(func.count()).where(ReviewTask.done.is_(False)).select_from(ReviewTask)
        )
    assert answers == 60
    assert open_tasks == 0
    assert project.stats().human_labeled == 60


def twice_at_once(project, who: Principal, item_id: int) -> list[str]:
    """Send the same answer from two threads at the same moment; returns what became of each."""
    start, outcomes = threading.Barrier(2), []

    def send() -> None:
        start.wait()
        try:
            review.submit(project, who, item_id, action="accept")
            outcomes.append("taken")
        except review.ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_the_same_answer_sent_twice_at_once_is_taken_once(make_project) -> None:
    project = make_project()
    seed(project, 8)
    ann = user(project, "ann")
    for _ in range(8):
        item = review.next_item(project, ann.id).id
        assert twice_at_once(project, ann, item) == ["refused", "taken"]
    with project.store.session() as session:
        assert session.scalar(select(func.count()).select_from(Annotation)) == 8


def test_overlap_shows_an_item_to_n_different_people(make_project) -> None:
    project = make_project()
    ids = seed(project, 6)
    review.set_queue_settings(project, overlap=3)
    people = [user(project, name) for name in ("ann", "bob", "cy", "dee")]
    seen = {who.name: drain(project, who) for who in people}
    for name, items in seen.items():
        assert len(items) == len(set(items)), f"{name} saw an item twice"
    counts = {item: sum(item in items for items in seen.values()) for item in ids["review"]}
    assert set(counts.values()) == {3}
    board = review.dashboard(project).to_dict()
    assert board["queues"]["review"]["overlap"] == 6
    assert board["agreement"]["n_items"] == 6
    assert board["agreement"]["percent_agreement"]["estimate"] == pytest.approx(1.0)


def test_overlap_share_picks_a_stable_subset(make_project) -> None:
    project = make_project()
    seed(project, 200)
    review.set_queue_settings(project, overlap=2, overlap_share=0.25)
    with project.store.session() as session:
        doubled = session.scalar(
            select(func.count()).where(ReviewTask.answers_needed == 2).select_from(ReviewTask)
        )
    assert 20 <= doubled <= 80  # about a quarter of 200
    assert review.apply_overlap(project) == 0  # re-applying changes nothing
    with project.store.session() as session:
        again = session.scalar(
            select(func.count()).where(ReviewTask.answers_needed == 2).select_from(ReviewTask)
        )
    assert again == doubled


def test_gold_checks_are_disguised_and_scored_per_annotator(make_project) -> None:
    project = make_project()
    ids = seed(project, 10, n_gold=6)
    review.set_queue_settings(project, gold_rate=0.5)
    ann = user(project, "ann")
    served = drain(project, ann)
    gold_served = [item for item in served if item in ids["gold"]]
    assert gold_served, "no gold check was mixed in"
    assert set(ids["review"]) <= set(served)
    with project.store.session() as session:
        queues = dict(session.execute(select(Annotation.item_id, Annotation.queue)).all())
    assert {queues[item] for item in gold_served} == {"gold"}
    row = next(a for a in review.dashboard(project).to_dict()["annotators"] if a["name"] == "ann")
    # "accept" takes the LLM's "positive"; gold labels cycle positive/negative/neutral.
    gold_labels = {ids["gold"][i]: LABELS[i % 3] for i in range(6)}
    expected = sum(gold_labels[item] == "positive" for item in gold_served) / len(gold_served)
    assert row["gold_checked"] == len(gold_served)
    assert row["gold_accuracy"] == pytest.approx(expected)


def test_gold_item_payload_hides_the_queue(make_project) -> None:
    project = make_project()
    ids = seed(project, 3, n_gold=2)
    review.set_queue_settings(project, gold_rate=0.99)
    random.seed(0)  # gold checks are drawn at random: the same draws on every run
    ann = user(project, "ann")
    item = review.next_item(project, ann.id)
    assert item.id in ids["gold"]
    assert item.queue == "review"


def test_audit_sampling_and_auto_accepted_accuracy(make_project) -> None:
    project = make_project()
    ids = seed(project, 0, n_confident=40)
    assert review.sample_audit(project, 0.25, random_state=0) == 10
    assert review.sample_audit(project, 0.25, random_state=1) == 0  # idempotent
    ann = user(project, "ann")
    audited = []
    for i in range(10):
        item = review.next_item(project, ann.id)
        assert item.queue == "audit" and item.id in ids["confident"]
        audited.append(item.id)
        # 7 confirmations, 3 rejections.
        review.submit(project, ann, item.id, action="accept" if i < 7 else "reject")
    acc = review.dashboard(project).to_dict()["auto_accepted_accuracy"]["audit"]
    assert acc == {"n": 10, "accuracy": pytest.approx(0.7)}
    # A rejected auto-accepted item needs a label now: someone else is asked for it.
    bob = user(project, "bob")
    reopened = drain(project, bob, action="skip")
    assert sorted(reopened) == sorted(audited[7:])


def test_undo_restores_the_item_and_gives_it_back(make_project) -> None:
    project = make_project()
    ids = seed(project, 3)
    ann, bob = user(project, "ann"), user(project, "bob")
    item = review.next_item(project, ann.id)
    done = review.submit(project, ann, item.id, action="correct", label="neutral")
    assert project.stats().human_labeled == 1
    with pytest.raises(review.ConflictError):
        review.submit(project, ann, item.id, action="accept")  # no double answers
    with pytest.raises(review.ForbiddenError):
        review.undo(project, bob, done.annotation_id)
    back = review.undo(project, ann)
    assert back.undone == done.annotation_id
    assert back.item.id == item.id == ids["review"][0]
    assert project.stats().human_labeled == 0
    # The item is leased to ann again: bob gets another one.
    assert review.next_item(project, bob.id).id != item.id
    with pytest.raises(review.NotFoundError):
        review.undo(project, bob)


def test_undone_rejection_no_longer_asks_for_another_person(make_project) -> None:
    project = make_project()
    seed(project, 1)
    ann, bob = user(project, "ann"), user(project, "bob")
    item = review.next_item(project, ann.id)
    review.submit(project, ann, item.id, action="reject")
    review.undo(project, ann)
    review.submit(project, ann, item.id, action="accept")
    assert review.next_item(project, bob.id) is None
    assert project.stats().human_labeled == 1


def test_skip_frees_the_item_for_others_but_not_for_the_skipper(make_project) -> None:
    project = make_project()
    ids = seed(project, 1)
    ann, bob = user(project, "ann"), user(project, "bob")
    item = review.next_item(project, ann.id)
    review.submit(project, ann, item.id, action="skip")
    assert review.next_item(project, ann.id) is None
    assert review.next_item(project, bob.id).id == ids["review"][0]


def test_answers_outside_the_queue_are_refused(make_project) -> None:
    project = make_project()
    ids = seed(project, 1, n_confident=1)
    ann = user(project, "ann")
    with pytest.raises(review.ConflictError):
        review.submit(project, ann, ids["confident"][0], action="accept")
    with pytest.raises(review.NotFoundError):
        review.submit(project, ann, 10_000_000, action="accept")
    with pytest.raises(review.InputError):
        review.submit(project, ann, ids["review"][0], action="accept", time_spent_s=-1)


def test_a_refused_answer_leaves_nothing_behind(make_project) -> None:
    """An answer is one transaction: a second answer by the same person is rolled back whole."""
    project = make_project()
    project.set_queue_settings(overlap=2)
    ids = seed(project, 1)
    ann = user(project, "ann")
    item = review.next_item(project, ann.id)
    review.submit(project, ann, item.id, action="correct", label="negative")
    with pytest.raises(review.ConflictError):
        review.submit(project, ann, item.id, action="accept")
    with project.store.session() as session:
        labels = session.scalars(select(Annotation.label)).all()
        task = session.execute(select(ReviewTask.answers, ReviewTask.done)).one()
    assert labels == ["negative"] and tuple(task) == (1, False)
    assert review.next_item(project, ann.id) is None  # answered: never served again
    bob = user(project, "bob")
    assert review.next_item(project, bob.id).id == ids["review"][0]


def test_serving_queries_probe_indexes_after_analyze(tmp_path) -> None:
    """With planner statistics (ANALYZE), next-item walks indexes instead of the queue."""
    from sqlalchemy import event

    from labelloop import Project
    from labelloop.store import reviews as statements

    def explain(conn, cursor, statement, parameters, context, executemany):
        return "EXPLAIN QUERY PLAN " + statement, parameters

    project = Project.create(tmp_path / "p", task="t", labels=list(LABELS))
    try:
        seed(project, 300)
        ann = user(project, "ann")
        with project.store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")  # statistics taken while no task is leased
            conn.commit()
        review.next_item(project, ann.id)
        params = {"project": project.id, "who": ann.id, "now": datetime.now(UTC)}
        params |= {"exclude": [1], "expires": datetime.now(UTC)}
        with project.store.engine.connect() as conn:
            event.listen(conn, "before_cursor_execute", explain, retval=True)
            for exclude in (True, False):
                for query in (
                    statements._open_tasks(True, exclude),
                    statements._open_tasks(False, exclude),
                    statements._take(exclude),
                ):
                    plan = " ".join(str(row[-1]) for row in conn.execute(query, params))
                    assert "SCAN review_tasks" not in plan, plan
                    assert "USING INDEX ix_review_tasks_" in plan, plan
                plan = " ".join(
                    str(row[-1]) for row in conn.execute(statements._held_gold(exclude), params)
                )
                assert "USING INDEX ix_gold_leases_annotator" in plan, plan
    finally:
        project.close()


def test_a_new_predictor_reorders_the_review_queue_on_route(make_project) -> None:
    """Tasks queued under one predictor are served in the order of the one routing trusts
    after the next `route` (as after `learn`), not in the order they were queued in."""
    project = make_project()
    ids = seed(project, 4)  # the old predictor serves r0 first (lowest confidence)
    reversed_results = [
        (item, LabelResult(LABELS[i % 3], None, 0.70 - i / 10, "new"))
        for i, item in enumerate(ids["review"])
    ]
    project.save_predictions("other", "v1", reversed_results)
    project.set_active_predictor("other", "v1")
    project.route(threshold=0.85)
    ann = user(project, "ann")
    assert review.next_item(project, ann.id).id == ids["review"][-1]


def test_enqueue_active_selections_in_order(make_project) -> None:
    project = make_project()
    ids = seed(project, 0, n_confident=5)
    picked = ids["confident"][::-1][:3]
    assert review.enqueue(project, picked, queue="active") == 3
    assert review.enqueue(project, picked, queue="active") == 0
    ann = user(project, "ann")
    assert drain(project, ann) == picked
    with pytest.raises(review.NotFoundError):
        review.enqueue(project, [123_456_789])


def test_accounts_passwords_tokens_and_sessions(make_project) -> None:
    project = make_project()
    ann = user(project, "ann")
    assert review.authenticate(project, "ann", "password-ann") == ann
    assert review.authenticate(project, "ann", "wrong-password") is None
    assert review.authenticate(project, "nobody", "password-ann") is None
    with pytest.raises(review.ConflictError):
        review.add_user(project, "ann", password="another-one")
    with pytest.raises(review.InputError):
        review.add_user(project, "short", password="1234")
    with pytest.raises(review.InputError):
        review.add_user(project, "boss", role="root", password="long-enough")
    token = review.create_token(project, "ann")
    assert review.principal_for_token(project, token) == ann
    assert review.principal_for_token(project, token + "x") is None
    cookie, csrf = review.create_session(project, ann)
    assert review.session_principal(project, cookie) == (ann, csrf)
    review.end_session(project, cookie)
    assert review.session_principal(project, cookie) is None
    with project.store.session() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
        password_hash = session.scalar(select(Annotator.password_hash))
    assert token not in stored and len(stored) == 1  # only a hash is kept
    assert password_hash.startswith("$argon2")


def snapshot(project) -> tuple:
    """Everything an answer may change: answers, item states, task counts and leases."""
    with project.store.session() as session:
        answers = session.execute(
            select(Annotation.id, Annotation.undone).order_by(Annotation.id)
        ).all()
        states = session.execute(select(Item.id, Item.state, Item.final_label)).all()
        tasks = session.execute(
            select(
                ReviewTask.id,
                ReviewTask.answers,
                ReviewTask.rejections,
                ReviewTask.done,
                ReviewTask.lease_owner,
                ReviewTask.lease_expires,
            ).order_by(ReviewTask.id)
        ).all()
        gold = session.execute(select(GoldLease.item_id, GoldLease.annotator_id)).all()
    return answers, sorted(states), tasks, sorted(gold)


def refused(project, who: Principal, item_id: int, action: str = "accept", **options) -> str:
    """Answer and expect a refusal that changes nothing; returns its message."""
    before = snapshot(project)
    with pytest.raises(review.ConflictError) as refusal:
        review.submit(project, who, item_id, action=action, **options)
    assert snapshot(project) == before
    return str(refusal.value)


def test_an_answer_needs_the_callers_lease(make_project, clock) -> None:
    project = make_project()
    ids = seed(project, 3)
    ann, bob = user(project, "ann"), user(project, "bob")
    item = review.next_item(project, ann.id).id
    refused(project, bob, item)  # leased to ann
    refused(project, bob, ids["review"][2], action="skip")  # leased to nobody
    # Bob's refusals left ann's lease alone: she answers, and bob is never served the item.
    review.submit(project, ann, item, action="accept")
    assert item not in drain(project, bob)
    assert project.stats().human_labeled == 3


def test_a_lease_that_ran_out_counts_until_someone_else_takes_the_item(make_project, clock) -> None:
    project = make_project()
    project.set_queue_settings(lease_minutes=5)
    seed(project, 2)
    ann, bob = user(project, "ann"), user(project, "bob")
    first = review.next_item(project, ann.id).id
    second = review.next_item(project, ann.id, exclude=[first]).id
    clock.advance(minutes=6)
    review.submit(project, ann, first, action="accept")  # ran out, but nobody took it
    assert review.next_item(project, bob.id).id == second  # free for bob now
    refused(project, ann, second)
    review.submit(project, bob, second, action="accept")


def test_admins_label_directly_but_never_take_a_held_item(make_project, clock) -> None:
    project = make_project()
    ids = seed(project, 2, n_confident=1)
    ann, boss = user(project, "ann"), user(project, "boss", role="admin")
    held = review.next_item(project, ann.id).id
    refused(project, boss, held)
    # An item nobody holds: the admin's answer counts for its open task.
    free = ids["review"][1]
    review.submit(project, boss, free, action="correct", label="neutral")
    with project.store.session() as session:
        task = session.execute(
            select(ReviewTask.answers, ReviewTask.done).where(ReviewTask.item_id == free)
        ).one()
    assert tuple(task) == (1, True)
    # An item without an open task (auto-accepted): a direct label, counted for no queue.
    direct = review.submit(project, boss, ids["confident"][0], action="correct", label="neutral")
    with project.store.session() as session:
        assert session.get(Annotation, direct.annotation_id).queue is None
    assert project.stats().human_labeled == 2
    review.submit(project, ann, held, action="accept")  # ann's lease was never touched


def test_unserved_gold_checks_are_refused_like_any_unserved_item(make_project, clock) -> None:
    project = make_project()
    ids = seed(project, 2, n_gold=1)
    ann, bob = user(project, "ann"), user(project, "bob")
    gold, plain = ids["gold"][0], ids["review"][1]
    for who in (ann, bob):
        said = {
            kind: refused(project, who, item, action="skip").replace(str(item), "ID")
            for kind, item in (("gold", gold), ("review", plain))
        }
        assert said["gold"] == said["review"]
    project.set_queue_settings(gold_rate=0.99)
    random.seed(0)  # gold checks are drawn at random: the same draws on every run
    # Served to ann: a lease of her own, served again on a reload, answerable by her alone.
    assert review.next_item(project, ann.id).id == gold
    assert review.next_item(project, ann.id).id == gold
    refused(project, bob, gold, action="skip")
    review.submit(project, ann, gold, action="skip")
    refused(project, ann, gold, action="skip")  # once
    # Served to bob too: each person answers the same gold item once.
    assert review.next_item(project, bob.id).id == gold
    review.submit(project, bob, gold, action="correct", label=LABELS[0])
    assert gold not in drain(project, ann) + drain(project, bob)


def served_a_gold_check(make_project) -> tuple[Any, Principal, int]:
    """A project with one review item and one gold item, the gold check served to ann."""
    project = make_project()
    ids = seed(project, 1, n_gold=1)
    project.set_queue_settings(gold_rate=0.99)
    random.seed(0)  # gold checks are drawn at random: the same draws on every run
    ann = user(project, "ann")
    assert review.next_item(project, ann.id).id == ids["gold"][0]
    return project, ann, ids["gold"][0]


def test_undo_gives_a_gold_check_back_to_the_person_who_answered_it(make_project) -> None:
    project, ann, gold = served_a_gold_check(make_project)
    review.submit(project, ann, gold, action="accept")
    back = review.undo(project, ann).item
    assert back.id == gold and back.queue == "review"  # still looks like any item
    review.submit(project, ann, gold, action="correct", label="neutral")  # the lease came back
    assert review.release_leases(project, ann.id) == 0  # answered: nothing left held


def test_released_gold_checks_can_no_longer_be_answered(make_project) -> None:
    project, ann, gold = served_a_gold_check(make_project)
    assert review.release_leases(project, ann.id) == 1
    refused(project, ann, gold)


@pytest.mark.parametrize(
    "reapply",
    [
        lambda project: review.apply_overlap(project),  # server start, retraining
        lambda project: project.route(),
        lambda project: project.set_queue_settings(lease_minutes=20),
        lambda project: project.enqueue([], queue="active"),
    ],
    ids=["apply_overlap", "route", "settings", "enqueue"],
)
def test_a_rejection_keeps_asking_for_another_answer(make_project, reapply) -> None:
    project = make_project()
    ids = seed(project, 1)
    ann, bob = user(project, "ann"), user(project, "bob")
    item = review.next_item(project, ann.id).id
    review.submit(project, ann, item, action="reject")
    reapply(project)
    assert review.next_item(project, bob.id).id == item == ids["review"][0]
    review.submit(project, bob, item, action="correct", label="neutral")
    assert project.stats().human_labeled == 1
    with project.store.session() as session:
        task = session.execute(
            select(ReviewTask.answers, ReviewTask.rejections, ReviewTask.done)
        ).one()
    assert tuple(task) == (2, 1, True)


def test_trusted_answers_count_rejections_and_leave_other_leases(make_project) -> None:
    """`Project.annotate` (Python, CLI, Label Studio) records answers without leases."""
    project = make_project()
    project.set_queue_settings(overlap=2)
    ids = seed(project, 1)
    ann = user(project, "ann")
    item = review.next_item(project, ann.id).id
    project.annotate(item, action="reject", annotator="carl")
    review.apply_overlap(project)
    review.submit(project, ann, item, action="correct", label="neutral")  # still hers
    with project.store.session() as session:
        task = session.execute(select(ReviewTask.answers, ReviewTask.done)).one()
    assert tuple(task) == (2, False)  # overlap 2 and one rejection: a third answer is wanted
    project.annotate(ids["review"][0], action="label", label="neutral", annotator="dee")
    with project.store.session() as session:
        assert session.execute(select(ReviewTask.answers, ReviewTask.done)).one() == (3, True)


def test_a_trusted_answer_counts_for_the_task_its_author_holds(make_project) -> None:
    """Python users take items with `next_item` and answer them with `annotate`."""
    project = make_project()
    ids = seed(project, 1)
    project.enqueue(ids["review"], queue="active")  # served before the review task
    item = project.next_item("ann").id
    project.annotate(item, action="label", label="neutral", annotator="ann")
    with project.store.session() as session:
        tasks = dict(session.execute(select(ReviewTask.queue, ReviewTask.done)).all())
        lease = session.scalars(select(ReviewTask.lease_owner)).all()
        queue = session.scalar(select(Annotation.queue))
    assert queue == "active" and tasks == {"active": True, "review": False}
    assert lease == [None, None]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lease_minutes", 5e-324),
        ("lease_minutes", 0.5),
        ("lease_minutes", 1441),
        ("lease_minutes", float("nan")),
        ("lease_minutes", float("inf")),
        ("overlap", 0),
        ("overlap", 2.5),
        ("overlap", True),
        ("overlap", "3"),
        ("overlap_share", -0.1),
        ("gold_rate", 1.0),
        ("audit_rate", float("nan")),
    ],
)
def test_queue_settings_stay_within_bounds(make_project, name, value) -> None:
    project = make_project()
    before = review.queue_settings(project)
    with pytest.raises(review.InputError) as refusal:
        review.set_queue_settings(project, **{name: value})
    message = str(refusal.value)
    assert (
        message.startswith(f"{name} must be ") and review.SETTING_BOUNDS[name].describe() in message
    )
    assert review.queue_settings(project) == before


def test_a_stored_setting_out_of_range_reads_as_the_default(make_project, clock) -> None:
    project = make_project()
    seed(project, 2)
    project.update_settings(review={"lease_minutes": 5e-324, "overlap": 2})
    assert review.queue_settings(project).lease_minutes == review.DEFAULT_SETTINGS["lease_minutes"]
    assert review.queue_settings(project).overlap == 2
    ann, bob = user(project, "ann"), user(project, "bob")
    item = review.next_item(project, ann.id).id
    assert review.next_item(project, bob.id).id != item  # ann's lease did not run out


def test_project_info_keeps_its_keys_and_their_order(make_project) -> None:
    """What the review page and `GET /project` are sent once, key by key in order."""
    project = make_project()
    bare = review.project_info(project)
    assert (bare.guidelines, bare.guidelines_version, bare.label_descriptions) == (None, None, {})
    project.set_guidelines("Read twice.", label_descriptions={"positive": "Glad"})
    info = review.project_info(project)
    assert list(info.to_dict()) == [
        "name",
        "task",
        "labels",
        "multi_label",
        "label_descriptions",
        "guidelines",
        "guidelines_version",
    ]
    assert (info.guidelines, info.label_descriptions) == ("Read twice.", {"positive": "Glad"})
    assert info.labels == project.labels and info.multi_label is False


def test_a_persons_own_answers_keep_their_keys_and_their_order(make_project) -> None:
    """What `GET /annotations/mine` is sent of each answer, key by key in order."""
    project = make_project()
    seed(project, 2)
    ann = user(project, "ann")
    served = review.next_item(project, ann.id)
    assert served is not None
    review.submit(project, ann, served.id, action="correct", label="negative", time_spent_s=3.0)
    (mine,) = review.annotations_of(project, ann.id)
    assert list(mine.to_dict()) == [
        "id",
        "item_id",
        "uid",
        "action",
        "label",
        "labels",
        "suggested_label",
        "time_spent_s",
        "undone",
        "created_at",
    ]
    assert (mine.item_id, mine.label, mine.labels, mine.time_spent_s) == (
        served.id,
        "negative",
        None,
        3.0,
    )
    assert mine.created_at is not None and "T" in mine.created_at  # ISO 8601, as sent
