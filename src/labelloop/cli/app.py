"""Command definitions. Each command is thin: parse, call `Project`, print."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InputError
from .common import (
    ApiKeyEnv,
    BaseUrl,
    DbUrl,
    Engine,
    JsonOut,
    ProjectDir,
    RayAddress,
    TypedResult,
    emit,
    err,
    open_project,
    out,
    percent,
    progress_bar,
)

if TYPE_CHECKING:
    from ..workflows.calibrate import Calibrated
    from ..workflows.estimate import PrelabelEstimate
    from ..workflows.prelabel import Prelabeled

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
    task: Annotated[str, typer.Option(help="What to label, in one sentence.")],
    labels: Annotated[str, typer.Option(help="Comma-separated label set, e.g. pos,neg,neu.")],
    directory: Annotated[Path, typer.Argument(help="Project folder to create.")] = Path("."),
    db: DbUrl = None,
    name: Annotated[str | None, typer.Option(help="Project name inside the database.")] = None,
    multi_label: Annotated[
        bool, typer.Option("--multi-label", help="Items take any subset of the labels.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="With --multi-label: an item may take no label."),
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Create a project for a task and an ordered label set (with --multi-label: label sets).

    Anyone with write access to the folder and the database may run it; it creates the folder's
    configuration and one project row, and changes nothing else."""
    from ..project import Project

    with Project.create(
        directory,
        task=task,
        labels=labels,
        db=db,
        name=name,
        multi_label=multi_label,
        allow_empty=allow_empty,
    ) as project:
        result = {
            "project": str(project.path),
            "labels": project.labels,
            "db": project.store.url,
            "multi_label": project.multi_label,
            "allow_empty": project.allow_empty,
        }
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"Created project in {r['project']} with labels {', '.join(r['labels'])}."
        ),
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV, TSV, JSONL, JSON or Parquet file.")],
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_col: Annotated[
        str | None, typer.Option(help="Column holding labels (required for --split gold).")
    ] = None,
    id_col: Annotated[
        str | None,
        typer.Option(help="Column holding the items' ids (default: 'id' when the file has one)."),
    ] = None,
    hash_ids: Annotated[
        bool,
        typer.Option(
            "--hash-ids", help="Ids from a hash of each text, even when the file has ids."
        ),
    ] = False,
    split: Annotated[
        str, typer.Option(help="pool: to be labeled; gold: trusted labels for calibration.")
    ] = "pool",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Override the file format (csv, tsv, jsonl, json, parquet), or read another "
            "tool's export with its labels and provenance: labelstudio, argilla, prodigy, hf, "
            "labelloop (a labelloop export).",
        ),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Add items from a file; nothing is imported if any row is bad."""
    from ..data.formats import IMPORTERS

    if fmt is not None and fmt.lower() in IMPORTERS:
        with open_project(project, db) as proj:
            imported = proj.import_from(file, fmt)
        emit(
            imported,
            as_json,
            lambda r: out.print(
                f"{r.added} items added, {r.existing} already present; "
                f"{r.predictions} predictions and {r.annotations} answers imported."
            ),
        )
        return
    with open_project(project, db) as proj:
        result = proj.import_file(
            file,
            text_col=text_col,
            label_col=label_col,
            id_col=id_col,
            split=split,
            fmt=fmt,
            hash_ids=hash_ids,
        ).to_dict()
    emit(result, as_json, lambda r: out.print(_import_summary(r, split)))


def _import_summary(result: dict, split: str) -> str:
    from rich.markup import escape

    ids = (
        f"ids from column {escape(repr(result['id_col']))}"
        if result["id_col"] is not None
        else "ids are hashes of the texts"
    )
    adopted = result["ids_adopted"]
    return (
        f"{result['added']} items added ({split}), "
        f"{result['unchanged']} already present, {result['updated']} moved to gold, "
        f"{result['duplicates_in_file']} duplicate rows in the file; {ids}"
        + (f" ({adopted} items imported before took the file's ids)" if adopted else "")
        + "."
    )


@app.command()
def route(
    threshold: Annotated[
        float | None,
        typer.Option(help="Override the threshold (default: the calibrated one, else 0.85)."),
    ] = None,
    audit_rate: Annotated[
        float | None,
        typer.Option(help="Share of auto-accepted items also sent to an audit queue (kept)."),
    ] = None,
    trust_labeler: Annotated[
        bool,
        typer.Option(
            help="Route on the labeler even where calibration found it no better than the "
            "majority label or unable to rank (otherwise everything goes to review)."
        ),
    ] = False,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Auto-accept confident predictions; send the rest to the review queue."""
    with open_project(project, db) as proj:
        result = proj.route(threshold, audit_rate=audit_rate, trust_labeler=trust_labeler)
    print_warnings(result)
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"threshold {r.threshold:.3f}: {r.auto_accepted} auto-accepted, "
            f"{r.in_review} in review, {r.human_labeled} labeled by people."
        ),
    )


@app.command()
def resolve(
    final_label: Annotated[
        str | None,
        typer.Option(
            help="How an item with several answers gets its label: weighted (by each "
            "annotator's estimated quality; the default) or majority. Kept as a setting."
        ),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Refit the model of annotator quality on every answer and recompute final labels."""
    with open_project(project, db) as proj:
        result = proj.resolve(final_label)
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"final labels by {r.final_label}"
            + (
                f" ({r.answers} answers from {r.annotators} annotators fitted)"
                if r.final_label == "weighted"
                else ""
            )
            + f": {r.labels_changed} labels changed."
        ),
    )


@app.command()
def prelabel(
    model: Annotated[
        str,
        typer.Option(
            help="local (embedded), local:gemma3, a PATH.gguf, or a model name served "
            "at --base-url."
        ),
    ] = "local",
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            help="Requests in flight at most; fewer while an endpoint times out or slows down.",
        ),
    ] = 16,
    limit: Annotated[
        int | None, typer.Option(min=0, help="Label at most N pool items this run.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for one answer from the endpoint (default 60)."),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed/--no-retry-failed",
            help="Ask again for items that failed in earlier runs (their errors are kept).",
        ),
    ] = True,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="CPU threads of the embedded model, each decoding its own items (default: "
            "LABELLOOP_THREADS, else one per core this process may use).",
        ),
    ] = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Estimate the items, tokens, cost and time of this run; label nothing, ask "
            "no endpoint (the embedded model labels a small sample to time itself).",
        ),
    ] = False,
    price_in: Annotated[
        float | None,
        typer.Option(min=0, help="USD per million input tokens (default: the built-in table)."),
    ] = None,
    price_out: Annotated[
        float | None,
        typer.Option(min=0, help="USD per million output tokens (default: the built-in table)."),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """LLM labels with confidence and reasoning; re-runs label only what is missing.

    Ends with a summary on stderr. Exit status 3 when any item failed (the rest is saved; run
    again to retry them), 130 on Ctrl-C after saving every answer received.
    """
    from ..engines import engine_for
    from ..workflows.prelabel import Interrupted

    if threads is not None:  # read where the embedded model is loaded, in this process
        from ..labelers.llama_scorer import THREADS_ENV

        os.environ[THREADS_ENV] = str(threads)
    if dry_run:
        _estimate(
            model,
            base_url,
            api_key_env,
            concurrency,
            limit,
            retry_failed,
            (price_in, price_out),
            project,
            db,
            as_json,
        )
        return

    runner = engine_for(engine, address=ray_address)
    try:
        with open_project(project, db) as proj, progress_bar("pre-labeling") as progress:
            result = proj.prelabel(
                model=model,
                base_url=base_url,
                api_key_env=api_key_env,
                concurrency=concurrency,
                limit=limit,
                progress=progress,
                engine=runner,
                retry_failed=retry_failed,
                timeout=timeout,
            )
    except Interrupted as exc:
        print_prelabel_summary(exc.result)
        if as_json:
            emit(exc.result, True)
        raise
    print_prelabel_summary(result)
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"{r.done} labeled, {r.failed} failed, {r.skipped} skipped in "
            f"{r.elapsed_s:.1f} s ({r.tokens:,} tokens, ${r.cost_usd:.4f})."
        ),
    )
    if result.failed:
        raise typer.Exit(ITEMS_FAILED)


def _estimate(
    model: str,
    base_url: str | None,
    api_key_env: str,
    concurrency: int,
    limit: int | None,
    retry_failed: bool,
    price: tuple[float | None, float | None],
    project: Path,
    db: str | None,
    as_json: bool,
) -> None:
    """`prelabel --dry-run`: what the run would cost (see `workflows.estimate`)."""
    from ..project import make_labeler
    from ..workflows.estimate import estimate_prelabel

    options: dict = {"base_url": base_url, "api_key_env": api_key_env, "concurrency": concurrency}
    if any(p is not None for p in price):
        if model.startswith("local") or model.lower().endswith(".gguf"):
            raise InputError("--price-in / --price-out apply to a model at an endpoint")
        options["price_per_mtok"] = tuple(p or 0.0 for p in price)
    with open_project(project, db) as proj:
        labeler = make_labeler(model, multi_label=proj.multi_label, **options)
        try:
            result = estimate_prelabel(proj, labeler, limit=limit, retry_failed=retry_failed)
        finally:
            labeler.close()
    emit(result, as_json, _render_estimate)


def _render_estimate(r: PrelabelEstimate) -> None:
    cost = f"${r.cost_usd:.4f}"
    if r.price_per_mtok:
        cost += f" at ${r.price_per_mtok[0]:g} / ${r.price_per_mtok[1]:g} per million tokens"
    when = (
        f"about {r.elapsed_s:.0f} s ({r.items_per_s:.1f} items/s, from {r.time_from})"
        if r.elapsed_s is not None and r.items_per_s is not None
        else "time unknown"
    )
    out.print(
        f"dry run, nothing labeled: {r.items:,} items for {r.model}; "
        f"{r.tokens_in:,} input + {r.tokens_out:,} output tokens; {cost}; {when}.",
        highlight=False,
    )
    for note in r.notes:
        out.print(f"  note: {note}", highlight=False)


#: Exit status of `prelabel` when it finished but some items failed (2 stays bad input).
ITEMS_FAILED = 3


def print_prelabel_summary(result: Prelabeled) -> None:
    """The run in a few lines on stderr: what was done, what failed and why, what next."""
    reasons = ", ".join(f"{n} {why}" for why, n in result.failed_by_reason.items())
    line = f"prelabel: {result.done} labeled, {result.failed} failed"
    if reasons:
        line += f" ({reasons})"
    if result.retried:
        line += f"; {result.retried} earlier failures retried"
    adapted = result.concurrency or {}
    if adapted.get("decreases"):
        line += (
            f"; the endpoint slowed down under load, requests in flight went down to "
            f"{adapted['final']} of {adapted['maximum']}"
        )
    err.print(line + ".", highlight=False, markup=False, soft_wrap=True)
    for step in result.next_steps:
        err.print(f"  next: {step}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def calibrate(
    method: Annotated[
        str, typer.Option(help="auto, isotonic, platt, temperature, vector, histogram or none.")
    ] = "auto",
    budget: Annotated[
        float | None, typer.Option(help="Largest share of items sent to review (default 0.3).")
    ] = None,
    target_accuracy: Annotated[
        float | None, typer.Option(help="Reach this accuracy with the least review instead.")
    ] = None,
    confidence_level: Annotated[
        float | None,
        typer.Option(help="Certify the accuracy with this probability (Clopper–Pearson)."),
    ] = None,
    per_label: Annotated[bool, typer.Option(help="Choose one threshold per label.")] = False,
    plots: Annotated[
        Path | None, typer.Option(help="Folder for the PNG plots (default: PROJECT/plots).")
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Fit the calibrator on gold items and choose the routing threshold."""
    with open_project(project, db) as proj:
        result = proj.calibrate(
            method=method,
            budget=budget,
            target_accuracy=target_accuracy,
            confidence_level=confidence_level,
            per_label=per_label,
            plots_dir=plots if plots is not None else proj.path / "plots",
        )
    print_warnings(result)
    emit(result, as_json, _render_calibration)


def print_warnings(result: TypedResult | dict[str, Any]) -> None:
    """A result's warnings, on stderr (in --json mode too): they are for the person at work."""
    data = result.to_dict() if isinstance(result, TypedResult) else result
    for warning in data.get("warnings", []):
        err.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)


def _render_calibration(c: Calibrated) -> None:
    r = c.details  # what the method reported beyond the keys every method has
    out.print(
        f"{c.method} calibration on {c.n_gold} gold items ({r['threshold_rule']}):\n"
        f"  threshold {c.threshold:.3f} → expected accuracy {percent(c.expected_accuracy)}"
        f" with {percent(c.review_rate)} reviewed\n"
        f"  ECE on held-out folds {c.ece_before:.3f} → {c.ece_after:.3f}"
    )
    if r.get("gold_accuracy"):
        g = r["gold_accuracy"]
        out.print(
            f"  accuracy on gold {percent(g['accuracy'])} ({g['level']:.0%} interval "
            f"{percent(g['low'])}–{percent(g['high'])}): calibrated confidences are no more "
            "precise than this; more gold items narrow it"
        )
    if r.get("relabeled_gold"):
        after = r["metrics_after"]["accuracy"]
        out.print(
            f"  calibration moved {r['relabeled_gold']} of {c.n_gold} gold labels "
            f"(held-out accuracy {percent(r['metrics_before']['accuracy'])} → {percent(after)})"
        )
    if r.get("guarantee"):
        out.print(f"  {r['guarantee'].get('message', r['guarantee'])}")
    if r.get("fallback"):
        out.print(f"  note: {r['fallback']}")
    if r.get("plots"):
        out.print("  plots: " + ", ".join(r["plots"].values()))


def _render_stats(result: dict[str, Any]) -> None:
    """`Stats.to_dict()`'s figures as a table (what `store.db.project_stats` returns)."""
    from rich.table import Table

    table = Table(title="labelloop stats", show_header=False)
    for key in (
        "items",
        "gold",
        "predicted",
        "auto_accepted",
        "in_review",
        "human_labeled",
        "unresolved",
        "adjudicated",
        "adjudication_waiting",
    ):
        table.add_row(key.replace("_", " "), f"{result[key]:,}")
    table.add_row("review rate", percent(result["review_rate"]))
    table.add_row(
        "LLM accuracy on gold",
        percent(result["gold_accuracy"])
        + (f" (n={result['gold_predicted']})" if result["gold_predicted"] else ""),
    )
    table.add_row("threshold", f"{result['threshold']:.3f}")
    audit = result["audit"]
    if audit:
        table.add_row(
            "auto-accepted accuracy (audits)",
            f"{percent(audit['accuracy'])} [{percent(audit['lower'])}, {percent(audit['upper'])}]"
            f" n={audit['n_audited']}",
        )
    out.print(table)


@app.command()
def stats(project: ProjectDir = Path("."), db: DbUrl = None, as_json: JsonOut = False) -> None:
    """Counts per state, review rate and accuracy on gold."""
    from ..store.db import project_stats  # the read-only path: no ORM, no project layer

    result = project_stats(project, db)
    if result["adjudication_waiting"] is None:  # items to settle: the review service does
        with open_project(project, db) as proj:
            result = proj.stats().to_dict()
    emit(result, as_json, _render_stats)


@app.command()
def export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="jsonl, csv, parquet, labelstudio (JSON tasks), argilla (v2 records), "
            "prodigy (JSONL) or hf (a Hugging Face datasets folder).",
        ),
    ] = "jsonl",
    include: Annotated[
        str | None,
        typer.Option(
            help="Provenance to nest in each row: a comma-separated subset of annotations, "
            "predictions (every predictor's), meta; or all. Default: annotations,meta.",
        ),
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Write every item with its final label and provenance."""
    with open_project(project, db) as proj:
        count = proj.export(out_path, fmt, include=include).rows
    emit(
        {"rows": count, "out": str(out_path), "format": fmt},
        as_json,
        lambda r: out.print(f"Wrote {r['rows']} rows to {r['out']}."),
    )


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
    app.command(name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(
        command
    )
