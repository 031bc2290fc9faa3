"""`labelloop guidelines`: the project's guidelines and label descriptions, versioned."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InputError
from .app import app
from .common import DbUrl, JsonOut, ProjectDir, emit, open_project, out

if TYPE_CHECKING:
    from ..store.guidelines import Guidelines

guidelines_app = typer.Typer(
    help="Guidelines (Markdown) and label descriptions: shown to annotators, put in prompts.",
    no_args_is_help=True,
)
app.add_typer(guidelines_app, name="guidelines")

Author = Annotated[
    str | None, typer.Option(help="Who wrote this version (default: the login name).")
]
#: A guidelines file larger than this is refused before it is read.
MAX_FILE_BYTES = 1_000_000


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path} is larger than {MAX_FILE_BYTES:,} bytes")
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a file") from None


def _author(author: str | None) -> str | None:
    if author:
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return None


def _render_version(result: Guidelines) -> None:
    out.print(
        f"Guidelines version {result.version} is in force "
        f"({len(result.text):,} characters, "
        f"{len(result.label_descriptions)} label descriptions).",
        highlight=False,
    )


@guidelines_app.command("set")
def guidelines_set(
    file: Annotated[Path, typer.Argument(help="The guidelines, a Markdown file (UTF-8).")],
    descriptions: Annotated[
        Path | None,
        typer.Option(
            help='Label descriptions too: a JSON object {"label": "description"} (an empty '
            "description removes one; labels not named keep theirs)."
        ),
    ] = None,
    author: Author = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Store FILE as a new version of the guidelines (the newest is in force)."""
    from ..guidelines import parse_descriptions

    text = _read(file)
    with open_project(project, db) as proj:
        changes = parse_descriptions(_read(descriptions), proj.labels) if descriptions else None
        result = proj.set_guidelines(
            text, label_descriptions=changes, author=_author(author), source=str(file)
        )
    emit(result, as_json, _render_version)


@guidelines_app.command("label")
def guidelines_label(
    label: Annotated[str, typer.Argument(help="A label of the project.")],
    description: Annotated[str, typer.Argument(help="What it means; empty to remove it.")],
    author: Author = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Describe one label (a new version of the guidelines, the text kept)."""
    with open_project(project, db) as proj:
        result = proj.set_guidelines(
            label_descriptions={label: description}, author=_author(author), source="label"
        )
    emit(result, as_json, _render_version)


@guidelines_app.command("gold-feedback")
def guidelines_gold_feedback(
    enabled: Annotated[
        bool,
        typer.Argument(
            help="on: after a gold check, show the expected label and its description "
            "(a gold answer can then not be undone); off (the default): show nothing."
        ),
    ],
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Whether annotators see the expected label after a gold check."""
    with open_project(project, db) as proj:
        proj.set_gold_feedback(enabled)
    emit(
        {"gold_feedback": enabled},
        as_json,
        lambda r: out.print(f"Gold feedback is {'on' if r['gold_feedback'] else 'off'}."),
    )


@guidelines_app.command("show")
def guidelines_show(
    history: Annotated[
        bool, typer.Option("--history", help="Every version (when, who, from where).")
    ] = False,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """The guidelines in force and the label descriptions (or, with --history, every version)."""
    with open_project(project, db) as proj:
        result: Any = proj.guideline_history() if history else proj.guidelines()
    emit(result, as_json, _render_history if history else _render_current)


def _when(version: Guidelines) -> str | None:
    """When a version was stored, as `--json` sends it."""
    return version.to_dict()["created_at"]


def _render_current(result: Guidelines | None) -> None:
    from rich.markup import escape

    if result is None:
        out.print("No guidelines yet; set them with `labelloop guidelines set FILE`.")
        return
    out.print(
        f"Version {result.version}, {_when(result)}, by {result.author or '—'} "
        f"from {result.source or '—'}",
        markup=False,
        highlight=False,
    )
    for label, text in result.label_descriptions.items():
        out.print(f"[bold]{escape(label)}[/]: {escape(text)}", highlight=False)
    if result.text:
        out.print()
        out.print(result.text, markup=False, highlight=False)


def _render_history(versions: list[Guidelines]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("version", "when", "author", "source", "characters", "descriptions")
    for v in versions:
        table.add_row(
            str(v.version),
            str(_when(v)),
            escape(v.author or "—"),
            escape(v.source or "—"),
            f"{len(v.text):,}",
            str(len(v.label_descriptions)),
        )
    out.print(table)
