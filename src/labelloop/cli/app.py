"""Command definitions. Each command is thin: parse, call `Project`, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from ..project import Project
from .common import DbUrl, JsonOut, ProjectDir, emit, open_project, out, percent

app = typer.Typer(
    name="labelloop",
    help="LLM-assisted data labeling with calibrated confidence, human review and active "
    "learning.\n\nTypical loop: init → import → prelabel → calibrate → route → review "
    "(serve) → export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Project folder to create.")] = Path("."),
    task: Annotated[str, typer.Option(help="What to label, in one sentence.")] = ...,
    labels: Annotated[str, typer.Option(help="Comma-separated label set, e.g. pos,neg,neu.")] = ...,
    db: DbUrl = None,
    name: Annotated[str | None, typer.Option(help="Project name inside the database.")] = None,
    as_json: JsonOut = False,
) -> None:
    """Create a project for a task and an ordered label set."""
    with Project.create(directory, task=task, labels=labels, db=db, name=name) as project:
        result = {"project": str(project.path), "labels": project.labels, "db": project.store.url}
    emit(result, as_json, lambda r: out.print(
        f"Created project in {r['project']} with labels {', '.join(r['labels'])}."
    ))


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV, TSV, JSONL, JSON or Parquet file.")],
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_col: Annotated[
        str | None, typer.Option(help="Column holding labels (required for --split gold).")
    ] = None,
    id_col: Annotated[
        str | None, typer.Option(help="Column holding stable ids (default: a content hash).")
    ] = None,
    split: Annotated[
        str, typer.Option(help="pool: to be labeled; gold: trusted labels for calibration.")
    ] = "pool",
    fmt: Annotated[str | None, typer.Option("--format", help="Override the format.")] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Add items from a file; nothing is imported if any row is bad."""
    with open_project(project, db) as proj:
        result = proj.import_file(
            file, text_col=text_col, label_col=label_col, id_col=id_col, split=split, fmt=fmt
        ).to_dict()
    emit(result, as_json, lambda r: out.print(
        f"{r['added']} items added ({r['split'] if 'split' in r else split}), "
        f"{r['unchanged']} already present, {r['updated']} moved to gold, "
        f"{r['duplicates_in_file']} duplicate rows in the file."
    ))


@app.command()
def route(
    threshold: Annotated[
        float | None,
        typer.Option(help="Override the threshold (default: the calibrated one, else 0.85)."),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Auto-accept confident predictions; send the rest to the review queue."""
    with open_project(project, db) as proj:
        result = proj.route(threshold)
    emit(result, as_json, lambda r: out.print(
        f"threshold {r['threshold']:.3f}: {r['auto_accepted']} auto-accepted, "
        f"{r['in_review']} in review, {r['human_labeled']} labeled by people."
    ))


def _render_stats(result: dict) -> None:
    table = Table(title="labelloop stats", show_header=False)
    for key in ("items", "gold", "predicted", "auto_accepted", "in_review", "human_labeled",
                "unresolved"):
        table.add_row(key.replace("_", " "), f"{result[key]:,}")
    table.add_row("review rate", percent(result["review_rate"]))
    table.add_row("LLM accuracy on gold", percent(result["gold_accuracy"])
                  + (f" (n={result['gold_predicted']})" if result["gold_predicted"] else ""))
    table.add_row("threshold", f"{result['threshold']:.3f}")
    out.print(table)


@app.command()
def stats(project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False) -> None:
    """Counts per state, review rate and accuracy on gold."""
    with open_project(project, db) as proj:
        result = proj.stats()
    emit(result, as_json, _render_stats)


@app.command()
def export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Write every item with its final label and provenance."""
    from ..data.export import export_rows

    with open_project(project, db) as proj:
        count = export_rows(proj.iter_export_rows(), out_path, fmt)
    emit({"rows": count, "out": str(out_path), "format": fmt}, as_json,
         lambda r: out.print(f"Wrote {r['rows']} rows to {r['out']}."))


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option(help="Where to create the demo project (default: a temp dir).")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many pool items to pre-label.")] = 200,
    as_json: JsonOut = False,
) -> None:
    """Run the whole loop on bundled sample data with the embedded defaults (offline)."""
    from ..demo import run_demo

    result = run_demo(directory, limit=limit, quiet=as_json)
    emit(result, as_json, lambda r: None)


def later(name: str, what: str) -> None:
    """Register a command whose capability is not in this release yet."""

    def command() -> None:
        raise InputError(f"`labelloop {name}` ({what}) is not available in this version yet")

    command.__doc__ = f"{what[0].upper()}{what[1:]} (not available in this version yet)."
    app.command(name, context_settings={"ignore_unknown_options": True,
                                        "allow_extra_args": True})(command)
