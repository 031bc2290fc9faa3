"""Team review on real corpora: final labels weighted by who gave them, and adaptive overlap.

Synthetic annotators (accuracy drawn uniformly in 0.55–0.95; a third of them biased: when unsure
they pick their favourite label, otherwise a label at random) answer the items of a real corpus,
whose own labels are the truth. The model is labelloop's logistic student on the cached MiniLM
embeddings, trained on 200 random gold items, its probabilities calibrated (`select_calibrator`,
`auto`) on the gold items' out-of-fold probabilities. Each annotator also answers 20 gold items,
the same for every policy. Every other answer is requested by a policy in a simulated stream, and
all policies draw from the same answers (who answers an item k-th, and what they say, is fixed
per repeat), so differences between policies are paired:

* fixed overlap 1, 2 or 3, final label by plain majority (ties at random) or weighted
  (`WeightedConsensus`: Dawid–Skene with gold anchoring and the model as prior);
* adaptive overlap (`OverlapPolicy`: at least one answer, then another while the leading
  label's posterior is below the target, at most 5), weighted labels, refitted after every batch
  of requests (5% of the pool), most useful item first; and the same stream with target 0.99
  stopped once 1.8 answers per item, 60% of a fixed overlap of 3, are spent.

Accuracy is that of the final labels on the non-gold items; answers are counted per non-gold item
(the 200 gold answers come on top for every policy alike). Intervals are 95% t-intervals over
repeats; differences and ratios are computed within each repeat.

    PYTHONPATH=src python bench/bench_team.py [--repeats 5] [--corpus 'BBC News']
    PYTHONPATH=src python bench/bench_team.py --speed   # fit times on 100k items
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import CORPORA, embedded
from _report import write_section
from labelloop.active import LogisticStudent, cross_val_proba, get_embedder
from labelloop.agreement import Answers, OverlapPolicy, WeightedConsensus
from labelloop.calibration import select_calibrator

N_ANNOTATORS = 10
N_GOLD = 200
GOLD_PER_ANNOTATOR = 20
BATCH_SHARE = 0.05
TARGETS = (0.8, 0.9, 0.95)


@dataclass
class World:
    """One repeat: the truth, the model's calibrated probabilities, and every answer that any
    policy may ask for (`answer[i, k]` given by annotator `who[i, k]`)."""

    truth: np.ndarray
    proba: np.ndarray
    gold: np.ndarray  # item positions of the gold items
    pool: np.ndarray  # the other items
    who: np.ndarray
    answer: np.ndarray
    gold_rows: tuple[np.ndarray, np.ndarray, np.ndarray]  # (item, annotator, label)
    accuracy: np.ndarray  # annotators' realised accuracy on the pool
    model_accuracy: float


def calibrated_model(x: np.ndarray, y: np.ndarray, gold: np.ndarray, seed: int) -> np.ndarray:
    """Probabilities of the student trained on the gold items, calibrated on their out-of-fold
    probabilities; gold items keep their out-of-fold rows."""
    classes = np.arange(int(y.max()) + 1)
    student = LogisticStudent(classes=classes, random_state=seed)
    oof = cross_val_proba(student, x[gold], y[gold], random_state=seed)
    calibrator = select_calibrator(oof, y[gold], "auto", random_state=seed).calibrator
    proba = calibrator.predict_proba(student.fit(x[gold], y[gold]).predict_proba(x))
    proba[gold] = calibrator.predict_proba(oof)
    return proba


def make_world(x: np.ndarray, y: np.ndarray, seed: int) -> World:
    rng = np.random.default_rng(seed)
    n_items, n_labels = y.size, int(y.max()) + 1
    order = rng.permutation(n_items)
    gold, pool = np.sort(order[:N_GOLD]), np.sort(order[N_GOLD:])
    proba = calibrated_model(x, y, gold, seed)
    target = rng.uniform(0.55, 0.95, N_ANNOTATORS)
    biased = np.arange(N_ANNOTATORS) < N_ANNOTATORS // 3
    favourite = rng.integers(0, n_labels, N_ANNOTATORS)
    share = np.bincount(y, minlength=n_labels) / n_items
    # P(knows) so that the overall accuracy is the target: a guess is right 1/K of the time, a
    # favourite is right as often as it is the truth.
    hit = np.where(biased, share[favourite], 1.0 / n_labels)
    knows = np.clip((target - hit) / (1.0 - hit), 0.0, 1.0)

    def answers(truth: np.ndarray, who: np.ndarray) -> np.ndarray:
        """What annotators `who` say of items whose true labels are `truth`."""
        sure = rng.random(who.shape) < knows[who]
        guess = np.where(biased[who], favourite[who], rng.integers(0, n_labels, who.shape))
        return np.where(sure, truth, guess)

    who = np.argsort(rng.random((n_items, N_ANNOTATORS)), axis=1)
    answer = answers(y[:, None], who)
    gold_item = np.concatenate(
        [rng.choice(gold, GOLD_PER_ANNOTATOR, replace=False) for _ in range(N_ANNOTATORS)]
    )
    gold_who = np.repeat(np.arange(N_ANNOTATORS), GOLD_PER_ANNOTATOR)
    gold_label = answers(y[gold_item], gold_who)
    right = (answer == y[:, None])[pool]
    accuracy = np.bincount(who[pool].ravel(), weights=right.ravel(), minlength=N_ANNOTATORS)
    accuracy /= np.bincount(who[pool].ravel(), minlength=N_ANNOTATORS)
    return World(
        y,
        proba,
        gold,
        pool,
        who,
        answer,
        (gold_item, gold_who, gold_label),
        accuracy,
        float((proba[pool].argmax(axis=1) == y[pool]).mean()),
    )


def answers_of(world: World, taken: np.ndarray) -> Answers:
    """Answers object holding the first `taken[i]` answers of each item, gold answers first."""
    item = np.repeat(np.arange(taken.size), taken)
    k = np.arange(item.size) - np.repeat(np.cumsum(taken) - taken, taken)
    gold_item, gold_who, gold_label = world.gold_rows
    n_labels = world.proba.shape[1]
    return Answers.from_records(
        np.concatenate([gold_item, item]),
        np.concatenate([gold_who, world.who[item, k]]),
        np.concatenate([gold_label, world.answer[item, k]]),
        label_set=list(range(n_labels)),
        n_items=taken.size,
        annotator_names=list(range(N_ANNOTATORS)),
    )


def final_accuracy(world: World, fit: WeightedConsensus) -> float:
    return float((fit.consensus_index_[world.pool] == world.truth[world.pool]).mean())


def gold_labels(world: World) -> list[int | None]:
    gold: list[int | None] = [None] * world.truth.size
    for i in world.gold:
        gold[i] = int(world.truth[i])
    return gold


def fixed(world: World, overlap: int, weighted: bool, model_weight: float, seed: int) -> dict:
    taken = np.zeros(world.truth.size, dtype=np.int64)
    taken[world.pool] = overlap
    answers = answers_of(world, taken)
    if weighted:
        fit = WeightedConsensus(model_weight=model_weight, random_state=seed).fit(
            answers, gold=gold_labels(world), model_proba=world.proba
        )
    else:
        fit = WeightedConsensus("majority", random_state=seed).fit(answers)
    return {"accuracy": final_accuracy(world, fit), "answers": float(overlap)}


def adaptive(
    world: World,
    policy: OverlapPolicy,
    model_weight: float,
    seed: int,
    budget: float | None = None,
) -> dict[str, float]:
    """The stream: ask the policy, give the next answer of the items it puts first, refit; stop
    when no item needs one or `budget` answers per pool item are spent."""
    taken = np.zeros(world.truth.size, dtype=np.int64)
    gold = gold_labels(world)
    batch = max(1, int(BATCH_SHARE * world.pool.size))
    left = np.inf if budget is None else int(budget * world.pool.size)
    rounds = 0
    while True:
        fit = WeightedConsensus(model_weight=model_weight, random_state=seed).fit(
            answers_of(world, taken), gold=gold, model_proba=world.proba
        )
        limit = int(min(batch, left))
        wanted = policy.queue(
            fit.posterior_[world.pool], taken[world.pool], fit.typical_confusion_, limit=limit
        )
        if wanted.size == 0:
            break
        left -= wanted.size
        taken[world.pool[wanted]] += 1
        rounds += 1
    return {
        "accuracy": final_accuracy(world, fit),
        "answers": float(taken[world.pool].mean()),
        "rounds": float(rounds),
    }


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over repeats."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / np.sqrt(arr.size))
    return mean, mean - half, mean + half


def fmt(values: list[float], digits: int = 3) -> str:
    mean, low, high = interval(values)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def verdict(goal: str, differences: list[float], strict: bool = False) -> str:
    """Whether a paired difference is at least 0 (or above 0 when `strict`), read off its mean
    and interval over repeats, so the text never says more than the figures."""
    mean, low, _ = interval(differences)
    if low > 0 or (low >= 0 and not strict):
        return f"{goal}: **met** (interval above 0)"
    if mean > 0 or (mean >= 0 and not strict):
        return f"{goal}: met on average, interval reaches below 0"
    return f"{goal}: **not met** (difference {fmt(differences)})"


def run_corpus(
    corpus: str, repeats: int, target: float, model_weights: list[float], default_weight: float
) -> str:
    texts, raw_labels = CORPORA[corpus]()
    names, y = np.unique(raw_labels, return_inverse=True)
    x = embedded(texts, get_embedder("onnx"))
    adaptive_key = f"adaptive (target {target}), weighted"
    budget_key = "adaptive, budget 1.8 answers per item (60%), weighted"
    rows: dict[str, list[dict]] = {}
    sweep: dict[str, list[dict]] = {}
    facts: dict[str, list[float]] = {"model": [], "annotators": []}
    t0 = time.perf_counter()
    for seed in range(repeats):
        world = make_world(x, y, seed)
        facts["model"].append(world.model_accuracy)
        facts["annotators"].append(float(world.accuracy.mean()))
        for k in (1, 2, 3):
            rows.setdefault(f"fixed {k}, majority", []).append(fixed(world, k, False, 0, seed))
            rows.setdefault(f"fixed {k}, weighted", []).append(
                fixed(world, k, True, default_weight, seed)
            )
        policy = OverlapPolicy(target=target, max_answers=5)
        rows.setdefault(adaptive_key, []).append(adaptive(world, policy, default_weight, seed))
        rows.setdefault(budget_key, []).append(
            adaptive(world, OverlapPolicy(target=0.99, max_answers=5), default_weight, seed, 1.8)
        )
        for weight in model_weights:
            for goal in TARGETS:
                result = adaptive(world, OverlapPolicy(target=goal, max_answers=5), weight, seed)
                sweep.setdefault(f"{weight}|adaptive {goal}", []).append(result)
            sweep.setdefault(f"{weight}|fixed 3", []).append(fixed(world, 3, True, weight, seed))
        print(f"{corpus}: repeat {seed + 1}/{repeats} done", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    base_answers = [r["answers"] for r in rows["fixed 3, weighted"]]

    def paired(a: str, b: str) -> list[float]:
        return [x["accuracy"] - z["accuracy"] for x, z in zip(rows[a], rows[b], strict=True)]

    ratio = [r["answers"] / b for r, b in zip(rows[adaptive_key], base_answers, strict=True)]
    versus = {
        f"{a} − fixed 3 {b}": paired(a, f"fixed 3, {b}")
        for a in (adaptive_key, budget_key)
        for b in ("majority", "weighted")
    }
    lines = [
        f"**{corpus}**: {y.size} items ({y.size - N_GOLD} answered by the pool), "
        f"{names.size} labels, {N_ANNOTATORS} annotators of mean realised accuracy "
        f"{fmt(facts['annotators'])}; calibrated model accuracy {fmt(facts['model'])}; "
        f"{repeats} repeats, {elapsed:.0f} s. Model weight {default_weight}.",
        "",
        "| policy | answers per item | final-label accuracy |",
        "| --- | ---: | ---: |",
    ]
    for name, results in rows.items():
        lines.append(
            f"| {name} | {fmt([r['answers'] for r in results], 2)} | "
            f"{fmt([r['accuracy'] for r in results])} |"
        )
    lines += [
        "",
        "Paired, within each repeat:",
        "",
        f"- {adaptive_key}: answers / fixed-3 answers {fmt(ratio)}",
        *(f"- {name}, accuracy: {fmt(values)}" for name, values in versus.items()),
    ]
    for k in (1, 2, 3):
        lines.append(
            f"- weighted − majority at overlap {k}, accuracy: "
            f"{fmt(paired(f'fixed {k}, weighted', f'fixed {k}, majority'))}"
        )
    goals = [
        verdict(
            "60% of the answers reach the accuracy of fixed overlap 3 with majority",
            versus[f"{budget_key} − fixed 3 majority"],
        ),
        verdict(
            "... of fixed overlap 3 with weighted labels",
            versus[f"{budget_key} − fixed 3 weighted"],
        ),
        verdict(
            "weighted labels beat the majority at overlap 3",
            paired("fixed 3, weighted", "fixed 3, majority"),
            strict=True,
        ),
    ]
    lines += ["", "Goals: " + "; ".join(goals) + "."]
    lines += [
        "",
        "By model weight (0 = annotators only) and target: answers per item, accuracy.",
        "",
        "| model weight | fixed 3 | " + " | ".join(f"adaptive {t}" for t in TARGETS) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in TARGETS) + " |",
    ]
    for weight in model_weights:
        cells = []
        for key in ("fixed 3", *(f"adaptive {t}" for t in TARGETS)):
            results = sweep[f"{weight}|{key}"]
            answers = np.mean([r["answers"] for r in results])
            cells.append(f"{answers:.2f}, {fmt([r['accuracy'] for r in results])}")
        lines.append(f"| {weight} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed(n_items: int = 100_000, n_annotators: int = 20, n_labels: int = 10) -> str:
    """Fit times on a dense crowd (every annotator answers every item) and a sparse one (three
    answers per item, model probabilities as prior), against the plain majority measured in the
    same run."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, n_labels, n_items)
    accuracy = rng.uniform(0.55, 0.95, n_annotators)
    proba = rng.dirichlet(np.ones(n_labels), size=n_items)
    lines = [
        "| crowd | answers | encode | majority | Dawid–Skene | E-steps | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, per_item in (("dense", n_annotators), ("3 per item", 3)):
        item = np.repeat(np.arange(n_items), per_item)
        who = np.argsort(rng.random((n_items, n_annotators)), axis=1)[:, :per_item].ravel()
        right = rng.random(item.size) < accuracy[who]
        label = np.where(right, truth[item], rng.integers(0, n_labels, item.size))
        t0 = time.perf_counter()
        answers = Answers.from_records(
            item,
            who,
            label,
            label_set=list(range(n_labels)),
            annotator_names=list(range(n_annotators)),
        )
        t_encode = time.perf_counter() - t0
        timings = {}
        for method in ("majority", "dawid_skene"):
            t0 = time.perf_counter()
            fit = WeightedConsensus(method).fit(answers, model_proba=proba)
            timings[method] = time.perf_counter() - t0
        lines.append(
            f"| {name} | {item.size:,} | {t_encode:.2f} s | {timings['majority']:.2f} s | "
            f"{timings['dawid_skene']:.2f} s | {fit.n_iter_} | "
            f"{timings['dawid_skene'] / timings['majority']:.1f}× |"
        )
    return (
        f"{n_items:,} items × {n_annotators} annotators × {n_labels} labels; ratio = "
        "Dawid–Skene / plain majority in the same run.\n\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus", choices=list(CORPORA), action="append")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--model-weight", type=float, default=WeightedConsensus().model_weight)
    parser.add_argument("--sweep-weights", type=float, nargs="*", default=[0.0, 0.5, 0.7, 1.0])
    parser.add_argument(
        "--speed", action="store_true", help="only time fits on 100k items (own section)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    command = "PYTHONPATH=src python " + shlex.join(sys.argv)
    if args.speed:
        text = speed()
        print(text, flush=True)
        if not args.no_write:
            write_section("Team review: fit speed", text, command)
        return
    parts = []
    for corpus in args.corpus or list(CORPORA):
        part = run_corpus(corpus, args.repeats, args.target, args.sweep_weights, args.model_weight)
        print(part, flush=True)
        parts.append(part)
    if not args.no_write:
        write_section(
            "Team review: weighted final labels and adaptive overlap",
            "\n\n".join([*__doc__.split("\n\n")[1:-1], *parts]),
            command,
        )


if __name__ == "__main__":
    main()
