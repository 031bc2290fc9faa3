"""One round of the active-learning loop, as a pure function the service layer calls.

The store gives the pool's embeddings, which items are labeled and their labels; this
retrains the student, scores the pool, runs the strategy and returns what to queue and what
to record about the round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from labelloop.active.strategies import QueryStrategy, get_strategy
from labelloop.active.students import Committee, LogisticStudent, Student, cross_val_proba


@dataclass
class RoundResult:
    """What one round decided, and the student metrics to store with it."""

    strategy: str
    selected: np.ndarray
    proba: np.ndarray
    model: Student
    n_labeled: int
    cv_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record of the round (without the per-item probabilities)."""
        return {
            "strategy": self.strategy,
            "selected": self.selected.tolist(),
            "n_labeled": self.n_labeled,
            "cv_accuracy": self.cv_accuracy,
        }


def select_round(
    strategy: str | QueryStrategy,
    embeddings: np.ndarray,
    labeled_mask: np.ndarray,
    labels: np.ndarray,
    k: int,
    *,
    classes: np.ndarray | None = None,
    student: Student | None = None,
    llm_proba: np.ndarray | None = None,
    committee_size: int = 5,
    evaluate: bool = True,
    random_state: int | None = None,
) -> RoundResult:
    """Retrain the student on the labeled items and pick the next `k` items to label.

    `labels` has one entry per pool item (only labeled ones are read). `classes` fixes the
    label set and probability columns (default: the labels seen). With `evaluate`, the
    student's out-of-fold accuracy on the labeled items is reported (None below 10 labels).
    """
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    labeled_mask = np.asarray(labeled_mask, dtype=bool)
    x, y = embeddings[labeled_mask], np.asarray(labels)[labeled_mask]
    classes = np.unique(y) if classes is None else np.asarray(classes)
    student = student if student is not None else LogisticStudent(classes=classes)
    model = clone(student).fit(x, y)
    proba = model.predict_proba(embeddings)
    committee = None
    if "committee_probas" in strategy.requires and len(y):
        members = Committee(base=student, n_bootstrap=committee_size, random_state=random_state)
        committee = members.fit(x, y).member_probas(embeddings)
    selected = strategy.select(
        k,
        proba=proba,
        embeddings=embeddings,
        labeled_mask=labeled_mask,
        committee_probas=committee,
        llm_proba=llm_proba,
        random_state=random_state,
    )
    cv_accuracy = None
    if evaluate and len(y) >= 10 and len(np.unique(y)) >= 2:
        oof = cross_val_proba(student, x, y, n_splits=5, random_state=random_state)
        cv_accuracy = float(np.mean(classes[oof.argmax(axis=1)] == y))
    return RoundResult(strategy.name, selected, proba, model, len(y), cv_accuracy)
