"""The command line answers at once: it imports only what the command it runs needs.

Each check runs in a fresh interpreter, so the modules it finds were imported by the command
and not by another test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labelloop.store.db import HEAD_REVISION, head_revision

SRC = Path(__file__).resolve().parents[1] / "src"
SAMPLE = SRC / "labelloop" / "sample_data"
#: Libraries that cost seconds or hundreds of megabytes to import.
HEAVY = ("numpy", "sklearn", "scipy", "onnxruntime", "llama_cpp", "ray", "pandas", "polars")
#: Run `code`, then print the top-level names of every module imported, as JSON on stderr's
#: last line (stdout belongs to the command).
PROBE = """
import json, sys
try:
{code}
finally:
    names = sorted({{name.partition(".")[0] for name in sys.modules}} | set(sys.modules))
    sys.stderr.write("\\n" + json.dumps(names) + "\\n")
"""


def imported_by(code: str, cwd: Path | None = None) -> tuple[set[str], subprocess.CompletedProcess]:
    body = "\n".join("    " + line for line in code.strip().splitlines())
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=body)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1])), done


def test_importing_the_cli_imports_no_heavy_library() -> None:
    modules, done = imported_by("import labelloop.cli")
    assert done.returncode == 0, done.stderr
    assert "labelloop.cli" in modules
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_help_imports_no_heavy_library_nor_the_store() -> None:
    modules, done = imported_by("from labelloop.cli import run\nraise SystemExit(run(['--help']))")
    assert done.returncode == 0, done.stderr
    assert "prelabel" in done.stdout and "stats" in done.stdout
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))
    assert modules.isdisjoint({"sqlalchemy", "alembic", "labelloop.project"})


def test_every_command_help_imports_no_heavy_library() -> None:
    code = """
from labelloop.cli import app, run
import typer.main
group = typer.main.get_command(app)
for name in sorted(group.commands):
    assert run([name, "--help"]) == 0, name
"""
    modules, done = imported_by(code)
    assert done.returncode == 0, done.stderr
    assert "simulate" in done.stdout and "Create an account" in done.stdout
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_stats_on_a_current_store_loads_neither_alembic_nor_heavy_libraries(tmp_path) -> None:
    from labelloop.cli import run

    project = tmp_path / "p"
    assert run(["init", str(project), "--task", "Sentiment.", "--labels", "positive,negative"]) == 0
    assert run(["import", str(SAMPLE / "reviews_pool.csv"), "--project", str(project)]) == 0
    modules, done = imported_by(
        f"from labelloop.cli import run\nraise SystemExit(run(['stats', '--json', "
        f"'--project', {str(project)!r}]))"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"] == 300
    # The store is read with the standard library's sqlite3, its schema recognised without
    # Alembic, and neither SQLAlchemy (Core or ORM) nor the service layer is loaded.
    assert modules.isdisjoint({"sqlalchemy", "alembic", "labelloop.project"}), sorted(
        modules & {"sqlalchemy", "alembic", "labelloop.project"}
    )
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_stats_on_a_store_behind_the_head_migrates_it_first(tmp_path) -> None:
    """The lean read path takes only a SQLite store at the head; any other is opened as usual,
    and so migrated, before it is read."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from labelloop.store.db import (
        _alembic_config,
        make_engine,
        open_reader,
        read_state_counts,
        stored_revisions,
    )

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    previous = ScriptDirectory.from_config(_alembic_config(None)).get_revision(HEAD_REVISION)
    command.upgrade(_alembic_config(engine), previous.down_revision)
    with open_reader(url) as reader:
        assert stored_revisions(engine) == [HEAD_REVISION]
        assert read_state_counts(reader, 1)["unresolved"] == 0
    engine.dispose()


def test_the_known_head_revision_is_the_newest_migration() -> None:
    """A store at HEAD_REVISION is opened without Alembic: it must be the scripts' head, or a
    store one migration behind would be taken as current."""
    assert head_revision() == HEAD_REVISION


@pytest.mark.parametrize("behind", [True, False], ids=["previous-revision", "empty"])
def test_a_store_behind_the_head_is_still_migrated(tmp_path, behind) -> None:
    """Only a store exactly at the head skips Alembic; an older one (or an empty database) is
    upgraded when opened."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from labelloop.store import Base, Store
    from labelloop.store.db import _alembic_config, make_engine, stored_revisions

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    if behind:
        scripts = ScriptDirectory.from_config(_alembic_config(None))
        previous = scripts.get_revision(HEAD_REVISION).down_revision
        command.upgrade(_alembic_config(engine), previous)
        assert stored_revisions(engine) == [previous]
    else:
        assert stored_revisions(engine) == []
    engine.dispose()
    store = Store(url)
    try:
        assert stored_revisions(store.engine) == [HEAD_REVISION]
        assert set(Base.metadata.tables) <= set(inspect(store.engine).get_table_names())
    finally:
        store.dispose()


def test_the_lean_path_names_the_multi_label_setting_as_the_project_does() -> None:
    from labelloop import store
    from labelloop.multilabel.sets import MULTI_LABEL

    assert store.db.MULTI_LABEL is MULTI_LABEL
