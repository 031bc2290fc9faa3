"""One round of active learning: score the pool, queue the most useful items for review."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import review
from ..active import (
    LogisticStudent,
    StabilizingPredictions,
    get_embedder,
    get_strategy,
    label_budget,
    select_round,
    target_accuracy,
)
from ..active.stopping import stop_set as stop_set_of
from ..active.strategies import StrategyNotReady
from ..errors import InputError
from ..review.common import Result
from ..store import items as stored_items
from ..store import rounds
from ..vocabulary import Queue
from .embed import item_embeddings
from .engine import Engine, LocalEngine
from .learn import llm_components, load_pool

if TYPE_CHECKING:
    from ..project import Project

ACTIVE_QUEUE = Queue.ACTIVE
COMMITTEE_SIZE = 5


@dataclass(frozen=True, slots=True)
class Selection(Result):
    """What a round queued (`Project.select`); `to_dict` is what `select --json` prints."""

    strategy: str
    k: int
    queued: int
    selected: list[str]  # the queued items' ids, in the strategy's order
    trusted_labels: int  # the labels the student trained on
    stopping: dict[str, Any]  # each stopping rule's decision and reason, and `stop`
    embedder: str


def _queued(project: Project) -> set[int]:
    return stored_items.queued_items(project.store, project.id, ACTIVE_QUEUE)


def _gold_mask(project: Project, ids: list[int]) -> np.ndarray:
    gold = set(stored_items.gold_labels(project.store, project.id))
    return np.array([item_id in gold for item_id in ids], dtype=bool)


def _llm_proba(project: Project, pool: Any) -> np.ndarray | None:
    """The LLM labeler that answered most items, with missing rows set to uniform."""
    components = llm_components(project, pool)
    if not components:
        return None
    probs = max(components.values(), key=lambda p: int((~np.isnan(p).any(axis=1)).sum()))
    return np.where(np.isnan(probs), 1.0 / probs.shape[1], probs)


def select(
    project: Project,
    strategy: str,
    k: int,
    *,
    embedder: Any = None,
    label_budget_total: int | None = None,
    target: float | None = None,
    random_state: int = 0,
    progress: Any = None,
    engine: Engine | None = None,
) -> Selection:
    """Queue the `k` pool items whose human label should help most, and check stopping rules."""
    if k <= 0:
        raise InputError(f"--k must be positive, not {k}")
    try:
        chooser = get_strategy(strategy)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    labels = project.labels
    pool = load_pool(project)
    if not pool.ids:
        raise InputError("the project has no items; import some first")
    embedder = embedder or get_embedder("auto")
    engine = engine or LocalEngine()
    engine.prefill_embeddings(project, embedder)
    X = item_embeddings(project, embedder, pool.ids, pool.texts, progress)
    trusted = pool.y >= 0
    queued = _queued(project)
    labeled = (
        trusted
        | _gold_mask(project, pool.ids)
        | np.array([item_id in queued for item_id in pool.ids], dtype=bool)
    )
    llm = _llm_proba(project, pool)
    classes = np.arange(len(labels))
    try:
        step = select_round(
            chooser,
            X,
            labeled,
            pool.y,
            k,
            classes=classes,
            student=LogisticStudent(classes=classes, random_state=random_state),
            train_mask=trusted,
            llm_proba=llm,
            committee_external=[llm] if llm is not None else [],
            committee_size=COMMITTEE_SIZE,
            # Before people have labeled two classes, the LLM is the only model.
            min_classes=2,
            score=lambda models, x: engine.predict(project, models, pool.ids, x, embedder),
            evaluate=False,
            random_state=random_state,
        )
    except StrategyNotReady as exc:
        raise InputError(
            f"strategy {strategy!r} cannot run yet: strategy {exc.strategy!r} needs "
            + ", ".join(exc.missing)
        ) from exc
    chosen = [pool.ids[i] for i in step.selected]
    stopping, stop_set_predictions = _stopping(
        project, pool, step.proba, trusted, label_budget_total, target
    )
    # Served before the routing queue, in the strategy's order.
    review.enqueue(
        project,
        chosen,
        queue=ACTIVE_QUEUE,
        priorities=[-1.0 + rank / max(len(chosen), 1) for rank in range(len(chosen))],
    )
    review.apply_overlap(project)
    uids = stored_items.uids_of(project.store, project.id, chosen) if chosen else {}
    rounds.save_round(
        project.store,
        project.id,
        strategy,
        k,
        [uids[item_id] for item_id in chosen],
        {
            "trusted_labels": int(trusted.sum()),
            "stopping": stopping,
            "stop_set_predictions": stop_set_predictions,
        },
    )
    return Selection(
        strategy,
        k,
        len(chosen),
        [uids[item_id] for item_id in chosen],
        int(trusted.sum()),
        stopping,
        embedder.model_id,
    )


def _stopping(
    project: Project,
    pool: Any,
    proba: np.ndarray | None,
    trusted: np.ndarray,
    budget: int | None,
    target: float | None,
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Label budget, target accuracy on gold, and stabilising predictions: the decisions, and
    the predictions on the stop set that the next round compares with."""
    decisions: dict[str, Any] = {}
    if budget is not None:
        decision = label_budget(int(trusted.sum()), budget)
        decisions["label_budget"] = {"stop": decision.stop, "reason": decision.reason}
    if proba is None:
        decisions["stop"] = any(d["stop"] for d in decisions.values())
        return decisions, None
    predictions = proba.argmax(axis=1)
    gold = _gold_mask(project, pool.ids) & trusted
    if target is not None and gold.any():
        decision = target_accuracy(pool.y[gold], predictions[gold], target)
        decisions["target_accuracy"] = {"stop": decision.stop, "reason": decision.reason}
    stop_set = stop_set_of(pool.ids)
    rule = StabilizingPredictions()
    for metrics in rounds.round_metrics(project.store, project.id):
        previous = metrics.get("stop_set_predictions")
        if previous and len(previous) == len(stop_set):
            rule.update(np.array(previous))
    decision = rule.update(predictions[stop_set])
    decisions["stabilizing_predictions"] = {"stop": decision.stop, "reason": decision.reason}
    decisions["stop"] = any(d["stop"] for d in decisions.values() if isinstance(d, dict))
    return decisions, predictions[stop_set].tolist()
