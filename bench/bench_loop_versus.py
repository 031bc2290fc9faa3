"""The loop of this checkout against another checkout's, on the same pools, gold and seeds.

Each checkout runs `simulate_loop` (the loop only: routing queue → answers → `learn`, which
recalibrates and re-routes) in a process of its own with its own `src` first on the path; both
share one cache, so answers asked under the same key (pool, model, prompt version and, where
the prompt holds examples from the gold, that gold) are asked once and read by both.
`--no-llm` plays the loop with the student and its stack alone; `--learning JSON` gives this
checkout's runs that project setting (how `learn` trains; the baseline keeps its defaults), so
a setting is measured against the same checkout without it. Reported per corpus: each
checkout's accuracy of the finished dataset at the goal's effort and at the budget, its routing
predictor's held-out ECE at the end, and the paired difference (this − baseline) per repeat.

    git worktree add /tmp/labelloop-main main
    PYTHONPATH=src python bench/bench_loop_versus.py --baseline /tmp/labelloop-main/src \
        [--corpus NAME] [--items 600] [--gold 60] [--repeats 1] [--budget 0.4] [--batch 20]
        [--learning '{"fine_tune": true}']
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import write_section  # noqa: E402
from bench_loop import TASKS, _acc, _pct, accuracy_at, sample  # noqa: E402

SRC = HERE.parent / "src"


def child(args: argparse.Namespace) -> None:
    """Run the loop with whatever `labelloop` is first on the path; JSON on stdout."""
    import logging

    from labelloop.active import get_embedder
    from labelloop.labelers import get_labeler
    from labelloop.loop_simulation import Setting, simulate_loop

    # The cost of each fine-tune of the student's encoder, when `--learning` asks for them.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("labelloop.workflows.finetune").setLevel(logging.INFO)
    corpus = args.corpus[0]
    task, _, target, _ = TASKS[corpus]
    items = sample(corpus, args.items)
    labeler = None
    if not args.no_llm:
        options = {"max_item_tokens": args.llm_tokens} if corpus == "BBC News" else {}
        labeler = get_labeler("local", **options)
    try:
        result = simulate_loop(
            items,
            task=task,
            labeler=labeler,
            n_gold=args.gold,
            budget=args.budget,
            batch=args.batch,
            repeats=args.repeats,
            target_accuracy=target,
            embedder=get_embedder("onnx"),
            settings=[Setting("loop", not args.no_llm, "review", True)],
            cache=args.cache,
            log=lambda m: print(m, file=sys.stderr, flush=True),
            **({"learning": json.loads(args.learning)} if args.learning else {}),
        )
    finally:
        if labeler is not None:
            labeler.close()
    # A baseline checkout may predate the typed result: its dict is sent as it is.
    sent = result.to_dict() if hasattr(result, "to_dict") else result
    json.dump(sent, sys.stdout, default=str)


def run_checkout(src: Path, argv: list[str]) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", *argv], env=env, check=True, stdout=subprocess.PIPE
    )
    return json.loads(out.stdout), time.perf_counter() - t0


def run_accuracy(points: list[dict], effort: float) -> float:
    """A run's finished-dataset accuracy at the last round within `effort`."""
    return [p["accuracy"] for p in points if p["effort"] <= effort + 1e-9][-1]


def compare(corpus: str, results: dict[str, dict], goal: float, budget: float) -> str:
    head = (
        f"| checkout | accuracy at {_pct(goal)} effort | accuracy at {_pct(budget)} | "
        "routing predictor at the end: accuracy, held-out ECE |\n| --- | ---: | ---: | ---: |\n"
    )
    rows = []
    for name, result in results.items():
        s = result["settings"]["loop"]
        end = s["end"]
        ece = "—" if end["ece"] is None else f"{end['ece']:.3f}"
        auto = "—" if end["auto_accuracy"] is None else f"{end['auto_accuracy']:.3f}"
        rows.append(
            f"| {name} | {_acc(accuracy_at(s, goal))} | {_acc(s['accuracy_at_budget'])} | "
            f"{auto}, {ece} |"
        )
    runs = {name: r["settings"]["loop"]["runs"] for name, r in results.items()}
    mine, base = runs["this"], runs["baseline"]
    lines = []
    for effort in (goal, budget):
        diff = np.array(
            [
                run_accuracy(a, effort) - run_accuracy(b, effort)
                for a, b in zip(mine, base, strict=True)
            ]
        )
        spread = ""
        if len(diff) > 1:
            half = stats.t.ppf(0.95, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
            spread = f" [90% t interval {diff.mean() - half:+.3f}, {diff.mean() + half:+.3f}]"
            spread += f" (per repeat: {', '.join(f'{d:+.3f}' for d in diff)})"
        lines.append(f"this − baseline at {_pct(effort)} effort: {diff.mean():+.3f}{spread}")
    return f"**{corpus}**\n\n" + head + "\n".join(rows) + "\n\n" + "; ".join(lines) + "."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="the other checkout's src folder")
    parser.add_argument("--corpus", choices=list(TASKS), action="append")
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--gold", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.4)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--llm-tokens", type=int, default=48, help="BBC News only")
    parser.add_argument("--no-llm", action="store_true")
    parser.add_argument("--learning", help="this checkout's `learning` setting (JSON)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "labelloop-loop")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.baseline is None:
        parser.error("--baseline is required")
    for corpus in args.corpus or list(TASKS):
        goal = TASKS[corpus][3]
        argv = [
            *("--corpus", corpus, "--items", str(args.items), "--gold", str(args.gold)),
            *("--repeats", str(args.repeats), "--budget", str(args.budget)),
            *("--batch", str(args.batch), "--llm-tokens", str(args.llm_tokens)),
            *("--cache", str(args.cache)),
            *(["--no-llm"] if args.no_llm else []),
        ]
        results, times = {}, {}
        learning = ["--learning", args.learning] if args.learning else []
        for name, src, extra in (("baseline", args.baseline, []), ("this", SRC, learning)):
            results[name], times[name] = run_checkout(src, [*argv, *extra])
        text = compare(corpus, results, goal, args.budget) + (
            f" {args.items} items, {args.gold} gold, {args.repeats} repeats, batch "
            f"{args.batch}. Wall time {times['baseline'] / 60:.0f} + {times['this'] / 60:.0f} "
            f"min; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
        )
        print(text, flush=True)
        what = ("no LLM" if args.no_llm else "embedded LLM") + (
            f", learning {args.learning}" if args.learning else ""
        )
        command = (
            f"PYTHONPATH=src python bench/bench_loop_versus.py --baseline MAIN/src --corpus "
            f"'{corpus}' --items {args.items} --gold {args.gold} --repeats {args.repeats} "
            f"--budget {args.budget} --batch {args.batch}"
            + (" --no-llm" if args.no_llm else "")
            + (f" --learning '{args.learning}'" if args.learning else "")
        )
        write_section(
            f"The loop against a baseline checkout: {corpus}, {what}",
            __doc__.split("\n\n")[1] + "\n\n" + text,
            command,
        )


if __name__ == "__main__":
    main()
