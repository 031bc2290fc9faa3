"""The driver-level bulk update stores what SQLAlchemy's ORM bulk update by primary key stores."""

from __future__ import annotations

from sqlalchemy import select, text, update

from labelloop import Project
from labelloop.labelers import LabelResult
from labelloop.store.bulk import bulk_update
from labelloop.store.models import Prediction, table_of

COLUMNS = "label, probs, confidence, calibrated_confidence, calibrated_label, labels, reasoning"


def _stored(project: Project, model: str) -> list[tuple]:
    """The raw column values of a model's predictions, by item, as the driver returns them."""
    with project.store.engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    f"SELECT item_id, {COLUMNS} FROM predictions "  # noqa: S608 - constants
                    "WHERE model = :m ORDER BY item_id"
                ),
                {"m": model},
            )
        )


def _project(tmp_path, db_url: str, n: int) -> Project:
    project = Project.create(tmp_path / "p", task="t", labels=["x", "y"], db=db_url)
    project.add_items([{"id": f"i{k}", "text": f"item {k}"} for k in range(n)], id_col="id")
    return project


def test_bulk_update_stores_what_the_orm_bulk_update_stores(tmp_path, db_url):
    project = _project(tmp_path, db_url, 7)
    ids = [project.item_id(f"i{n}") for n in range(7)]
    result = LabelResult("x", {"x": 0.75, "y": 0.25}, 0.75, "because")
    for model in ("orm", "bulk"):
        project.save_predictions(model, "v1", [(i, result) for i in ids])
    with project.store.session() as session:
        keys = {
            model: list(
                session.scalars(
                    select(Prediction.id).where(Prediction.model == model).order_by(Prediction.id)
                )
            )
            for model in ("orm", "bulk")
        }
    changes = [  # floats, None, strings, JSON (None among them), unicode
        {
            "calibrated_confidence": None if n % 3 == 0 else 0.5 + n / 100,
            "calibrated_label": None if n % 2 else "y",
            "labels": None if n % 2 else ["x", "ü"],
            "reasoning": f"n° {n} « quoted ' \" »",
        }
        for n in range(len(ids))
    ]
    with project.store.session() as session:
        orm_rows = [{"id": pid, **c} for pid, c in zip(keys["orm"], changes, strict=True)]
        session.execute(update(Prediction), orm_rows)
        bulk_rows = [{"id": pid, **c} for pid, c in zip(keys["bulk"], changes, strict=True)]
        assert bulk_update(session, table_of(Prediction), bulk_rows, batch=3) == len(ids)
    orm, bulk = _stored(project, "orm"), _stored(project, "bulk")
    assert orm == bulk
    assert {row.calibrated_label for row in bulk} == {None, "y"}  # the changes were written
    project.close()


def test_bulk_insert_converts_each_column_and_fills_the_defaults(tmp_path, db_url):
    from labelloop.store.bulk import bulk_insert

    project = _project(tmp_path, db_url, 5)
    ids = [project.item_id(f"i{n}") for n in range(5)]
    rows = [
        {
            "project_id": project.id,
            "item_id": item_id,
            "model": "m",
            "prompt_version": "v",
            "label": "x" if n % 2 else None,
            "probs": {"x": n / 10, "y": 1 - n / 10} if n % 2 else None,
            "labels": ["ü"] if n == 1 else None,
        }
        for n, item_id in enumerate(ids)
    ]
    with project.store.session() as session:
        assert bulk_insert(session, table_of(Prediction), rows, batch=2) == len(ids)
    with project.store.session() as session:
        stored = session.execute(
            select(Prediction.probs, Prediction.labels, Prediction.tokens_in, Prediction.created_at)
            .where(Prediction.model == "m")
            .order_by(Prediction.item_id)
        ).all()
    assert [row.probs for row in stored] == [row["probs"] for row in rows]
    assert [row.labels for row in stored] == [row["labels"] for row in rows]
    assert {row.tokens_in for row in stored} == {0}  # the column's default
    assert all(row.created_at is not None for row in stored)
    with project.store.engine.connect() as connection:  # None is SQL NULL, not JSON null
        nulls = connection.execute(
            text("SELECT COUNT(*) FROM predictions WHERE model = 'm' AND probs IS NULL")
        ).scalar()
    assert nulls == 3
    project.close()
