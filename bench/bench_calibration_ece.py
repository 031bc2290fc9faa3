"""ECE before and after calibration on held-out folds, with at most 200 gold items.

Feed it predictions of a real labeler on a real corpus, either
  * a CSV with columns `predicted`, `gold` and either `confidence` or one `p_<label>` column per
    label (per-label probabilities; the predicted label must be the row's argmax):
      PYTHONPATH=src python bench/bench_calibration_ece.py predictions.csv --name rotten-tomatoes
  * or, from Python, a callable returning (scores, predicted, gold, labels):
      from bench_calibration_ece import run; run(my_loader, name="bbc-news")
With no argument it runs on synthetic over-confident data (a smoke run; nothing is written to
docs/benchmarks.md unless --write is given). A random sample of at most --gold items is the gold
set; all metrics after calibration are out-of-fold.

With `--gold-sizes 100 200 400 800` the held-out mode also shows what each gold size allows,
against two floors: the calibrator fitted on every labeled item, and a perfectly calibrated
labeler measured the same way.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from labelloop.calibration import calibrate_report, expected_calibration_error, select_calibrator
from labelloop.calibration.evaluate import calibrated_correctness

Loaded = tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]


def load_csv(path: str | Path) -> Loaded:
    """(scores, predicted, gold, labels) from a predictions CSV (see the module docstring)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows")
    predicted = np.array([r["predicted"] for r in rows])
    gold = np.array([r["gold"] for r in rows])
    prob_cols = [c for c in rows[0] if c.startswith("p_")]
    if prob_cols:
        labels = [c[2:] for c in prob_cols]
        scores = np.array([[float(r[c]) for c in prob_cols] for r in rows])
        return scores, predicted, gold, labels
    return np.array([float(r["confidence"]) for r in rows]), predicted, gold, None


def synthetic(n: int = 2000, seed: int = 0) -> Loaded:
    """An over-confident 4-label model: reports softmax(3 z) where labels follow softmax(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (true.cumsum(1) > rng.random((n, 1))).argmax(1)
    scores = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    labels = ["a", "b", "c", "d"]
    names = np.array(labels)
    return scores, names[scores.argmax(1)], names[y], labels


def run(
    source: Callable[[], Loaded] | Loaded,
    name: str = "synthetic",
    gold_size: int = 200,
    method: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Sample the gold set, calibrate with cross-fitting, return the headline figures."""
    scores, predicted, gold, labels = source() if callable(source) else source
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(predicted))[:gold_size]
    _, report = calibrate_report(
        scores[take], predicted[take], gold[take], method=method, labels=labels, random_state=seed
    )
    return {
        "corpus": name,
        "gold": int(take.size),
        "method": report["method"],
        "accuracy": report["metrics_before"]["accuracy"],
        "ece_before": report["ece_before"],
        "ece_after": report["ece_after"],
        "ece_equal_mass_before": report["metrics_before"]["ece_equal_mass"],
        "ece_equal_mass_after": report["metrics_after"]["ece_equal_mass"],
    }


HELD_OUT_METHODS = ("auto", "temperature", "vector", "platt", "isotonic", "histogram")


def load_ensemble_project(
    workdir: Path, corpus: str, n_gold: int, n_pool: int, model: str, seed: int = 0
) -> Loaded:
    """A labeler's stored answers from `bench_ensemble.py --workdir`, with reference labels.

    The few-shot examples are left out: they were in the prompt."""
    from sqlalchemy import select

    from bench_ensemble import corpus_split, project_folder
    from labelloop import Project
    from labelloop.store import Item, Prediction

    gold, _, truth, labels = corpus_split(corpus, n_gold, n_pool, seed)
    truth |= {row["id"]: row["label"] for row in gold}
    project = Project.open(project_folder(workdir, corpus, n_gold, n_pool, seed))
    shots = set(project.settings.get("few_shot_item_ids") or [])
    with project.store.session() as session:
        rows = session.execute(
            select(Item.id, Item.uid, Prediction.probs)
            .join(Prediction, Prediction.item_id == Item.id)
            .where(Prediction.model == model, Prediction.probs.is_not(None))
        ).all()
    project.close()
    rows = [r for r in rows if r.id not in shots]
    if not rows:
        raise SystemExit(f"no answers of {model!r} stored for {corpus}")
    scores = np.array([[r.probs[label] for label in labels] for r in rows])
    names = np.array(labels)
    return scores, names[scores.argmax(1)], np.array([truth[r.uid] for r in rows]), labels


def held_out(
    loaded: Loaded,
    gold_size: int = 200,
    repeats: int = 20,
    seed: int = 0,
    methods: tuple[str, ...] = HELD_OUT_METHODS,
) -> list[dict[str, Any]]:
    """Calibrate on a random gold set, measure ECE on every other item; repeat with new draws.

    ECE is that of the label each calibrator vouches for (vector scaling can move labels), and
    `accuracy` is those labels' accuracy on the same items."""
    scores, predicted, gold, labels = loaded
    assert labels is not None, "held-out evaluation needs per-label probabilities"
    target = np.array([labels.index(g) for g in gold])
    correct = predicted == gold
    raw = scores.max(axis=1)
    rng = np.random.default_rng(seed)
    figures: dict[str, list[float]] = {"before": []} | {m: [] for m in methods}
    accuracy: dict[str, list[float]] = {name: [] for name in figures}
    picked: dict[str, int] = {}
    for _ in range(repeats):
        order = rng.permutation(len(target))
        fit, rest = order[:gold_size], order[gold_size:]
        figures["before"].append(expected_calibration_error(raw[rest], correct[rest]))
        accuracy["before"].append(float(correct[rest].mean()))
        for method in methods:
            selection = select_calibrator(scores[fit], target[fit], method)
            calibrated = selection.calibrator.transform(scores[rest])
            right = calibrated_correctness(selection.calibrator, scores[rest], target[rest])
            figures[method].append(expected_calibration_error(calibrated, right))
            accuracy[method].append(float(right.mean()))
            if method == "auto":
                picked[selection.method] = picked.get(selection.method, 0) + 1
    return [
        {
            "method": name if name != "auto" else f"auto (picked {_counts(picked)})",
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "accuracy": float(np.mean(accuracy[name])),
        }
        for name, values in figures.items()
    ]


def limits(
    loaded: Loaded, gold_sizes: list[int], repeats: int = 20, seed: int = 0
) -> dict[str, Any]:
    """What a gold set of each size can show, against two floors no gold set can beat.

    * `in_sample`: `auto` fitted on every labeled item and measured on the same items — the best
      this calibrator family does on this labeler.
    * `estimator_floor`: the ECE of a perfectly calibrated labeler (outcomes drawn from the
      in-sample calibrated confidences) measured on as many items as the held-out sets hold —
      the binned estimator's own noise.
    * per gold size: held-out ECE of `auto`, and the standard error of the labeler's accuracy as
      that many gold items estimate it (a calibrated confidence cannot know the accuracy better).
    """
    scores, _, gold, labels = loaded
    assert labels is not None, "held-out evaluation needs per-label probabilities"
    target = np.array([labels.index(g) for g in gold])
    calibrator = select_calibrator(scores, target, "auto").calibrator
    confidence = calibrator.transform(scores)
    correct = calibrated_correctness(calibrator, scores, target).astype(bool)
    rng = np.random.default_rng(seed)
    n_rest = len(correct) - min(gold_sizes)
    floor = [
        expected_calibration_error(confidence[rows], rng.random(rows.size) < confidence[rows])
        for rows in (rng.permutation(len(correct))[:n_rest] for _ in range(repeats))
    ]
    accuracy = float(correct.mean())
    by_size = []
    for size in gold_sizes:
        auto = held_out(loaded, size, repeats, seed, methods=("auto",))[1]
        by_size.append(
            {
                "gold": size,
                "mean": auto["mean"],
                "std": auto["std"],
                "accuracy_se": float(np.sqrt(accuracy * (1 - accuracy) / size)),
            }
        )
    return {
        "accuracy": accuracy,
        "in_sample": float(expected_calibration_error(confidence, correct)),
        "estimator_floor": float(np.mean(floor)),
        "n_rest": n_rest,
        "by_size": by_size,
    }


def limits_markdown(name: str, repeats: int, found: dict[str, Any]) -> str:
    lines = [
        f"*{name}, by gold size* (accuracy of the calibrated labels {found['accuracy']:.3f}): "
        "`auto` fitted on "
        f"every labeled item and measured on them, {found['in_sample']:.3f}; a perfectly "
        f"calibrated labeler measured on {found['n_rest']} items, {found['estimator_floor']:.3f} "
        f"(the estimator's floor, mean of {repeats} draws).",
        "",
        "| gold items | ECE of auto on held-out items | s.e. of accuracy from the gold set |",
        "| ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['gold']} | {r['mean']:.3f} ± {r['std']:.3f} | {r['accuracy_se']:.3f} |"
        for r in found["by_size"]
    ]
    return "\n".join(lines)


def _counts(picked: dict[str, int]) -> str:
    return ", ".join(f"{m} {n}×" for m, n in sorted(picked.items(), key=lambda kv: -kv[1]))


def held_out_markdown(name: str, n_items: int, gold_size: int, repeats: int, rows: list) -> str:
    lines = [
        f"**{name}**: {n_items} items; {repeats} random gold sets of {gold_size}, ECE (15 "
        f"equal-width bins) on the other {n_items - gold_size} items each time, mean ± sd.",
        "",
        "| calibration | ECE on held-out items | accuracy of the labels |",
        "| --- | ---: | ---: |",
    ]
    lines += [
        f"| {'none (as the labeler reports)' if r['method'] == 'before' else r['method']} | "
        f"{r['mean']:.3f} ± {r['std']:.3f} | {r['accuracy']:.3f} |"
        for r in rows
    ]
    return "\n".join(lines)


def to_markdown(results: list[dict[str, Any]]) -> str:
    head = "| corpus | gold | method | accuracy | ECE before | ECE after (held-out) |"
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    lines += [
        f"| {r['corpus']} | {r['gold']} | {r['method']} | {r['accuracy']:.3f} | "
        f"{r['ece_before']:.3f} | {r['ece_after']:.3f} |"
        for r in results
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="*", help="predictions CSV files")
    parser.add_argument("--name", action="append", help="corpus name per CSV")
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument(
        "--ensemble-workdir",
        type=Path,
        help="read a labeler's answers stored by bench_ensemble.py --workdir (held-out mode)",
    )
    parser.add_argument("--corpus", action="append", help="corpus (held-out mode)")
    parser.add_argument("--pool", type=int, action="append", help="pool size per corpus")
    parser.add_argument("--model", default="local:gemma3")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--gold-sizes",
        type=int,
        nargs="+",
        help="held-out mode: also measure auto at these gold sizes, against the floors",
    )
    args = parser.parse_args()
    if args.ensemble_workdir:
        parts = []
        for corpus, pool in zip(args.corpus, args.pool, strict=True):
            loaded = load_ensemble_project(args.ensemble_workdir, corpus, 200, pool, args.model)
            rows = held_out(loaded, args.gold, args.repeats)
            parts.append(held_out_markdown(corpus, len(loaded[1]), args.gold, args.repeats, rows))
            if args.gold_sizes:
                found = limits(loaded, args.gold_sizes, args.repeats)
                parts.append(limits_markdown(corpus, args.repeats, found))
            print("\n\n".join(parts[-2 if args.gold_sizes else -1 :]), flush=True)
        intro = (
            f"Embedded labeler `{args.model}` (answers from `bench/bench_ensemble.py`). "
            "Each calibrator is fitted on the gold set only; nothing it is judged on was seen. "
            "Vector scaling's per-label biases can move a label: ECE and accuracy are those of "
            "the labels each calibrator gives."
        )
        write_section(
            "calibration-ece-held-out",
            "\n\n".join([intro, *parts]),
            "PYTHONPATH=src python " + shlex.join(sys.argv),
        )
        return
    names = args.name or [Path(p).stem for p in args.csv]
    if args.csv:
        results = [
            run(load_csv(p), n, args.gold, args.method)
            for p, n in zip(args.csv, names, strict=True)
        ]
    else:
        results = [run(synthetic, "synthetic (over-confident, T=3)", args.gold, args.method)]
    text = to_markdown(results)
    print(text)
    if args.write or args.csv:
        write_section("calibration-ece", text, "PYTHONPATH=src python " + shlex.join(sys.argv))


if __name__ == "__main__":
    main()
