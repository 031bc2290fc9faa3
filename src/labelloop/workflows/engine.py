"""Where batch work runs: the `Engine` protocol and the engine of this process.

A workflow is handed an engine and never asks which one it is: `LocalEngine` runs here,
`labelloop.engines.ray_engine.RayEngine` on a Ray cluster. The edges (CLI, Python callers) pick
one by name with `labelloop.engines.engine_for`, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ..labelers.base import Labeler
from .prelabel import Prelabeled, Progress, prelabel

if TYPE_CHECKING:
    from ..project import Project


@runtime_checkable
class Engine(Protocol):
    """Runs the batch steps of pre-labeling, embedding and pool scoring.

    Every engine gives the same results (keys, stored rows, probabilities) for the same input;
    only where the work runs differs.
    """

    name: ClassVar[str]

    def prelabel(
        self,
        project: Project,
        labeler: Labeler,
        *,
        limit: int | None = None,
        use_examples: bool = True,
        progress: Progress | None = None,
        retry_failed: bool = True,
    ) -> Prelabeled:
        """Label every item lacking an answer from `labeler` (see `workflows.prelabel`); items
        that failed before are asked again unless `retry_failed` is false."""
        ...

    def prefill_embeddings(self, project: Project, embedder: Any) -> dict[str, Any] | None:
        """Store the vectors `item_embeddings` is about to need, or None when it computes them."""
        ...

    def predict(
        self,
        project: Project,
        models: Sequence[Any],
        item_ids: Sequence[int],
        X: np.ndarray,
        embedder: Any,
    ) -> np.ndarray:
        """``predict_proba`` of each fitted model on the items (rows of `X`), shape
        ``(models, items, classes)``."""
        ...


class LocalEngine:
    """Everything in this process: the default."""

    name: ClassVar[str] = "local"

    def prelabel(
        self,
        project: Project,
        labeler: Labeler,
        *,
        limit: int | None = None,
        use_examples: bool = True,
        progress: Progress | None = None,
        retry_failed: bool = True,
    ) -> Prelabeled:
        return prelabel(
            project,
            labeler,
            limit=limit,
            use_examples=use_examples,
            progress=progress,
            retry_failed=retry_failed,
        )

    def prefill_embeddings(self, project: Project, embedder: Any) -> dict[str, Any] | None:
        return None  # `item_embeddings` computes and stores what is missing

    def predict(
        self,
        project: Project,
        models: Sequence[Any],
        item_ids: Sequence[int],
        X: np.ndarray,
        embedder: Any,
    ) -> np.ndarray:
        return np.stack([model.predict_proba(X) for model in models])

    def __repr__(self) -> str:
        return "LocalEngine()"


__all__ = ["Engine", "LocalEngine"]
