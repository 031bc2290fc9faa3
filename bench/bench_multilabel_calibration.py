"""Per-label calibration with 200 gold items, paired: one map per label against the shared map
with per-label departures, on the NRC Emotion Lexicon (`nrclex`, single words, 10 labels).

Each repeat draws 200 gold words and a disjoint pool from the lexicon, trains the one-vs-rest
student on the gold words' embeddings, fits both calibrators on the student's out-of-fold
probabilities for the gold words, and measures on the pool (held out from every fit) each
label's ECE (15 bins) and the micro-F1 of the sets p >= 1/2. The two calibrators see the same
words, gold and probabilities in every repeat, so their differences are paired; intervals are
the mean difference +- 1.96 standard errors over repeats.

    PYTHONPATH=src python bench/bench_multilabel_calibration.py [--pool 600] [--gold 200]
        [--repeats 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import embedded, nrc_emotion_lexicon
from _report import write_section
from bench_multilabel_loop import CALIBRATORS
from labelloop.active import OneVsRestStudent, cross_val_proba_multilabel, get_embedder
from labelloop.multilabel import micro_f1, per_label_ece

SECTION = "Multi-label calibration, paired"


def one_repeat(x: np.ndarray, y: np.ndarray, gold: np.ndarray, pool: np.ndarray, seed: int):
    """Each calibrator's per-label ECE and micro-F1 on the pool, fitted on the gold."""
    student = OneVsRestStudent(random_state=seed).fit(x[gold], y[gold])
    out_of_fold = cross_val_proba_multilabel(student, x[gold], y[gold], 5, seed)
    reported = student.predict_proba(x[pool])
    out = {}
    for name, make in CALIBRATORS.items():
        calibrated = make().fit(out_of_fold, y[gold]).transform(reported)
        ece = [iv.estimate for iv in per_label_ece(y[pool], calibrated, n_boot=1)]
        out[name] = (np.array(ece), micro_f1(y[pool], calibrated >= 0.5, n_boot=1).estimate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=600)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    words, y, labels = nrc_emotion_lexicon()
    embedder = get_embedder("auto")
    began = time.perf_counter()
    x_all = embedded(words, embedder)
    runs = []
    for seed in range(args.repeats):
        drawn = np.random.default_rng(seed).permutation(len(words))[: args.gold + args.pool]
        gold, pool = np.arange(args.gold), np.arange(args.gold, len(drawn))
        runs.append(one_repeat(x_all[drawn], y[drawn], gold, pool, seed))
        print(seed, {n: round(float(r[0].mean()), 4) for n, r in runs[-1].items()}, flush=True)
    names = list(CALIBRATORS)
    ece = {n: np.array([r[n][0] for r in runs]) for n in names}  # (repeats, labels)
    f1 = {n: np.array([r[n][1] for r in runs]) for n in names}

    def paired(a: np.ndarray, b: np.ndarray) -> str:
        d = b - a
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        return f"{d.mean():+.4f} ± {half:.4f}"

    own, shared = names
    lines = [
        f"NRC Emotion Lexicon (`nrclex`, {len(labels)} labels): {args.repeats} repeats, each "
        f"{args.gold} gold words and {args.pool} pool words drawn at random; the one-vs-rest "
        f"student on {embedder.model_id} embeddings trained on the gold; both calibrators fitted "
        "on its out-of-fold gold probabilities and measured on the pool. Wall time "
        f"{(time.perf_counter() - began) / 60:.0f} min.",
        "",
        "| calibrator | mean per-label ECE | worst label's ECE (mean over repeats) "
        "| labels with ECE ≤ 0.05 | micro-F1 at p ≥ 1/2 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        lines.append(
            f"| {name} | {ece[name].mean():.4f} | {ece[name].max(axis=1).mean():.4f} | "
            f"{(ece[name] <= 0.05).mean():.0%} | {f1[name].mean():.4f} |"
        )
    lines += [
        "",
        f"Paired difference (shared − own), mean ± 1.96 s.e. over repeats: mean per-label ECE "
        f"{paired(ece[own].mean(axis=1), ece[shared].mean(axis=1))}, micro-F1 "
        f"{paired(f1[own], f1[shared])}.",
        "",
        "| label | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---:" for _ in names) + " |",
    ]
    for j, label in enumerate(labels):
        lines.append(
            f"| {label} | " + " | ".join(f"{ece[n][:, j].mean():.4f}" for n in names) + " |"
        )
    markdown = "\n".join(lines)
    print(markdown)
    command = "PYTHONPATH=src python bench/bench_multilabel_calibration.py " + " ".join(
        sys.argv[1:]
    )
    write_section(SECTION, markdown, command.strip())


if __name__ == "__main__":
    main()
