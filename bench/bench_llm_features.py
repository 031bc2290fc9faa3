"""What a student learns from the embedded LLM's own features, against its answers and the
MiniLM student, on real corpora; and what reading the features costs the labeling.

Each corpus's sample (the loop benchmark's: `bench_loop.sample`, zero-shot prompt, BBC articles
cut to their first `--llm-tokens` tokens) is labeled once by the embedded model with its
features kept (cached under ~/.cache/labelloop-bench by texts, prompt and feature views). Then,
for each number of labels, `--repeats` random draws of that many labeled items train logistic
regression (C = 1) on: the MiniLM embeddings (the default student), each view of the LLM's
features (`LabelResult.features`, standardised as `learn` does), and the view `learn` would keep
(lowest log loss out of fold on the labeled items); accuracy on every other item of the sample.
"LLM answer" is the model's own calibrated answer.

Cost: the first `--timing` items labeled with and without features, alternating, `--rounds`
each, in this process; CPU seconds (the machine is shared, so wall time says little).

    PYTHONPATH=src nice -n 10 python bench/bench_llm_features.py [--corpus NAME] [--items 2200]
        [--labels 100 200 400] [--repeats 4] [--timing 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _active_corpora import CACHE, embedded  # noqa: E402
from _report import write_section  # noqa: E402
from bench_loop import TASKS, sample  # noqa: E402
from labelloop.active import get_embedder  # noqa: E402
from labelloop.labelers import LabelTask, LocalLabeler  # noqa: E402
from labelloop.labelers.base import FEATURE_VIEWS  # noqa: E402
from labelloop.workflows.learn import standardized_rows  # noqa: E402


def labeled(
    texts: list[str], task: LabelTask, tokens: int, **options: Any
) -> dict[str, np.ndarray]:
    """The embedded model's answers and features for `texts` (`options` go to the labeler),
    cached."""
    labeler = LocalLabeler.embedded(max_item_tokens=tokens, **options)
    key = "\x00".join([*texts, labeler.prompt_version(task), labeler.features_version])
    path = CACHE / f"llm-features-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        return dict(np.load(path))
    results = dict(labeler.label_stream(texts, task))
    labeler.close()
    out = {
        "probs": np.array(
            [[r.probs[label] for label in task.labels] for _, r in sorted(results.items())]
        ),
        **{
            view: np.stack([results[i].features[view] for i in range(len(texts))])
            for view in FEATURE_VIEWS
        },
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=3000).fit(X[train], y[train])
    return float((model.predict(X[test]) == y[test]).mean())


def oof_log_loss(X: np.ndarray, y: np.ndarray, train: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import cross_val_predict

    p = cross_val_predict(
        LogisticRegression(C=1.0, max_iter=3000), X[train], y[train], cv=5, method="predict_proba"
    )
    return float(log_loss(y[train], p, labels=np.unique(y[train])))


def timing(texts: list[str], task: LabelTask, tokens: int, rounds: int) -> dict[bool, list[float]]:
    """CPU seconds to label `texts`, with and without features, alternating."""
    seconds: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for features in (False, True):
            seconds[features].append(labeling_cpu(texts, task, tokens, features=features))
    return seconds


def labeling_cpu(texts: list[str], task: LabelTask, tokens: int, **options: Any) -> float:
    """CPU seconds the embedded model (`options` go to it) takes to label `texts`, once it is
    loaded and has read the prompt's shared prefix."""
    labeler = LocalLabeler.embedded(max_item_tokens=tokens, **options)
    list(labeler.label_stream(texts[:8], task))  # model loaded, prefix evaluated
    began = time.process_time()
    list(labeler.label_stream(texts, task))
    spent = time.process_time() - began
    labeler.close()
    return spent


def run(corpus: str, args: argparse.Namespace) -> str:
    items = sample(corpus, args.items, 0)
    description = TASKS[corpus][0]
    task = LabelTask(description, list(items.label_set))
    tokens = args.llm_tokens if corpus == "BBC News" else 256
    found = labeled(items.texts, task, tokens)
    y = np.array([items.label_set.index(label) for label in items.labels])
    views = {
        view: standardized_rows(np.array(found[view], dtype=np.float32)) for view in FEATURE_VIEWS
    }
    minilm = embedded(items.texts, get_embedder("auto"))
    llm_right = found["probs"].argmax(axis=1) == y
    lines = [
        f"**{corpus}**: {len(y)} items ({len(items.label_set)} labels), LLM answer right on "
        f"{llm_right.mean():.3f} of them.",
        "",
        "| labels | MiniLM student | "
        + " | ".join(f"probe: {v}" for v in FEATURE_VIEWS)
        + " | probe: view kept by `learn` |",
        "| ---: | ---: | " + " | ".join("---:" for _ in FEATURE_VIEWS) + " | ---: |",
    ]
    for n in args.labels:
        scores: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            order = np.random.default_rng(repeat).permutation(len(y))
            train, test = order[:n], order[n:]
            scores.setdefault("minilm", []).append(accuracy(minilm, y, train, test))
            losses = {}
            for view, X in views.items():
                scores.setdefault(view, []).append(accuracy(X, y, train, test))
                losses[view] = oof_log_loss(X, y, train)
            kept = min(losses, key=losses.__getitem__)
            scores.setdefault("kept", []).append(scores[kept][-1])
        row = [f"{np.mean(scores[k]):.3f}" for k in ("minilm", *FEATURE_VIEWS, "kept")]
        lines.append(f"| {n} | " + " | ".join(row) + " |")
    if args.timing:
        spent = timing(items.texts[: args.timing], task, tokens, args.rounds)
        ratio = np.median(spent[True]) / np.median(spent[False])
        lines += [
            "",
            f"Labeling the first {args.timing} items, CPU seconds (median of {args.rounds}): "
            f"with features {np.median(spent[True]):.1f}, without {np.median(spent[False]):.1f}: "
            f"**{ratio:.2f}×**.",
        ]
    return "\n".join(lines)


def sample_arguments(parser: argparse.ArgumentParser) -> None:
    """The corpora, their sample, how much of a BBC article the model reads, items timed."""
    parser.add_argument("--corpus", choices=list(TASKS), action="append")
    parser.add_argument("--items", type=int, default=2200)
    parser.add_argument("--llm-tokens", type=int, default=48, help="BBC News only")
    parser.add_argument("--timing", type=int, default=200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sample_arguments(parser)
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    parts = [run(corpus, args) for corpus in args.corpus or list(TASKS)]
    intro = (
        "Accuracy on the rest of each sample of logistic regression (C = 1) trained on a random "
        f"draw of that many labeled items, mean of {args.repeats} draws; the probes read the "
        "embedded model's features (`LabelResult.features`) from the same decode that answers."
    )
    body = intro + "\n\n" + "\n\n".join(parts)
    print(body)
    write_section(
        "The loop: the LLM's own features", body, "PYTHONPATH=src python " + shlex.join(sys.argv)
    )


if __name__ == "__main__":
    main()
