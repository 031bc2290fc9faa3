"""`labelloop adjudicate`: the items people could not settle, and reviewers' decisions.

The command line is trusted (it opens the store itself); `--as NAME` says which reviewer or
admin account a decision is recorded for, so that exports say who made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import app
from .common import DbUrl, JsonOut, ProjectDir, emit, open_project, out

if TYPE_CHECKING:
    from ..review.adjudication import AdjudicationQueue, Case

adjudicate_app = typer.Typer(
    help="Settle disagreements, items everyone rejected, and flagged items (reviewers).",
    no_args_is_help=True,
)
app.add_typer(adjudicate_app, name="adjudicate")

Reviewer = Annotated[
    str, typer.Option("--as", help="The reviewer or admin account the decision is recorded for.")
]
ItemUid = Annotated[str, typer.Argument(help="The item's id in the imported data.")]


def _render_queue(result: AdjudicationQueue) -> None:
    from rich.markup import escape
    from rich.table import Table

    out.print(f"{result.count} item(s) wait for a reviewer.", highlight=False)
    if result.items:
        table = Table("item", "why", "label now", "source")
        for item in result.items:
            table.add_row(  # ids and labels are data: escaped, never read as rich markup
                escape(item.uid),
                ", ".join(item.reasons),
                escape(_shown(item.to_dict(), "label")),
                item.label_source or "—",
            )
        out.print(table)


@adjudicate_app.command("list")
def adjudicate_list(
    limit: Annotated[int, typer.Option(min=1, max=500, help="Items listed.")] = 50,
    reviewer: Reviewer = "",
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """The items waiting for a decision, oldest first (reads only)."""
    from ..review import adjudication

    with open_project(project, db) as proj:
        who = _caller(proj, reviewer)
        result = adjudication.queue(proj, who, limit=limit)
    emit(result, as_json, _render_queue)


@adjudicate_app.command("show")
def adjudicate_show(
    item: ItemUid,
    reviewer: Reviewer = "",
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """One item as a reviewer sees it: answers, flags, the suggestion (reads only)."""
    from ..review import adjudication

    with open_project(project, db) as proj:
        who = _caller(proj, reviewer)
        result = adjudication.case(proj, who, proj.item_id(item))

    def render(case: Case) -> None:
        from rich.markup import escape

        shown = case.shown
        why = ", ".join(case.reasons) or "not waiting"
        out.print(f"[bold]{escape(case.uid)}[/] ({why})")
        out.print(shown.text, markup=False, highlight=False)
        if shown.suggestion is not None:
            s = shown.suggestion
            confidence = "—" if s.confidence is None else f"{100 * s.confidence:.0f}%"
            suggested = s.label
            if shown.suggested_set is not None:  # a multi-label item: the suggested set
                suggested = _shown(shown.suggested_set.to_dict(), "label")
            out.print(f"model: {suggested} {confidence}", markup=False, highlight=False)
        for a in case.answers:
            given = _shown(a.to_dict(), "label") if a.labels is not None else a.label
            out.print(f"{a.annotator}: {given or a.action}", markup=False, highlight=False)
        for f in case.flags:
            out.print(f"{f.annotator} flagged: {f.reason or ''}", markup=False, highlight=False)

    emit(result, as_json, render)


@adjudicate_app.command("decide")
def adjudicate_decide(
    item: ItemUid,
    label: Annotated[
        str,
        typer.Argument(
            help="The final label; on a multi-label project the set, its labels joined by "
            "',', ';' or '|' (or a JSON list; '[]' is the empty set)."
        ),
    ],
    reviewer: Reviewer,
    note: Annotated[str | None, typer.Option(help="Why (up to 2000 characters).")] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Settle an item: LABEL becomes its final label (source `adjudicated`), with the note."""
    from ..multilabel.sets import raw_label_list
    from ..review import adjudication

    with open_project(project, db) as proj:
        who = adjudication.reviewer_named(proj, reviewer)
        item_id = proj.item_id(item)
        if proj.multi_label:
            labels = raw_label_list(label)
            result = adjudication.decide(proj, who, item_id, note=note, labels=labels)
        else:
            result = adjudication.decide(proj, who, item_id, label, note)
    emit(
        {**result.to_dict(), "item": item},
        as_json,
        lambda r: out.print(
            f"{item}: {_shown(r, 'previous_label')} → {_shown(r, 'label')} (adjudicated)",
            markup=False,
            highlight=False,
        ),
    )


def _shown(result: dict[str, Any], key: str) -> str:
    """A label, or a multi-label item's set (`<key>s`), as the terminal shows it."""
    labels = result.get(key + "s")
    if labels is not None:
        return ", ".join(labels) or "no label"
    return result[key] or "no label"


@adjudicate_app.command("undo")
def adjudicate_undo(
    reviewer: Reviewer,
    decision: Annotated[
        int | None, typer.Option(min=1, help="A decision id (default: your latest).")
    ] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Withdraw a decision; the item's label is recomputed from its answers."""
    from ..review import adjudication

    with open_project(project, db) as proj:
        who = adjudication.reviewer_named(proj, reviewer)
        result = adjudication.undo(proj, who, decision)
    summary = {"undone": result.undone, "item": result.item.uid, "label": result.item.label}
    if result.item.multi_label:
        summary["labels"] = result.item.labels
    emit(summary, as_json)


@adjudicate_app.command("names")
def adjudicate_names(
    shown: Annotated[str, typer.Argument(help="shown or hidden (blind adjudication).")],
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Show reviewers who gave each answer, or hide the names (the default)."""
    from ..errors import InputError
    from ..review import adjudication

    if shown not in ("shown", "hidden"):
        raise InputError(f"say shown or hidden, not {shown!r}")
    with open_project(project, db) as proj:
        result = adjudication.set_show_names(proj, shown == "shown")
    emit(result, as_json, lambda r: out.print(f"Annotator names are {shown} to reviewers."))


def _caller(project: Any, name: str) -> Any:
    """The reviewer named by `--as`, or (reading only, at the command line) an admin's view."""
    from ..review import Principal, adjudication

    if name:
        return adjudication.reviewer_named(project, name)
    return Principal(0, "(command line)", "admin")
