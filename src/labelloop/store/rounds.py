"""Active learning rounds: what each round selected and the figures its stopping rules read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .db import Store
from .models import ActiveLearningRound


def save_round(
    store: Store,
    project_id: int,
    strategy: str,
    k: int,
    selected: list[str],
    metrics: dict[str, Any],
) -> None:
    """Record a round: its strategy, size, the items it chose (their own ids) and its metrics."""
    with store.session() as session:
        session.add(
            ActiveLearningRound(
                project_id=project_id, strategy=strategy, k=k, selected=selected, metrics=metrics
            )
        )


def round_metrics(store: Store, project_id: int) -> list[dict[str, Any]]:
    """The metrics of every earlier round, oldest first (a stopping rule compares rounds)."""
    with store.session() as session:
        return [
            metrics or {}
            for metrics in session.scalars(
                select(ActiveLearningRound.metrics)
                .where(ActiveLearningRound.project_id == project_id)
                .order_by(ActiveLearningRound.id)
            )
        ]
