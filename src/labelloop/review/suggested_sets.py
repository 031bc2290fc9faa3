"""A multi-label item's suggestion as a reviewer is shown it.

Beside the suggested set (the calibrated set routing settled on), the page shows each label's
own probability, calibrated with the per-label calibration in force for the predictor when
there is one, and the labels routing asks the reviewer about.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..multilabel.sets import label_probabilities
from ..store import Connection
from ..store import labelsets as store
from .common import Result


@dataclass(frozen=True, slots=True)
class SuggestedSet(Result):
    """A multi-label item's suggestion as a reviewer is shown it (`ReviewItem.suggested_set`);
    `to_dict` is what the review API sends, in this order."""

    labels: list[str]  # the suggested set
    probs: dict[str, float | None]  # each label's probability (None: the predictor gave none)
    calibrated: bool  # whether `probs` went through the per-label calibration in force
    uncertain: list[str]  # the labels routing asks the reviewer about


def suggested_set(conn: Connection, item_id: int) -> SuggestedSet | None:
    """The item's suggested set, each label's probability (None where the predictor gave
    none), whether they are calibrated, and the uncertain labels; None without a prediction."""
    row = store.shown_set(conn, item_id)
    if row is None or not row.probs:
        return None
    labels = list(row.labels)
    raw = np.array([label_probabilities(row.probs, labels)], dtype=float)
    missing = np.isnan(raw[0])
    proba = np.where(np.isnan(raw), 0.5, np.clip(raw, 0.0, 1.0))
    stored = store.calibrator_in_force(conn, row.project_id, row.model, row.prompt_version)
    calibrated = False
    if stored is not None:
        # scikit-learn: only for a project calibrated per label
        from ..multilabel import LABEL_CALIBRATOR_KINDS, label_calibrator_from_dict

        calibrated = stored.get("kind") in LABEL_CALIBRATOR_KINDS
        if calibrated:
            proba = label_calibrator_from_dict(stored).transform(proba)
    probs = {
        label: None if missing[j] else round(float(proba[0, j]), 4)
        for j, label in enumerate(labels)
    }
    return SuggestedSet(
        labels=list(row.llm_labels or []),
        probs=probs,
        calibrated=calibrated,
        uncertain=list(row.uncertain_labels or []),
    )
