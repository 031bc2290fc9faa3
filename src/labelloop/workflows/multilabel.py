"""Calibration and routing of multi-label projects, one decision per label.

`calibrate` fits one calibrator per label on the gold items (`multilabel.PerLabelCalibrator`),
measures each label's calibration error on out-of-fold calibrated probabilities, and chooses the
symmetric cut t on the decisions' confidence max(p, 1 - p) for a review budget or a target
subset accuracy (`multilabel.choose_threshold`). Every prediction of the active predictor then
gets its calibrated set (p >= 1/2) and, as its calibrated confidence, its least confident
decision: an item is auto-accepted when that reaches t, i.e. when every decision on it is
confident, which is the single-label routing statement applied to that number.
`route` does so and records, for items in review, the labels their reviewer is asked about.
`select` queues for people the pool items a multi-label strategy ranks first on the same
calibrated per-label probabilities (an item never pre-labeled counts as undecided on every
label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import review
from ..active.stopping import (
    StabilizingLabelSets,
    label_budget,
    pool_uncertainty,
    stop_set,
    target_accuracy,
)
from ..errors import InputError, NotReadyError
from ..multilabel.sets import indicator, label_probabilities
from ..review import waiting
from ..review.common import Result, Stats
from ..store import items as stored_items
from ..store import rounds
from ..store.labelsets import (
    gold_probabilities,
    labeled_set_probabilities,
    pool_probabilities,
    predicted_items,
    prediction_probabilities,
    rater_sets,
    settle_routed_sets,
)
from ..store.predictions import active_calibration, save_calibration
from ..store.projects import replace_predictions
from ..store.routing import route_items
from ..vocabulary import LabelSource
from .calibrate import Calibrated

if TYPE_CHECKING:
    from ..project import Project
    from .agreement import LabelIssues

MIN_GOLD = 10
DEFAULT_BUDGET = 0.3
METHODS = ("auto", "none", "platt", "isotonic", "histogram")


def _check(method: str, budget: float | None, target: float | None) -> None:
    if budget is not None and target is not None:
        raise InputError("give either --budget or --target-accuracy, not both")
    for name, value in (("budget", budget), ("target accuracy", target)):
        if value is not None and not 0.0 < value <= 1.0:
            raise InputError(f"the {name} must lie in (0, 1], not {value}")
    if method not in METHODS:
        raise InputError(
            f"a multi-label project calibrates each label with one of {', '.join(METHODS)}, "
            f"not {method!r}"
        )


def _matrix(probs: Sequence[Mapping[str, Any]], labels: list[str]) -> np.ndarray:
    """(n, L) per-label probabilities; a label a prediction lacks counts as 1/2 (no opinion)."""
    out = np.array([label_probabilities(p, labels) for p in probs], dtype=float)
    return np.where(np.isnan(out), 0.5, np.clip(out, 0.0, 1.0))


def calibrate(
    project: Project,
    *,
    method: str = "auto",
    budget: float | None = None,
    target_accuracy: float | None = None,
    random_state: int = 0,
    **_: Any,
) -> Calibrated:
    """Fit per-label calibrators on gold, choose the cut, calibrate every prediction.

    `target_accuracy` is the subset accuracy (items exactly right) of the finished dataset on
    gold; without it or a `budget`, at most 30% of the items go to review.
    """
    from ..multilabel import PerLabelCalibrator, choose_threshold, cross_fit_per_label
    from ..multilabel.metrics import per_label_ece

    _check(method, budget, target_accuracy)
    active = project.active_predictor()
    if active is None:
        raise NotReadyError("there are no predictions to calibrate; run `labelloop prelabel`")
    model, version = active
    labels = project.labels
    with project.store.session() as session:
        gold = gold_probabilities(session, project.id, model, version)
    if len(gold) < MIN_GOLD:
        raise NotReadyError(
            f"calibration needs at least {MIN_GOLD} gold items with predictions from {model}; "
            f"found {len(gold)}"
        )
    proba = _matrix([p for p, _ in gold], labels)
    y = indicator([g for _, g in gold], labels)
    out_of_fold = cross_fit_per_label(proba, y, method, random_state=random_state)
    if budget is None and target_accuracy is None:
        budget = DEFAULT_BUDGET
    chosen = choose_threshold(out_of_fold, y, budget=budget, target=target_accuracy)
    calibrator = PerLabelCalibrator(method, random_state=random_state).fit(proba, y)
    before = [iv.estimate for iv in per_label_ece(y, proba, n_boot=200)]
    after = [iv.estimate for iv in per_label_ece(y, out_of_fold, n_boot=200)]
    report: dict[str, Any] = {
        "method": "per_label",
        "threshold_rule": (
            f"every label decision confident; subset accuracy >= {target_accuracy:.0%} on gold"
            if target_accuracy is not None
            else f"every label decision confident; at most {budget:.0%} of the items reviewed"
        ),
        "label_methods": dict(zip(labels, calibrator.methods_, strict=True)),
        "threshold": chosen.threshold,
        "ece_before": float(np.mean(before)),
        "ece_after": float(np.mean(after)),
        "per_label_ece_before": dict(zip(labels, before, strict=True)),
        "per_label_ece_after": dict(zip(labels, after, strict=True)),
        "expected_accuracy": chosen.subset_accuracy,
        "review_rate": chosen.review_rate,
        "routing": chosen.to_dict(),
    }
    save_calibration(
        project.store,
        project.id,
        model,
        version,
        method="per_label",
        calibrator=calibrator.to_dict(),
        threshold=chosen.threshold,
        report=report,
    )
    applied = apply(project, model, version, calibrator)
    project.update_settings(
        threshold=chosen.threshold,
        label_thresholds=None,
        # Remembered so that `learn` (and retraining in the server) recalibrates the same way.
        calibration_options={
            "method": method,
            "budget": budget,
            "target_accuracy": target_accuracy,
        },
    )
    return Calibrated(model, version, len(gold), applied, report)


def apply(
    project: Project,
    model: str,
    version: str,
    calibrator: Any,
    item_ids: Sequence[int] | None = None,
) -> int:
    """Each prediction's calibrated set and least confident calibrated decision (of every
    prediction of the key, or of its predictions on these items)."""
    labels = project.labels
    with project.store.session() as session:
        rows = prediction_probabilities(session, project.id, model, version, item_ids)
        if not rows:
            return 0
        calibrated = calibrator.transform(_matrix([p for _, p in rows], labels))
        least = np.maximum(calibrated, 1.0 - calibrated).min(axis=1)
        chosen = calibrated >= 0.5
        replace_predictions(
            session,
            [
                {
                    "id": pid,
                    "calibrated_confidence": float(least[k]),
                    "calibrated_labels": [lab for j, lab in enumerate(labels) if chosen[k, j]],
                }
                for k, (pid, _) in enumerate(rows)
            ],
        )
    project.refresh_item_predictions(item_ids)
    return len(rows)


def calibrator_in_force(project: Project, key: tuple[str, str]) -> Any:
    """The per-label calibrator in force for the predictor `key`, if any."""
    from ..multilabel import PerLabelCalibrator

    stored = active_calibration(project.store, project.id, *key)
    if stored is None or stored.calibrator.get("kind") != "per_label":
        return None
    return PerLabelCalibrator.from_dict(stored.calibrator)


def calibrated_probabilities(project: Project) -> tuple[list[int], np.ndarray]:
    """The item ids showing a prediction of the active predictor and their (items x labels)
    probabilities, calibrated by the per-label calibration in force (as given where there is
    none): what routing decides on, and what calibration error is measured on."""
    active = project.active_predictor()
    if active is None:
        return [], np.empty((0, len(project.labels)))
    calibrator = calibrator_in_force(project, active)
    with project.store.session() as session:
        rows = predicted_items(session, project.id)
        by_prediction = dict(prediction_probabilities(session, project.id, *active))
    known = [(item_id, by_prediction[pid]) for item_id, pid in rows if pid in by_prediction]
    if not known:
        return [], np.empty((0, len(project.labels)))
    proba = _matrix([p for _, p in known], project.labels)
    if calibrator is not None:
        proba = calibrator.transform(proba)
    return [item_id for item_id, _ in known], proba


def label_scores(
    project: Project, key: tuple[str, str], probs: Sequence[Mapping[str, Any] | None]
) -> list[dict[str, float | None] | None]:
    """Each prediction's per-label probabilities as a person or a tool is shown them:
    calibrated by the per-label calibration in force for `key` when there is one; None for a
    prediction without probabilities, and for a label its predictor gave none."""
    labels = project.labels
    known = [k for k, p in enumerate(probs) if p]
    out: list[dict[str, float | None] | None] = [None] * len(probs)
    if not known:
        return out
    raw = np.array([label_probabilities(probs[k], labels) for k in known], dtype=float)
    proba = _matrix([probs[k] or {} for k in known], labels)
    calibrator = calibrator_in_force(project, key)
    if calibrator is not None:
        proba = calibrator.transform(proba)
    for row, k in enumerate(known):
        out[k] = {
            label: None if np.isnan(raw[row, j]) else round(float(proba[row, j]), 4)
            for j, label in enumerate(labels)
        }
    return out


@dataclass(frozen=True, slots=True)
class MultiLabelRouting(Result):
    """What multi-label routing decided (`Project.route`): the threshold and the project's
    counts after it; `to_dict` (what `route --json` prints) flattens the counts beside it."""

    threshold: float
    stats: Stats

    @property
    def auto_accepted(self) -> int:
        return self.stats.auto_accepted

    @property
    def in_review(self) -> int:
        return self.stats.in_review

    @property
    def human_labeled(self) -> int:
        return self.stats.human_labeled

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, **self.stats.to_dict()}


def route(project: Project, threshold: float | None = None) -> MultiLabelRouting:
    """Auto-accept items whose every label decision is confident; send the others to review
    with the labels to ask about."""
    from ..multilabel import route as route_labels

    settings = project.settings
    t = float(settings.get("threshold", 0.9) if threshold is None else threshold)
    if not 0.0 <= t <= 1.0:
        raise InputError(f"the threshold must lie in [0, 1], not {t}")
    uncertain: dict[int, list[str]] = {}
    known, proba = calibrated_probabilities(project)
    if known:
        asked = route_labels(proba, t).uncertain_labels(project.labels)
        uncertain = {item_id: asked[k] for k, item_id in enumerate(known) if asked[k]}
    with project.store.session() as session:
        route_items(session, project.id, t, {})
        settle_routed_sets(session, project.id, uncertain)
        waiting.settle(session.connection(), project.id)  # tasks came and went
    project.update_settings(threshold=t, routed=True)
    return MultiLabelRouting(t, project.stats())


@dataclass(frozen=True, slots=True)
class MultiLabelSelection(Result):
    """What a multi-label round queued (`Project.select`); `to_dict` is `select --json`."""

    strategy: str
    k: int
    selected: int  # items the strategy picked
    queued: int  # of them, newly queued
    trusted_labels: int  # items with a final set of labels
    stopping: dict[str, Any]


def select(
    project: Project,
    strategy: str,
    k: int,
    *,
    random_state: int = 0,
    label_budget_total: int | None = None,
    target: float | None = None,
    **_: Any,
) -> MultiLabelSelection:
    """Queue the `k` pool items the multi-label `strategy` ranks first (see
    `active.strategies.multilabel`: ml-mean-uncertainty, ml-max-uncertainty, mmc), and check
    the stopping rules (`_stopping`)."""
    from ..active.strategies import MULTILABEL_STRATEGIES, get_multilabel_strategy
    from ..review.queues import enqueue
    from ..vocabulary import Queue

    if k <= 0:
        raise InputError(f"--k must be positive, not {k}")
    if strategy not in MULTILABEL_STRATEGIES:
        raise InputError(
            f"unknown strategy {strategy!r} for a multi-label project; choose from "
            + ", ".join(MULTILABEL_STRATEGIES)
        )
    active = project.active_predictor()
    if active is None:
        raise NotReadyError("select ranks predictions; run `labelloop prelabel` first")
    labels = project.labels
    with project.store.session() as session:
        pool = pool_probabilities(session, project.id, active)
    if not pool:
        raise InputError("the project has no pool items; import some first")
    proba = _matrix([probs or {} for _, _, probs, _ in pool], labels)
    calibrator = calibrator_in_force(project, active)
    if calibrator is not None:
        proba = calibrator.transform(proba)
    done = np.array([taken for _, taken, _, _ in pool], dtype=bool)
    params = {"labels": indicator([s for *_, s in pool], labels)} if strategy == "mmc" else {}
    chooser = get_multilabel_strategy(strategy, **params)
    picked = chooser.select(k, proba=proba, labeled_mask=done, random_state=random_state)
    chosen = [pool[int(i)][0] for i in picked]
    queued = enqueue(project, chosen, queue=Queue.ACTIVE)
    trusted = sum(final is not None for *_, final in pool)
    stopping, decisions = _stopping(
        project,
        [item_id for item_id, *_ in pool],
        proba,
        done,
        calibrated=calibrator is not None,
        trusted=trusted,
        budget=label_budget_total,
        target=target,
    )
    uids = stored_items.uids_of(project.store, project.id, chosen) if chosen else {}
    rounds.save_round(
        project.store,
        project.id,
        strategy,
        k,
        [uids[item_id] for item_id in chosen],
        {"trusted_labels": trusted, "stopping": stopping, "stop_set_decisions": decisions},
    )
    return MultiLabelSelection(strategy, k, len(chosen), queued, trusted, stopping)


#: Stopping rule `pool_uncertainty`: the largest mean per-label uncertainty of calibrated
#: decisions on the unlabeled items (their expected share of wrong decisions) at which to stop.
UNCERTAINTY_BOUND = 0.05


def _stopping(
    project: Project,
    ids: list[int],
    proba: np.ndarray,
    done: np.ndarray,
    *,
    calibrated: bool,
    trusted: int,
    budget: int | None,
    target: float | None,
) -> tuple[dict[str, Any], list[str]]:
    """The single-label rules for label sets, each decision with its reason, and `stop` when
    any says so: the label budget; the target subset accuracy of the calibrated sets on gold
    (Clopper–Pearson lower bound); stabilising decisions, every label's on a fixed stop set
    (`StabilizingLabelSets`); and, once calibrated, the pool's mean per-label uncertainty
    below `UNCERTAINTY_BOUND`. Also this round's decisions on the stop set, which the next
    round compares with (one string of 0/1 per item).

    A round counts towards stability only when people labeled items since the previous one:
    `select` run again on the same answers sees the same decisions, which says nothing."""
    labels = project.labels
    rules: dict[str, Any] = {}
    if budget is not None:
        decision = label_budget(trusted, budget)
        rules["label_budget"] = {"stop": decision.stop, "reason": decision.reason}
    active = project.active_predictor()
    if target is not None and active is not None:
        with project.store.session() as session:
            gold = gold_probabilities(session, project.id, *active)
        match = np.zeros(len(gold), dtype=int)
        if gold:
            predicted = _matrix([p for p, _ in gold], labels)
            calibrator = calibrator_in_force(project, active)
            if calibrator is not None:
                predicted = calibrator.transform(predicted)
            truth = indicator([g for _, g in gold], labels).astype(bool)
            match = np.all((predicted >= 0.5) == truth, axis=1).astype(int)
        decision = target_accuracy(np.ones_like(match), match, target, measure="subset accuracy")
        rules["target_accuracy"] = {"stop": decision.stop, "reason": decision.reason}
    chosen = stop_set(ids)
    current = [_bits(row) for row in proba[chosen] >= 0.5]
    history: list[tuple[int, list[str]]] = []
    for metrics in rounds.round_metrics(project.store, project.id):
        previous = metrics.get("stop_set_decisions")
        if previous and len(previous) == len(current):
            history.append((int(metrics.get("trusted_labels", 0)), previous))
    history.append((trusted, current))
    # Of rounds with no new answers in between, the latest stands for them all.
    counted = [
        bits
        for (answers, bits), after in zip(history, [*history[1:], None], strict=True)
        if after is None or after[0] != answers
    ]
    stability = StabilizingLabelSets(labels=labels)
    for bits in counted:
        decision = stability.update(np.array([[c == "1" for c in b] for b in bits], dtype=bool))
    rules["stabilizing_predictions"] = {"stop": decision.stop, "reason": decision.reason}
    if calibrated:
        decision = pool_uncertainty(proba[~done], UNCERTAINTY_BOUND, labels)
        rules["pool_uncertainty"] = {"stop": decision.stop, "reason": decision.reason}
    else:
        rules["pool_uncertainty"] = {
            "stop": False,
            "reason": "needs calibrated probabilities: run `labelloop calibrate`",
        }
    rules["stop"] = any(verdict["stop"] for verdict in rules.values())
    return rules, current


def _bits(row: np.ndarray) -> str:
    """One item's decisions as a string of 0/1, a label per character."""
    return "".join("1" if applies else "0" for applies in row)


@dataclass(frozen=True, slots=True)
class MultiLabelAgreement(Result):
    """Agreement of a multi-label project's raters (`Project.agreement`); `to_dict` is what
    `agreement --json` sends."""

    raters: list[str]
    items: int  # items rated by at least two raters
    krippendorff_alpha: dict[str, Any]  # estimate (MASI distance) and how to read it
    per_label_kappa: dict[str, float | None]  # each label's Cohen's kappa, None: undefined
    vs_majority: list[dict[str, Any]]  # each rater's micro F1 against the others' majority


def agreement(
    project: Project, *, n_boot: int = 1000, random_state: int = 0, **_: Any
) -> MultiLabelAgreement:
    """Agreement of set-valued answers: Krippendorff's alpha with the MASI distance, each
    label's Cohen's kappa, and each rater's micro F1 against the majority of the others.

    Raters are the people (each one's latest set per item) and the labelers' predictions."""
    from ..agreement.multilabel import annotator_f1, krippendorff_alpha_masi, per_label_kappa

    labels = project.labels
    with project.store.session() as session:
        given = rater_sets(session, project.id)
    latest: dict[str, dict[int, list[str]]] = {}
    for rater, item_id, chosen in given:
        latest.setdefault(rater, {})[item_id] = chosen
    items = sorted({item_id for sets in latest.values() for item_id in sets})
    raters = sorted(latest)
    if len(raters) < 2 or not items:
        raise NotReadyError(
            "agreement needs at least two raters on the same items (annotators' answers or "
            "LLM predictions); found " + (", ".join(raters) or "none")
        )
    data = [[latest[r].get(item_id) for item_id in items] for r in raters]
    kappas = per_label_kappa(data, labels)
    alpha = krippendorff_alpha_masi(data, labels)
    f1 = annotator_f1(data, labels, raters=raters, n_boot=n_boot, random_state=random_state)
    return MultiLabelAgreement(
        raters=raters,
        items=len(items),
        krippendorff_alpha={
            "estimate": _finite(alpha),
            "interpretation": "label sets compared with the MASI distance",
        },
        per_label_kappa={label: _finite(kappas[label]) for label in labels},
        vs_majority=[
            {
                **row.f1.to_dict(),
                "rater": row.rater,
                "precision": _finite(row.precision),
                "recall": _finite(row.recall),
                "n_items": row.n_items,
                "measure": "F1",
                "interpretation": "micro F1 of the label decisions",
            }
            for row in f1
        ],
    )


def _finite(value: float) -> float | None:
    """JSON has no NaN: an undefined statistic is null."""
    return None if value != value else float(value)


def label_issues(project: Project, *, top: int = 50, queue: bool = True) -> LabelIssues:
    """Multi-label items whose final set the model confidently disagrees with, label by label.

    The per-label probabilities compared are the student's where it has scored labeled items
    (out-of-fold), else the active labeler's own (it never saw anyone's labels), on the items
    people or reviewers labeled and on gold. Each label is searched by confident learning on
    its own (`agreement.find_label_set_issues`); an item's suspects are its doubtful labels.
    The `top` most suspicious items go to the recheck queue.
    """
    from ..agreement import find_label_set_issues
    from .agreement import RECHECK_QUEUE, LabelIssues, SetSuspect
    from .learn import STUDENT

    labels = project.labels
    rows = labeled_set_probabilities(project.store, project.id, STUDENT)
    if not rows:
        active = project.active_predictor()
        if active is None:
            raise NotReadyError("no predictions yet; run `labelloop prelabel` first")
        found = labeled_set_probabilities(project.store, project.id, *active)
        rows = [r for r in found if r[3] != LabelSource.LLM]  # not the labeler's own sets
    if not rows:
        raise NotReadyError(
            "no item with a set from people or gold has a prediction yet; label some items"
        )
    y = indicator([r[2] for r in rows], labels)
    issues = find_label_set_issues(y, _matrix([r[4] for r in rows], labels))
    doubtful: dict[int, dict[str, float]] = {}
    for k, j, score in zip(issues.items, issues.labels, issues.scores, strict=True):
        doubtful.setdefault(int(k), {})[labels[int(j)]] = round(float(score), 4)
    ranked = sorted(doubtful, key=lambda k: (min(doubtful[k].values()), k))[:top]
    suspects = [
        SetSuspect(
            id=rows[k][1],
            labels=list(rows[k][2]),
            doubtful=[lab for lab in labels if lab in doubtful[k]],
            suggested=[lab for lab in labels if (lab in rows[k][2]) != (lab in doubtful[k])],
            score=min(doubtful[k].values()),
            scores={lab: doubtful[k][lab] for lab in labels if lab in doubtful[k]},
        )
        for k in ranked
    ]
    queued = 0
    if queue and suspects:
        queued = review.enqueue(project, [rows[k][0] for k in ranked], queue=RECHECK_QUEUE)
    return LabelIssues(checked=len(rows), suspects=suspects, queued=queued)
