"""How far any review order and learner could take the loop on the inputs it has.

The loop's finished dataset at a budget is the people's labels where they reviewed and the
stack's answers elsewhere. Two things bound it: which items people review, and how right the
stack is on the rest. Here both are given every advantage the inputs allow: the stack is trained
out of fold on the reference label of every item of the sample (3 to 5 times what the loop has
at its budget), and its own confidence orders the review (least confident first, after the same
random gold the loop starts from). If even that stays under a goal, no review order and no
amount of labels reaches the goal with these inputs: the embedded model's answer and features
(two examples per label) and the MiniLM embeddings.

Rows: the stack `learn` fits (LLM answer, probe on the view with the lower log loss, MiniLM
student, log-linear pool), then with one more member beside it: an RBF kernel map under a
second probe; a probe on both views and MiniLM side by side; a one-hidden-layer MLP on those; a
second labeling with four examples per label (its answer and probe). The prompts' examples are
left out of every fit, as `learn` leaves them out. Against
them, the loop's stand-in (`bench_loop_proxy.py`, as shipped) on the same gold draws, and, at
the budget, how right the all-label stack is on the very items the stand-in left to the machine.

    PYTHONPATH=src nice -n 10 python bench/bench_loop_ceiling.py [--corpus NAME] [--items 2200]
        [--gold 200] [--seeds 0 1 2 3 4] [--batch 20]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import write_section  # noqa: E402
from bench_llm_features import sample_arguments  # noqa: E402
from bench_loop import TASKS  # noqa: E402
from bench_loop_proxy import (  # noqa: E402
    SPLIT,
    Corpus,
    feature_views,
    finished,
    fitted,
    gold_mask,
    interval,
    kernel_map,
    pooled,
    probe,
    review_least_confident,
    reviewed,
    stack_for,
)
from labelloop.workflows.learn import standardized_rows  # noqa: E402


def mlp_probs(X: np.ndarray, y: np.ndarray, rows: np.ndarray, n_labels: int) -> np.ndarray:
    """A one-hidden-layer MLP's out-of-fold probabilities on `rows`; uniform elsewhere."""
    mlp = MLPClassifier(
        hidden_layer_sizes=(256,), alpha=1e-2, max_iter=300, early_stopping=True, random_state=0
    )
    folds = StratifiedKFold(n_splits=SPLIT[0], shuffle=True, random_state=SPLIT[1])
    out = np.full((len(y), n_labels), 1.0 / n_labels)
    idx = np.flatnonzero(rows)
    out[idx] = cross_val_predict(mlp, X[idx], y[idx], cv=folds, method="predict_proba")
    return out


def all_label_stacks(corpus: Corpus) -> dict[str, np.ndarray]:
    """The stacks trained out of fold on every item's label (the prompt's examples aside)."""
    y, K = corpus.y, len(corpus.labels)
    more, second = corpus.labeling(4)
    rows = np.ones(len(y), dtype=bool)
    rows[corpus.examples + more] = False
    views = feature_views(corpus.first)
    side_by_side = np.hstack([*views, standardized_rows(corpus.embeddings.copy())])
    shipped = [
        corpus.first["probs"],
        probe(views, y, rows),
        fitted(corpus.embeddings, y, rows, (1.0,)),
    ]
    extra = {
        "as shipped": [],
        "+ RBF kernel map under a second probe": [probe([kernel_map(Z) for Z in views], y, rows)],
        "+ probe on both views and MiniLM side by side": [
            fitted(side_by_side, y, rows, (0.1, 1.0, 10.0))
        ],
        "+ MLP on both views and MiniLM": [mlp_probs(side_by_side, y, rows, K)],
        "+ a second labeling (four examples per label): its answer and probe": [
            second["probs"],
            probe(feature_views(second), y, rows),
        ],
    }
    return {name: pooled(shipped + more, y, rows, K) for name, more in extra.items()}


def ordered_by(corpus: Corpus, probs: np.ndarray, seed: int, gold: int, budget: float) -> float:
    """Finished accuracy when `probs` orders the review after the gold and labels the rest."""
    trusted = gold_mask(corpus, seed, gold)
    spend = round(budget * len(trusted)) - int(trusted.sum())
    review_least_confident(trusted, probs, spend)
    return float(finished(corpus.y, trusted, probs).mean())


def run(name: str, args: argparse.Namespace) -> str:
    target, budget = TASKS[name][2], TASKS[name][3]
    corpus = Corpus(name, args)
    stacks = all_label_stacks(corpus)
    predict = stack_for(corpus, "base")
    loop, left, on_left = [], [], []
    for seed in args.seeds:
        *_, (trusted, probs) = reviewed(corpus, predict, seed, args.gold, args.batch, budget)
        loop.append(float(finished(corpus.y, trusted, probs).mean()))
        rest = ~trusted
        left.append(float((probs.argmax(axis=1) == corpus.y)[rest].mean()))
        on_left.append(float((stacks["as shipped"].argmax(axis=1) == corpus.y)[rest].mean()))
    lines = [
        f"**{name}**: {len(corpus.y)} items, {args.gold} gold (random, seeds {args.seeds}), "
        f"goal {target} at {budget:.0%}; mean with 90% t interval over the seeds.",
        "",
        f"| review ordered and the rest labeled by | stack's accuracy on the pool | "
        f"finished dataset at {budget:.0%} |",
        "| --- | ---: | ---: |",
        f"| the loop's stand-in, as shipped ({args.batch} answers per round) | — | "
        f"{interval(loop, '.4f')} |",
    ]
    for label, probs in stacks.items():
        right = float((probs.argmax(axis=1) == corpus.y).mean())
        reached = [ordered_by(corpus, probs, s, args.gold, budget) for s in args.seeds]
        lines.append(
            f"| stack trained on every label, {label} | {right:.4f} | {interval(reached, '.4f')} |"
        )
    lines += [
        "",
        f"On the items the stand-in left to the machine at {budget:.0%}: its own stack is right "
        f"{interval(left, '.4f')}, the stack trained on every label {interval(on_left, '.4f')}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sample_arguments(parser)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    body = "\n\n".join(run(corpus, args) for corpus in args.corpus or list(TASKS))
    print(body)
    write_section(
        "The loop's ceiling on its inputs", body, "PYTHONPATH=src python " + shlex.join(sys.argv)
    )


if __name__ == "__main__":
    main()
