"""The whole product played on labeled items, their labels acting as the people.

Each run is a real project (a copy of a prepared SQLite store) driven through the service
layer as a team would drive it: gold imported, `learn` (for settings that retrain: student
and stack from the gold as soon as there is enough), `calibrate`, `route`, then rounds of
`select` (or the routing queue), people answering what `next_item` serves through `annotate`,
and `learn` (which recalibrates and re-routes), until the human-effort budget is spent. After
every round the dataset one would export is scored against the labels: items people labeled
keep their label, every other item takes the routing predictor's label.

Embeddings are computed once per (items, embedder) in a template store. An LLM asked here
pre-labels as a team's project would, after its gold is imported: the prompt holds few-shot
examples from the gold, so each gold draw has its own template of answers (cached per items,
model, prompt version and gold); settings of one repeat start from copies of it, and the
answers stored under a name (`predictions`) are shared by every repeat.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .active import get_embedder
from .active.effort import (
    curve_on_grid,
    effort_interval,
    effort_ratio_interval,
    effort_to_target,
    summarise_curves,
)
from .calibration.metrics import expected_calibration_error
from .errors import InputError, NotReadyError
from .labelers.base import LabelResult, LabelTask
from .review.common import Result
from .store import GOLD, HUMAN_LABELED
from .store import items as stored_items
from .workflows.embed import is_corpus_fitted, item_embeddings

if TYPE_CHECKING:
    from .project import Project

DB_FILE = "labelloop.db"
MARKER = "template.json"
ANNOTATOR = "simulated-annotator"
REVIEW_ORDER = "review"  # people take what routing queued, least confident first
BASELINE = "random-order"
ALL_HUMAN = "all-human"
#: Routing's target accuracy certified with this probability (`calibrate --confidence-level`).
#: On the point estimate a small gold set flatters the predictor: routing emptied the review
#: queue with the dataset short of its target; certified, people go on down the queue, and the
#: finished dataset was as accurate or more on both measured corpora (docs/benchmarks.md).
CONFIDENCE_LEVEL: float | None = 0.9
Log = Callable[[str], None]


@dataclass(frozen=True)
class LabeledItems:
    """Items with their true labels: a labeled file, or a project's gold items."""

    uids: list[str]
    texts: list[str]
    labels: list[str]
    label_set: list[str]

    def __post_init__(self) -> None:
        if not len(self.uids) == len(self.texts) == len(self.labels):
            raise ValueError("uids, texts and labels must have one entry per item")

    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (*self.label_set, "\x01", *self.uids, "\x01", *self.texts, *self.labels):
            h.update(part.encode("utf-8", "surrogatepass") + b"\x00")
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Setting:
    """How a run is played: with or without the LLM's answers, who picks the items people see
    (`review`: the routing queue; otherwise a `select` strategy), whether the predictor is
    retrained after every round, and whether there is a predictor at all."""

    name: str
    llm: bool
    order: str
    retrain: bool
    predictor: bool = True


# People label in random order and nothing is predicted: the dataset is what they labeled.
ALL_HUMAN_SETTING = Setting(ALL_HUMAN, False, "random", False, predictor=False)


@dataclass(frozen=True, slots=True)
class LoopSummary(Result):
    """The settings' runs summarised (`summarise`): per setting its mean curve with
    intervals, accuracy at the budget, effort to the target and its ratio to random review
    order's, the mean first and last points and every run's own points, by setting name."""

    settings: dict[str, dict[str, Any]]
    target_accuracy: float
    budget: float
    level: float  # of the intervals over repeats


@dataclass(frozen=True, slots=True)
class LoopSimulation(LoopSummary):
    """A loop simulation (`simulate --loop`): the summary, sent first and flat, then how it
    was played; the plot only when one was drawn."""

    items: int
    gold: int
    batch: int
    repeats: int
    strategies: list[str]
    confidence_level: float | None
    labeler: str | None
    embedder: str
    cache: str | None  # the folder kept for later runs; None when the run cleaned up after itself
    plot: str | None  # the PNG drawn, when asked for

    def to_dict(self) -> dict[str, Any]:
        sent = Result.to_dict(self)
        if self.plot is None:
            del sent["plot"]
        return sent


@dataclass(frozen=True, slots=True)
class LoopPlan(LoopSimulation):
    """A plan (`plan`): the simulation played on the project's gold, then the effort to
    expect from its loop: `setting` and that setting's effort to target (mean, interval,
    repeats that reached it)."""

    plan: dict[str, Any]


def default_settings(strategies: Sequence[str], with_llm: bool) -> list[Setting]:
    """The loop with each strategy, and the baselines measured beside it."""
    loops = [
        Setting(f"loop:{s}" if len(strategies) > 1 else "loop", with_llm, s, True)
        for s in strategies
    ]
    baselines = [
        Setting(BASELINE, with_llm, "random", True),
        *([Setting("one-pass", True, REVIEW_ORDER, False)] if with_llm else []),
        *([Setting("student-alone", False, strategies[0], True)] if with_llm else []),
        ALL_HUMAN_SETTING,
    ]
    return loops + baselines


# ----------------------------------------------------------------- templates
def _db(path: Path) -> str:
    return str(path / DB_FILE)


def _open(path: Path) -> Project:
    from .project import Project

    return Project.open(path, db=_db(path))  # always this folder's SQLite file


def _records(items: LabeledItems, rows: Iterable[int], with_label: bool) -> list[dict[str, str]]:
    return [
        {
            "id": items.uids[i],
            "text": items.texts[i],
            **({"label": items.labels[i]} if with_label else {}),
        }
        for i in rows
    ]


def base_template(items: LabeledItems, task: str, embedder: Any, cache: Path, log: Log) -> Path:
    """A project holding every item in the pool, unlabeled, with its embeddings stored."""
    path = cache / f"base-{items.digest()}-{_slug(embedder.model_id)}"
    if (path / MARKER).exists():
        return path
    from .project import Project

    shutil.rmtree(path, ignore_errors=True)
    log(f"preparing {len(items.uids)} items (embeddings)")
    with Project.create(path, task=task, labels=items.label_set, db=_db(path)) as project:
        project.add_items(_records(items, range(len(items.uids)), False), id_col="id")
        if not is_corpus_fitted(embedder):
            ids = [project.item_id(uid) for uid in items.uids]
            item_embeddings(project, embedder, ids, items.texts)
    (path / MARKER).write_text(json.dumps({"items": len(items.uids)}))
    return path


def llm_template(
    base: Path,
    labeler: Any = None,
    predictions: dict[tuple[str, str], dict[str, LabelResult]] | None = None,
    *,
    gold: list[dict[str, str]] | None = None,
    log: Log,
) -> Path:
    """A copy of `base` with LLM answers for every item: asked of `labeler`, or given as stored
    answers by (model, prompt version) → uid → result. With `gold` (records with their labels)
    the copy imports them first, so `labeler` is asked as `prelabel` asks it in a project with
    that gold: few-shot examples from it in the prompt."""
    with _open(base) as project:
        task = LabelTask(project.task, project.labels)
    if labeler is not None:
        key = f"{labeler.model_id}@{labeler.prompt_version(task)}"
        if getattr(labeler, "features", False):  # answers stored with the model's features
            key += f"+features-{labeler.features_version}"
        if gold:  # the prompt's examples: those the labeler takes from this gold
            shown = json.dumps(sorted((r["id"], r["label"]) for r in gold)).encode()
            key += f"+gold-{hashlib.sha256(shown).hexdigest()[:12]}"
            key += f"+shots-{getattr(labeler, 'examples_per_label', 0)}"
    else:
        key = ",".join(f"{m}@{v}" for m, v in sorted(predictions or {}))
        key += hashlib.sha256(
            json.dumps(
                {
                    f"{m}@{v}": {u: r.probs or r.label for u, r in sorted(a.items())}
                    for (m, v), a in sorted((predictions or {}).items())
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:12]
    path = base.with_name(f"{base.name}-llm-{_slug(key)}")
    if (path / MARKER).exists():
        return path
    if not path.exists():  # else an interrupted pre-labeling: prelabel resumes where it stopped
        shutil.copytree(base, path)
        (path / MARKER).unlink()
    with _open(path) as project:
        if gold:
            project.add_items(gold, id_col="id", split="gold")
        if labeler is not None:
            log(f"pre-labeling with {labeler.model_id} (once per gold set; settings reuse it)")
            result = project.prelabel(labeler)
            if result.failed:
                log(f"{result.failed} items got no answer; they go to review in every run")
        else:
            uid_to_id = {uid: project.item_id(uid) for uid in _uids(project)}
            for (model, version), answers in (predictions or {}).items():
                project.save_predictions(
                    model,
                    version,
                    [(uid_to_id[u], r) for u, r in answers.items() if u in uid_to_id],
                )
                project.set_active_predictor(model, version)
    (path / MARKER).write_text(json.dumps({"key": key}))
    return path


def _uids(project: Project) -> list[str]:
    return list(stored_items.uids_of(project.store, project.id).values())


def _slug(text: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:60]
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


# ----------------------------------------------------------------- one run
def _measure(project: Project, truth: dict[str, str]) -> dict[str, Any]:
    """Effort, the exported dataset's accuracy, and the routing predictor's ECE and accuracy
    on the items no person labeled."""
    rows = stored_items.outcomes(project.store, project.id)
    human = np.array([r.split == GOLD or r.state == HUMAN_LABELED for r in rows])
    final = [r.final_label if r.final_label is not None else r.llm_label for r in rows]
    correct = np.array([label == truth[r.uid] for label, r in zip(final, rows, strict=True)])
    auto = [
        (
            r.calibrated_confidence if r.calibrated_confidence is not None else r.confidence,
            r.llm_label == truth[r.uid],
        )
        for r, h in zip(rows, human, strict=True)
        if not h and r.llm_label is not None
    ]
    conf = np.array([c for c, _ in auto if c is not None], dtype=float)
    right = np.array([ok for c, ok in auto if c is not None], dtype=bool)
    return {
        "effort": float(human.mean()),
        "accuracy": float(correct.mean()),
        "auto_accuracy": float(right.mean()) if right.size else None,
        "ece": expected_calibration_error(conf, right) if conf.size else None,
    }


def _answer(project: Project, annotator: int, truth: dict[str, str], k: int) -> int:
    """People answer up to `k` items in the order their queues serve them."""
    done = 0
    while done < k:
        item = project.next_item(annotator)
        if item is None:
            break
        label = truth[item.uid]
        suggested = None if item.suggestion is None else item.suggestion.label
        action = "label" if suggested is None else ("accept" if suggested == label else "correct")
        project.annotate(item.id, action=action, label=label, annotator=annotator)
        done += 1
    return done


def play(
    template: Path,
    folder: Path,
    items: LabeledItems,
    gold: np.ndarray,
    setting: Setting,
    *,
    budget: float,
    batch: int,
    target: float,
    embedder: Any,
    random_state: int,
    confidence_level: float | None = None,
    learning: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One run of one setting from a copy of `template`; the measure after every round.
    `learning` is the project setting of that name (how `learn` trains), None for defaults.
    Importing the gold leaves a template that already holds it (an LLM's, `llm_template`) as
    it is.

    Calibration aims routing at the target accuracy (`calibrate --target-accuracy`, with
    `--confidence-level` when given), so the routing queue holds what the predictor believes
    people must still see; `learn` refits it the same way after every round.
    """
    shutil.rmtree(folder, ignore_errors=True)  # left by an interrupted run
    shutil.copytree(template, folder)
    truth = dict(zip(items.uids, items.labels, strict=True))
    n = len(items.uids)
    aim = {"target_accuracy": target, "confidence_level": confidence_level}
    with _open(folder) as project:
        project.add_items(_records(items, gold, True), id_col="id", split="gold")
        if learning:
            project.update_settings(learning=learning)
        annotator = project.annotator_id(ANNOTATOR)

        def learned() -> bool:
            """Retrain; before the first predictor exists, also calibrate and route."""
            try:
                project.learn(embedder=embedder, random_state=random_state)
            except NotReadyError:  # too few labels for the student: people go on at random
                return False
            if not ready:
                project.calibrate(**aim, random_state=random_state)
                project.route()
            return True

        ready = False
        if setting.predictor:
            # A retraining loop stacks the student with the LLM as soon as the gold allows.
            if setting.retrain or not setting.llm:
                ready = learned()
            if not ready and setting.llm:
                project.calibrate(**aim, random_state=random_state)
                project.route()
                ready = True
        points = [{"round": 0, **_measure(project, truth)}]
        round_ = 0
        while points[-1]["effort"] < budget - 1e-9:
            round_ += 1
            k = min(batch, max(1, math.floor((budget - points[-1]["effort"]) * n + 1e-9)))
            order = setting.order if ready or not setting.predictor else "random"
            if order != REVIEW_ORDER:
                project.select(order, k, embedder=embedder, random_state=random_state + round_)
            if _answer(project, annotator, truth, k) == 0:
                break  # nothing left to label: the dataset is finished
            if setting.predictor and (setting.retrain or not ready):
                ready = learned()
            points.append({"round": round_, **_measure(project, truth)})
    shutil.rmtree(folder, ignore_errors=True)
    return points


def draw_gold(labels: Sequence[str], n_gold: int, rng: np.random.RandomState) -> np.ndarray:
    """A random gold set holding at least two labels (calibration and the student need two)."""
    for _ in range(100):
        gold = np.sort(rng.choice(len(labels), size=n_gold, replace=False))
        if len({labels[i] for i in gold}) >= 2:
            return gold
    raise InputError(f"{n_gold} gold items never held two labels; give more with --gold")


# ----------------------------------------------------------------- the simulation
def simulate_loop(
    items: LabeledItems,
    *,
    task: str,
    labeler: Any = None,
    predictions: dict[tuple[str, str], dict[str, LabelResult]] | None = None,
    n_gold: int = 200,
    budget: float = 0.5,
    batch: int | None = None,
    strategies: Sequence[str] = (REVIEW_ORDER,),
    repeats: int = 5,
    target_accuracy: float = 0.95,
    confidence_level: float | None = CONFIDENCE_LEVEL,
    settings: Sequence[Setting] | None = None,
    embedder: Any = None,
    cache: str | Path | None = None,
    plot: str | Path | None = None,
    level: float = 0.9,
    random_state: int = 0,
    log: Log | None = None,
    learning: dict[str, Any] | None = None,
) -> LoopSimulation:
    """Accuracy of the finished dataset against human effort for the loop and its baselines.

    Calibration aims routing at `target_accuracy`, certified with `confidence_level` (None:
    the point estimate on gold, which a small gold set flatters: routing then declares the
    dataset finished before it is). Effort is the share of items people labeled, gold
    included. Every repeat draws its own
    gold set, which every setting shares (a paired comparison). Returns per setting the mean
    curve with a t interval over repeats, the effort to reach `target_accuracy` (mean, t
    interval, repeats that reached it) and its ratio to random review order's with a paired
    bootstrap interval, plus every run's own points. `learning` is the project setting of that
    name every run's `learn` reads (e.g. `{"fine_tune": true}`); None keeps the defaults.
    """
    log = log or (lambda _message: None)
    if learning is not None:
        from .workflows.learn import LEARNING, LearnOptions

        LearnOptions.from_settings({LEARNING: learning})  # a bad setting fails before any run
    n = len(items.uids)
    _check(items, n_gold, budget, batch, repeats, target_accuracy, strategies)
    if confidence_level is not None and not 0.0 < confidence_level < 1.0:
        raise InputError(f"--confidence-level must lie in (0, 1), not {confidence_level}")
    batch = batch or max(20, round(0.02 * n))
    embedder = embedder or get_embedder("auto")
    with_llm = labeler is not None or bool(predictions)
    chosen = list(settings or default_settings(list(strategies), with_llm))
    if not with_llm and any(s.llm for s in chosen):
        raise InputError("these settings need an LLM's answers; name a model")
    owned = cache is None
    root = Path(cache) if cache is not None else Path(tempfile.mkdtemp(prefix="labelloop-loop-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        base = base_template(items, task, embedder, root, log)
        templates = {False: base}
        if predictions:
            templates[True] = llm_template(base, predictions=predictions, log=log)
        runs: dict[str, list[list[dict[str, Any]]]] = {s.name: [] for s in chosen}
        for r in range(repeats):
            rng = np.random.RandomState(random_state + r)
            gold = draw_gold(items.labels, n_gold, rng)
            if labeler is not None and any(s.llm for s in chosen):
                # Asked as a project asks it: after the gold is in, few-shot from it.
                templates[True] = llm_template(
                    base, labeler, gold=_records(items, gold, True), log=log
                )
            for s in chosen:
                log(f"repeat {r + 1}/{repeats}: {s.name}")
                # A folder of its own: several simulations may share one cache.
                run_dir = Path(tempfile.mkdtemp(prefix=f"run-{r}-", dir=root))
                try:
                    points = play(
                        templates[s.llm],
                        run_dir / "project",
                        items,
                        gold,
                        s,
                        budget=budget,
                        batch=batch,
                        target=target_accuracy,
                        embedder=embedder,
                        random_state=random_state + 1000 * r,
                        confidence_level=confidence_level,
                        learning=learning,
                    )
                finally:
                    shutil.rmtree(run_dir, ignore_errors=True)
                runs[s.name].append(points)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarise(runs, budget=budget, target=target_accuracy, level=level)
    return LoopSimulation(
        **_fields_of(summary),
        items=n,
        gold=n_gold,
        batch=batch,
        repeats=repeats,
        strategies=list(strategies),
        confidence_level=confidence_level,
        labeler=getattr(labeler, "model_id", None)
        or (", ".join(f"{m}@{v}" for m, v in predictions) if predictions else None),
        embedder=embedder.model_id,
        cache=None if owned else str(root),
        plot=None if plot is None else str(plot_effort_curves(summary, plot)),
    )


def _fields_of(result: LoopSummary) -> dict[str, Any]:
    """A result's fields as keyword arguments, to build the result that extends it."""
    return {f.name: getattr(result, f.name) for f in fields(result)}


def _check(
    items: LabeledItems,
    n_gold: int,
    budget: float,
    batch: int | None,
    repeats: int,
    target: float,
    strategies: Sequence[str],
) -> None:
    from .active.strategies import STRATEGIES

    n = len(items.uids)
    if len(set(items.labels)) < 2:
        raise InputError("the simulation needs at least two distinct labels")
    if not 10 <= n_gold < n:
        raise InputError(f"--gold must be at least 10 and below the {n} items, not {n_gold}")
    if not 0.0 < budget <= 1.0:
        raise InputError(f"--budget must lie in (0, 1], not {budget}")
    if n_gold / n >= budget:
        raise InputError(
            f"the gold set alone ({n_gold} of {n} items) spends the --budget of {budget:g}"
        )
    if batch is not None and batch < 1:
        raise InputError(f"--batch must be at least 1, not {batch}")
    if repeats < 1:
        raise InputError(f"--repeats must be at least 1, not {repeats}")
    if not 0.0 < target <= 1.0:
        raise InputError(f"--target-accuracy must lie in (0, 1], not {target}")
    unknown = [s for s in strategies if s != REVIEW_ORDER and s not in STRATEGIES]
    if unknown or not strategies:
        raise InputError(
            f"unknown strategy {', '.join(unknown) or '(none given)'}; choose from "
            + ", ".join([REVIEW_ORDER, *STRATEGIES])
        )


def summarise(
    runs: dict[str, list[list[dict[str, Any]]]], *, budget: float, target: float, level: float
) -> LoopSummary:
    """Curves on a common effort grid, effort to target and ratios to random review order."""
    step = 0.01 if budget > 0.1 else 0.001
    grid = np.round(np.arange(0.0, budget + step / 2, step), 6)
    efforts = {
        name: np.array(
            [
                effort_to_target([p["effort"] for p in run], [p["accuracy"] for p in run], target)
                for run in setting_runs
            ]
        )
        for name, setting_runs in runs.items()
    }
    out: dict[str, Any] = {}
    for name, setting_runs in runs.items():
        curves = np.array(
            [
                curve_on_grid([p["effort"] for p in run], [p["accuracy"] for p in run], grid)
                for run in setting_runs
            ]
        )
        full = ~np.isnan(curves).any(axis=0)
        summary = summarise_curves(curves[:, full], level)
        versus = None
        if BASELINE in efforts and name != BASELINE:
            versus = _versus(efforts[name], efforts[BASELINE], budget, level)
        last = [run[-1] for run in setting_runs]
        out[name] = {
            "curve": [
                {
                    "effort": float(e),
                    "accuracy_mean": s.mean,
                    "accuracy_low": s.low,
                    "accuracy_high": s.high,
                }
                for e, s in zip(grid[full], summary, strict=True)
            ],
            "accuracy_at_budget": asdict(summary[-1]) if summary else None,
            "effort_to_target": effort_interval(efforts[name], level),
            "effort_vs_random_order": versus,
            "start": _mean_of([run[0] for run in setting_runs]),
            "end": _mean_of(last),
            "runs": setting_runs,
        }
    return LoopSummary(settings=out, target_accuracy=target, budget=budget, level=level)


def _versus(
    mine: np.ndarray, baseline: np.ndarray, budget: float, level: float
) -> dict[str, Any] | None:
    """Effort to target relative to random review order's, with a paired bootstrap interval.

    Where random order never reached the target within the budget, only a bound is known:
    it needs more than the budget, so the ratio is below (this setting's mean) / budget.
    """
    if np.isfinite(baseline).all():
        ratio = effort_ratio_interval(mine, baseline, level)
        if ratio is None:
            return None
        return {"ratio": _finite(ratio[0]), "low": _finite(ratio[1]), "high": _finite(ratio[2])}
    if np.isfinite(mine).all():
        return {"ratio": None, "low": None, "high": None, "below": float(mine.mean()) / budget}
    return None


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded ratio is null."""
    return float(value) if math.isfinite(value) else None


def _mean_of(points: list[dict[str, Any]]) -> dict[str, float | None]:
    keys = ("effort", "accuracy", "auto_accuracy", "ece")
    means: dict[str, float | None] = {}
    for key in keys:
        values = [p[key] for p in points if p.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    return means


# ----------------------------------------------------------------- output
def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_loop(result: LoopSimulation) -> str:
    """A plain-text table of the loop simulation for the terminal."""
    level = round(100 * result.level)
    lines = [
        f"{result.items} items, {result.gold} gold, {result.repeats} repeats, "
        f"batch {result.batch}, budget {_pct(result.budget)}; labeler "
        f"{result.labeler or 'none'}; embedder {result.embedder}",
        f"target accuracy {result.target_accuracy:.3f}"
        + (
            f" certified at {result.confidence_level:g}"
            if result.confidence_level is not None
            else ""
        )
        + f"; intervals: {level}% over repeats",
        f"{'setting':<18}{'start acc':>10}{'acc at budget':>24}{'effort to target':>26}"
        f"{'vs random order':>24}{'ECE end':>9}",
    ]
    for name, s in result.settings.items():
        at = s["accuracy_at_budget"] or {}
        acc = f"{_num(at.get('mean'))} [{_num(at.get('low'))}, {_num(at.get('high'))}]"
        e = s["effort_to_target"]
        if e["mean"] is not None:
            effort = f"{_pct(e['mean'])} [{_pct(e['low'])}, {_pct(e['high'])}]"
        else:
            effort = f"not reached ({e['reached']}/{e['repeats']})"
        r = s["effort_vs_random_order"]
        versus = format_versus(r)
        lines.append(
            f"{name:<18}{_num(s['start']['accuracy']):>10}{acc:>24}{effort:>26}{versus:>24}"
            f"{_num(s['end']['ece']):>9}"
        )
    return "\n".join(lines)


def format_versus(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    if r.get("below") is not None:
        return f"< {r['below']:.2f}"
    high = "∞" if r["high"] is None else _num(r["high"])
    return f"{_num(r['ratio'])} [{_num(r['low'])}, {high}]"


def plot_effort_curves(result: LoopSummary, path: str | Path, title: str | None = None) -> Path:
    """Accuracy of the finished dataset against effort, mean and interval per setting (PNG)."""
    from .active.simulate import plot_curves

    curves = []
    for name, s in result.settings.items():
        e = np.array([p["effort"] for p in s["curve"]])
        m = np.array([p["accuracy_mean"] for p in s["curve"]])
        band = None
        if s["curve"] and s["curve"][0]["accuracy_low"] is not None:
            low = np.array([p["accuracy_low"] for p in s["curve"]])
            high = np.array([p["accuracy_high"] for p in s["curve"]])
            band = (low, high)
        curves.append((name, e, m, band))
    return plot_curves(
        curves,
        path,
        target=result.target_accuracy,
        xlabel="human effort (share of items labeled by people, gold included)",
        ylabel="accuracy of the finished dataset",
        title=title or "The loop: accuracy against human effort",
    )


# ----------------------------------------------------------------- sources of items
def items_from_file(file: str | Path, text_col: str, label_col: str) -> LabeledItems:
    """A labeled file's rows (ids by row), with its label set in order of first appearance."""
    from .workflows.simulate import load_labeled

    texts, labels = load_labeled(file, text_col, label_col)
    label_set = sorted(set(labels))
    return LabeledItems([f"row-{i}" for i in range(len(texts))], texts, labels, label_set)


def items_from_gold(
    project: Project,
) -> tuple[LabeledItems, dict[tuple[str, str], dict[str, LabelResult]]]:
    """The project's gold items and the LLM answers it already holds for them (no new calls)."""
    return items_from_project(project)


def items_from_project(
    project: Project, *, reference: str | None = None, answered_only: bool = False
) -> tuple[LabeledItems, dict[tuple[str, str], dict[str, LabelResult]]]:
    """The project's items whose true label is known, and the answers of one LLM it already
    holds for them (no new calls): its gold items and, with `reference`, the items imported
    with a reference label in that column (kept in `meta`). The LLM played is the one routing
    trusts, else the one that answered most of them; `answered_only` keeps only the items it
    answered (a pool pre-labeled in part)."""
    truth = _known_labels(project, reference)
    predictions = _stored_answers(project, truth)
    if answered_only:
        answered = set().union(*(answers.keys() for answers in predictions.values()))
        truth = {item_id: known for item_id, known in truth.items() if known[0] in answered}
    uids, texts, labels = zip(*truth.values(), strict=True) if truth else ((), (), ())
    items = LabeledItems(list(uids), list(texts), list(labels), project.labels)
    return items, predictions


def _known_labels(project: Project, reference: str | None) -> dict[int, tuple[str, str, str]]:
    """Store id → (uid, text, true label) for gold items and items with a reference label."""
    if reference is None:
        rows = [
            (r.id, r.uid, r.text, r.gold_label)
            for r in stored_items.gold_items(project.store, project.id)
        ]
    else:
        id_of = {uid: i for i, uid in stored_items.uids_of(project.store, project.id).items()}
        rows = [
            (
                id_of[r["id"]],
                r["id"],
                r["text"],
                r["gold_label"] if r["split"] == GOLD else (r["meta"] or {}).get(reference),
            )
            for r in project.iter_export_rows(include="meta")
        ]
    labels = set(project.labels)
    return {i: (uid, text, label) for i, uid, text, label in rows if label in labels}


def _stored_answers(
    project: Project, truth: dict[int, tuple[str, str, str]]
) -> dict[tuple[str, str], dict[str, LabelResult]]:
    """One LLM's stored answers for these items, by uid: routing's, else the most complete."""
    from .store.predictions import labeler_answers
    from .workflows.learn import DERIVED

    answers = labeler_answers(project.store, project.id, DERIVED, list(truth))
    predictions: dict[tuple[str, str], dict[str, LabelResult]] = {}
    for a in answers:
        if a.item_id in truth and a.label is not None:
            predictions.setdefault((a.model, a.prompt_version), {})[truth[a.item_id][0]] = (
                LabelResult(label=a.label, probs=a.probs, confidence=a.confidence)
            )
    active = project.active_predictor()
    if active in predictions:  # the labeler routing trusts is the one played
        return {active: predictions[active]}
    if predictions:  # else the one that answered most items
        best = max(predictions, key=lambda key: len(predictions[key]))
        return {best: predictions[best]}
    return predictions


def plan(
    project: Project,
    *,
    target_accuracy: float = 0.95,
    gold_share: float = 0.3,
    budget: float = 1.0,
    batch: int | None = None,
    strategies: Sequence[str] = (REVIEW_ORDER,),
    repeats: int = 5,
    confidence_level: float | None = CONFIDENCE_LEVEL,
    embedder: Any = None,
    plot: str | Path | None = None,
    log: Log | None = None,
) -> LoopPlan:
    """The effort to expect for `target_accuracy`, from the project's own gold items.

    The gold items are played as a small project: `gold_share` of them as its gold, the rest
    as its pool labeled by the loop with the LLM answers already stored for them (no LLM is
    asked). Effort is a share of those items: read it as the share of a project of similar
    size and make-up; larger pools need a smaller share for the student's part.
    """
    items, predictions = items_from_gold(project)
    if len(items.uids) < 30:
        raise NotReadyError(
            f"a plan needs at least 30 gold items; the project has {len(items.uids)}. "
            "Import more with `labelloop import FILE --split gold`"
        )
    if not 0.0 < gold_share < 1.0:
        raise InputError(f"--gold-share must lie in (0, 1), not {gold_share}")
    n_gold = max(10, round(gold_share * len(items.uids)))
    result = simulate_loop(
        items,
        task=project.task,
        predictions=predictions or None,
        n_gold=n_gold,
        budget=budget,
        batch=batch or max(5, round(0.05 * len(items.uids))),
        strategies=strategies,
        repeats=repeats,
        target_accuracy=target_accuracy,
        confidence_level=confidence_level,
        embedder=embedder,
        plot=plot,
        log=log,
    )
    loop = next(iter(result.settings))
    expected = {"setting": loop, **result.settings[loop]["effort_to_target"]}
    return LoopPlan(**_fields_of(result), plan=expected)
