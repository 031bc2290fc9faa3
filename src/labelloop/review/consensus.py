"""Final labels weighted by who gave them: the project's model of annotator quality, in service.

The project setting `final_label` chooses how an item with several answers gets its label:
``weighted`` (the default) takes the posterior mode of :class:`WeightedConsensus` (each
annotator's confusion matrix, fitted by EM on the project's answers with gold checks measuring
annotators directly, and the active predictor's calibrated confidence as a weak voter);
``majority`` takes the plain majority of the latest answers, ties going to the latest.

Fitting is a batch job (`labelloop.workflows.consensus.refit`, run by `route`, `learn` and
`labelloop resolve`): EM reads every answer of the project, which the answer path must not do.
The fit's annotator model (a few numbers per annotator) is kept in the project's settings, so an
answer arriving between refits is weighed at once with it (`weighted_label`: one row of logs per
answer, no query). A newcomer counts as a typical annotator until the next refit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import routing
from ..errors import InputError
from ..vocabulary import LABELING_ACTIONS

if TYPE_CHECKING:
    from ..agreement import WeightedConsensus

WEIGHTED, MAJORITY = "weighted", "majority"
FINAL_LABEL_METHODS = (WEIGHTED, MAJORITY)
#: How far an item's prior follows the predictor's calibrated confidence (0: not at all).
MODEL_WEIGHT = 0.5
SETTING = "consensus"  # where the fitted annotator model is kept in the project's settings


def final_label_method(settings: dict[str, Any]) -> str:
    """The project's `final_label` setting (a stored value that is not known counts as the
    default)."""
    method = settings.get("final_label", WEIGHTED)
    return method if method in FINAL_LABEL_METHODS else WEIGHTED


def check_final_label(value: Any) -> str:
    if value not in FINAL_LABEL_METHODS:
        raise InputError(
            f"final_label must be one of {', '.join(FINAL_LABEL_METHODS)}", value=value
        )
    return str(value)


def annotator_key(annotator_id: int | None) -> str:
    """An annotator's name in the fitted model: the account id (answers without an account
    count as one anonymous annotator, as the majority counts them)."""
    return "none" if annotator_id is None else str(annotator_id)


def model_row(labels: Sequence[str], llm_label: str | None, confidence: float | None) -> Any:
    """The predictor's calibrated distribution as the consensus sees it: its label at its
    calibrated confidence, the rest spread evenly; None without a calibrated prediction (an
    uncalibrated confidence is not a probability and does not vote)."""
    if llm_label is None or confidence is None or llm_label not in labels:
        return None
    p = min(max(float(confidence), 1e-3), 1.0 - 1e-3)
    rest = (1.0 - p) / (len(labels) - 1)
    return [p if label == llm_label else rest for label in labels]


_MODELS: dict[str, WeightedConsensus] = {}  # fitted models by their fit's id, rebuilt once


def stored_model(settings: dict[str, Any], labels: Sequence[str]) -> WeightedConsensus | None:
    """The fitted annotator model kept in `settings` (None when there is none, or it was fitted
    on another label set)."""
    state = settings.get(SETTING)
    if not isinstance(state, dict) or list(state.get("labels") or []) != list(labels):
        return None
    key = str(state.get("fit_id"))
    model = _MODELS.get(key)
    if model is None:
        from ..agreement import WeightedConsensus

        if len(_MODELS) >= 16:
            _MODELS.clear()
        model = _MODELS[key] = WeightedConsensus.from_annotator_model(state)
    return model


def latest_labels(votes: Sequence[routing.Vote]) -> list[routing.Vote]:
    """Each annotator's latest labeling answer, oldest first (the answers that stand)."""
    latest: dict[int | None, routing.Vote] = {}
    for vote in sorted(votes, key=lambda v: v.order):
        if vote.action in LABELING_ACTIONS and vote.label is not None:
            latest[vote.annotator] = vote
    return sorted(latest.values(), key=lambda v: v.order)


def weighted_label(
    model: WeightedConsensus, standing: Sequence[routing.Vote], prior: Any
) -> tuple[str, dict[str, float]]:
    """The posterior mode of an item with these standing answers, and the posterior.

    One answer is the label (the posterior still says how sure it is); exact ties go to the
    latest answer among the tied labels, as with the majority.
    """
    posterior = model.posterior_of(
        [annotator_key(v.annotator) for v in standing], [v.label for v in standing], prior
    )
    labels = [str(label) for label in model.classes_]
    shown = {label: round(float(p), 6) for label, p in zip(labels, posterior, strict=True)}
    if len(standing) == 1:
        return str(standing[0].label), shown
    top = float(posterior.max())
    tied = {labels[k] for k in range(len(labels)) if posterior[k] >= top - 1e-12}
    if len(tied) == 1:
        return tied.pop(), shown
    return str(next(v.label for v in reversed(standing) if v.label in tied)), shown
