"""A fast stand-in for the loop, to try what the stack learns from in seconds, not in hours.

The loop itself (`bench_loop.py`, through the store and `learn`) is the figure of record; this
replays its arithmetic on stored arrays so that many variants of the stack's inputs can be
compared on the same draws. Each corpus's sample (`bench_loop.sample`) is labeled by the
embedded model with two examples per label picked from a gold draw as `prelabel` picks them
(answers and features cached, as in `bench_few_shot.py`). For each seed, the gold is those
examples plus a random draw; then rounds of `--batch` items, least confident first, get their
reference label, and the stack is refitted with `learn`'s own pieces: the probe on the view with
the lower out-of-fold log loss, the MiniLM student, the log-linear pool, all out-of-fold on the
trusted items. The finished dataset is the trusted labels plus the stack's answers for the rest.

Variants (`--variant`, each against `base` on the same seeds):
- `concat`: one more probe, on the middle view and the MiniLM embedding side by side;
- `ngram`: the n-gram student joins the stack;
- `student-c-auto`: the student's C chosen from (1, 10, 100) by out-of-fold log loss;
- `self-training`: the probe refitted with the stack's soft labels on up to as many unlabeled
  items as trusted ones, confidence ≥ 0.9, weight 0.5;
- `whitened`: the features whitened over the pool (PCA, 256 dimensions) instead of standardised;
- `kernel-probe`: the probe on an RBF kernel's approximate feature map of the standardised
  features (Nystroem, 600 components, gamma 0.5) instead of the features themselves;
- `second-prompt`: a second labeling with four examples per label, its answer and probe stacked
  beside the first (twice the labeling);
- `both-views`: the probes of both views stacked, instead of the one with the lower loss;
- `views-side-by-side`: one probe on both views side by side;
- `knn`: a k-nearest-neighbour vote (cosine on the middle view, 25 trusted neighbours, weighted
  by similarity; leave-one-out on the trusted items) joins the stack;
- `stack-on-gold`: the log-linear pool fitted on the gold only (a random draw of the pool)
  instead of every trusted item (mostly those review picked for being hard).

Variants combine with `+` (`kernel-probe+concat`).

    PYTHONPATH=src nice -n 10 python bench/bench_loop_proxy.py [--corpus NAME] [--items 2200]
        [--gold 200] [--seeds 0 1 2 3] [--batch 20] [--variant concat --variant ngram]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sklearn.kernel_approximation import Nystroem

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _active_corpora import embedded  # noqa: E402
from _report import write_section  # noqa: E402
from bench_few_shot import GoldDraw  # noqa: E402
from bench_llm_features import sample_arguments  # noqa: E402
from bench_loop import TASKS  # noqa: E402
from labelloop.active import LogisticStudent, get_embedder  # noqa: E402
from labelloop.active.effort import t_interval  # noqa: E402
from labelloop.active.pool_training import SoftLabels, ngram_features, soft_labels  # noqa: E402
from labelloop.active.students import ExtraRows  # noqa: E402
from labelloop.labelers.base import FEATURE_VIEWS  # noqa: E402
from labelloop.workflows.learn import (  # noqa: E402
    PROBE_C_GRID,
    STUDENT_C_GRID,
    _student_probs,
    component_metrics,
    fit_stack,
    standardized_rows,
)

VARIANTS = (
    "concat",
    "ngram",
    "student-c-auto",
    "self-training",
    "whitened",
    "kernel-probe",
    "second-prompt",
    "both-views",
    "views-side-by-side",
    "knn",
    "stack-on-gold",
)
EFFORTS = (0.2, 0.3, 0.4)
SPLIT = (5, 0)


class Corpus(GoldDraw):
    """A gold draw (`bench_few_shot.GoldDraw`) labeled with two examples per label, and the
    MiniLM embeddings of its sample: what every variant reads."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        super().__init__(name, args)
        self.examples, self.first = self.labeling(2)
        self.embeddings = np.asarray(embedded(self.texts, get_embedder("onnx")), np.float32)


def whitened(X: np.ndarray, dims: int = 256) -> np.ndarray:
    """PCA-whitened over the pool (eigenvalues shrunk by their mean), rows to unit length."""
    X = np.asarray(X, dtype=np.float64) - np.mean(X, axis=0)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    variance = s[:dims] ** 2 / len(X)
    Z = (X @ vt[:dims].T) / np.sqrt(variance + variance.mean())
    return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)


def kernel_map(Z: np.ndarray) -> np.ndarray:
    """An RBF kernel's approximate feature map, fitted on the pool."""
    nystroem = Nystroem(gamma=0.5, n_components=600, random_state=0)
    return nystroem.fit_transform(Z).astype(np.float32)


def knn_vote(Z: np.ndarray, y: np.ndarray, rows: np.ndarray, K: int, k: int = 25) -> np.ndarray:
    """Each item's label distribution among its `k` most similar `rows` (cosine on unit rows),
    weighted by similarity; a row of `rows` does not vote for itself."""
    train = np.flatnonzero(rows)
    similarity = Z @ Z[train].T
    similarity[train, np.arange(len(train))] = -np.inf
    k = min(k, len(train) - 1)
    nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
    weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 0.0) + 1e-3
    votes = np.zeros((len(Z), K))
    np.add.at(votes, (np.arange(len(Z))[:, None], y[train][nearest]), weights)
    votes += 0.5
    return votes / votes.sum(axis=1, keepdims=True)


def fitted(
    X: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    c_grid: tuple[float, ...],
    extra: ExtraRows | None = None,
) -> np.ndarray:
    """`learn`'s student on `X`: out-of-fold on `rows`, the final fit's answer elsewhere."""
    student = LogisticStudent(classes=np.arange(int(y.max()) + 1))
    return _student_probs(X, y, rows, student, lambda s: s.predict_proba(X), SPLIT, extra, c_grid)


def probe(
    views: list[np.ndarray], y: np.ndarray, rows: np.ndarray, soft: SoftLabels | None = None
) -> np.ndarray:
    """The probe `learn` keeps: of the views, the one with the lowest out-of-fold log loss."""
    best: tuple[np.ndarray, float] | None = None
    for Z in views:
        extra = None if soft is None else ExtraRows(Z[soft.rows], soft.labels, soft.weights)
        p = fitted(Z, y, rows, PROBE_C_GRID, extra)
        loss = component_metrics(p[rows], y[rows])["log_loss"]
        if best is None or loss < best[1]:
            best = (p, loss)
    assert best is not None
    return best[0]


def feature_views(
    found: dict[str, np.ndarray], prepare: Callable[[np.ndarray], np.ndarray] = standardized_rows
) -> list[np.ndarray]:
    """Each view of a labeling's features (`FEATURE_VIEWS`), prepared as `learn` prepares them."""
    return [prepare(np.array(found[v], dtype=np.float32)) for v in FEATURE_VIEWS]


def pooled(inputs: list[np.ndarray], y: np.ndarray, rows: np.ndarray, n_labels: int) -> np.ndarray:
    """`learn`'s log-linear pool of `inputs`, trained on `rows` (out of fold there)."""
    names = [str(i) for i in range(len(inputs))]
    return fit_stack(
        inputs, names, y, rows, n_labels, n_splits=SPLIT[0], random_state=SPLIT[1]
    ).probs


def review_least_confident(trusted: np.ndarray, probs: np.ndarray, n: int) -> None:
    """Mark the `n` least confident untrusted items trusted (people answered them), in place."""
    confidence = np.where(trusted, np.inf, probs.max(axis=1))
    trusted[np.argsort(confidence, kind="stable")[:n]] = True


def stack_for(corpus: Corpus, variant: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The stack's probabilities for the pool given the trusted rows and the gold among them, as
    `variant` (parts joined by `+`) builds it."""
    parts = set(variant.split("+")) - {"base"}
    y, K = corpus.y, len(corpus.labels)
    excluded = np.zeros(len(y), dtype=bool)
    excluded[corpus.examples] = True
    prepare = whitened if "whitened" in parts else standardized_rows
    views = feature_views(corpus.first, prepare)
    middle = views[0]
    if "views-side-by-side" in parts:
        views = [standardized_rows(np.hstack(views))]
    if "kernel-probe" in parts:
        views = [kernel_map(Z) for Z in views]
    E = corpus.embeddings
    second = None
    if "second-prompt" in parts:
        more, found = corpus.labeling(4)
        excluded[more] = True
        second = found["probs"], feature_views(found)
    side_by_side = np.hstack([middle, standardized_rows(E.copy())]) if "concat" in parts else None
    ngrams = ngram_features(corpus.texts, seed=0) if "ngram" in parts else None
    c_grid = STUDENT_C_GRID if "student-c-auto" in parts else (1.0,)

    def probes(fit: np.ndarray, soft: SoftLabels | None = None) -> list[np.ndarray]:
        if "both-views" in parts:
            return [probe([Z], y, fit, soft) for Z in views]
        return [probe(views, y, fit, soft)]

    def predict(trusted: np.ndarray, gold: np.ndarray) -> np.ndarray:
        fit = trusted & ~excluded
        pool_rows = fit & gold if "stack-on-gold" in parts else fit
        own = probes(fit)
        inputs = [corpus.first["probs"], *own, fitted(E, y, trusted, c_grid)]
        if second is not None:
            inputs += [second[0], probe(second[1], y, fit)]
        if side_by_side is not None:
            inputs.append(fitted(side_by_side, y, fit, PROBE_C_GRID))
        if ngrams is not None:
            inputs.append(fitted(ngrams, y, trusted, (1.0,)))
        if "knn" in parts:
            inputs.append(knn_vote(middle, y, fit, K))
        probs = pooled(inputs, y, pool_rows, K)
        if "self-training" in parts:
            soft = soft_labels(
                probs, ~trusted, min_confidence=0.9, max_items=int(trusted.sum()), weight=0.5
            )
            inputs[1 : 1 + len(own)] = probes(fit, soft if len(soft) else None)
            probs = pooled(inputs, y, pool_rows, K)
        return probs

    return predict


def gold_mask(corpus: Corpus, seed: int, gold: int) -> np.ndarray:
    """The prompt's examples plus a random draw, `gold` items in all: what people start from."""
    mask = np.zeros(len(corpus.y), dtype=bool)
    others = [
        i for i in np.random.default_rng(seed).permutation(len(mask)) if i not in corpus.examples
    ]
    mask[corpus.examples + others[: gold - len(corpus.examples)]] = True
    return mask


def reviewed(
    corpus: Corpus,
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    seed: int,
    gold: int,
    batch: int,
    until: float,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The trusted rows and the stack's probabilities after each round of `batch` answers,
    least confident first, from the gold until `until` of the pool is trusted."""
    drawn = gold_mask(corpus, seed, gold)
    trusted = drawn.copy()
    while True:
        probs = predict(trusted, drawn)
        yield trusted.copy(), probs
        if trusted.mean() >= until - 1e-9:
            return
        review_least_confident(trusted, probs, batch)


def finished(y: np.ndarray, trusted: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Whether each item of the finished dataset is right: people's where trusted, else the
    stack's answer."""
    return np.where(trusted, y, probs.argmax(axis=1)) == y


def curve(
    corpus: Corpus,
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    seed: int,
    gold: int,
    batch: int,
) -> np.ndarray:
    """Finished-dataset accuracy at `EFFORTS`, reviewing least confident first."""
    points = [
        (trusted.mean(), finished(corpus.y, trusted, probs).mean())
        for trusted, probs in reviewed(corpus, predict, seed, gold, batch, max(EFFORTS))
    ]
    effort, accuracy = np.array(points).T
    return np.interp(EFFORTS, effort, accuracy)


def interval(values: np.ndarray | list[float], fmt: str = "+.4f") -> str:
    """The mean over the seeds with its 90% t interval, each as `fmt`."""
    found = t_interval(np.asarray(values), level=0.9)
    if found.low is None or found.high is None:
        return f"{found.mean:{fmt}}"
    return f"{found.mean:{fmt}} [{found.low:{fmt}}, {found.high:{fmt}}]"


def run(name: str, args: argparse.Namespace) -> str:
    corpus = Corpus(name, args)
    variants = ["base", *(args.variant or VARIANTS)]
    found: dict[str, np.ndarray] = {}
    for variant in variants:
        t0 = time.process_time()
        predict = stack_for(corpus, variant)
        found[variant] = np.array(
            [curve(corpus, predict, s, args.gold, args.batch) for s in args.seeds]
        )
        seconds = time.process_time() - t0
        print(f"{name} {variant}: {found[variant].mean(axis=0)} ({seconds:.0f} CPU s)", flush=True)
    head = " | ".join(f"at {e:.0%}" for e in EFFORTS)
    lines = [
        f"**{name}**: {len(corpus.y)} items, {args.gold} gold, seeds {args.seeds}, "
        f"{args.batch} answers per round.",
        "",
        f"| variant | {head} | − base at {EFFORTS[1]:.0%} (90% t interval) |",
        "| --- | " + " | ".join("---:" for _ in EFFORTS) + " | ---: |",
    ]
    for variant, accuracy in found.items():
        mean = " | ".join(f"{a:.4f}" for a in accuracy.mean(axis=0))
        versus = "—" if variant == "base" else interval(accuracy[:, 1] - found["base"][:, 1])
        lines.append(f"| {variant} | {mean} | {versus} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sample_arguments(parser)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument(
        "--variant", action="append", help="parts joined by +: " + ", ".join(VARIANTS)
    )
    args = parser.parse_args()
    for variant in args.variant or ():
        unknown = set(variant.split("+")) - set(VARIANTS)
        if unknown:
            parser.error(f"unknown variant part(s) {sorted(unknown)}; choose from {VARIANTS}")
    warnings.filterwarnings("ignore")
    body = "\n\n".join(run(corpus, args) for corpus in args.corpus or list(TASKS))
    print(body)
    write_section(
        "The loop's stand-in: what the stack learns from",
        body,
        "PYTHONPATH=src python " + shlex.join(sys.argv),
    )


if __name__ == "__main__":
    main()
