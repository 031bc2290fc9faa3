"""`labelloop demo`: the whole loop on bundled sample data, offline, with the embedded model."""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Any

from rich.console import Console

from .project import Project
from .vocabulary import ItemState
from .workflows.calibrate import summary

TASK = "Classify the sentiment of this movie review."
LABELS = ["positive", "negative"]


def sample_file(name: str) -> Path:
    return Path(str(files("labelloop") / "sample_data" / name))


def run_demo(
    directory: Path | None = None, *, limit: int = 200, quiet: bool = False, model: str = "local"
) -> dict[str, Any]:
    """Create a project, import sample reviews, pre-label, calibrate, route and summarise."""
    console = Console(stderr=True, quiet=quiet)
    folder = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="labelloop-demo-"))
    console.rule("labelloop demo")
    console.print(f"project folder: {folder}")
    with Project.create(folder, task=TASK, labels=LABELS) as project:
        gold = project.import_file(sample_file("reviews_gold.csv"), id_col="id", split="gold")
        pool = project.import_file(sample_file("reviews_pool.csv"), id_col="id")
        console.print(f"imported {gold.added} gold items and {pool.added} pool items")

        console.print(f"pre-labeling with the embedded model ({model}) …")
        with console.status("pre-labeling"):
            prelabel = project.prelabel(model=model, limit=limit)
        console.print(
            f"  {prelabel['done']} labeled, {prelabel['failed']} failed in "
            f"{prelabel['elapsed_s']:.1f} s"
        )
        calibration = project.calibrate(budget=0.3, plots_dir=folder / "plots")
        console.print(
            f"calibrated ({calibration['method']}) on {calibration['n_gold']} gold items: "
            f"threshold {calibration['threshold']:.3f}, ECE {calibration['ece_before']:.3f} → "
            f"{calibration['ece_after']:.3f}"
        )
        routed = project.route()
        stats = project.stats()
        llm_only = _reference_accuracy(project)
        console.print(
            f"routed on the LLM alone: {routed['auto_accepted']} auto-accepted, "
            f"{routed['in_review']} to review ({_pct(stats.review_rate)} of the pool); "
            f"LLM accuracy on gold {_pct(stats.gold_accuracy)}"
        )
        if routed.get("labeler_distrusted"):
            console.print(
                "the LLM alone was not routed on: calibration found it no better than guessing "
                "the majority label, or its confidences did not rank right answers above wrong ones"
            )
        console.print("training the student on the gold labels and stacking it with the LLM …")
        learned = project.learn()
        console.print(
            "  cross-validated accuracy: "
            + ", ".join(
                f"{name.split('@')[0]} {_pct(m['accuracy'])}"
                for name, m in learned["components"].items()
            )
            + f"; routing now trusts {learned['best'].split('@')[0]}"
        )
        stats = project.stats()
        final = _reference_accuracy(project)
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
        f"once people answer the review queue (the sample's reference labels stand in for "
        f"them), the finished dataset of {final['items']} items is "
        f"{_pct(final['finished_accuracy'])} right for {_pct(final['human_effort'])} human "
        f"effort (gold included; `labelloop simulate --loop` plays the whole loop)"
    )
    console.print(f"next: `labelloop serve --project {folder}` to review the queue")
    return {
        "project": str(folder),
        "prelabel": prelabel,
        "calibration": summary(calibration),
        "route_llm_only": routed,
        "reference_llm_only": llm_only,
        "learn": {k: learned[k] for k in ("trusted_labels", "best", "components")},
        "stats": stats.to_dict(),
        "reference": final,
    }


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
