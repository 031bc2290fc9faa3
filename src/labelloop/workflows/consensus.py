"""Refit the model of annotator quality and re-resolve every item that people answered.

The fit reads every standing answer of the project (each annotator's latest on each item, gold
checks included, where the label is known and the answer measures the annotator), so it runs in
batch: on `route`, on `learn`, and as `labelloop resolve`. Between refits the review path weighs
each new answer with the stored model (see `labelloop.review.consensus`).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .. import routing
from ..review import common, waiting
from ..review import consensus as team
from ..review.answers import resolve_item, settle_overlap
from ..review.common import Result
from ..store import GOLD, reviews
from ..store import items as stored_items

if TYPE_CHECKING:
    from ..agreement import WeightedConsensus
    from ..agreement.consensus import Method
    from ..review.common import ProjectScope


class TeamFit:
    """A fitted annotator model with the store ids of the items it was fitted on (in the
    model's item order)."""

    def __init__(self, model: WeightedConsensus, item_ids: list[int]) -> None:
        self.model = model
        self.item_ids = item_ids


def fit(project: ProjectScope, method: Method = "dawid_skene") -> TeamFit | None:
    """The annotator-quality model fitted on the project's standing answers; None without any.

    Gold items enter with their label known; the active predictor's calibrated confidence is
    each item's prior (`labelloop.review.consensus.model_row`) with weight `MODEL_WEIGHT`.
    """
    labels = list(project.labels)
    votes: dict[int, list[routing.Vote]] = {}
    for a in stored_items.standing_labels(project.store, project.id):
        if a.label in labels:
            votes.setdefault(a.item_id, []).append(
                routing.Vote(a.annotator_id, a.label, a.action, a.id)
            )
    if not votes:
        return None
    rows = stored_items.priors_of(project.store, project.id, list(votes))
    from ..agreement import Answers, WeightedConsensus  # SciPy: only when there are answers

    answers = [
        (n, vote) for n, row in enumerate(rows) for vote in team.latest_labels(votes[row.id])
    ]
    uniform = [1.0 / len(labels)] * len(labels)
    model = WeightedConsensus(method, model_weight=team.MODEL_WEIGHT, random_state=0)
    model.fit(
        Answers.from_records(
            [n for n, _ in answers],
            [team.annotator_key(v.annotator) for _, v in answers],
            [v.label for _, v in answers],
            label_set=labels,
            n_items=len(rows),
            times=[v.order for _, v in answers],
        ),
        gold=[r.gold_label if r.split == GOLD and r.gold_label in labels else None for r in rows],
        model_proba=[
            team.model_row(labels, r.llm_label, r.calibrated_confidence) or uniform for r in rows
        ],
    )
    return TeamFit(model, [row.id for row in rows])


@dataclass(frozen=True, slots=True)
class Consensus(Result):
    """What a refit did (`Project.resolve`); `to_dict` is what `resolve --json` prints."""

    final_label: str  # how final labels are made: weighted or majority
    answers: int  # answers the annotator model was fitted on (0 with majority)
    annotators: int
    labels_changed: int


def refit(project: ProjectScope) -> Consensus:
    """Refit the annotator model (`final_label` = weighted) and recompute the final label of every
    item people answered; with `final_label` = majority, drop the stored model and recompute the
    majorities. Returns the method, the answers and annotators fitted and the labels changed."""
    method = team.final_label_method(project.settings)
    fitted = fit(project) if method == team.WEIGHTED else None
    answers = annotators = 0
    state = None
    if fitted is not None:
        state = {**fitted.model.annotator_model(), "fit_id": uuid.uuid4().hex}
        answers, annotators = fitted.model.answers_.n_answers, len(fitted.model.annotators_)
    if state is not None or project.settings.get(team.SETTING) is not None:
        project.update_settings(**{team.SETTING: state})
    changed = 0
    with common.transaction(project) as conn:
        answered = stored_items.answered_items(conn, project.id)
        for item_id in sorted(answered):
            item = reviews.item_context(conn, item_id)
            assert item is not None  # answered items exist: answers go with their item
            settings = dict(item.settings or {})
            result = resolve_item(conn, item, settings, 0)
            settle_overlap(conn, result, item_id, settings)
            changed += result.label != item.final_label
        waiting.settle(conn, project.id, answered)  # adaptive overlap may have moved tasks
    return Consensus(method, answers, annotators, changed)


def set_final_label(project: ProjectScope, method: str) -> Consensus:
    """Choose how final labels are made (`weighted` or `majority`) and apply it to every item."""
    project.update_settings(final_label=team.check_final_label(method))
    return refit(project)


def annotator_quality(project: ProjectScope, window: int = 50) -> dict[str, dict[str, Any]]:
    """Each annotator's estimated accuracy with a 95% interval, against gold and against the
    weighted consensus, and its drift: accuracy in windows of `window` answers in time order,
    and the last window against the earlier answers. Keyed by annotator name; empty without
    answers."""
    fitted = fit(project)
    if fitted is None:
        return {}
    names = {
        str(i): name for i, name in stored_items.annotator_names(project.store, project.id).items()
    }
    drift = {d.annotator: d for d in fitted.model.drift(window)}
    result: dict[str, dict[str, Any]] = {}
    for quality in fitted.model.annotator_quality_:
        key = quality.annotator
        shown = names.get(key, "(no account)" if key == "none" else f"#{key}")
        moved = drift[key]
        result[shown] = {
            **quality.to_dict(),
            "annotator": shown,
            "drift": {
                "window": window,
                "windows": [asdict(w) for w in moved.windows],
                "recent_change": None
                if moved.recent_change is None
                else moved.recent_change.to_dict(),
            },
        }
    return result
