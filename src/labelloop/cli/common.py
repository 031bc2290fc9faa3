"""Options and output shared by every command: --project, --db, --json."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, runtime_checkable

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from ..project import Project

ProjectDir = Annotated[
    Path,
    typer.Option("--project", "-p", help="Project folder.", show_default="current folder"),
]
DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (SQLite file or any SQLAlchemy URL); default: the project's own, "
        "or LABELLOOP_DB.",
    ),
]
Engine = Annotated[
    str,
    typer.Option(
        help="local: this process; ray: actors of a Ray cluster (pip install labelloop[ray])."
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)."),
]
BaseUrl = Annotated[
    str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
]
ApiKeyEnv = Annotated[str, typer.Option(help="Environment variable holding the API key.")]
JsonOut = Annotated[
    bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")
]


class _LazyConsole:
    """A rich `Console` made on first use: commands that print JSON never import rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """The console itself, for rich objects that take one (a progress bar)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


_err = _LazyConsole(stderr=True)
out: Console = _LazyConsole()  # type: ignore[assignment]
err: Console = _err  # type: ignore[assignment]


def open_project(project: Path, db: str | None = None) -> Project:
    from ..project import Project

    return Project.open(project, db=db)


@runtime_checkable
class TypedResult(Protocol):
    """A service's typed result (a dataclass): `to_dict` is its JSON form."""

    def to_dict(self) -> dict[str, Any]: ...


def _json_form(result: Any) -> Any:
    if isinstance(result, TypedResult):
        return result.to_dict()
    if isinstance(result, list):
        return [_json_form(entry) for entry in result]
    return result


def emit(result: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print `result` as JSON (stdout) or through `render` for people; a typed result is sent
    as its `to_dict()` (a list of them as a list of those) and rendered as itself."""
    data = _json_form(result)
    if as_json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(result)
    else:
        for key, value in data.items():
            out.print(f"[bold]{key}[/]: {value}", highlight=False)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar with rate and ETA on stderr; yields an `update(done, total)` callback."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_err.console, transient=False) as progress:
        task = progress.add_task(description, total=None, rate="")
        started = time.monotonic()

        def update(done: int, total: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f}/s")

        yield update


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
