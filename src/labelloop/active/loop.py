"""One round of the active-learning loop, as a pure function the service layer calls.

The store gives the pool's embeddings, which items are labeled and their labels; this
retrains the student, scores the pool, runs the strategy and returns what to queue and what
to record about the round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from labelloop.active.strategies import QueryStrategy, get_strategy
from labelloop.active.students import Committee, LogisticStudent, Student, cross_val_proba

#: Scores fitted models on the pool: ``predict_proba`` of each, shape (models, items, classes).
#: A caller passes its own to run the scoring elsewhere (a cluster); results must not differ.
Scorer = Callable[[Sequence[Student], np.ndarray], np.ndarray]


def score_here(models: Sequence[Student], embeddings: np.ndarray) -> np.ndarray:
    """The default scorer: every model in this process."""
    return np.stack([model.predict_proba(embeddings) for model in models])


@dataclass
class RoundResult:
    """What one round decided, and the student metrics to store with it.

    `proba` is what the strategy read as the model's probabilities: the student's, or the
    LLM's while the student is not trusted yet (see `select_round`'s `min_classes`), or None.
    """

    strategy: str
    selected: np.ndarray
    proba: np.ndarray | None
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
    train_mask: np.ndarray | None = None,
    llm_proba: np.ndarray | None = None,
    committee_external: Sequence[np.ndarray] = (),
    committee_size: int = 5,
    min_classes: int = 0,
    score: Scorer = score_here,
    evaluate: bool = True,
    random_state: int | None = None,
) -> RoundResult:
    """Retrain the student on the labeled items and pick the next `k` items to label.

    `labels` has one entry per pool item (only training ones are read). The student trains on
    `train_mask` (default: `labeled_mask`); items only in `labeled_mask` (say, already queued)
    are never picked. `classes` fixes the label set and probability columns (default: the
    labels seen). Below `min_classes` distinct training labels the student is not trusted: the
    strategy reads `llm_proba` as the model and gets no committee. `committee_external` joins
    the committee untrained. With `evaluate`, the student's out-of-fold accuracy on the
    training items is reported (None below 10 labels). Raises `StrategyNotReady` when the
    strategy lacks an input it needs.
    """
    strategy = get_strategy(strategy) if isinstance(strategy, str) else strategy
    labeled_mask = np.asarray(labeled_mask, dtype=bool)
    train = labeled_mask if train_mask is None else np.asarray(train_mask, dtype=bool)
    x, y = embeddings[train], np.asarray(labels)[train]
    classes = np.unique(y) if classes is None else np.asarray(classes)
    student = student if student is not None else LogisticStudent(classes=classes)
    model = clone(student).fit(x, y)
    proba, committee = llm_proba, None
    if len(np.unique(y)) >= min_classes:
        models = [model]
        if "committee_probas" in strategy.requires and len(y):
            members = Committee(base=student, n_bootstrap=committee_size, random_state=random_state)
            models += members.fit(x, y).members_
        # The student and the committee's members are scored in one pass.
        scored = score(models, embeddings)
        proba = scored[0]
        if len(models) > 1:
            committee = np.stack([*scored[1:], *committee_external])
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
