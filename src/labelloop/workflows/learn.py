"""Train the student on trusted labels, stack it with every LLM, and let the best predictor win.

Trusted labels are gold labels and human labels. Every probability that calibration or
thresholds will see for a trusted item is out-of-fold (cross-fitted): the student's for the
items it was trained on, and the stack's over those out-of-fold inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sklearn.base import clone

from ..active import LogisticStudent, get_embedder
from ..active.pool_training import ngram_features, soft_labels
from ..active.students import (
    ExtraRows,
    cross_fit_splits,
    cross_val_select,
    with_extra,
)
from ..calibration.metrics import auroc
from ..errors import InputError, NotReadyError
from ..labelers.base import FEATURE_VIEWS
from ..labelers.zero_shot import ZeroShotLabeler
from ..review.common import Result
from ..stacking import LogLinearPool
from ..store import GOLD, HUMAN_LABELED, predictions
from ..store import items as stored_items
from ..vocabulary import PEOPLE_SOURCES
from .embed import is_corpus_fitted, item_embeddings, labeler_features
from .engine import Engine, LocalEngine
from .finetune import student_features

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from ..project import Project

STUDENT, ENSEMBLE = "student", "ensemble"
NGRAM_STUDENT = "student-ngrams"
LEARNING = "learning"  # the project setting holding `LearnOptions`
AUTO = "auto"
STUDENT_C_GRID = (1.0, 10.0, 100.0)
DERIVED = (STUDENT, ENSEMBLE)
ZERO_SHOT = "zero-shot"
#: Before a labeler's name: a student on that labeler's own features of the items.
PROBE = "probe:"
PROBE_C_GRID = (1.0, 10.0)
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
    fine_tune: dict[str, Any] | None = None  # the student's fine-tuned encoder, when used

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
    gold: np.ndarray  # gold items (their labels calibrate; the encoder is never tuned on them)


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
        gold=np.array([row.split == GOLD for row in rows], dtype=bool),
    )


def llm_components(project: Project, pool: Pool) -> dict[str, np.ndarray]:
    """Per-label probabilities of every labeler (model @ prompt version); NaN rows if missing."""
    labels = project.labels
    position = {item_id: i for i, item_id in enumerate(pool.ids)}
    soft = [0.1 / max(len(labels) - 1, 1)] * len(labels)
    found: dict[str, tuple[list[int], list[list[float]]]] = {}
    for answer in predictions.labeler_answers(project.store, project.id, DERIVED):
        rows, vectors = found.setdefault(f"{answer.model}@{answer.prompt_version}", ([], []))
        probs, label = answer.probs, answer.label
        if probs and all(k in probs for k in labels):
            vector = [float(probs[k]) for k in labels]
        elif label in labels:  # a bare label: a soft one-hot
            vector = soft.copy()
            vector[labels.index(label)] = 0.9
        else:
            continue
        rows.append(position[answer.item_id])
        vectors.append(vector)
    components: dict[str, np.ndarray] = {}
    for name, (rows, vectors) in found.items():
        components[name] = np.full((len(pool.ids), len(labels)), np.nan)
        if not rows:
            continue
        matrix = np.array(vectors, dtype=float)
        totals = matrix.sum(axis=1)
        kept = totals > 0
        components[name][np.array(rows)[kept]] = matrix[kept] / totals[kept, None]
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


def probe_components(
    project: Project,
    pool: Pool,
    labelers: list[str],
    trusted: np.ndarray,
    n_labels: int,
    split: tuple[int, int],
) -> dict[str, np.ndarray]:
    """A student per labeler that stored its own features of the items (a local model's hidden
    states where it gives the label): logistic regression on them, trained on the people's and
    gold labels, out-of-fold for those items, NaN for items without features. Of the views
    stored (`FEATURE_VIEWS`), the one whose probe has the lowest out-of-fold log loss is kept.

    The model reads the prompt and the item to answer; a probe on what it computed learns the
    task from the labels instead of from the prompt alone (Rotten Tomatoes, 200 labels: the
    270M model's own answer 0.73, the MiniLM student 0.69, a probe 0.80–0.83;
    docs/benchmarks.md, "The loop: the LLM's own features")."""
    out: dict[str, np.ndarray] = {}
    for name in labelers:
        kept = lowest_loss_view(
            partial(
                _probe, project, pool, name=name, trusted=trusted, n_labels=n_labels, split=split
            )
        )
        if kept is not None:
            out[PROBE + name] = kept
    return out


def lowest_loss_view(
    probe_of: Callable[[str], tuple[np.ndarray, float] | None],
) -> np.ndarray | None:
    """Of the probes `probe_of` fits on each stored view (`FEATURE_VIEWS`; None where a view
    has no features or too few labels), the probabilities of the one with the lowest
    out-of-fold log loss; None when there is none."""
    found = [probe for probe in map(probe_of, FEATURE_VIEWS) if probe is not None]
    return min(found, key=lambda probe: probe[1])[0] if found else None


def _probe(
    project: Project,
    pool: Pool,
    view: str,
    name: str,
    trusted: np.ndarray,
    n_labels: int,
    split: tuple[int, int],
) -> tuple[np.ndarray, float] | None:
    """One view's probe: its probabilities for the pool and its out-of-fold log loss."""
    found = labeler_features(project, view, name, pool.ids)
    if found is None:
        return None
    X, has = found
    fit_rows = trusted & has
    if fit_rows.sum() < MIN_LABELS or len(np.unique(pool.y[fit_rows])) < 2:
        return None
    Z = standardized_rows(X if has.all() else X[has])
    probs = np.full((len(pool.ids), n_labels), np.nan)
    probs[has] = _student_probs(
        Z,
        pool.y[has],
        trusted[has],
        LogisticStudent(classes=np.arange(n_labels)),
        lambda student: student.predict_proba(Z),
        split,
        c_grid=PROBE_C_GRID,
    )
    return probs, float(component_metrics(probs[fit_rows], pool.y[fit_rows])["log_loss"])


def standardized_rows(X: np.ndarray) -> np.ndarray:
    """Each column centred and scaled over the rows (a hidden state's few huge dimensions
    would otherwise decide every distance), then each row to unit length; float32, in place
    when `X` is float32 (a 100,000-item pool's features are a quarter of a gigabyte)."""
    Z = np.asarray(X, dtype=np.float32)
    Z -= Z.mean(axis=0)
    Z /= Z.std(axis=0) + np.float32(1e-6)
    Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), np.float32(1e-12))
    return Z


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
    options = LearnOptions.from_settings(project.settings)
    pool = load_pool(project)
    trusted = trusted_rows(pool)
    embedder = embedder or get_embedder("auto")
    engine = engine or LocalEngine()
    engine.prefill_embeddings(project, embedder)
    X = item_embeddings(project, embedder, pool.ids, pool.texts, progress)
    split = (n_splits, random_state)
    tuned = student_features(project, pool, options, X, embedder, random_state)
    students = _Students(options, pool, trusted, len(labels), split)
    students.add(
        STUDENT,
        tuned.X,
        lambda s: engine.predict(project, [s], pool.ids, tuned.X, tuned.embedder)[0],
    )
    if options.ngram_student:
        ngrams = ngram_features(pool.texts, seed=random_state)
        students.add(NGRAM_STUDENT, ngrams, lambda s: s.predict_proba(ngrams))
    components = llm_components(project, pool)
    # The cold start only: beside an LLM's answers it added nothing (measured).
    computed = {} if components else pool_components(project, X, embedder)
    # Few-shot examples read themselves, label included, in the prompt: not trained on.
    probes = probe_components(
        project, pool, list(components), trusted & ~pool.excluded, len(labels), split
    )
    computed.update(probes)
    components.update(computed)
    majority = float(np.bincount(pool.y[trusted]).max() / trusted.sum())
    probs = students.fit()
    stack_all = (pool, trusted, majority, len(labels), split)
    metrics, weak, used, stacked = _stack_all(components, probs, *stack_all)
    if options.self_training:
        extra = _soft_rows(students.features, stacked.probs, trusted, options)
        if extra is not None:
            probs = students.fit(extra)
            metrics, weak, used, stacked = _stack_all(components, probs, *stack_all)
    version = model_version(tuned.embedder.model_id, used, n_splits, random_state, options)
    store_student_and_stack(
        project,
        version,
        pool.ids,
        trusted,
        single_label_values(labels),
        (probs[STUDENT], "student: logistic regression on embeddings"),
        (stacked, "stack"),
    )
    # Predictors computed here from the pool, and the n-gram student, live only in the stack.
    best = best_predictor(
        {name: m for name, m in metrics.items() if name not in computed and name != NGRAM_STUDENT}
    )
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
        fine_tune=tuned.fine_tune,
        **(recalibrate_and_route(project) if recalibrate else {}),
    )


class _Students:
    """The students `learn` trains, each on its own features of the pool: fitted on the
    trusted labels (plus soft rows when self-training), out-of-fold for the trusted items."""

    def __init__(
        self,
        options: LearnOptions,
        pool: Pool,
        trusted: np.ndarray,
        n_labels: int,
        split: tuple[int, int],
    ) -> None:
        self.pool, self.trusted, self.split = pool, trusted, split
        self.template = LogisticStudent(classes=np.arange(n_labels))
        self.c_grid = STUDENT_C_GRID if options.student_c == AUTO else (float(options.student_c),)
        self.features: dict[str, Any] = {}
        self.predictors: dict[str, Callable[[LogisticStudent], np.ndarray]] = {}

    def add(self, name: str, X: Any, predict: Callable[[LogisticStudent], np.ndarray]) -> None:
        self.features[name], self.predictors[name] = X, predict

    def fit(self, extra: dict[str, ExtraRows] | None = None) -> dict[str, np.ndarray]:
        return {
            name: _student_probs(
                X,
                self.pool.y,
                self.trusted,
                self.template,
                self.predictors[name],
                self.split,
                (extra or {}).get(name),
                self.c_grid,
            )
            for name, X in self.features.items()
        }


def _stack_all(
    components: dict[str, np.ndarray],
    students: dict[str, np.ndarray],
    pool: Pool,
    trusted: np.ndarray,
    majority: float,
    n_labels: int,
    split: tuple[int, int],
) -> tuple[dict[str, dict[str, Any]], list[str], list[str], Stacked]:
    """Every input's figures on the trusted labels, the weak labelers left out, the labelers
    used, and the stack of those with the students."""
    yt = pool.y[trusted]
    metrics = {
        name: component_metrics(p[trusted], yt) for name, p in {**components, **students}.items()
    }
    weak = weak_labelers(metrics, components, majority)
    used = [name for name in components if name not in weak]
    stacked = fit_stack(
        [components[name] for name in used] + list(students.values()),
        [*used, *students],
        pool.y,
        trusted & ~pool.excluded,  # few-shot examples get the final model's answer
        n_labels,
        n_splits=split[0],
        random_state=split[1],
    )
    metrics[ENSEMBLE] = stacked.metrics
    return metrics, weak, used, stacked


@dataclass(frozen=True)
class LearnOptions:
    """How `learn` trains its students, read from the project setting `learning` (a dict of
    these fields; missing ones take these defaults, measured in the loop simulation).

    `self_training`: after a first stack, items no person labeled join the students' training
    with the stack's probabilities as soft labels (one row per label, weighted by its
    probability times `self_training_weight`), at most `self_training_max_ratio` such items per
    trusted label, the most confident first, none below `self_training_min_confidence`; the
    students and the stack are then refitted. `ngram_student`: a second student on word and
    character n-grams of the pool's texts joins the stack. `student_c`: the students' inverse
    regularisation strength, or "auto" to take the one of `STUDENT_C_GRID` with the lowest
    out-of-fold log loss at every fit. `fine_tune`: the student reads the vectors of an encoder
    fine-tuned contrastively on the people's labels (`workflows.finetune`; needs
    `labelloop[finetune]`), once at least `fine_tune_min_labels` exist, again whenever they grew
    by `fine_tune_growth`, on at most `fine_tune_pairs` pairs for `fine_tune_epochs` epochs.
    """

    self_training: bool = False
    self_training_weight: float = 1.0
    self_training_min_confidence: float = 0.0
    self_training_max_ratio: float = 4.0
    ngram_student: bool = False
    student_c: float | str = 1.0
    fine_tune: bool = False
    fine_tune_min_labels: int = 40
    fine_tune_growth: float = 1.0
    fine_tune_pairs: int = 200
    fine_tune_epochs: int = 1

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> LearnOptions:
        stored = settings.get(LEARNING) or {}
        if not isinstance(stored, dict):
            raise InputError(f"the project setting {LEARNING!r} must be a mapping")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(stored) - set(known))
        if unknown:
            raise InputError(f"unknown {LEARNING} settings: {', '.join(unknown)}")
        options = cls(**stored)
        if not 0.0 <= options.self_training_min_confidence <= 1.0:
            raise InputError("self_training_min_confidence must lie in [0, 1]")
        c = options.student_c
        if not (c == AUTO or (isinstance(c, int | float) and not isinstance(c, bool) and c > 0)):
            raise InputError(f"student_c must be a positive number or {AUTO!r}, not {c!r}")
        if options.self_training_weight < 0 or options.self_training_max_ratio < 0:
            raise InputError("self_training_weight and self_training_max_ratio must be >= 0")
        if (
            options.fine_tune_growth < 0
            or min(options.fine_tune_min_labels, options.fine_tune_pairs, options.fine_tune_epochs)
            < 1
        ):
            raise InputError(
                "fine_tune_growth must be >= 0, and fine_tune_min_labels, fine_tune_pairs and "
                "fine_tune_epochs >= 1"
            )
        return options


def _student_probs(
    X: Any,
    y: np.ndarray,
    trusted: np.ndarray,
    student: LogisticStudent,
    predict: Callable[[LogisticStudent], np.ndarray],
    split: tuple[int, int],
    extra: ExtraRows | None = None,
    c_grid: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    """A student's probabilities for the pool: fitted on the trusted labels (and `extra`
    rows), out-of-fold for the trusted items themselves, with the `C` of `c_grid` whose
    out-of-fold log loss is lowest."""
    Xt, yt = X[trusted], y[trusted]
    c, oof = cross_val_select(student, Xt, yt, "C", c_grid, *split, extra=extra)
    X_fit, y_fit, weights = with_extra(Xt, yt, extra)
    fitted = clone(student).set_params(C=c).fit(X_fit, y_fit, sample_weight=weights)
    probs = predict(fitted)
    probs[trusted] = oof
    return probs


def _soft_rows(
    features: dict[str, Any], stacked: np.ndarray, trusted: np.ndarray, options: LearnOptions
) -> dict[str, ExtraRows] | None:
    """The stack's soft labels for items no person labeled, as extra rows per student."""
    soft = soft_labels(
        stacked,
        ~trusted,
        min_confidence=options.self_training_min_confidence,
        max_items=int(options.self_training_max_ratio * trusted.sum()),
        weight=options.self_training_weight,
    )
    if not len(soft):
        return None
    return {
        name: ExtraRows(X[soft.rows], soft.labels, soft.weights) for name, X in features.items()
    }


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


def model_version(
    embedder_id: str,
    used: list[str],
    n_splits: int,
    random_state: int,
    options: LearnOptions | None = None,
) -> str:
    """The prompt version student and stack are stored under: what they were trained from."""
    key = f"{embedder_id}|{','.join(used)}|{n_splits}|{random_state}"
    if options is not None and options != LearnOptions():
        key += f"|{options}"  # the defaults keep the versions they had
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
        row = p.tolist()  # Python floats, as float() of each
        return {
            "label": labels[best],
            "probs": dict(zip(labels, row, strict=True)),
            "confidence": row[best],
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
