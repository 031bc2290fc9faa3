"""Shared fixtures: both databases, project factories, the CLI in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from labelloop.cli import run as cli_run
from labelloop.testing.postgres import scratch_schema

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_BASE = os.environ.get("LABELLOOP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(PG_BASE.replace("+psycopg", ""), connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def need_postgres() -> None:
    """Skip locally, but fail under CI, when the PostgreSQL server is not reachable."""
    reason = _postgres_available()
    if reason is not None:
        message = f"PostgreSQL at {PG_BASE} is not reachable ({reason})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema, dropped afterwards."""
    need_postgres()
    with scratch_schema(PG_BASE, "ll_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> str:
    """Each store test runs on SQLite (a file) and on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def fast_password_hashing(monkeypatch) -> None:
    """Cheap argon2 parameters, for tests that create accounts and log in many times."""
    from argon2 import PasswordHasher

    from labelloop import review

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(review.accounts, "PASSWORD_HASHER", cheap)


@pytest.fixture
def cli():
    """Run the labelloop command in-process; returns its exit status (output: capsys)."""

    def invoke(*args: object) -> int:
        return cli_run([str(a) for a in args])

    return invoke


@pytest.fixture
def make_project(tmp_path: Path, db_url: str):
    from labelloop import Project

    created = []

    def factory(
        labels=("positive", "negative", "neutral"),
        task="Classify the sentiment.",
        name: str | None = None,
        multi_label: bool = False,
    ):
        folder = tmp_path / (name or f"proj{len(created)}")
        project = Project.create(
            folder, task=task, labels=list(labels), db=db_url, multi_label=multi_label
        )
        created.append(project)
        return project

    yield factory
    for project in created:
        project.close()
