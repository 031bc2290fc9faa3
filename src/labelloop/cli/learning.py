"""Commands of the learning loop: learn, select, simulate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import InputError
from .app import app
from .common import (
    DbUrl,
    Engine,
    JsonOut,
    ProjectDir,
    RayAddress,
    emit,
    err,
    open_project,
    out,
    percent,
    progress_bar,
)

if TYPE_CHECKING:
    from ..loop_simulation import LoopPlan
    from ..workflows.compare import Comparison
    from ..workflows.learn import Learned
    from ..workflows.multilabel_learn import MultiLabelLearned


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _render_learn(r: Learned | MultiLabelLearned) -> None:
    from ..workflows.multilabel_learn import MultiLabelLearned  # loaded by `learn` already

    if isinstance(r, MultiLabelLearned):
        _render_learn_sets(r)
        return
    out.print(
        f"trained on {r.trusted_labels} trusted labels "
        f"(majority class {percent(r.majority_rate)}); cross-validated:"
    )
    for name, m in r.components.items():
        out.print(
            f"  {name:<40} acc {percent(m['accuracy']):>7}  log loss {_fmt(m['log_loss'])}"
            f"  AUROC {_fmt(m['auroc'])}  (n={m['n']})",
            highlight=False,
        )
    if r.weak_labelers:
        out.print(
            "  below the majority-class rate, left out of the stack: " + ", ".join(r.weak_labelers)
        )
    if r.fine_tune:
        t = r.fine_tune
        out.print(
            f"student encoder fine-tuned on {t['labels']} people's labels ({t['pairs']} pairs, "
            f"{t['cpu_seconds']} CPU s)",
            highlight=False,
        )
    out.print(f"stack weights: {json.dumps(r.stack_weights)}", highlight=False)
    out.print(f"best predictor (lowest log loss): {r.best} — now used for routing")


def _render_learn_sets(r: MultiLabelLearned) -> None:
    out.print(
        f"trained on {r.trusted_labels} trusted label sets; cross-validated, each label a "
        "yes/no decision:"
    )
    for name, m in r.components.items():
        out.print(
            f"  {name:<40} log loss {_fmt(m['log_loss'])}  AUROC {_fmt(m['auroc'])}"
            f"  micro-F1 {_fmt(m['micro_f1'])}  sets right {percent(m['subset_accuracy']):>7}"
            f"  (n={m['n']})",
            highlight=False,
        )
    out.print(f"stack weights: {json.dumps(r.stack_weights)}", highlight=False)
    out.print(f"best predictor (lowest per-label log loss): {r.best} — now used for routing")


@app.command()
def learn(
    engine: Engine = "local",
    ray_address: RayAddress = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Train the student on trusted labels and stack it with the LLMs; report per component.

    The predictor with the lowest cross-validated log loss becomes the one routing trusts;
    calibration and routing are refreshed with their last settings.
    """
    from ..engines import engine_for

    runner = engine_for(engine, address=ray_address)
    with open_project(project, db) as proj, progress_bar("embedding") as progress:
        result = proj.learn(progress=progress, engine=runner)
    emit(result, as_json, _render_learn)


@app.command("select")
def select_(
    strategy: Annotated[
        str,
        typer.Option(
            help="Query strategy, e.g. margin, hybrid, badge (default margin: of the select "
            "strategies it gave the most accurate finished dataset in the loop simulation)."
        ),
    ] = "margin",
    k: Annotated[
        int,
        typer.Option(
            "--k",
            min=1,
            help="How many items to queue: the loop measured best in rounds of 20 answers, "
            "then `learn` (as `serve --retrain-every` does).",
        ),
    ] = 20,
    budget: Annotated[
        int | None, typer.Option(help="Stopping rule: total human labels to spend.")
    ] = None,
    target_accuracy: Annotated[
        float | None, typer.Option(help="Stopping rule: student accuracy on gold to reach.")
    ] = None,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Active learning: queue the K most useful items for review."""
    from ..engines import engine_for

    runner = engine_for(engine, address=ray_address)
    with open_project(project, db) as proj, progress_bar("embedding") as progress:
        result = proj.select(
            strategy,
            k,
            label_budget_total=budget,
            target=target_accuracy,
            progress=progress,
            engine=runner,
        )
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"queued {r.queued} items for review ({r.strategy}); "
            f"{r.trusted_labels} trusted labels so far"
            + ("; stopping rules say: stop" if r.stopping.get("stop") else "")
        ),
    )


LoopModel = Annotated[
    str,
    typer.Option(
        "--model",
        help="With --loop: the LLM that pre-labels (local, NAME at --base-url, PATH.gguf), "
        "or none for the student alone.",
    ),
]


@app.command()
def simulate(
    data: Annotated[Path, typer.Option(help="Labeled CSV/JSONL/Parquet: gold is the oracle.")],
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            help="Strategy to compare (repeat the option); default random and hybrid, or with "
            "--loop the routing queue (review)."
        ),
    ] = None,
    text_col: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    label_col: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    seed_size: Annotated[int, typer.Option(help="Random labels to start from.")] = 20,
    batch: Annotated[
        int | None,
        typer.Option(help="Labels per round (default 20; with --loop 2% of the items, ≥ 20)."),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Rounds of selection.")] = 10,
    repeats: Annotated[int, typer.Option(help="Repeats with other seeds (mean ± std).")] = 5,
    target: Annotated[
        float, typer.Option(help="Target, as a share of the full-data accuracy.")
    ] = 0.95,
    cold_start: Annotated[
        bool,
        typer.Option(
            help="Each strategy picks its own first --seed-size items from nothing labeled "
            "(k-means typicality; random stays random) instead of a shared random seed set."
        ),
    ] = False,
    loop: Annotated[
        bool,
        typer.Option(
            "--loop",
            help="Play the whole product (prelabel, calibrate, route, select, people, learn) "
            "with the file's labels as the people: accuracy of the finished dataset against "
            "human effort, beside the baselines.",
        ),
    ] = False,
    model: LoopModel = "local",
    base_url: Annotated[
        str | None, typer.Option(help="With --loop: OpenAI-compatible endpoint of --model.")
    ] = None,
    api_key_env: Annotated[
        str, typer.Option(help="With --loop: environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    task: Annotated[
        str, typer.Option(help="With --loop: the task the LLM is given.")
    ] = "Classify this text.",
    gold: Annotated[int, typer.Option(help="With --loop: gold items drawn per repeat.")] = 200,
    budget: Annotated[
        float, typer.Option(help="With --loop: human effort to spend, as a share of the items.")
    ] = 0.5,
    target_accuracy: Annotated[
        float, typer.Option(help="With --loop: the accuracy whose effort is reported.")
    ] = 0.95,
    confidence_level: Annotated[
        float | None,
        typer.Option(
            help="With --loop: routing certifies the target accuracy with this probability, as "
            "`calibrate --confidence-level` does (default: the loop's measured best; 0: the "
            "point estimate on gold)."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="With --loop: keep LLM answers and embeddings here for later runs."),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the curves as a PNG.")] = None,
    learning: Annotated[
        str | None,
        typer.Option(
            help="With --loop: how `learn` trains, as the project setting `learning` (JSON, e.g. "
            "'{\"fine_tune\": true}')."
        ),
    ] = None,
    as_json: JsonOut = False,
) -> None:
    """Learning curves on a labeled file with gold labels as the oracle; with --loop, the whole
    product played on it."""
    if loop:
        _simulate_loop(
            data,
            text_col=text_col,
            label_col=label_col,
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            task=task,
            n_gold=gold,
            budget=budget,
            batch=batch,
            strategies=strategy or ["review"],
            repeats=repeats,
            target_accuracy=target_accuracy,
            confidence_level=_certified(confidence_level),
            cache=cache,
            plot=plot,
            learning=_json_mapping("--learning", learning),
            as_json=as_json,
        )
        return
    from ..active import format_simulation
    from ..workflows.simulate import simulate as run

    result = run(
        data,
        strategy or ["random", "hybrid"],
        text_col=text_col,
        label_col=label_col,
        seed_size=seed_size,
        batch=batch or 20,
        rounds=rounds,
        repeats=repeats,
        target_fraction=target,
        cold_start=cold_start,
        plot=plot,
    )
    emit(result, as_json, lambda r: out.print(format_simulation(r.curves), highlight=False))


def _json_mapping(option: str, text: str | None) -> dict[str, Any] | None:
    """A JSON object given on the command line, or InputError naming the option."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{option} must be a JSON object: {exc}", value=text) from exc
    if not isinstance(value, dict):
        raise InputError(f"{option} must be a JSON object", value=text)
    return value


def _certified(level: float | None) -> float | None:
    """`--confidence-level` as the loop simulation takes it: absent, its default; 0, none."""
    from ..loop_simulation import CONFIDENCE_LEVEL

    if level is None:
        return CONFIDENCE_LEVEL
    return level or None


def _simulate_loop(
    data: Path,
    *,
    model: str,
    base_url: str | None,
    api_key_env: str,
    as_json: bool,
    **options: Any,
) -> None:
    from ..loop_simulation import format_loop, items_from_file, simulate_loop
    from ..project import make_labeler

    items = items_from_file(data, options.pop("text_col"), options.pop("label_col"))
    labeler = (
        None if model == "none" else make_labeler(model, base_url=base_url, api_key_env=api_key_env)
    )
    try:
        result = simulate_loop(items, labeler=labeler, log=err.print, **options)
    finally:
        if labeler is not None:
            labeler.close()
    emit(result, as_json, lambda r: out.print(format_loop(r), highlight=False, soft_wrap=True))


@app.command()
def plan(
    target_accuracy: Annotated[
        float, typer.Option(help="The accuracy the finished dataset should reach.")
    ] = 0.95,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            help="Who picks the items people see: review (the routing queue) or a "
            "select strategy (repeat the option to compare)."
        ),
    ] = None,
    gold_share: Annotated[
        float, typer.Option(help="Share of the gold items played as gold; the rest as pool.")
    ] = 0.3,
    repeats: Annotated[int, typer.Option(help="Repeats, each with other gold.")] = 5,
    confidence_level: Annotated[
        float | None,
        typer.Option(
            help="Routing certifies the target accuracy with this probability, as "
            "`calibrate --confidence-level` does (default: the loop's measured best; 0: the "
            "point estimate on gold)."
        ),
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Labels per round (default 5%).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the curves as a PNG.")] = None,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """From the project's gold items: the human effort to expect for a target accuracy.

    The gold items are played as a small project with the LLM answers already stored for
    them (no LLM is asked); read-only for the project.
    """
    from ..loop_simulation import plan as run

    with open_project(project, db) as proj:
        result = run(
            proj,
            target_accuracy=target_accuracy,
            gold_share=gold_share,
            batch=batch,
            strategies=strategy or ["review"],
            repeats=repeats,
            confidence_level=_certified(confidence_level),
            plot=plot,
            log=err.print,
        )
    emit(result, as_json, _render_plan)


def _render_plan(r: LoopPlan) -> None:
    from ..loop_simulation import format_loop

    p = r.plan
    target = f"{r.target_accuracy:.3f}"
    if p["mean"] is not None:
        interval = (
            f" ({round(100 * r.level)}% interval {percent(p['low'])}–{percent(p['high'])})"
            if p["low"] is not None
            else ""
        )
        out.print(
            f"expected effort for accuracy {target}: {percent(p['mean'])} of the items{interval}",
            highlight=False,
        )
    else:
        out.print(
            f"accuracy {target} was reached in {p['reached']} of {p['repeats']} repeats only",
            highlight=False,
        )
    out.print(format_loop(r), highlight=False, soft_wrap=True)


def _interval(v: dict | None, signed: bool = False) -> str:
    if not v:
        return "—"
    sign = "+" if signed else ""
    return f"{v['estimate']:{sign}.3f} [{v['low']:{sign}.3f}, {v['high']:{sign}.3f}]"


def _render_agreement(r: dict) -> None:
    """The agreement report for people; names come from files and accounts, so every line is
    printed as text, never read as rich markup."""
    for key in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1"):
        m = r.get(key) or {}
        if m.get("estimate") is not None:
            interval = f" [{_fmt(m.get('low'))}, {_fmt(m.get('high'))}]" if m.get("low") else ""
            reading = f" — {m['interpretation']}" if m.get("interpretation") else ""
            out.print(
                f"{key.replace('_', ' '):<20} {m['estimate']:.3f}{interval}{reading}",
                markup=False,
                highlight=False,
            )
    for entry in r.get("pairwise_cohen", []):
        out.print(
            f"  κ {entry['a']} / {entry['b']}: {_fmt(entry['estimate'])} (n={entry['n_items']})",
            markup=False,
            highlight=False,
        )
    for label, kappa in (r.get("per_label_kappa") or {}).items():  # multi-label projects
        out.print(
            f"  κ {label} (label applies or not): {_fmt(kappa)}", markup=False, highlight=False
        )
    for entry in r.get("vs_majority", []):
        out.print(
            f"  {entry.get('measure', 'κ')} {entry['rater']} vs the majority of the others: "
            f"{_fmt(entry['estimate'])} — {entry['interpretation']}",
            markup=False,
            highlight=False,
        )
    for flag in r.get("flags", []):
        out.print(f"  flag: {flag}", markup=False, highlight=False)
    for q in r.get("annotator_quality", []):
        change = q["drift"]["recent_change"]
        out.print(
            f"  {q['annotator']}: accuracy vs gold {_interval(q['against_gold'])} "
            f"(n={q['n_gold']}), vs consensus {_interval(q['against_consensus'])}; "
            f"last {q['drift']['window']} answers vs earlier: {_interval(change, signed=True)}",
            markup=False,
            highlight=False,
        )
    issues = r.get("label_issues")
    if issues:
        out.print(
            f"likely mislabeled: {len(issues['suspects'])} of {issues['checked']} checked"
            f" ({issues['queued']} queued for a second look)"
        )


@app.command()
def agreement(
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for intervals (0: none).")
    ] = 1000,
    issues: Annotated[
        bool, typer.Option(help="Also look for likely-mislabeled items (needs `learn`).")
    ] = True,
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Agreement between annotators and LLMs, annotator quality, likely-mislabeled items."""
    from ..errors import NotReadyError

    with open_project(project, db) as proj:
        result = proj.agreement(n_boot=bootstrap).to_dict()
        if issues:
            try:
                result["label_issues"] = proj.label_issues().to_dict()
            except NotReadyError as exc:
                result["label_issues"] = None
                result.setdefault("notes", []).append(str(exc))
    emit(result, as_json, _render_agreement)


def _render_compare(r: Comparison) -> None:
    from rich.table import Table

    table = Table(
        "labeler",
        "gold",
        "accuracy [95% interval]",
        "AUROC",
        "ECE raw → calibrated",
        f"review for {percent(r.target_accuracy)}",
        "$ / 1000 items",
        "items/s",
        title="labelers on the gold items",
    )
    for entry in r.labelers:
        quality, usage = entry.quality, entry.usage
        acc = quality.accuracy
        accuracy = (
            f"{percent(acc['accuracy'])} [{percent(acc['low'])}, {percent(acc['high'])}]"
            if acc
            else "—"
        )
        ece = (
            f"{_fmt(quality.ece_before)} → {_fmt(quality.ece_after)}"
            if quality.note is None
            else quality.note
        )
        cost = usage.cost_per_1000_items_usd
        speed = usage.items_per_s
        table.add_row(
            f"{entry.model}@{entry.prompt_version[:8]}" + (" (active)" if entry.active else ""),
            str(quality.n_gold),
            accuracy,
            _fmt(quality.auroc),
            ece,
            percent(quality.review_rate),
            "—" if cost is None else f"{cost:.4f}",
            "—" if speed is None else f"{speed:.1f}",
        )
    out.print(table)


@app.command()
def compare(
    target_accuracy: Annotated[
        float, typer.Option(help="The accuracy whose review need is shown for each labeler.")
    ] = 0.95,
    method: Annotated[
        str, typer.Option(help="Calibration method measured (as for calibrate).")
    ] = "auto",
    project: ProjectDir = Path("."),
    db: DbUrl = None,
    as_json: JsonOut = False,
) -> None:
    """Every labeler that answered the gold items, side by side: accuracy, AUROC, ECE, review
    needed for a target accuracy, cost and speed."""
    from ..workflows.compare import compare as run

    with open_project(project, db) as proj:
        result = run(proj, target_accuracy=target_accuracy, method=method)
    emit(result, as_json, _render_compare)
