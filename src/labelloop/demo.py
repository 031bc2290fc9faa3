"""`labelloop demo`: the whole loop on bundled sample data, offline, with the embedded model."""

from __future__ import annotations

import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from .active import get_embedder
from .active.effort import curve_on_grid
from .loop_simulation import (
    ALL_HUMAN,
    ALL_HUMAN_SETTING,
    REVIEW_ORDER,
    Setting,
    items_from_project,
    simulate_loop,
)
from .project import Project, Routing
from .vocabulary import ItemState
from .workflows.calibrate import summary

TASK = "Classify the sentiment of this movie review."
LABELS = ["positive", "negative"]
REFERENCE = "reference_label"  # the pool file's column of labels people would have given
LOOP = "loop"
LOOP_GOLD = 0.2  # share of the simulated items drawn as gold, its starting effort
LOOP_STEP = 0.1  # share of the items people answer in each round
LOOP_BUDGET = 0.6  # human effort the simulation stops at
LOOP_MIN_ITEMS = 50  # fewer: the rounds are too small to say anything


def sample_file(name: str) -> Path:
    return Path(str(files("labelloop") / "sample_data" / name))


def run_demo(
    directory: Path | None = None,
    *,
    limit: int = 200,
    quiet: bool = False,
    model: str = "local",
    labeler: Any = None,
) -> dict[str, Any]:
    """Create a project, import sample reviews, pre-label, calibrate, route, learn, and end on
    the loop played on the same sample: the finished dataset's accuracy against human effort.

    `labeler` replaces the one named by `model` (an endpoint's, say)."""
    console = Console(stderr=True, quiet=quiet)
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="labelloop-demo-"))
    console.rule("labelloop demo")
    console.print(f"project folder: {folder}")
    with Project.create(folder, task=TASK, labels=LABELS) as project:
        gold = project.import_file(sample_file("reviews_gold.csv"), id_col="id", split="gold")
        pool = project.import_file(sample_file("reviews_pool.csv"), id_col="id")
        console.print(f"imported {gold.added} gold items and {pool.added} pool items")

        name = getattr(labeler, "model_id", None) or f"the embedded model ({model})"
        console.print(f"pre-labeling with {name} …")
        with console.status("pre-labeling"):
            prelabel = project.prelabel(labeler, model=model, limit=limit)
        console.print(
            f"  {prelabel.done} labeled, {prelabel.failed} failed in {prelabel.elapsed_s:.1f} s"
        )
        calibration = project.calibrate(budget=0.3, plots_dir=folder / "plots")
        console.print(
            f"calibrated ({calibration.method}) on {calibration.n_gold} gold items: "
            f"threshold {calibration.threshold:.3f}, ECE {calibration.ece_before:.3f} → "
            f"{calibration.ece_after:.3f}"
        )
        routed = project.route()
        stats = project.stats()
        llm_only = _reference_accuracy(project)
        console.print(
            f"routed on the LLM alone: {routed.auto_accepted} auto-accepted, "
            f"{routed.in_review} to review ({_pct(stats.review_rate)} of the pool); "
            f"LLM accuracy on gold {_pct(stats.gold_accuracy)}"
        )
        if isinstance(routed, Routing) and routed.labeler_distrusted:
            console.print(
                "the LLM alone was not routed on: calibration found it no better than guessing "
                "the majority label, or its confidences did not rank right answers above wrong ones"
            )
        console.print("training the student on the gold labels and stacking it with the LLM …")
        embedder = get_embedder("auto")  # one model for the student and the simulation
        learned = project.learn(embedder=embedder)
        console.print(
            "  cross-validated accuracy: "
            + ", ".join(
                f"{name.split('@')[0]} {_pct(m['accuracy'])}"
                for name, m in learned.components.items()
            )
            + f"; routing now trusts {learned.best.split('@')[0]}"
        )
        stats = project.stats()
        final = _reference_accuracy(project)
        with console.status("simulating the loop") as status:
            loop = loop_outcome(project, embedder, log=status.update)
    console.print(
        f"routed: {stats.auto_accepted} auto-accepted, {stats.in_review} to review "
        f"({_pct(stats.review_rate)} of the pool)"
    )
    llm_alone = (
        f" (LLM alone: {_pct(llm_only['auto_accepted_accuracy'])} of {llm_only['auto_accepted']})"
        if llm_only["auto_accepted"]
        else ""
    )
    console.print(
        f"auto-accepted labels right (against the sample's reference labels): "
        f"{_pct(final['auto_accepted_accuracy'])} of {final['auto_accepted']}{llm_alone}"
    )
    console.print(
        f"once people answer this review queue, the finished dataset of {final['items']} items "
        f"is {_pct(final['finished_accuracy'])} right for {_pct(final['human_effort'])} human "
        f"effort (gold included)"
    )
    console.print(format_outcome(loop))
    console.print(f"next: `labelloop serve --project {folder}` to review the queue")
    return {
        "project": str(folder),
        "prelabel": prelabel,
        "calibration": summary(calibration),
        "route_llm_only": routed,
        "reference_llm_only": llm_only,
        "learn": {
            "trusted_labels": learned.trusted_labels,
            "best": learned.best,
            "components": learned.components,
        },
        "stats": stats.to_dict(),
        "reference": final,
        "loop": loop,
    }


def loop_outcome(project: Project, embedder: Any, *, log: Any = None) -> dict[str, Any]:
    """The loop played on the demo's own items: those pre-labeled whose label the sample
    knows, the reference labels standing in for people, the LLM answers the project already
    holds (no model is asked again). Rounds of people answering the routing queue and `learn`,
    beside people labeling alone; the finished dataset's accuracy at each effort reached."""
    items, predictions = items_from_project(project, reference=REFERENCE, answered_only=True)
    n = len(items.uids)
    if n < LOOP_MIN_ITEMS or not predictions:
        return {"items": n, "skipped": f"{n} pre-labeled items with a reference label"}
    n_gold = max(10, round(LOOP_GOLD * n))
    started = time.perf_counter()
    result = simulate_loop(
        items,
        task=project.task,
        predictions=predictions,
        n_gold=n_gold,
        budget=LOOP_BUDGET,
        batch=max(1, round(LOOP_STEP * n)),
        repeats=1,
        settings=[Setting(LOOP, True, REVIEW_ORDER, True), ALL_HUMAN_SETTING],
        embedder=embedder,
        log=log,
    )
    runs = {name: s["runs"][0] for name, s in result.settings.items()}
    efforts = np.array([p["effort"] for p in runs[LOOP]])
    human = runs[ALL_HUMAN]
    alone = curve_on_grid([p["effort"] for p in human], [p["accuracy"] for p in human], efforts)
    return {
        "items": n,
        "gold": n_gold,
        "batch": result.batch,
        "labeler": result.labeler,
        "stand_in_for_people": f"the sample's reference labels ({REFERENCE})",
        "rounds": [
            {"effort": p["effort"], "accuracy": p["accuracy"], ALL_HUMAN: float(a)}
            for p, a in zip(runs[LOOP], alone, strict=True)
        ],
        "elapsed_s": time.perf_counter() - started,
    }


def format_outcome(loop: dict[str, Any]) -> str:
    """The loop's outcome as a few lines: effort against the finished dataset's accuracy."""
    if "skipped" in loop:
        return f"the loop was not simulated: only {loop['skipped']}"
    lines = [
        f"the loop on this sample ({loop['items']} pre-labeled items, the sample's reference "
        f"labels standing in for people, {loop['gold']} of them drawn as gold, then rounds of "
        f"{loop['batch']}: people answer the routing queue, the student and stack relearn, "
        f"calibration and routing follow; the LLM answers above are reused):",
        f"  {'human effort':>12}   {'finished dataset accuracy':>25}   {'all-human baseline':>18}",
    ]
    lines += [
        f"  {_pct(r['effort']):>12}   {_pct(r['accuracy']):>25}   {_pct(r[ALL_HUMAN]):>18}"
        for r in loop["rounds"]
    ]
    lines.append(
        "  (all-human baseline: people label in random order with no model, so the dataset is "
        "only what they labeled; 100% effort for 100%. `labelloop simulate --loop` plays more "
        "settings and repeats)"
    )
    return "\n".join(lines)


def _reference_accuracy(project: Project) -> dict[str, Any]:
    """Accuracy of auto-accepted labels against the reference labels kept in the sample, and of
    the finished dataset once people have answered what is queued for them (their answers
    taken as the reference labels), against the share of items people labeled."""
    right = total = items = human = 0
    for row in project.iter_export_rows():
        items += 1
        reference = (row["meta"] or {}).get("reference_label")
        if row["state"] == ItemState.AUTO_ACCEPTED and reference:
            total += 1
            right += row["label"] == reference
        elif row["state"] != ItemState.AUTO_ACCEPTED:
            human += 1  # gold, or answered by people from the review queue
    return {
        "auto_accepted": total,
        "auto_accepted_accuracy": right / total if total else None,
        "items": items,
        "human_effort": human / items if items else None,
        "finished_accuracy": (right + human) / items if items else None,
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
