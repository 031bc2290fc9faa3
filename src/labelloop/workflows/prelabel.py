"""Pre-label items with an LLM labeler, saving results as they arrive."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import chain, zip_longest
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from ..labelers.base import Labeler, LabelTask
from ..store import GOLD, HUMAN_LABELED, POOL, Item, Prediction

if TYPE_CHECKING:
    from ..project import Project

Progress = Callable[[int, int], None]
FLUSH_EVERY = 64
FLUSH_SECONDS = 2.0
EXAMPLES_PER_LABEL = 2


def few_shot_examples(project: Project, per_label: int = EXAMPLES_PER_LABEL) -> list[tuple]:
    """Balanced examples from trusted labels: gold first, shortest texts, stable order.

    Stable choices keep the prompt (and so the prediction cache key) unchanged between runs.
    """
    labels = project.labels
    with project.store.session() as session:
        rows = session.execute(
            select(Item.id, Item.text, Item.final_label)
            .where(
                Item.project_id == project.id,
                Item.state == HUMAN_LABELED,
                Item.final_label.is_not(None),
            )
            .order_by(case((Item.split == GOLD, 0), else_=1), Item.id)
            .limit(5_000)
        ).all()
    per_label_rows: list[list[tuple[int, str, str]]] = []
    for label in labels:
        candidates = sorted(
            (r for r in rows if r.final_label == label and 20 <= len(r.text) <= 400),
            key=lambda r: (len(r.text), r.id),
        )
        # Medium-length examples teach more than the shortest ones.
        middle = len(candidates) // 2
        start = max(0, middle - per_label // 2)
        picked = candidates[start : start + per_label]
        per_label_rows.append([(r.id, r.text, r.final_label) for r in picked])
    # Interleave labels so that no label is always the last one shown (recency bias).
    return [row for row in chain.from_iterable(zip_longest(*per_label_rows)) if row]


def prelabel(
    project: Project,
    labeler: Labeler,
    *,
    limit: int | None = None,
    use_examples: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Label every item that lacks a prediction from this labeler and prompt.

    Gold items come first (calibration needs them) and do not count toward `limit`. Items that
    already carry a human label are not sent. Results are saved every few dozen items.
    """
    started = time.perf_counter()
    examples = few_shot_examples(project) if use_examples else []
    task = LabelTask(
        description=project.task,
        labels=project.labels,
        examples=[(text, label) for _, text, label in examples],
    )
    model, version = labeler.model_id, labeler.prompt_version(task)
    project.update_settings(few_shot_item_ids=[item_id for item_id, _, _ in examples])
    project.set_active_predictor(model, version)

    done_already = (
        select(Prediction.id)
        .where(
            Prediction.item_id == Item.id,
            Prediction.model == model,
            Prediction.prompt_version == version,
        )
        .exists()
    )
    wanted = (Item.project_id == project.id) & ~done_already
    with project.store.session() as session:
        gold = session.execute(
            select(Item.id, Item.text).where(wanted, Item.split == GOLD).order_by(Item.id)
        ).all()
        pool_query = (
            select(Item.id, Item.text)
            .where(wanted, Item.split == POOL, Item.state != HUMAN_LABELED)
            .order_by(Item.id)
        )
        if limit is not None:
            pool_query = pool_query.limit(limit)
        pool = session.execute(pool_query).all()
        total = session.scalar(
            select(func.count()).select_from(Item).where(Item.project_id == project.id)
        )
    todo = gold + pool
    ids = [row.id for row in todo]
    texts = [row.text for row in todo]
    counts = {"done": 0, "failed": 0, "tokens": 0, "cost_usd": 0.0}
    buffer: list[tuple[int, Any]] = []
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if buffer:
            project.save_predictions(model, version, buffer)
            project.refresh_item_predictions([item_id for item_id, _ in buffer])
            buffer.clear()
        last_flush = time.monotonic()

    if progress:
        progress(0, len(todo))
    stream = labeler.label_stream(texts, task)
    try:
        for index, result in stream:
            buffer.append((ids[index], result))
            counts["done" if result.error is None and result.label is not None else "failed"] += 1
            counts["tokens"] += result.tokens_in + result.tokens_out
            counts["cost_usd"] += result.cost_usd
            if len(buffer) >= FLUSH_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()
            if progress:
                progress(counts["done"] + counts["failed"], len(todo))
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
        flush()
    return {
        "model": model,
        "prompt_version": version,
        **counts,
        "skipped": (total or 0) - len(todo),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "few_shot_examples": len(examples),
    }
