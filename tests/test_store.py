"""The store itself: migrations, several projects in one database, URLs."""

from __future__ import annotations

import pytest
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


def test_two_projects_share_a_database(tmp_path, db_url):
    first = Project.create(tmp_path / "a", task="t", labels=["x", "y"], db=db_url)
    second = Project.create(tmp_path / "b", task="t", labels=["x", "y"], db=db_url)
    try:
        first.add_items(["only in a"])
        assert first.stats()["items"] == 1 and second.stats()["items"] == 0
        with pytest.raises(InputError, match="already holds a project"):
            Project.create(tmp_path / "c" / "a", task="t", labels=["x", "y"], db=db_url)
        reopened = Project.open(tmp_path / "a")
        assert reopened.labels == ["x", "y"] and reopened.stats()["items"] == 1
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
