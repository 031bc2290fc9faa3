"""Train the student on trusted labels, stack it with every LLM, and let the best predictor win.

Trusted labels are gold labels and human labels. Every probability that calibration or
thresholds will see for a trusted item is out-of-fold (cross-fitted): the student's for the
items it was trained on, and the stack's over those out-of-fold inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..active import LogisticStudent, cross_val_proba, get_embedder
from ..active.students import cross_fit_splits
from ..calibration.metrics import auroc
from ..errors import NotReadyError
from ..labelers.zero_shot import ZeroShotLabeler
from ..review.common import Result
from ..stacking import LogLinearPool
from ..store import GOLD, HUMAN_LABELED, predictions
from ..store import items as stored_items
from ..vocabulary import PEOPLE_SOURCES
from .embed import is_corpus_fitted, item_embeddings
from .engine import Engine, LocalEngine

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ..project import Project

STUDENT, ENSEMBLE = "student", "ensemble"
DERIVED = (STUDENT, ENSEMBLE)
ZERO_SHOT = "zero-shot"
MIN_LABELS = 20
EPS = 1e-6


def predictor_title(active: dict[str, str] | None) -> str:
    """Whose labels routing uses, in words: the stack, the student or an LLM by name."""
    if not active:
        return "no predictions yet"
    model = active.get("model")
    if model == ENSEMBLE:
        return "the stack (LLMs + student)"
    if model == STUDENT:
        return "the student"
    return f"LLM {model}"


@dataclass(frozen=True, slots=True)
class Learned(Result):
    """What `learn` trained and chose (`Project.learn`); `to_dict` is what `learn --json` sends,
    naming `calibration` and `route` only when they were refreshed."""

    trusted_labels: int
    majority_rate: float
    components: dict[str, dict[str, Any]]  # per predictor: n, accuracy, log_loss, auroc
    weak_labelers: list[str]  # below the majority-class rate: left out of the stack
    stack_weights: dict[str, float]
    best: str
    active_predictor: dict[str, Any] | None
    embedder: str
    calibration: dict[str, Any] | None = None  # the refit's summary, or why it was skipped
    route: dict[str, Any] | None = None  # re-routed with the settings last used

    def to_dict(self) -> dict[str, Any]:
        return without_unset(self)


def without_unset(result: Result) -> dict[str, Any]:
    """`result.to_dict()` less the optional fields (default None) that were left unset: what
    `learn --json` sends names `calibration` and `route` only when they were refreshed."""
    optional = {f.name for f in fields(cast("DataclassInstance", result)) if f.default is None}
    return {
        key: value
        for key, value in Result.to_dict(result).items()
        if not (key in optional and value is None)
    }


@dataclass
class Pool:
    """Every item of the project, with trusted labels where they exist."""

    ids: list[int]
    texts: list[str]
    y: np.ndarray  # label index, -1 where no trusted label
    excluded: np.ndarray  # few-shot examples: leaky for the LLM features


def load_pool(project: Project) -> Pool:
    labels = {label: i for i, label in enumerate(project.labels)}
    few_shot = set(project.settings.get("few_shot_item_ids") or [])
    rows = stored_items.learning_rows(project.store, project.id)
    y = np.full(len(rows), -1)
    for i, row in enumerate(rows):
        if row.split == GOLD and row.gold_label in labels:
            y[i] = labels[row.gold_label]
        elif row.state == HUMAN_LABELED and row.final_source in PEOPLE_SOURCES:
            y[i] = labels.get(row.final_label, -1)
    return Pool(
        ids=[row.id for row in rows],
        texts=[row.text for row in rows],
        y=y,
        excluded=np.array([row.id in few_shot for row in rows], dtype=bool),
    )


def llm_components(project: Project, pool: Pool) -> dict[str, np.ndarray]:
    """Per-label probabilities of every labeler (model @ prompt version); NaN rows if missing."""
    labels = project.labels
    position = {item_id: i for i, item_id in enumerate(pool.ids)}
    components: dict[str, np.ndarray] = {}
    for answer in predictions.labeler_answers(project.store, project.id, DERIVED):
        name = f"{answer.model}@{answer.prompt_version}"
        if name not in components:
            components[name] = np.full((len(pool.ids), len(labels)), np.nan)
        probs, label = answer.probs, answer.label
        if probs and all(k in probs for k in labels):
            vector = np.array([float(probs[k]) for k in labels])
        elif label in labels:  # a bare label: a soft one-hot
            vector = np.full(len(labels), 0.1 / max(len(labels) - 1, 1))
            vector[labels.index(label)] = 0.9
        else:
            continue
        total = vector.sum()
        if total > 0:
            components[name][position[answer.item_id]] = vector / total
    return components


def pool_components(project: Project, X: np.ndarray, embedder: Any) -> dict[str, np.ndarray]:
    """Stack inputs computed from the embeddings of the whole pool when no LLM has answered:
    the zero-shot labeler (label names, descriptions and guidelines; no label needed). Beside
    an LLM's answers it neither raised the finished dataset's accuracy nor kept its calibration
    in the loop simulation (docs/benchmarks.md, "The loop: inputs from the pool"), so the stack
    uses it only for a project without one.

    Label spreading over the pool's neighbour graph (`active.spreading`) was measured here too
    and left out: in the loop with the LLM it did not help either corpus (docs/benchmarks.md)."""
    out: dict[str, np.ndarray] = {}
    if not is_corpus_fitted(embedder):  # TF-IDF vectors of label names mean nothing
        zero_shot = ZeroShotLabeler(project.label_task(), embedder)
        out[f"{ZERO_SHOT}@{zero_shot.version}"] = zero_shot.predict_proba(X)
    return out


def stack(
    inputs: np.ndarray,
    y: np.ndarray,
    trusted: np.ndarray,
    n_labels: int,
    n_splits: int,
    random_state: int,
) -> tuple[np.ndarray, LogLinearPool]:
    """Pooled probabilities for every item, out-of-fold for the trusted ones.

    ``inputs`` holds each component's per-label probabilities, shape (n, components, labels)."""
    X, yt = inputs[trusted], y[trusted]
    out = np.zeros((len(inputs), n_labels))
    rows = np.flatnonzero(trusted)
    for train, test in cross_fit_splits(yt, n_splits, random_state):
        out[rows[test]] = LogLinearPool().fit(X[train], yt[train]).predict_proba(X[test])
    final = LogLinearPool().fit(X, yt)
    out[~trusted] = final.predict_proba(inputs[~trusted])
    return out, final


def component_metrics(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy, log loss and AUROC (confidence for correctness) on the rows with answers."""
    answered = ~np.isnan(probs).any(axis=1)
    p, t = probs[answered], y[answered]
    if len(t) == 0:
        return {"n": 0, "accuracy": None, "log_loss": None, "auroc": None}
    predicted = p.argmax(axis=1)
    correct = predicted == t
    log_loss = float(-np.mean(np.log(np.clip(p[np.arange(len(t)), t], EPS, 1.0))))
    try:
        area = float(auroc(p.max(axis=1), correct))
    except ValueError:
        area = None
    return {
        "n": len(t),
        "accuracy": float(correct.mean()),
        "log_loss": log_loss,
        "auroc": area if area == area else None,
    }


def learn(
    project: Project,
    *,
    embedder: Any = None,
    n_splits: int = 5,
    random_state: int = 0,
    progress: Any = None,
    recalibrate: bool = True,
    engine: Engine | None = None,
) -> Learned:
    """Train student and stack, store their predictions, make the best predictor active."""
    labels = project.labels
    pool = load_pool(project)
    trusted = trusted_rows(pool)
    embedder = embedder or get_embedder("auto")
    engine = engine or LocalEngine()
    engine.prefill_embeddings(project, embedder)
    X = item_embeddings(project, embedder, pool.ids, pool.texts, progress)
    student_probs = fit_student(
        project, pool, X, trusted, engine, embedder, n_splits=n_splits, random_state=random_state
    )
    components = llm_components(project, pool)
    # The cold start only: beside an LLM's answers it added nothing (measured).
    computed = {} if components else pool_components(project, X, embedder)
    components.update(computed)
    majority = float(np.bincount(pool.y[trusted]).max() / trusted.sum())
    metrics = {
        name: component_metrics(p[trusted], pool.y[trusted]) for name, p in components.items()
    }
    metrics[STUDENT] = component_metrics(student_probs[trusted], pool.y[trusted])
    weak = weak_labelers(metrics, components, majority)
    used = [name for name in components if name not in weak]
    stacked = fit_stack(
        [components[name] for name in used] + [student_probs],
        [*used, STUDENT],
        pool.y,
        trusted & ~pool.excluded,  # few-shot examples get the final model's answer
        len(labels),
        n_splits=n_splits,
        random_state=random_state,
    )
    metrics[ENSEMBLE] = stacked.metrics
    version = model_version(embedder.model_id, used, n_splits, random_state)
    store_student_and_stack(
        project,
        version,
        pool.ids,
        trusted,
        single_label_values(labels),
        (student_probs, "student: logistic regression on embeddings"),
        (stacked, "stack"),
    )
    # Predictors computed here from the pool are stored only inside the stack.
    best = best_predictor({name: m for name, m in metrics.items() if name not in computed})
    make_active(project, best, version)
    return Learned(
        trusted_labels=int(trusted.sum()),
        majority_rate=majority,
        components=metrics,
        weak_labelers=weak,
        stack_weights=stacked.weights,
        best=best,
        active_predictor=project.settings.get("active_predictor"),
        embedder=embedder.model_id,
        **(recalibrate_and_route(project) if recalibrate else {}),
    )


def trusted_rows(pool: Pool) -> np.ndarray:
    """The rows with a trusted label, or NotReadyError when too few, or of one class only, to
    train a student on."""
    trusted = pool.y >= 0
    classes = np.unique(pool.y[trusted])
    if trusted.sum() < MIN_LABELS or len(classes) < 2:
        raise NotReadyError(
            f"the student needs at least {MIN_LABELS} trusted labels (gold or human) in at "
            f"least two classes; found {int(trusted.sum())} in {len(classes)}"
        )
    return trusted


def fit_student(
    project: Project,
    pool: Pool,
    X: np.ndarray,
    trusted: np.ndarray,
    engine: Engine,
    embedder: Any,
    *,
    n_splits: int,
    random_state: int,
) -> np.ndarray:
    """The student's probabilities for every item: out-of-fold for the trusted ones (so they
    can be compared with the labelers' on the same rows), from the engine for the others."""
    student = LogisticStudent(classes=np.arange(len(project.labels)))
    student.fit(X[trusted], pool.y[trusted])
    probs = engine.predict(project, [student], pool.ids, X, embedder)[0]
    probs[trusted] = cross_val_proba(student, X[trusted], pool.y[trusted], n_splits, random_state)
    return probs


def weak_labelers(
    metrics: dict[str, dict[str, Any]], components: dict[str, np.ndarray], majority: float
) -> list[str]:
    """Labelers no better than always answering the majority class: they only add noise to
    the stack, which leaves them out."""
    return [
        name
        for name, m in metrics.items()
        if name in components and m["accuracy"] is not None and m["accuracy"] <= majority
    ]


@dataclass(frozen=True, eq=False)
class Stacked:
    """The stack's pooled probabilities, its figures on its training rows, each input's share
    of its answers (rounded), and the same as words for the stored predictions' reasoning."""

    probs: np.ndarray
    metrics: dict[str, Any]
    weights: dict[str, float]

    @property
    def reason(self) -> str:
        return ", ".join(f"{name} {share:.0%}" for name, share in self.weights.items())


def fit_stack(
    inputs: list[np.ndarray],
    names: list[str],
    y: np.ndarray,
    rows: np.ndarray,
    n_labels: int,
    *,
    n_splits: int,
    random_state: int,
) -> Stacked:
    """Pool the inputs' probabilities (one per name) with a stack trained on `rows`."""
    stacked_inputs = np.stack(inputs, axis=1)
    probs, meta = stack(stacked_inputs, y, rows, n_labels, n_splits, random_state)
    shares = meta.influence(stacked_inputs[rows])
    return Stacked(
        probs=probs,
        metrics=component_metrics(probs[rows], y[rows]),
        weights={name: round(float(v), 4) for name, v in zip(names, shares, strict=True)},
    )


def model_version(embedder_id: str, used: list[str], n_splits: int, random_state: int) -> str:
    """The prompt version student and stack are stored under: what they were trained from."""
    key = f"{embedder_id}|{','.join(used)}|{n_splits}|{random_state}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def best_predictor(metrics: dict[str, dict[str, Any]]) -> str:
    """The predictor with the lowest log loss on the trusted labels."""
    candidates = {name: m for name, m in metrics.items() if m["log_loss"] is not None}
    return min(candidates, key=lambda name: candidates[name]["log_loss"])


def store_student_and_stack(
    project: Project,
    version: str,
    ids: list[int],
    trusted: np.ndarray,
    values: Callable[[np.ndarray], dict[str, Any]],
    student: tuple[np.ndarray, str],
    stack: tuple[Stacked, str],
) -> None:
    """Store the student's and the stack's answers (with a title each) under `version`;
    `values` gives a row's label fields. An answer on a trusted item says it is out-of-fold."""

    def noted(title: str) -> Callable[[int], str]:
        return lambda i: title + (" (out-of-fold)" if trusted[i] else "")

    store_derived(project, STUDENT, version, ids, student[0], values, noted(student[1]))
    stacked, title = stack
    reason = f"{title} of {stacked.reason}"
    store_derived(project, ENSEMBLE, version, ids, stacked.probs, values, noted(reason))


def make_active(project: Project, best: str, version: str) -> None:
    """Route with the best predictor: student or stack by this run's version, an LLM by its
    own prompt version."""
    if best in DERIVED:
        project.set_active_predictor(best, version)
    else:
        model, _, prompt_version = best.partition("@")
        project.set_active_predictor(model, prompt_version)


def single_label_values(labels: list[str]) -> Callable[[np.ndarray], dict[str, Any]]:
    """A prediction's label fields from one distribution over the labels."""

    def values(p: np.ndarray) -> dict[str, Any]:
        best = int(np.argmax(p))
        return {
            "label": labels[best],
            "probs": {label: float(v) for label, v in zip(labels, p, strict=True)},
            "confidence": float(p[best]),
        }

    return values


def store_derived(
    project: Project,
    model: str,
    version: str,
    ids: list[int],
    probs: np.ndarray,
    values: Callable[[np.ndarray], dict[str, Any]],
    reasoning: Callable[[int], str],
) -> None:
    """Replace this model's predictions: a retrained model supersedes its previous answers.
    `values` gives a row's label fields (label, probs, confidence, and a multi-label set)."""
    rows = [
        {
            "project_id": project.id,
            "item_id": item_id,
            "model": model,
            "prompt_version": version,
            **values(probs[i]),
            "calibrated_confidence": None,
            "calibrated_label": None,
            "reasoning": reasoning(i),
            "tokens_in": 0,
            "tokens_out": 0,
            "latency_s": 0.0,
            "cost_usd": 0.0,
            "error": None,
            "raw": None,
        }
        for i, item_id in enumerate(ids)
    ]
    predictions.replace_answers(project.store, project.id, model, rows)


def recalibrate_and_route(project: Project) -> dict[str, Any]:
    """Refit calibration and re-route with the settings last used, when they exist (each kind
    of project its own way: `Project.calibrate` and `Project.route` choose)."""
    from .calibrate import summary

    settings = project.settings
    options = settings.get("calibration_options")
    out: dict[str, Any] = {}
    if options is not None:
        try:
            out["calibration"] = summary(project.calibrate(**options))
        except NotReadyError as exc:
            out["calibration"] = {"skipped": str(exc)}
    if settings.get("routed"):
        out["route"] = project.route().to_dict()
    return out
