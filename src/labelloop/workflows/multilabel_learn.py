"""`learn` on a multi-label project: the one-vs-rest student, stacked per label with every
labeler, and the best predictor made the one routing uses.

The multi-label form of `workflows.learn`. Trusted sets are gold sets and the sets people gave.
The student (`active.OneVsRestStudent`) answers each label's yes/no question from the item
embeddings; the stack (`multilabel.PerLabelPool`) pools, label by label, the log-odds of every
labeler and of the student with non-negative weights and a bias, so it can reproduce any one of
them and recalibrates an LLM whose p(yes) ranks well but runs too high or too low. Every
probability that calibration or thresholds will see for a trusted item is out-of-fold: the
student's for the items it was trained on, the stack's over those out-of-fold inputs, on item
folds shared by every label so that item-level figures (subset accuracy, routing) stay honest.
The predictor with the lowest mean per-label log loss becomes the active one, which `calibrate`,
`route` and `select` then use; calibration and routing are refreshed with their last settings.

No labeler is left out of the stack for being weak: a useless input gets weight 0 on a label,
and an LLM whose raw log loss is poor may still rank a label well, which the stack uses.

A local labeler stores its hidden states of each item (`LabelResult.features`); a probe per
label on them (the one-vs-rest student on those features instead of the embeddings) joins the
stack, as in single-label `learn`: the model's own answers may be poor while what it computed
of the item still separates the people's sets (docs/benchmarks.md, "Multi-label loop").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..active import OneVsRestStudent, cross_val_proba_multilabel, get_embedder
from ..calibration.metrics import auroc
from ..errors import NotReadyError
from ..labelers.multilabel import multi_label_result
from ..multilabel import PerLabelPool, item_folds
from ..multilabel.metrics import per_label_log_loss
from ..multilabel.sets import indicator, label_probabilities
from ..review.common import Result
from ..store import GOLD, HUMAN_LABELED, predictions
from ..store import items as stored_items
from ..vocabulary import PEOPLE_SOURCES
from .embed import item_embeddings, labeler_features
from .engine import Engine, LocalEngine
from .learn import (
    DERIVED,
    ENSEMBLE,
    MIN_LABELS,
    PROBE,
    STUDENT,
    Stacked,
    best_predictor,
    lowest_loss_view,
    make_active,
    model_version,
    recalibrate_and_route,
    standardized_rows,
    store_student_and_stack,
    without_unset,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..project import Project

EPS = 1e-6


@dataclass(frozen=True, slots=True)
class MultiLabelLearned(Result):
    """What `learn` trained and chose on a multi-label project (`Project.learn`); `to_dict` is
    what `learn --json` sends, naming `calibration` and `route` only when they were refreshed.

    `components` holds, per predictor, on the trusted items (out-of-fold where trained on
    them): `n`, `log_loss` (binary log loss averaged over labels, what chooses `best`),
    `auroc` (mean over labels of p(yes) ranking the items a label applies to), `micro_f1`,
    `hamming_accuracy` and `subset_accuracy` of the sets p >= 1/2, and `per_label_log_loss`."""

    trusted_labels: int  # items with a trusted set
    label_rates: dict[str, float]  # share of those items each label applies to
    components: dict[str, dict[str, Any]]
    stack_weights: dict[str, float]  # share of the pooled log-odds each input carries
    best: str
    active_predictor: dict[str, Any] | None
    embedder: str
    calibration: dict[str, Any] | None = None
    route: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return without_unset(self)


@dataclass
class SetPool:
    """Every item of the project, with its trusted set where there is one."""

    ids: list[int]
    texts: list[str]
    y: np.ndarray  # (items, labels): which labels the trusted set holds; False elsewhere
    trusted: np.ndarray  # items with a gold set or a set people gave
    excluded: np.ndarray  # few-shot examples: leaky for the LLM inputs


def load_set_pool(project: Project) -> SetPool:
    labels = project.labels
    known = set(labels)
    few_shot = set(project.settings.get("few_shot_item_ids") or [])
    rows = stored_items.learning_rows(project.store, project.id)
    sets: list[list[str] | None] = []
    for row in rows:
        if row.split == GOLD:
            chosen = row.gold_labels
        elif row.state == HUMAN_LABELED and row.final_source in PEOPLE_SOURCES:
            chosen = row.final_labels
        else:
            chosen = None
        sets.append(None if chosen is None else [lab for lab in chosen if lab in known])
    return SetPool(
        ids=[row.id for row in rows],
        texts=[row.text for row in rows],
        y=indicator(sets, labels),
        trusted=np.array([chosen is not None for chosen in sets], dtype=bool),
        excluded=np.array([row.id in few_shot for row in rows], dtype=bool),
    )


def labeler_components(project: Project, pool: SetPool) -> dict[str, np.ndarray]:
    """Each labeler's (model @ prompt version) per-label p(yes) on the pool's items; NaN where it
    gave no answer (a failure, or an item it never saw)."""
    labels = project.labels
    position = {item_id: i for i, item_id in enumerate(pool.ids)}
    out: dict[str, np.ndarray] = {}
    for answer in predictions.labeler_answers(project.store, project.id, DERIVED):
        name = f"{answer.model}@{answer.prompt_version}"
        matrix = out.setdefault(name, np.full((len(pool.ids), len(labels)), np.nan))
        if answer.probs and answer.item_id in position:
            matrix[position[answer.item_id]] = np.clip(
                label_probabilities(answer.probs, labels), 0.0, 1.0
            )
    return out


def set_probe_components(
    project: Project,
    pool: SetPool,
    labelers: list[str],
    rows: np.ndarray,
    n_splits: int,
    random_state: int,
) -> dict[str, np.ndarray]:
    """A one-vs-rest probe per labeler that stored its features of the items, trained on the
    trusted sets of `rows`: out-of-fold there, NaN for items without features. Of the views
    (`FEATURE_VIEWS`), the one with the lowest out-of-fold per-label log loss is kept."""
    out: dict[str, np.ndarray] = {}
    for name in labelers:
        kept = lowest_loss_view(
            partial(
                _set_probe,
                project,
                pool,
                name=name,
                rows=rows,
                n_splits=n_splits,
                random_state=random_state,
            )
        )
        if kept is not None:
            out[PROBE + name] = kept
    return out


def _set_probe(
    project: Project,
    pool: SetPool,
    view: str,
    name: str,
    rows: np.ndarray,
    n_splits: int,
    random_state: int,
) -> tuple[np.ndarray, float] | None:
    """One view's probe: its per-label probabilities for the pool and its out-of-fold mean
    per-label log loss."""
    stored = labeler_features(project, view, name, pool.ids)
    if stored is None:
        return None
    X, has = stored
    fit_rows = rows & has
    if fit_rows.sum() < MIN_LABELS:
        return None
    Z = standardized_rows(X if has.all() else X[has])  # in place when every item has features
    fit, Y = fit_rows[has], pool.y[has]
    probe = OneVsRestStudent(random_state=random_state).fit(Z[fit], Y[fit])
    probs = np.full(pool.y.shape, np.nan)
    probs[has] = probe.predict_proba(Z)
    probs[fit_rows] = cross_val_proba_multilabel(probe, Z[fit], Y[fit], n_splits, random_state)
    return probs, set_metrics(probs[fit_rows], pool.y[fit_rows], project.labels)["log_loss"]


def set_metrics(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """How well per-label probabilities fit the trusted sets, on the rows with an answer."""
    answered = ~np.isnan(probs).any(axis=1)
    p, t = probs[answered], y[answered]
    if len(t) == 0:
        return dict.fromkeys(
            ("log_loss", "auroc", "micro_f1", "hamming_accuracy", "subset_accuracy"), None
        ) | {"n": 0, "per_label_log_loss": None}
    losses = per_label_log_loss(p, t, EPS)
    areas = [auroc(p[:, j], t[:, j]) for j in range(t.shape[1])]
    ranked = [a for a in areas if a == a]
    chosen = p >= 0.5
    tp, fp, fn = (chosen & t).sum(), (chosen & ~t).sum(), (~chosen & t).sum()
    return {
        "n": len(t),
        "log_loss": float(losses.mean()),
        "auroc": float(np.mean(ranked)) if ranked else None,
        "micro_f1": float(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn else None,
        "hamming_accuracy": float((chosen == t).mean()),
        "subset_accuracy": float(np.all(chosen == t, axis=1).mean()),
        "per_label_log_loss": {label: float(v) for label, v in zip(labels, losses, strict=True)},
    }


def stack_sets(
    inputs: np.ndarray,
    y: np.ndarray,
    rows: np.ndarray,
    names: list[str],
    labels: list[str],
    n_splits: int,
    random_state: int,
) -> Stacked:
    """Pooled per-label probabilities for every item, out-of-fold on the training `rows`, with
    their figures there and each input's share of the pooled log-odds.

    ``inputs`` holds each component's per-label probabilities, shape (items, components,
    labels). The pool's form is chosen out of fold, on the same item folds: one weight per
    input and label or one weight per input for every label (a bias per label in both), with
    every input or with one of them left out; the lowest out-of-fold log loss wins, the simpler
    form on a tie. On a few hundred trusted items an input that carries nothing still gets
    weights fitted to noise in-sample; out of fold that noise costs log loss, so the input is
    left out (weight 0) unless it earns its place, and an input useful on most labels is
    weighed once for all of them rather than on each label's handful of positives."""
    train_rows = np.flatnonzero(rows)
    folds = item_folds(len(train_rows), n_splits, random_state)
    n_inputs = inputs.shape[1]
    kept = [np.arange(n_inputs) != m for m in range(n_inputs)] if n_inputs > 1 else []
    best: tuple[float, bool, np.ndarray, np.ndarray] | None = None
    for keep in [*kept, np.ones(n_inputs, dtype=bool)]:
        masked = np.where(keep[None, :, None], inputs, np.nan)  # NaN: no evidence
        for shared in (True, False):
            out = np.empty(y.shape)
            for train, test in folds:
                fitted = PerLabelPool(shared_weights=shared).fit(
                    masked[train_rows[train]], y[train_rows[train]]
                )
                out[train_rows[test]] = fitted.predict_proba(masked[train_rows[test]])
            loss = set_metrics(out[rows], y[rows], labels)["log_loss"]
            if best is None or loss < best[0]:
                best = (loss, shared, masked, out)
    assert best is not None
    _, shared, masked, out = best
    final = PerLabelPool(shared_weights=shared).fit(masked[rows], y[rows])
    if (~rows).any():
        out[~rows] = final.predict_proba(masked[~rows])
    shares = final.influence(masked[rows])
    metrics = set_metrics(out[rows], y[rows], labels)
    metrics["pooling"] = "one weight per input" if shared else "one weight per input and label"
    return Stacked(
        probs=out,
        metrics=metrics,
        weights={name: round(float(v), 4) for name, v in zip(names, shares, strict=True)},
    )


def set_values(labels: list[str]) -> Callable[[np.ndarray], dict[str, Any]]:
    """A prediction's label fields from each label's probability of applying: the same set,
    top label and confidence a multi-label labeler's answer carries."""

    def values(p: np.ndarray) -> dict[str, Any]:
        result = multi_label_result(labels, p.tolist())
        return {
            "label": result.label,
            "probs": result.probs,
            "confidence": result.confidence,
            "labels": result.labels,
            "calibrated_labels": None,
        }

    return values


def learn(
    project: Project,
    *,
    embedder: Any = None,
    n_splits: int = 5,
    random_state: int = 0,
    progress: Any = None,
    recalibrate: bool = True,
    engine: Engine | None = None,
) -> MultiLabelLearned:
    """Train student and stack on the trusted sets, store their predictions, make the best
    predictor active and refresh calibration and routing."""
    labels = project.labels
    pool = load_set_pool(project)
    trusted = pool.trusted
    if trusted.sum() < MIN_LABELS:
        raise NotReadyError(
            f"the student needs at least {MIN_LABELS} trusted label sets (gold or given by "
            f"people); found {int(trusted.sum())}"
        )
    embedder = embedder or get_embedder("auto")
    engine = engine or LocalEngine()
    engine.prefill_embeddings(project, embedder)
    X = item_embeddings(project, embedder, pool.ids, pool.texts, progress)
    student = OneVsRestStudent(random_state=random_state).fit(X[trusted], pool.y[trusted])
    student_probs = engine.predict(project, [student], pool.ids, X, embedder)[0]
    student_probs[trusted] = cross_val_proba_multilabel(
        student, X[trusted], pool.y[trusted], n_splits, random_state
    )
    components = labeler_components(project, pool)
    rows = trusted & ~pool.excluded  # few-shot examples: leaky for the LLM inputs
    probes = set_probe_components(project, pool, list(components), rows, n_splits, random_state)
    components.update(probes)
    metrics = {name: set_metrics(p[rows], pool.y[rows], labels) for name, p in components.items()}
    metrics[STUDENT] = set_metrics(student_probs[rows], pool.y[rows], labels)
    names = [*components, STUDENT]
    inputs = np.stack([*components.values(), student_probs], axis=1)
    stacked = stack_sets(inputs, pool.y, rows, names, labels, n_splits, random_state)
    metrics[ENSEMBLE] = stacked.metrics
    version = model_version(embedder.model_id, [*components, "sets"], n_splits, random_state)
    store_student_and_stack(
        project,
        version,
        pool.ids,
        trusted,
        set_values(labels),
        (student_probs, "student: one logistic regression per label on embeddings"),
        (stacked, "per-label stack"),
    )
    # A probe is computed here and stored only inside the stack: never the one routing uses.
    best = best_predictor({name: m for name, m in metrics.items() if name not in probes})
    make_active(project, best, version)
    rates = pool.y[trusted].mean(axis=0)
    return MultiLabelLearned(
        trusted_labels=int(trusted.sum()),
        label_rates={label: float(r) for label, r in zip(labels, rates, strict=True)},
        components=metrics,
        stack_weights=stacked.weights,
        best=best,
        active_predictor=project.settings.get("active_predictor"),
        embedder=embedder.model_id,
        **(recalibrate_and_route(project) if recalibrate else {}),
    )
