"""The store itself: migrations, several projects in one database, URLs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect

from labelloop import InputError, Project
from labelloop.store import Store
from labelloop.store.db import current_revision, head_revision, normalise_url


def test_migrations_create_every_table(db_url):
    store = Store(db_url)
    try:
        assert current_revision(store.engine) == head_revision()
        tables = set(inspect(store.engine).get_table_names())
        assert {
            "projects",
            "items",
            "predictions",
            "annotations",
            "annotators",
            "calibrations",
            "al_rounds",
            "review_tasks",
            "embeddings",
            "api_tokens",
        } <= tables
        Store(db_url).dispose()  # opening again is a no-op migration
    finally:
        store.dispose()


def test_the_adjudication_queue_reads_a_project_s_answers_from_one_index(db_url):
    """The migrated index is the one the model declares: project, item and what the queue
    reads of each answer."""
    from labelloop.store import Annotation

    store = Store(db_url)
    try:
        found = {
            i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("annotations")
        }
        (declared,) = [
            i for i in Annotation.__table__.indexes if i.name == "ix_annotations_project_item"
        ]
        assert found["ix_annotations_project_item"] == [c.name for c in declared.columns]
        assert found["ix_annotations_project_item"][:2] == ["project_id", "item_id"]
    finally:
        store.dispose()


def test_two_projects_share_a_database(tmp_path, db_url):
    first = Project.create(tmp_path / "a", task="t", labels=["x", "y"], db=db_url)
    second = Project.create(tmp_path / "b", task="t", labels=["x", "y"], db=db_url)
    try:
        first.add_items(["only in a"])
        assert first.stats().items == 1 and second.stats().items == 0
        with pytest.raises(InputError, match="already holds a project"):
            Project.create(tmp_path / "c" / "a", task="t", labels=["x", "y"], db=db_url)
        reopened = Project.open(tmp_path / "a")
        assert reopened.labels == ["x", "y"] and reopened.stats().items == 1
        reopened.close()
    finally:
        first.close()
        second.close()


def test_environment_variable_chooses_the_database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("LABELLOOP_DB", url)
    with Project.create(tmp_path / "p", task="t", labels=["x", "y"]) as project:
        project.add_items(["a"])
    assert (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "p" / "labelloop.db").exists()


def test_sqlite_uses_wal(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.dispose()


def test_urls():
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    with pytest.raises(InputError):
        normalise_url("::not a url::")


def test_a_fast_growing_predictions_table_keeps_planner_statistics(tmp_path, db_url):
    from sqlalchemy import select, text

    from labelloop.labelers import LabelResult
    from labelloop.store import Item

    project = Project.create(tmp_path / "p", task="t", labels=["x", "y"], db=db_url)
    project.add_items([{"text": f"item {i}"} for i in range(1500)])
    with project.store.session() as session:
        ids = list(session.scalars(select(Item.id).where(Item.project_id == project.id)))
    result = LabelResult("x", {"x": 0.9, "y": 0.1}, 0.9, "r")
    saved = project.save_predictions("m", "v1", [(i, result) for i in ids[:1200]])
    assert saved == 1200
    if project.store.is_sqlite:  # nothing to keep current: SQLite plans without statistics
        assert project.store._growth == {}
    else:
        with project.store.engine.connect() as connection:
            counted = connection.execute(
                text(
                    "SELECT reltuples FROM pg_class WHERE relname = 'predictions' "
                    "AND relnamespace = current_schema()::regnamespace"
                )
            ).scalar()
        assert counted == 1200  # analysed after this growth, not left looking empty
        assert project.store._growth["predictions"] == [0, 1200]
    project.close()


def test_upgrade_reopens_tasks_whose_rejection_was_dropped(db_url):
    """Before 0006_queue_leases a rejection's extra answer lived in `answers_needed`, and
    re-applying the overlap reset it: the task closed with the item still in review. Upgrading
    recounts."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import insert, select

    from labelloop.store import Annotation, Annotator, Item, ProjectRow, ReviewTask
    from labelloop.store.db import _alembic_config, make_engine

    engine = make_engine(db_url)
    config = _alembic_config(engine)
    before = ScriptDirectory.from_config(config).get_revision("0006_queue_leases").down_revision
    command.upgrade(config, before)
    columns = ("project_id", "item_id", "queue", "priority", "answers_needed", "answers", "done")
    old_tasks = sa.table("review_tasks", *map(sa.column, (*columns, "created_at")))
    with engine.begin() as conn:
        project = conn.execute(
            insert(ProjectRow).values(
                name="p", task="t", labels=["a", "b"], settings={"review": {"overlap": 1}}
            )
        ).inserted_primary_key[0]
        who = conn.execute(
            insert(Annotator).values(project_id=project, name="ann")
        ).inserted_primary_key[0]
        items = {}
        # (answer, queue, answers_needed and done as 0004 left them)
        for uid, action, queue, needed, done in [
            ("rejected", "reject", "review", 1, True),  # the overlap re-applied: closed
            ("accepted", "accept", "review", 1, True),
            ("audited", "reject", "audit", 2, False),  # 1 + the rejection
        ]:
            item = conn.execute(
                insert(Item).values(
                    project_id=project, uid=uid, text=uid, text_hash=uid, state="in_review"
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(Annotation).values(
                    project_id=project,
                    item_id=item,
                    annotator_id=who,
                    action=action,
                    queue=queue,
                    undone=False,
                )
            )
            values = (project, item, queue, 0.0, needed, 1, done, datetime.now(UTC))
            conn.execute(
                insert(old_tasks).values(dict(zip(old_tasks.c.keys(), values, strict=True)))
            )
            items[uid] = item
    engine.dispose()
    store = Store(db_url)
    try:
        with store.session() as session:
            tasks = session.execute(
                select(
                    ReviewTask.item_id,
                    ReviewTask.answers_needed,
                    ReviewTask.answers,
                    ReviewTask.rejections,
                    ReviewTask.done,
                )
            ).all()
    finally:
        store.dispose()
    assert sorted(tuple(t) for t in tasks) == sorted(
        [
            (items["rejected"], 1, 1, 1, False),  # reopened: one more answer is wanted
            (items["accepted"], 1, 1, 0, True),
            (items["audited"], 1, 1, 1, False),
        ]
    )


def test_upgrade_to_the_reviewer_flag_leaves_only_possible_items_to_settle(
    make_project, db_url, fast_password_hashing
):
    """0015_needs_reviewer starts every item that cannot wait for a reviewer as not waiting and
    leaves the others unsettled; the first `stats` settles them by the review service's rule,
    after which the lean path counts the flag alone."""
    from alembic import command
    from sqlalchemy import select

    from labelloop import review
    from labelloop.review import adjudication
    from labelloop.review.answers import AnswerIn
    from labelloop.store import Item
    from labelloop.store.db import _alembic_config, engine_reader, read_stats
    from test_review_service import seed, user

    project = make_project()
    ids = seed(project, 4, n_gold=1)
    ann, bob = user(project, "ann"), user(project, "bob")
    split, agreed, flagged, quiet = ids["review"]
    for who, label in ((ann, "positive"), (bob, "negative")):
        review.annotate(project, split, AnswerIn("label", label, who.id))
        review.annotate(project, agreed, AnswerIn("label", "positive", who.id))
    rita = user(project, "rita", role="reviewer")
    adjudication.flag(project, rita, flagged, "look")
    waiting = {i for i, _ in adjudication.pending(project)}
    assert waiting == {split, flagged} and project.stats().adjudication_waiting == 2

    config = _alembic_config(project.store.engine)
    command.downgrade(config, "0014_adjudication_sets")
    command.upgrade(config, "head")

    def flags() -> dict[int, bool | None]:
        with project.store.session() as session:
            mine = select(Item.id, Item.needs_reviewer).where(Item.project_id == project.id)
            return dict(session.execute(mine).tuples().all())

    assert flags() == {
        split: None,  # answered: left to the rule
        agreed: None,
        flagged: None,
        quiet: False,
        ids["gold"][0]: False,
    }
    assert (
        read_stats(engine_reader(project.store.engine), project.id)["adjudication_waiting"] is None
    )
    assert project.stats().adjudication_waiting == 2
    assert {i for i, kept in flags().items() if kept} == {split, flagged}
    assert None not in flags().values()
    assert read_stats(engine_reader(project.store.engine), project.id)["adjudication_waiting"] == 2


def test_downgrading_and_upgrading_every_revision_keeps_answers_and_predictions(
    make_project, fast_password_hashing
):
    """Down to the first revision that rebuilt tables on SQLite and back: a batch copy drops a
    table, and with foreign keys on, dropping `items` would delete every answer, prediction and
    task that cascades from it."""
    from alembic import command

    from labelloop import review
    from labelloop.review.answers import AnswerIn
    from labelloop.store.db import _alembic_config
    from test_review_service import seed, user

    project = make_project()
    ids = seed(project, 3, n_confident=2, n_gold=1)
    ann = user(project, "ann")
    for item in ids["review"]:
        review.annotate(project, item, AnswerIn("label", "positive", ann.id))
    tables = ("items", "predictions", "annotations", "review_tasks", "annotators")

    def counts() -> dict[str, int]:
        with project.store.engine.connect() as conn:
            count = sa.select(sa.func.count())
            return {t: conn.execute(count.select_from(sa.table(t))).scalar_one() for t in tables}

    before = counts()
    assert before["annotations"] == 3 and before["predictions"] >= 5
    config = _alembic_config(project.store.engine)
    command.downgrade(config, "0010_consensus")
    assert counts() == before
    command.upgrade(config, "head")
    assert counts() == before
