"""Threshold search for routing: auto-accept an item iff its confidence >= threshold.

Every search sorts the gold items once and walks all distinct confidence values with cumulative
sums (O(n log n)), so the answer is exact, not the best point of a grid. The candidate cuts are
the distinct confidences themselves (auto-accept everything at or above the value) plus one cut
just above the largest confidence (review everything). Choosing an observed value rather than a
midpoint sends unseen confidences between two gold values to review: the cautious side.

Reviewed items are assumed to be labeled right by people, as in the seed: the *overall* accuracy
of a cut is (right auto-accepted + reviewed) / n.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta

from ._validation import as_confidences, as_correct

_TOL = 1e-9


@dataclass(frozen=True)
class ThresholdCurve:
    """All candidate cuts in decreasing threshold order (accept-nothing first)."""

    thresholds: NDArray[np.float64]
    n_auto: NDArray[np.int64]
    n_auto_correct: NDArray[np.int64]
    n: int
    n_correct: int

    @property
    def n_review(self) -> NDArray[np.int64]:
        return self.n - self.n_auto

    @property
    def overall_correct(self) -> NDArray[np.int64]:
        return self.n_auto_correct + self.n_review

    @property
    def auto_errors(self) -> NDArray[np.int64]:
        return self.n_auto - self.n_auto_correct


def threshold_curve(confidences: ArrayLike, correct: ArrayLike) -> ThresholdCurve:
    """Sort once; count accepted and accepted-correct items for every distinct cut."""
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size).astype(np.int64)
    n = conf.size
    if n == 0:
        raise ValueError("threshold search needs at least one gold item")
    order = np.argsort(-conf, kind="stable")
    sorted_conf, cum_correct = conf[order], np.cumsum(corr[order])
    last_of_value = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True])
    above_all = np.nextafter(sorted_conf[0], np.inf)
    return ThresholdCurve(
        thresholds=np.r_[above_all, sorted_conf[last_of_value]],
        n_auto=np.r_[0, last_of_value + 1].astype(np.int64),
        n_auto_correct=np.r_[0, cum_correct[last_of_value]].astype(np.int64),
        n=n,
        n_correct=int(cum_correct[-1]),
    )


@dataclass(frozen=True)
class ThresholdResult:
    """One chosen cut and what it gives on the gold items."""

    threshold: float
    expected_accuracy: float
    review_rate: float
    auto_accuracy: float | None
    n_auto: int
    n_review: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Request(TypedDict):
    """The fields of a `CertifiedThreshold` that restate what was asked."""

    target_accuracy: float
    confidence_level: float
    procedure: str
    n_gold: int


def _result(curve: ThresholdCurve, j: int) -> ThresholdResult:
    n_auto = int(curve.n_auto[j])
    return ThresholdResult(
        threshold=float(curve.thresholds[j]),
        expected_accuracy=float(curve.overall_correct[j] / curve.n),
        review_rate=float(curve.n_review[j] / curve.n),
        auto_accuracy=float(curve.n_auto_correct[j] / n_auto) if n_auto else None,
        n_auto=n_auto,
        n_review=int(curve.n_review[j]),
        n=curve.n,
    )


def evaluate_threshold(
    confidences: ArrayLike, correct: ArrayLike, threshold: float
) -> ThresholdResult:
    """What a given threshold gives on the gold items."""
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size)
    auto = conf >= threshold
    n, n_auto = conf.size, int(auto.sum())
    n_auto_correct = int(corr[auto].sum())
    return ThresholdResult(
        threshold=float(threshold),
        expected_accuracy=(n_auto_correct + n - n_auto) / n,
        review_rate=(n - n_auto) / n,
        auto_accuracy=n_auto_correct / n_auto if n_auto else None,
        n_auto=n_auto,
        n_review=n - n_auto,
        n=n,
    )


def _check_fraction(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def max_review_count(budget: float, n: int) -> int:
    """The largest number of items a review budget (a fraction of n) allows."""
    return math.floor(_check_fraction(budget, "budget") * n + _TOL)


def threshold_for_budget(
    confidences: ArrayLike, correct: ArrayLike, budget: float
) -> ThresholdResult:
    """Best overall accuracy with at most `budget` (a fraction) of the items sent to review.

    Overall accuracy never falls as more items are reviewed, so the answer is the cut with the
    most review inside the budget. Among cuts of equal accuracy on the gold items the one with
    most review wins too: once a finite gold set shows no error left above a cut, the items
    routed later still hold some (every confidence below 1 says so), and the budget is the review
    the user allowed. Any budget in [0, 1] is feasible: accepting everything reviews nothing.
    """
    curve = threshold_curve(confidences, correct)
    feasible = np.flatnonzero(curve.n_review <= max_review_count(budget, curve.n))
    best = curve.overall_correct[feasible].max()
    return _result(curve, int(feasible[curve.overall_correct[feasible] == best][0]))


def threshold_for_accuracy(
    confidences: ArrayLike,
    correct: ArrayLike,
    target_accuracy: float,
    of: Literal["overall", "accepted"] = "overall",
) -> ThresholdResult:
    """Least review that reaches `target_accuracy`.

    `of="overall"` targets the accuracy of the final dataset (reviewed items counted right), which
    reviewing everything always reaches. `of="accepted"` targets the accuracy of the auto-accepted
    items alone; when no cut reaches it, everything is reviewed (auto_accuracy is None).
    """
    target = _check_fraction(target_accuracy, "target_accuracy")
    curve = threshold_curve(confidences, correct)
    if of == "overall":
        ok = curve.overall_correct >= target * curve.n - _TOL
    elif of == "accepted":
        ok = (curve.n_auto == 0) | (curve.n_auto_correct >= target * curve.n_auto - _TOL)
    else:
        raise ValueError(f"of must be 'overall' or 'accepted', got {of!r}")
    return _result(curve, int(np.flatnonzero(ok)[-1]))


def accept_mask(
    confidences: ArrayLike,
    threshold: float,
    predicted: ArrayLike | None = None,
    per_label: dict[Any, float] | None = None,
) -> NDArray[np.bool_]:
    """The routing rule: auto-accept iff confidence >= the threshold of the predicted label
    (`per_label`, when given and the label is in it) or else the global `threshold`."""
    conf = as_confidences(confidences)
    if not per_label or predicted is None:
        return conf >= threshold
    pred = np.asarray(predicted, dtype=object)
    cut = np.fromiter(
        (per_label.get(p, threshold) for p in pred), dtype=np.float64, count=pred.size
    )
    return conf >= cut


# -- per-label thresholds ------------------------------------------------------------------------

#: Above this many (candidate x budget) cells the per-label search thins each label's candidates
#: to evenly spaced cuts, so its cost stays bounded on very large gold sets.
_MAX_DP_CELLS = 50_000_000


@dataclass(frozen=True)
class PerLabelResult:
    """One threshold per predicted label, chosen jointly under one global budget or target."""

    thresholds: dict[str, float]
    expected_accuracy: float
    review_rate: float
    n_review: int
    n: int
    per_label: dict[str, dict[str, Any]] = field(default_factory=dict)
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_label_thresholds(
    confidences: ArrayLike,
    correct: ArrayLike,
    predicted: ArrayLike,
    budget: float | None = None,
    target_accuracy: float | None = None,
) -> PerLabelResult:
    """Per-predicted-label thresholds under a global budget or a global (overall) target.

    Method: an exact multiple-choice knapsack by dynamic programming. Each label offers its cuts,
    each costing the items it reviews and gaining the wrong predictions it catches; the table
    holds, for every total review count b, the most wrong predictions caught with review <= b.
    With a budget, the smallest b reaching the best value within the budget is chosen; with a
    target, the smallest b that catches enough wrong predictions. Cost is
    O(candidates x (max review + 1)); beyond 5e7 cells each label's cuts are thinned to evenly
    spaced ones (`exact` is then False). Fitted on few gold items per label, per-label thresholds
    overfit more easily than one global threshold: prefer them on larger gold sets.
    """
    if (budget is None) == (target_accuracy is None):
        raise ValueError("give exactly one of budget or target_accuracy")
    conf = as_confidences(confidences)
    corr = as_correct(correct, conf.size)
    pred = np.asarray(predicted)
    if pred.shape != conf.shape:
        raise ValueError(f"predicted must have shape {conf.shape}, got {pred.shape}")
    n = conf.size
    if n == 0:
        raise ValueError("threshold search needs at least one gold item")
    labels, label_idx = np.unique(pred, return_inverse=True)
    curves = [
        threshold_curve(conf[label_idx == k], corr[label_idx == k]) for k in range(labels.size)
    ]
    if budget is not None:
        cap = max_review_count(budget, n)
        needed = None
    else:
        target = _check_fraction(target_accuracy, "target_accuracy")  # type: ignore[arg-type]
        cap = n
        needed = max(0, math.ceil(target * n - _TOL) - int(corr.sum()))
    candidates, exact = _dp_candidates(curves, cap)
    best, choice = _knapsack(curves, candidates, cap)
    if needed is None:
        b = int(np.flatnonzero(best == best[cap])[0])
    else:
        b = int(np.flatnonzero(best >= needed)[0])
    picks = _backtrack(curves, candidates, choice, b)
    return _per_label_result(labels, curves, picks, n, exact)


def _dp_candidates(curves: list[ThresholdCurve], cap: int) -> tuple[list[NDArray[np.intp]], bool]:
    """Candidate cut indices per label; all of them unless the table would be too large."""
    full = [np.flatnonzero(c.n_review <= cap) for c in curves]
    cells = sum(idx.size for idx in full) * (cap + 1)
    if cells <= _MAX_DP_CELLS:
        return full, True
    per_label = max(2, _MAX_DP_CELLS // ((cap + 1) * len(curves)))
    thinned = [
        np.unique(idx[np.linspace(0, idx.size - 1, min(per_label, idx.size)).astype(np.intp)])
        for idx in full
    ]
    return thinned, False


def _knapsack(
    curves: list[ThresholdCurve], candidates: list[NDArray[np.intp]], cap: int
) -> tuple[NDArray[np.float64], list[NDArray[np.intp]]]:
    best = np.zeros(cap + 1)
    choice: list[NDArray[np.intp]] = []
    for curve, idx in zip(curves, candidates, strict=True):
        cost = curve.n_review[idx]
        gain = ((curve.n - curve.n_correct) - curve.auto_errors)[idx]
        new = np.full(cap + 1, -np.inf)
        pick = np.zeros(cap + 1, dtype=np.intp)
        for j, (r, w) in enumerate(zip(cost, gain, strict=True)):
            cand = best[: cap + 1 - r] + w
            better = cand > new[r:]
            new[r:][better] = cand[better]
            pick[r:][better] = j
        best = new
        choice.append(pick)
    return best, choice


def _backtrack(
    curves: list[ThresholdCurve],
    candidates: list[NDArray[np.intp]],
    choice: list[NDArray[np.intp]],
    b: int,
) -> list[int]:
    picks = [0] * len(curves)
    for k in range(len(curves) - 1, -1, -1):
        j = int(candidates[k][choice[k][b]])
        picks[k] = j
        b -= int(curves[k].n_review[j])
    return picks


def _per_label_result(
    labels: NDArray[Any], curves: list[ThresholdCurve], picks: list[int], n: int, exact: bool
) -> PerLabelResult:
    per_label = {
        str(lab): _result(c, j).to_dict() for lab, c, j in zip(labels, curves, picks, strict=True)
    }
    n_review = sum(int(c.n_review[j]) for c, j in zip(curves, picks, strict=True))
    overall = sum(int(c.overall_correct[j]) for c, j in zip(curves, picks, strict=True))
    return PerLabelResult(
        thresholds={k: v["threshold"] for k, v in per_label.items()},
        expected_accuracy=overall / n,
        review_rate=n_review / n,
        n_review=n_review,
        n=n,
        per_label=per_label,
        exact=exact,
    )


# -- guarantee ---------------------------------------------------------------------------------


def clopper_pearson_upper(errors: ArrayLike, n: ArrayLike, confidence_level: float) -> NDArray:
    """One-sided Clopper–Pearson upper bound on an error rate from `errors` out of `n`."""
    e, m = np.asarray(errors, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ub = beta.ppf(confidence_level, e + 1.0, np.maximum(m - e, 1e-300))
    return np.where((e >= m) | (m <= 0), 1.0, ub)


@dataclass(frozen=True)
class CertifiedThreshold:
    """A threshold whose auto-accepted accuracy is at least `target_accuracy` with probability
    `confidence_level` (or why none could be certified)."""

    certified: bool
    target_accuracy: float
    confidence_level: float
    procedure: str
    threshold: float | None
    accuracy_lower_bound: float | None
    review_rate: float
    n_gold: int
    n_accepted_gold: int
    accepted_errors: int
    additional_gold_needed: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def min_items_for_bound(
    error_rate: ArrayLike, target_error: float, confidence_level: float
) -> NDArray[np.float64]:
    """Fewest accepted items at which the observed `error_rate` certifies `target_error`
    (element-wise; NaN where the rate is not below the target)."""
    rate = np.atleast_1d(np.asarray(error_rate, dtype=np.float64))
    feasible = rate < target_error

    def ok(m: NDArray[np.float64]) -> NDArray[np.bool_]:
        return clopper_pearson_upper(rate * m, m, confidence_level) <= target_error

    hi = np.ones_like(rate)
    while np.any(todo := feasible & ~ok(hi) & (hi < 2.0**40)):
        hi[todo] *= 2.0
    lo = np.floor(hi / 2.0)
    while np.any(todo := feasible & (lo + 1.0 < hi)):
        mid = np.floor((lo + hi) / 2.0)
        good = ok(mid)
        hi = np.where(todo & good, mid, hi)
        lo = np.where(todo & ~good, mid, lo)
    return np.where(feasible & ok(hi), hi, np.nan)


def certify_threshold(
    confidences: ArrayLike,
    correct: ArrayLike,
    target_accuracy: float,
    confidence_level: float = 0.95,
    procedure: Literal["fixed_sequence", "pointwise"] = "fixed_sequence",
) -> CertifiedThreshold:
    """The lowest threshold whose auto-accepted items have accuracy >= target, certified by a
    one-sided Clopper–Pearson bound at `confidence_level`.

    Testing many thresholds and keeping the lowest that passes would inflate the failure rate, so
    the default `fixed_sequence` procedure (as in Learn-then-Test) tests cuts from the highest
    down, starting at the first cut with enough accepted items to pass at all, and stops at the
    first cut that fails; the chance that the chosen threshold misses the target is then at most
    1 - confidence_level. `pointwise` keeps the lowest passing cut regardless (more coverage, a
    weaker guarantee). Gold items are assumed to be a random sample of the items to be routed.
    """
    target = _check_fraction(target_accuracy, "target_accuracy")
    level = float(confidence_level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence_level must lie in (0, 1), got {confidence_level}")
    curve = threshold_curve(confidences, correct)
    eps = 1.0 - target
    ub = clopper_pearson_upper(curve.auto_errors, curve.n_auto, level)
    passing = (ub <= eps) & (curve.n_auto > 0)
    if procedure == "pointwise":
        chosen = np.flatnonzero(passing)
    elif procedure == "fixed_sequence":
        start_n = min_items_for_bound(0.0, eps, level)[0]
        start = np.flatnonzero(curve.n_auto >= start_n)[:1] if start_n > 0 else np.zeros(0, np.intp)
        chosen = np.zeros(0, dtype=np.intp)
        if start.size and passing[start[0]]:
            run_end = np.flatnonzero(~passing[start[0] :])
            stop = start[0] + (run_end[0] if run_end.size else passing.size - start[0])
            chosen = np.arange(start[0], stop)
    else:
        raise ValueError(f"procedure must be 'fixed_sequence' or 'pointwise', got {procedure!r}")
    common = _Request(
        target_accuracy=target, confidence_level=level, procedure=procedure, n_gold=curve.n
    )
    if chosen.size:
        j = int(chosen[-1])
        return CertifiedThreshold(
            certified=True,
            threshold=float(curve.thresholds[j]),
            accuracy_lower_bound=float(1.0 - ub[j]),
            review_rate=float(curve.n_review[j] / curve.n),
            n_accepted_gold=int(curve.n_auto[j]),
            accepted_errors=int(curve.auto_errors[j]),
            additional_gold_needed=0,
            message=(
                f"accuracy >= {target:.3f} certified at {level:.0%} confidence on "
                f"{int(curve.n_auto[j])} auto-accepted gold items ({int(curve.auto_errors[j])} "
                "wrong)"
            ),
            **common,
        )
    return _uncertified(curve, eps, level, common)


def _uncertified(
    curve: ThresholdCurve, eps: float, level: float, common: _Request
) -> CertifiedThreshold:
    """Review everything, and estimate how many gold items a certificate would need: for every
    cut whose observed error rate is below the target, the accepted items the bound needs at that
    rate, divided by the share of items the cut accepts; the smallest total wins."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = curve.auto_errors / curve.n_auto
    promising = np.flatnonzero((curve.n_auto > 0) & (rate < eps))
    additional: int | None = None
    if promising.size:
        need = min_items_for_bound(rate[promising], eps, level)
        total = need * curve.n / curve.n_auto[promising]
        if np.any(np.isfinite(total)):
            additional = max(1, math.ceil(np.nanmin(total)) - curve.n)
    message = (
        f"cannot certify accuracy >= {1 - eps:.3f} at {level:.0%} confidence with {curve.n} gold "
        "items; everything goes to review"
    )
    message += (
        f"; about {additional} more gold items would be needed at the observed error rate"
        if additional is not None
        else "; no threshold has an observed error rate below the target"
    )
    return CertifiedThreshold(
        certified=False,
        threshold=float(curve.thresholds[0]),
        accuracy_lower_bound=None,
        review_rate=1.0,
        n_accepted_gold=0,
        accepted_errors=0,
        additional_gold_needed=additional,
        message=message,
        **common,
    )


# -- audit ---------------------------------------------------------------------------------------


def audit_sample(
    accepted: ArrayLike, rate: float, random_state: int | np.random.Generator | None = None
) -> NDArray[np.bool_]:
    """Pick round(rate x accepted) of the auto-accepted items (at least one when rate > 0) for
    review, uniformly at random, so their accuracy keeps being measured in production."""
    mask = np.asarray(accepted, dtype=bool)
    rate = _check_fraction(rate, "audit rate")
    pool = np.flatnonzero(mask)
    k = min(pool.size, max(1 if rate > 0 else 0, round(rate * pool.size)))
    rng = np.random.default_rng(random_state)
    out = np.zeros(mask.shape, dtype=bool)
    out[rng.choice(pool, size=k, replace=False)] = True
    return out


def audit_estimate(correct: ArrayLike, confidence_level: float = 0.95) -> dict[str, Any]:
    """Running estimate of auto-accepted accuracy from audited items, in audit order.

    Returns the final point estimate and two-sided Clopper–Pearson interval, plus the same as
    lists after each audit (`running_*`), JSON-able.
    """
    corr = np.asarray(correct, dtype=np.float64)
    if corr.ndim != 1:
        raise ValueError("audited correctness must be one-dimensional")
    corr = as_correct(corr, corr.size)
    m = np.arange(1, corr.size + 1, dtype=np.float64)
    k = np.cumsum(corr)
    alpha = 1.0 - float(confidence_level)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(k > 0, beta.ppf(alpha / 2, k, m - k + 1), 0.0)
        upper = np.where(k < m, beta.ppf(1 - alpha / 2, k + 1, np.maximum(m - k, 1e-300)), 1.0)
    point = k / m
    last = corr.size - 1
    return {
        "n_audited": int(corr.size),
        "n_correct": int(k[last]) if corr.size else 0,
        "accuracy": float(point[last]) if corr.size else None,
        "lower": float(lower[last]) if corr.size else 0.0,
        "upper": float(upper[last]) if corr.size else 1.0,
        "confidence_level": float(confidence_level),
        "running_accuracy": point.tolist(),
        "running_lower": lower.tolist(),
        "running_upper": upper.tolist(),
    }
