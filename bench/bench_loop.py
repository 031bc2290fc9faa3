"""The loop, end to end: accuracy of the finished dataset against human effort on real corpora.

For each corpus: a random sample of items with their reference labels playing the people, the
embedded LLM pre-labeling once (cached), `--gold` items drawn as gold per repeat, then
`simulate_loop`: the loop (rounds of the routing queue or a `select` strategy → answers →
`learn`, which recalibrates and re-routes) beside the baselines run in the same call — random
review order with retraining, one routing pass without retraining, the student alone without
the LLM, and people alone in random order. Effort counts the gold items.

    PYTHONPATH=src python bench/bench_loop.py [--corpus NAME] [--items 2200] [--repeats 3]
        [--budget 0.4] [--batch 44] [--strategy review --strategy margin] [--cache DIR]
        [--setting loop --setting random-order]

`--setting` plays only the settings named (say the loop and random review order to a budget
large enough for random order to reach the target); its section is then a section of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import CORPORA
from _report import write_section
from labelloop.active import get_embedder
from labelloop.labelers import get_labeler
from labelloop.loop_simulation import (
    LabeledItems,
    LoopSimulation,
    default_settings,
    format_versus,
    plot_effort_curves,
    simulate_loop,
)

TASKS = {
    "Rotten Tomatoes": (
        "Classify the sentiment of this movie review.",
        {"fresh": "positive", "rotten": "negative"},
        0.95,
        0.30,
    ),
    "BBC News": ("Classify the topic of this news article.", None, 0.995, 0.20),
}
DOCS = Path(__file__).resolve().parent.parent / "docs"


def sample(corpus: str, n: int, seed: int = 0) -> LabeledItems:
    texts, labels = CORPORA[corpus]()
    _, mapping, _, _ = TASKS[corpus]
    names = [mapping.get(str(x), str(x)) if mapping else str(x) for x in labels]
    rng = np.random.default_rng(seed)
    keep = [i for i in rng.permutation(len(texts)) if len(texts[i].strip()) >= 20][:n]
    return LabeledItems(
        [f"{corpus[:3].lower()}-{i}" for i in keep],
        [texts[i] for i in keep],
        [names[i] for i in keep],
        sorted(set(names)),
    )


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _acc(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "—"
    if d.get("low") is None:
        return f"{d['mean']:.3f}"
    return f"{d['mean']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def accuracy_at(setting: dict, effort: float) -> dict | None:
    """The curve's point at the largest grid effort not above `effort`."""
    points = [p for p in setting["curve"] if p["effort"] <= effort + 1e-9]
    if not points:
        return None
    p = points[-1]
    return {"mean": p["accuracy_mean"], "low": p["accuracy_low"], "high": p["accuracy_high"]}


def table(result: LoopSimulation, goal_effort: float) -> str:
    level = round(100 * result.level)
    head = (
        f"| setting | accuracy at start | accuracy at {_pct(goal_effort)} effort | "
        f"accuracy at {_pct(result.budget)} | effort for {result.target_accuracy} "
        f"({level}% interval, repeats reaching it) | vs random order ({level}% bootstrap) | "
        "routing predictor at the end: accuracy, held-out ECE |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    rows = []
    for name, s in result.settings.items():
        e = s["effort_to_target"]
        if e["mean"] is not None:
            bounds = f" [{_pct(e['low'])}, {_pct(e['high'])}]" if e["low"] is not None else ""
            effort = f"{_pct(e['mean'])}{bounds}"
        else:
            effort = f"not reached ({e['reached']}/{e['repeats']})"
        versus = format_versus(s["effort_vs_random_order"]) or "—"
        end = s["end"]
        ece = "—" if end["ece"] is None else f"{end['ece']:.3f}"
        predictor = "—" if end["auto_accuracy"] is None else f"{end['auto_accuracy']:.3f}, {ece}"
        rows.append(
            f"| {name} | {s['start']['accuracy']:.3f} | {_acc(accuracy_at(s, goal_effort))} | "
            f"{_acc(s['accuracy_at_budget'])} | {effort} | {versus} | {predictor} |"
        )
    return head + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", choices=list(CORPORA), action="append")
    parser.add_argument("--items", type=int, default=2200)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.4)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--strategy", action="append")
    parser.add_argument("--model", default="local")
    parser.add_argument(
        "--llm-tokens",
        type=int,
        default=None,
        help="Cut each text to this many tokens for the LLM.",
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "labelloop-loop")
    parser.add_argument("--setting", action="append", help="Play only the settings named.")
    args = parser.parse_args()
    strategies = args.strategy or ["review"]
    settings = default_settings(strategies, with_llm=True)
    if args.setting:
        unknown = set(args.setting) - {s.name for s in settings}
        if unknown:
            parser.error(f"unknown settings {sorted(unknown)}; known: {[s.name for s in settings]}")
        settings = [s for s in settings if s.name in args.setting]
    embedder = get_embedder("onnx")
    for corpus in args.corpus or list(CORPORA):
        task, _, target, goal_effort = TASKS[corpus]
        items = sample(corpus, args.items)
        options = {"max_item_tokens": args.llm_tokens} if args.llm_tokens else {}
        labeler = get_labeler(args.model, **options)
        t0 = time.perf_counter()
        try:
            result = simulate_loop(
                items,
                task=task,
                labeler=labeler,
                n_gold=args.gold,
                budget=args.budget,
                batch=args.batch,
                strategies=strategies,
                settings=settings,
                repeats=args.repeats,
                target_accuracy=target,
                embedder=embedder,
                cache=args.cache,
                log=lambda m: print(m, file=sys.stderr, flush=True),
            )
        finally:
            labeler.close()
        elapsed = time.perf_counter() - t0
        slug = corpus.lower().replace(" ", "-")
        if args.setting:
            slug += "-" + "-".join(s.name.replace(":", "-") for s in settings)
        plot = plot_effort_curves(
            result,
            DOCS / f"loop-{slug}.png",
            title=f"{corpus}: {len(items.uids)} items, {args.repeats} repeats",
        )
        text = (
            f"**{corpus}**: {len(items.uids)} items drawn at random ({len(items.label_set)} "
            f"labels), {args.gold} gold per repeat ({_pct(args.gold / len(items.uids))} of the "
            f"effort), {args.repeats} repeats, {result.batch} answers per round, budget "
            f"{_pct(args.budget)}; LLM {result.labeler}"
            + (
                f" reading the first {args.llm_tokens} tokens of each text"
                if args.llm_tokens
                else ""
            )
            + f", embedder {result.embedder}; loop "
            f"order: {', '.join(strategies)}; routing certifies the target at "
            f"{result.confidence_level}. Goal: {target} at ≤ {_pct(goal_effort)} effort. "
            f"Wall time {elapsed / 60:.0f} min (LLM answers and embeddings from the cache "
            f"after the first run); load average at the end {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores. Curves: `docs/{plot.name}`.\n\n" + table(result, goal_effort)
        )
        print(text, flush=True)
        command = (
            f"PYTHONPATH=src python bench/bench_loop.py --corpus '{corpus}' --items {args.items}"
            f" --gold {args.gold} --repeats {args.repeats} --budget {args.budget}"
            + (f" --batch {args.batch}" if args.batch else "")
            + "".join(f" --strategy {s}" for s in strategies)
            + (f" --llm-tokens {args.llm_tokens}" if args.llm_tokens else "")
            + "".join(f" --setting {s.name}" for s in settings if args.setting)
        )
        title = f"The loop, end to end: {corpus}"
        if args.setting:
            title += f", {' and '.join(s.name for s in settings)} to {_pct(args.budget)}"
        write_section(title, __doc__.split("\n\n")[1] + "\n\n" + text, command)


if __name__ == "__main__":
    main()
