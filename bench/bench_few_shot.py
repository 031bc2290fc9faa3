"""What few-shot examples from the gold do to the embedded LLM: its answers, the features a
probe reads, and the labeling's cost.

Each corpus's sample (the loop benchmark's: `bench_loop.sample`) gets a gold draw of `--gold`
items (seed 0). For each number of examples per label, the examples are picked from that gold
as `prelabel` picks them (`workflows.prelabel.pick_examples`) and the whole sample is labeled
by the embedded model with its features kept (cached under ~/.cache/labelloop-bench). Reported,
on the items outside the gold: the model's own answer's accuracy, and that of the probe `learn`
would stack (logistic regression on the view with the lower out-of-fold log loss, trained on
the gold minus the examples, standardised as `learn` does). Cost: CPU seconds to label the
first `--timing` items at each setting, in this process, after a warm-up (the machine is
shared, so wall time says little).

    PYTHONPATH=src nice -n 10 python bench/bench_few_shot.py [--corpus NAME] [--items 2200]
        [--gold 200] [--shots 0 1 2] [--timing 200]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import write_section  # noqa: E402
from bench_llm_features import (  # noqa: E402
    accuracy,
    labeled,
    labeling_cpu,
    oof_log_loss,
    sample_arguments,
)
from bench_loop import TASKS, sample  # noqa: E402
from labelloop.labelers import LabelTask  # noqa: E402
from labelloop.labelers.base import FEATURE_VIEWS  # noqa: E402
from labelloop.workflows.learn import standardized_rows  # noqa: E402
from labelloop.workflows.prelabel import pick_examples  # noqa: E402


class GoldDraw:
    """A corpus's sample (`bench_loop.sample`), its reference labels and a gold draw of
    `--gold` items (seed 0), labeled by the embedded model with examples from that gold."""

    def __init__(self, corpus: str, args: argparse.Namespace) -> None:
        items = sample(corpus, args.items, 0)
        self.texts, self.labels = items.texts, list(items.label_set)
        self.y = np.array([self.labels.index(label) for label in items.labels])
        self.gold = np.random.default_rng(0).permutation(len(self.y))[: args.gold]
        self.rows = [(int(i), items.texts[i], items.labels[i]) for i in self.gold]
        self.description = TASKS[corpus][0]
        self.tokens = args.llm_tokens if corpus == "BBC News" else 256

    def task(self, shots: int) -> tuple[list[int], LabelTask]:
        """The rows of the examples `prelabel` picks with `shots` per label, and the task."""
        examples = pick_examples(self.rows, self.labels, shots) if shots else []
        shown = [(text, label) for _, text, label in examples]
        return [i for i, _, _ in examples], LabelTask(self.description, self.labels, shown)

    def labeling(self, shots: int) -> tuple[list[int], dict[str, np.ndarray]]:
        """The example rows, and the model's answers and features with `shots` per label."""
        examples, task = self.task(shots)
        return examples, labeled(self.texts, task, self.tokens, examples_per_label=max(1, shots))


def run(corpus: str, args: argparse.Namespace) -> str:
    draw = GoldDraw(corpus, args)
    labels, y, gold = draw.labels, draw.y, draw.gold
    rest = np.setdiff1d(np.arange(len(y)), gold)
    lines = [
        f"**{corpus}**: {len(y)} items ({len(labels)} labels), {args.gold} gold; accuracy on "
        f"the other {len(rest)}.",
        "",
        "| examples per label | LLM answer | probe: view kept by `learn` | "
        + " | ".join(f"probe: {v}" for v in FEATURE_VIEWS)
        + f" | CPU s to label {args.timing} items |",
        "| ---: | ---: | ---: | " + " | ".join("---:" for _ in FEATURE_VIEWS) + " | ---: |",
    ]
    for shots in args.shots:
        examples, found = draw.labeling(shots)
        train = np.setdiff1d(gold, examples)
        answer = float((found["probs"][rest].argmax(axis=1) == y[rest]).mean())
        probe, losses = {}, {}
        for view in FEATURE_VIEWS:
            X = standardized_rows(np.array(found[view], dtype=np.float32))
            probe[view] = accuracy(X, y, train, rest)
            losses[view] = oof_log_loss(X, y, train)
        kept = probe[min(losses, key=losses.__getitem__)]
        cost = labeling_cpu(
            draw.texts[: args.timing],
            draw.task(shots)[1],
            draw.tokens,
            examples_per_label=max(1, shots),
        )
        lines.append(
            f"| {shots} | {answer:.3f} | {kept:.3f} | "
            + " | ".join(f"{probe[v]:.3f}" for v in FEATURE_VIEWS)
            + f" | {cost:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sample_arguments(parser)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    parts = [run(corpus, args) for corpus in args.corpus or list(TASKS)]
    intro = (
        "The embedded model with few-shot examples picked from a gold draw as `prelabel` picks "
        "them; the probe is trained on the gold (examples left out)."
    )
    body = intro + "\n\n" + "\n\n".join(parts)
    print(body)
    write_section(
        "The LLM's prompt: few-shot examples from the gold",
        body,
        "PYTHONPATH=src python " + shlex.join(sys.argv),
    )


if __name__ == "__main__":
    main()
