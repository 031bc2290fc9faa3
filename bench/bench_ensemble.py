"""The best predictor wins: each LLM alone, the student alone and the stack, on real corpora.

For each corpus: 200 gold items (trusted labels) and a held-out pool whose reference labels are
used only for scoring. Every predictor is calibrated on the gold items the same way
(`calibrate --budget 0.3`), then judged on the pool: accuracy of its own answers and of the
labels after calibration (which can move a label), AUROC of confidence for correctness, ECE (15
equal-width bins) of the confidence before and after calibration, final accuracy when the items
under the threshold are reviewed (reviewed items counted right), and the review needed for 95%
and 97% final accuracy. Baseline: the embedded LLM alone, in the same run.

Run: PYTHONPATH=src python bench/bench_ensemble.py [--gold 200] [--pool 400] [--models local]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy import select

from _active_corpora import CORPORA
from _report import write_section
from labelloop import Project
from labelloop.calibration.metrics import auroc, expected_calibration_error
from labelloop.store import Prediction
from labelloop.workflows.learn import ENSEMBLE, STUDENT

TASKS = {
    "Rotten Tomatoes": (
        "Classify the sentiment of this movie review.",
        {"fresh": "positive", "rotten": "negative"},
    ),
    "BBC News": ("Classify the topic of this news article.", None),
}


def review_needed(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Least share reviewed (lowest confidence first) for the final accuracy to reach target."""
    order = np.argsort(confidence)
    wrong_left = (~correct[order]).sum() - np.concatenate([[0], np.cumsum(~correct[order])])
    final = 1 - wrong_left / len(correct)
    reached = np.flatnonzero(final >= target)
    return float(reached[0] / len(correct)) if reached.size else 1.0


def evaluate(project: Project, truth: dict[str, str]) -> dict[str, float]:
    report = project.calibrate(budget=0.3)
    rows = [r for r in project.iter_export_rows() if r["split"] == "pool"]
    conf = np.array([r["calibrated_confidence"] or 0.0 for r in rows])
    raw = np.array([r["confidence"] or 0.0 for r in rows])
    # The label shown (after calibration, which can move it) and the predictor's own answer.
    correct = np.array([r["llm_label"] == truth[r["id"]] for r in rows])
    raw_correct = np.array([r["labeler_label"] == truth[r["id"]] for r in rows])
    threshold = report["threshold"]
    auto = conf >= threshold
    return {
        "raw_accuracy": float(raw_correct.mean()),
        "accuracy": float(correct.mean()),
        "auroc": float(auroc(raw, raw_correct)),
        "ece_raw": float(expected_calibration_error(raw, raw_correct)),
        "ece": float(expected_calibration_error(conf, correct)),
        "review": float(1 - auto.mean()),
        "final": float(1 - (~correct & auto).sum() / len(correct)),
        "review95": review_needed(conf, correct, 0.95),
        "review97": review_needed(conf, correct, 0.97),
    }


def corpus_split(
    name: str, n_gold: int, n_pool: int, seed: int
) -> tuple[list[dict], list[dict], dict[str, str], list[str]]:
    """Gold rows, pool rows, the pool's reference labels and the label set of one corpus."""
    texts, labels = CORPORA[name]()
    _, mapping = TASKS[name]
    names = [mapping.get(str(x), str(x)) if mapping else str(x) for x in labels]
    rng = np.random.default_rng(seed)
    keep = [i for i in rng.permutation(len(texts)) if len(texts[i].strip()) >= 20][
        : n_gold + n_pool
    ]
    gold = [
        {"id": f"g{i}", "text": texts[i].strip()[:4000], "label": names[i]} for i in keep[:n_gold]
    ]
    pool = [{"id": f"p{i}", "text": texts[i].strip()[:4000]} for i in keep[n_gold:]]
    truth = {f"p{i}": names[i] for i in keep[n_gold:]}
    return gold, pool, truth, sorted(set(names))


def project_folder(workdir: Path, name: str, n_gold: int, n_pool: int, seed: int) -> Path:
    return workdir / f"{name.replace(' ', '-').lower()}-{n_gold}-{n_pool}-{seed}"


def run_corpus(
    name: str, n_gold: int, n_pool: int, models: list[str], seed: int, workdir: Path | None
) -> list[str]:
    task, _ = TASKS[name]
    gold, pool, truth, label_set = corpus_split(name, n_gold, n_pool, seed)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(workdir or Path(tmp), name, n_gold, n_pool, seed)
        if (folder / "labelloop.json").exists():  # predictions already stored are reused
            project = Project.open(folder)
        else:
            project = Project.create(folder, task=task, labels=label_set)
            project.add_items(gold, id_col="id", split="gold")
            project.add_items(pool, id_col="id")
        timings, versions = {}, {}
        for model in models:
            started = time.perf_counter()
            result = project.prelabel(model=model)
            if result["done"] + result["failed"]:  # otherwise every answer was stored already
                timings[model] = (time.perf_counter() - started) / (n_gold + n_pool)
            versions[model] = (result["model"], result["prompt_version"])
        started = time.perf_counter()
        project.learn(recalibrate=False)
        learn_time = (time.perf_counter() - started) / (n_gold + n_pool)
        figures = {}
        for model, key in versions.items():
            project.set_active_predictor(*key)
            figures[f"LLM {model}"] = evaluate(project, truth)
        for derived in (STUDENT, ENSEMBLE):
            with project.store.session() as session:
                version = session.scalar(
                    select(Prediction.prompt_version).where(Prediction.model == derived).limit(1)
                )
            project.set_active_predictor(derived, version)
            figures[derived] = evaluate(project, truth)
        project.close()
    baseline = figures[f"LLM {models[0]}"]
    lines.append(f"### {name} ({n_gold} gold, {n_pool} evaluated, {len(label_set)} labels)\n")
    lines.append(
        "| predictor | accuracy before → after calibration | AUROC | ECE before | ECE after |"
        " review | final accuracy | review for 95% | review for 97% |"
    )
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, f in figures.items():
        lines.append(
            f"| {label} | {f['raw_accuracy']:.3f} → {f['accuracy']:.3f} | {f['auroc']:.3f} | "
            f"{f['ece_raw']:.3f} | "
            f"{f['ece']:.3f} | "
            f"{f['review']:.1%} | {f['final']:.3f} | {f['review95']:.1%} | "
            f"{f['review97']:.1%} |"
        )
    stack = figures[ENSEMBLE]
    lines.append("")
    lines.append(
        f"Stack vs the LLM alone: accuracy ×{stack['accuracy'] / baseline['accuracy']:.2f},"
        f" review for 95% ×{stack['review95'] / max(baseline['review95'], 1e-9):.2f}. "
        "Cost per item: "
        + "".join(f"{m} {t * 1000:.0f} ms, " for m, t in timings.items())
        + f"student + stack {learn_time * 1000:.1f} ms (embedding included"
        + ("" if timings else "; LLM answers and embeddings stored by an earlier run")
        + ").\n"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument(
        "--pool", type=int, nargs="+", default=[400], help="pool size, one for all or per corpus"
    )
    parser.add_argument("--models", nargs="+", default=["local"])
    parser.add_argument("--corpus", nargs="+", default=list(CORPORA))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", type=Path, help="keep the projects here; a re-run reuses stored LLM answers"
    )
    args = parser.parse_args()
    lines = []
    pools = args.pool * len(args.corpus) if len(args.pool) == 1 else args.pool
    for name, n_pool in zip(args.corpus, pools, strict=True):
        lines += run_corpus(name, args.gold, n_pool, args.models, args.seed, args.workdir)
        print("\n".join(lines), flush=True)
    write_section(
        "ensemble",
        "\n".join(lines),
        f"python bench/bench_ensemble.py --gold {args.gold} --pool {' '.join(map(str, pools))} "
        f"--models {' '.join(args.models)}"
        + (f" --workdir {args.workdir}" if args.workdir else ""),
    )


if __name__ == "__main__":
    main()
