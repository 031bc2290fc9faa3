"""The student's encoder, fine-tuned on the people's labels when the project asks for it.

With the project setting `learning: {"fine_tune": true}` (`LearnOptions.fine_tune`), `learn`
trains its student on the vectors of an encoder fine-tuned contrastively on the labels people
gave (`active.finetune`, needs `labelloop[finetune]`). Fine-tuning is the costly part, so it
runs only when those labels have grown by `fine_tune_growth` (doubled, by default) since the last
fine-tune; in between, the last encoder is reused from `<project>/encoders/` and its vectors
from the store. Gold labels never take part: calibration measures the predictor on gold, and
an encoder tuned on those very items would make its confidence look earned when it is not.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store.embeddings import drop_vectors
from .embed import item_embeddings

if TYPE_CHECKING:
    from ..project import Project
    from .learn import LearnOptions, Pool

logger = logging.getLogger(__name__)

#: The project setting recording the last fine-tune (file, labels, cost).
FINE_TUNED = "fine_tuned_encoder"
ENCODERS = "encoders"


@dataclass(frozen=True)
class StudentFeatures:
    """What the student trains on: vectors of the pool, the embedder that made them, and the
    last fine-tune's record (None when the shipped encoder is used)."""

    X: np.ndarray
    embedder: Any
    fine_tune: dict[str, Any] | None = None


def student_features(
    project: Project,
    pool: Pool,
    options: LearnOptions,
    X: np.ndarray,
    embedder: Any,
    random_state: int,
) -> StudentFeatures:
    """The shipped vectors `X`, or those of the fine-tuned encoder when `options` ask for one
    and people have labeled at least `fine_tune_min_labels` items."""
    if not options.fine_tune:
        return StudentFeatures(X, embedder)
    from ..active.finetune import fine_tune, require_torch, tuned_embedder

    require_torch()  # fail early, naming the extra, even before enough labels exist
    rows = np.flatnonzero((pool.y >= 0) & ~pool.gold)  # the people's labels
    record: dict[str, Any] = project.settings.get(FINE_TUNED) or {}
    usable = bool(record) and (project.path / record["file"]).is_file()
    if len(rows) < options.fine_tune_min_labels and not usable:
        return StudentFeatures(X, embedder)
    tuned = None
    if not usable or len(rows) >= (1.0 + options.fine_tune_growth) * record["labels"]:
        key = f"{random_state}|{options}|" + ",".join(str(pool.ids[i]) for i in rows)
        folder = project.path / ENCODERS / hashlib.sha256(key.encode()).hexdigest()[:12]
        tuned = fine_tune(
            [pool.texts[i] for i in rows],
            pool.y[rows],
            folder=folder,
            random_state=random_state,
            max_pairs=options.fine_tune_pairs,
            epochs=options.fine_tune_epochs,
        )
        if record:  # the replaced encoder: its file and its vectors
            if (project.path / record["file"]).parent != folder:
                shutil.rmtree((project.path / record["file"]).parent, ignore_errors=True)
            if record["model_id"] != tuned.embedder.model_id:
                drop_vectors(project.store, project.id, record["model_id"])
        record = {
            "model_id": tuned.embedder.model_id,
            "file": str(tuned.onnx_path.relative_to(project.path)),  # the project may move
            "labels": len(rows),
            "pairs": tuned.pairs,
            "cpu_seconds": round(tuned.cpu_seconds, 1),
            "wall_seconds": round(tuned.wall_seconds, 1),
        }
        project.update_settings(**{FINE_TUNED: record})
        logger.info(
            "encoder fine-tuned on %d labels (%d pairs): %.1f CPU s, %.1f s",
            len(rows),
            tuned.pairs,
            tuned.cpu_seconds,
            tuned.wall_seconds,
        )
    embedder = (
        tuned.embedder if tuned is not None else tuned_embedder(project.path / record["file"])
    )
    X_tuned = item_embeddings(project, embedder, pool.ids, pool.texts)
    return StudentFeatures(X_tuned, embedder, record)
