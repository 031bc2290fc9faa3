"""Agreement between every rater — people and LLM labelers — and likely-mislabeled items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from .. import review
from ..agreement import agreement_report, find_label_issues
from ..errors import NotReadyError
from ..review.common import Result
from ..store import items as stored_items
from ..store import predictions
from ..vocabulary import Queue
from .consensus import annotator_quality
from .learn import STUDENT

if TYPE_CHECKING:
    from ..project import Project

RECHECK_QUEUE = Queue.RECHECK


def rating_matrix(project: Project) -> tuple[list[str], list[int], list[list[str | None]]]:
    """Raters × items labels: each annotator's latest answer and each labeler's prediction.

    Only items rated by at least two raters count. Student and ensemble are not raters: they
    are trained on the people's labels.
    """
    ratings: dict[str, dict[int, str | None]] = {}  # labels: NOT NULL by the queries
    names = stored_items.annotator_names(project.store, project.id)
    for annotator_id, item_id, label in stored_items.labeling_answers(project.store, project.id):
        name = names.get(annotator_id, "unknown") if annotator_id is not None else "unknown"
        rater = f"human:{name}"
        ratings.setdefault(rater, {})[item_id] = label
    for a in predictions.labeler_answers(project.store, project.id, (STUDENT, "ensemble")):
        if a.label is not None:
            ratings.setdefault(f"llm:{a.model}@{a.prompt_version}", {})[a.item_id] = a.label
    counts: dict[int, int] = {}
    for by_item in ratings.values():
        for item_id in by_item:
            counts[item_id] = counts.get(item_id, 0) + 1
    items = sorted(item_id for item_id, n in counts.items() if n >= 2)
    raters = sorted(ratings)
    matrix = [[ratings[r].get(item_id) for item_id in items] for r in raters]
    return raters, items, matrix


class Estimate(TypedDict):
    """An agreement figure with its bootstrap interval (None without resamples) and the
    Landis & Koch reading of it."""

    estimate: float | None
    low: float | None
    high: float | None
    interpretation: str | None
    by_category: NotRequired[dict[str, float | None]]  # Fleiss' kappa only


class RaterCount(TypedDict):
    name: str  # `human:NAME` or `llm:MODEL@PROMPT_VERSION`
    n_rated: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementReport(Result):
    """Agreement between every rater of a single-label project (`Project.agreement`);
    `to_dict` is what `agreement --json` sends, naming `gold_accuracy` only when the project
    has gold items."""

    raters: list[RaterCount]
    n_items: int  # items rated by at least two raters
    labels: list[str]
    level_of_measurement: str
    confidence: float  # of the intervals
    n_boot: int  # bootstrap resamples; 0: no intervals
    percent_agreement: Estimate
    fleiss_kappa: Estimate
    krippendorff_alpha: Estimate
    gwet_ac1: Estimate
    pairwise_cohen: list[dict[str, Any]]  # a, b, n_items and an Estimate's keys
    vs_majority: list[dict[str, Any]]  # rater, n_items and an Estimate's keys
    flags: list[dict[str, Any]]  # raters who seem to copy one another, with item ids
    gold_accuracy: list[dict[str, Any]] | None = None  # each rater's accuracy on gold
    notes: list[str]  # figures that could not be computed, and why
    annotator_quality: list[dict[str, Any]]  # see `consensus.annotator_quality`

    def to_dict(self) -> dict[str, Any]:
        data = Result.to_dict(self)
        if self.gold_accuracy is None:
            del data["gold_accuracy"]
        return data


def agreement(project: Project, *, n_boot: int = 1000, random_state: int = 0) -> AgreementReport:
    """The agreement report over all raters, with each annotator's accuracy on gold items and
    against the weighted consensus, with intervals, and its drift (see `consensus`)."""
    raters, items, matrix = rating_matrix(project)
    if len(raters) < 2 or not items:
        raise NotReadyError(
            "agreement needs at least two raters on the same items (annotators' answers or "
            "LLM predictions); found " + (", ".join(raters) or "none")
        )
    gold_of = stored_items.gold_labels(project.store, project.id)
    uids = stored_items.uids_of(project.store, project.id)
    gold = [gold_of.get(item_id) for item_id in items] if gold_of else None
    report = agreement_report(
        matrix, project.labels, raters, n_boot=n_boot, random_state=random_state, gold=gold
    )
    for flag in report.get("flags", []):
        if "items" in flag:
            flag["items"] = [uids[items[i]] for i in flag["items"] if i < len(items)]
    return AgreementReport(**report, annotator_quality=list(annotator_quality(project).values()))


@dataclass(frozen=True, slots=True)
class Suspect:
    """An item whose final label the student confidently disagrees with."""

    id: str  # the item's id in the user's data
    label: str  # its final label
    suggested: str  # the student's label
    score: float  # the student's confidence in the final label: low is suspicious


@dataclass(frozen=True, slots=True)
class SetSuspect:
    """A multi-label item some of whose label decisions the model confidently disagrees with."""

    id: str  # the item's id in the user's data
    labels: list[str]  # its final set
    doubtful: list[str]  # the labels whose decision looks wrong (in the set, or missing)
    suggested: list[str]  # the set with those decisions turned over
    score: float  # the model's probability of the most doubtful decision: low is suspicious
    scores: dict[str, float]  # each doubtful label's such probability


@dataclass(frozen=True, slots=True)
class LabelIssues(Result):
    """Likely-mislabeled items (`Project.label_issues`); `to_dict` is what `agreement --json`
    sends as `label_issues`. On a multi-label project the suspects are `SetSuspect`s."""

    checked: int  # labeled items the student scored
    suspects: list[Suspect] | list[SetSuspect]
    queued: int  # suspects queued for a second look


def label_issues(project: Project, *, top: int = 50, queue: bool = True) -> LabelIssues:
    """Final labels that the student (out-of-fold) confidently disagrees with.

    Needs `learn` to have run: the student's stored probabilities are out-of-fold for the
    items it was trained on and out-of-sample for the others.
    """
    labels = project.labels
    rows = predictions.model_probs_on_labeled(project.store, project.id, STUDENT)
    if not rows:
        raise NotReadyError("no student predictions yet; run `labelloop learn` first")
    given = np.array([labels.index(r.final_label) for r in rows])
    probs = np.array([[r.probs[label] for label in labels] for r in rows])
    issues = find_label_issues(given, probs, rank_by="self_confidence", max_issues=top)
    suspects = [
        Suspect(
            id=rows[i].uid,
            label=rows[i].final_label,
            suggested=labels[int(s)],
            score=float(score),
        )
        for i, s, score in zip(issues.indices, issues.suggested, issues.scores, strict=True)
    ]
    queued = 0
    if queue and suspects:
        ids = [rows[i].id for i in issues.indices]
        queued = review.enqueue(project, ids, queue=RECHECK_QUEUE)
    return LabelIssues(checked=len(rows), suspects=suspects, queued=queued)
