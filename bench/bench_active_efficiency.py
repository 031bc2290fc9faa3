"""Label efficiency of every query strategy on two real corpora, against random sampling.

For each corpus: MiniLM (int8 ONNX) embeddings, the logistic student, 5 repeats with a fresh
test split and random seed set each, learning curves up to a few hundred labels. Reports the
labels each strategy needs for its mean accuracy to reach 95% of the same student trained on
the whole pool, and that count relative to random's, with a 90% bootstrap interval over the
repeats (resampled in pairs: the interval is wide where the curves are flat at the target).

    PYTHONPATH=src python bench/bench_active_efficiency.py [--repeats 5] [--quick] [--cold-start]

With --cold-start each strategy picks its own first items from nothing labeled (k-means
typicality; random stays random), as on a new project, instead of a shared random seed set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import CORPORA, embedded
from _report import write_section
from labelloop.active import (
    STRATEGIES,
    format_interval,
    get_embedder,
    labels_ratio_interval,
    plot_learning_curves,
    simulate,
)

# The LLM-disagreement strategy needs LLM probabilities, which this benchmark does not compute.
NAMES = [n for n in STRATEGIES if n != "disagreement"]
SETTINGS = {
    "Rotten Tomatoes": {"seed_size": 10, "batch": 40, "rounds": 15},
    # Long enough for random to reach the target, so that every ratio is defined.
    "BBC News": {"seed_size": 5, "batch": 5, "rounds": 30},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats, 3 strategies")
    parser.add_argument("--corpus", choices=list(CORPORA), action="append")
    parser.add_argument("--cold-start", action="store_true", help="each strategy seeds itself")
    args = parser.parse_args()
    names = ["random", "margin", "coreset"] if args.quick else NAMES
    repeats = 2 if args.quick else args.repeats
    embedder = get_embedder("onnx")
    for corpus in args.corpus or list(CORPORA):
        texts, y = CORPORA[corpus]()
        t0 = time.perf_counter()
        x = embedded(texts, embedder)
        t_embed = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = simulate(
            x,
            y,
            names,
            repeats=repeats,
            cold_start=args.cold_start,
            random_state=0,
            **SETTINGS[corpus],
        )
        t_sim = time.perf_counter() - t0
        slug = corpus.lower().replace(" ", "-") + ("-cold-start" if args.cold_start else "")
        title = f"Active learning: label efficiency, {corpus}"
        title += ", cold start" if args.cold_start else ""
        plot = Path(__file__).resolve().parent.parent / "docs" / f"active-{slug}.png"
        plot_learning_curves(result, plot, title=f"{corpus}: {len(y)} items, {repeats} repeats")
        table = _table(corpus, len(y), len(set(y)), result, plot.name, t_embed, t_sim)
        print(table, flush=True)
        write_section(
            title,
            __doc__.split("\n\n")[1] + "\n\n" + table,
            f"PYTHONPATH=src python bench/bench_active_efficiency.py --corpus '{corpus}'"
            + (" --quick" if args.quick else f" --repeats {repeats}")
            + (" --cold-start" if args.cold_start else ""),
        )


def _table(corpus, n, n_classes, result, plot_name, t_embed, t_sim) -> str:
    settings = result["settings"]
    random_labels = result["strategies"]["random"]["labels_to_target"]
    rows = [
        f"{corpus}: {n} items, {n_classes} labels.",
        "",
        f"Seed {settings['seed_size']} "
        + ("(each strategy's own cold start)" if settings["cold_start"] else "(random, shared)")
        + f", batch {settings['batch']}, {settings['rounds']} rounds, "
        f"{settings['repeats']} repeats. Full-pool accuracy {result['full_accuracy']:.3f}, "
        f"target (95%) {result['target_accuracy']:.3f}. Embedding {t_embed:.0f} s (cached "
        f"after the first run), simulation {t_sim:.0f} s. Curves: `docs/{plot_name}`.",
        "",
        "| strategy | labels to target | vs random | 90% interval | AULC | final accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ranked = sorted(
        result["strategies"].items(),
        key=lambda kv: (
            kv[1]["labels_to_target"] is None,
            kv[1]["labels_to_target"] or 0,
            -kv[1]["aulc"],
        ),
    )
    for name, s in ranked:
        reached = s["labels_to_target"]
        if reached and random_labels:
            ratio = f"{reached / random_labels:.2f}"
        elif reached:  # random needs more labels than were simulated
            ratio = f"< {reached / result['strategies']['random']['curve'][-1]['labels']:.2f}"
        else:
            ratio = "—"
        interval = labels_ratio_interval(result, name) if name != "random" else None
        span = format_interval(interval) if interval else "—"
        last = s["curve"][-1]
        rows.append(
            f"| {name} | {reached if reached is not None else 'not reached'} | {ratio} | {span} | "
            f"{s['aulc']:.3f} | {last['accuracy_mean']:.3f} ± {last['accuracy_std']:.3f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
