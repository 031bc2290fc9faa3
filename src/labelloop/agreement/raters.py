"""Each rater (a person, or an LLM with its prompt version) against the others.

* the pairwise Cohen's kappa matrix;
* each rater against the leave-one-out majority of the others;
* the copying check: a rater that sides with one partner exactly where that partner departs from
  the consensus of the remaining raters, far more often than its own error pattern predicts, is
  flagged together with the items behind it (an LLM mimicking one annotator's bias, or two
  annotators sharing answers);
* accuracy on gold items with a Wilson or Clopper-Pearson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from labelloop.agreement._encode import MISSING, Codes, count_table, encode_labels
from labelloop.agreement.dawid_skene import LatentClassFit, fit_dawid_skene
from labelloop.agreement.metrics import (
    Weights,
    kappa_from_confusion,
    pair_confusion,
    reliability_codes,
)


# --------------------------------------------------------------------------- pairwise
def pairwise_kappa_codes(
    codes: Codes, n_categories: int, weights: Weights = None
) -> NDArray[np.float64]:
    """Raters × raters Cohen's kappa; NaN for a pair that shares no rated item."""
    n_raters = codes.shape[0]
    matrix = np.eye(n_raters)
    for r, s in combinations(range(n_raters), 2):
        confusion = pair_confusion(codes[r], codes[s], n_categories)
        value = kappa_from_confusion(confusion, weights) if confusion.sum() else np.nan
        matrix[r, s] = matrix[s, r] = value
    return matrix


def pairwise_cohens_kappa(
    reliability_data: Any, labels: Sequence[Any] | None = None, weights: Weights = None
) -> NDArray[np.float64]:
    """Cohen's kappa of every pair of raters (rows of `reliability_data`), as a symmetric matrix."""
    codes, categories = reliability_codes(reliability_data, labels)
    return pairwise_kappa_codes(codes, len(categories), weights)


# --------------------------------------------------------------------------- majority
def plurality(
    table: NDArray[np.integer], removed: Sequence[Codes] = (), min_votes: int = 1
) -> Codes:
    """Each item's most voted category in an items × categories table, leaving out the votes in
    `removed` (code rows); -1 where the top is tied or has fewer than `min_votes` votes."""
    votes = table.T.copy()  # categories × items: reductions run over contiguous rows
    categories = np.arange(votes.shape[0])[:, None]
    for row in removed:
        np.subtract(votes, row[None, :] == categories, out=votes)
    best = votes.max(axis=0)
    top = votes == best
    unique = top.sum(axis=0) == 1
    winner = (top * categories).sum(axis=0)  # the top category's index where it is unique
    return np.where(unique & (best >= max(min_votes, 1)), winner, MISSING)


def loo_majority_codes(codes: Codes, n_categories: int, min_votes: int = 1) -> Codes:
    """Raters × items: the plurality label of the *other* raters (-1 when tied or absent).

    Equal to ``plurality(table, [codes[r]])`` for each rater r, but the table is scanned once:
    taking one vote away can only change the winner when that vote was at the top.
    """
    votes = count_table(codes, n_categories).T  # categories × items
    n_items = votes.shape[1]
    top = votes.max(axis=0).astype(np.int64)
    at_top = votes == top
    n_top = at_top.sum(axis=0)
    first = at_top.argmax(axis=0)
    last = n_categories - 1 - at_top[::-1].argmax(axis=0)
    second = np.where(at_top, -1, votes).max(axis=0)
    keep = np.where(n_top == 1, first, MISSING)  # result when the removed vote is not at the top
    majority = np.empty_like(codes)
    for r, row in enumerate(codes):
        own = np.where(
            row >= 0, votes.ravel()[np.maximum(row, 0) * n_items + np.arange(n_items)], -1
        )
        hit = (row >= 0) & (own == top)
        winner = np.where(hit, MISSING, keep)
        count = top.copy()
        lone = hit & (n_top == 1) & (second < top - 1)  # still ahead after losing one vote
        winner[lone], count[lone] = row[lone], top[lone] - 1
        pair = hit & (n_top == 2)  # the other of the two tied categories wins
        winner[pair] = np.where(row == first, last, first)[pair]
        majority[r] = np.where(count >= max(min_votes, 1), winner, MISSING)
    return majority


@dataclass(frozen=True)
class VsMajority:
    """One rater against the leave-one-out majority of the others."""

    rater: str
    n_items: int
    agreement: float | None
    kappa: float | None


def vs_majority_codes(
    codes: Codes, n_categories: int, names: Sequence[str], majority: Codes | None = None
) -> list[VsMajority]:
    """Agreement and Cohen's kappa of each rater with the majority of the others."""
    if majority is None:
        majority = loo_majority_codes(codes, n_categories)
    result = []
    for r, name in enumerate(names):
        confusion = pair_confusion(codes[r], majority[r], n_categories)
        n = int(confusion.sum())
        agreement = float(np.trace(confusion) / n) if n else None
        kappa = float(kappa_from_confusion(confusion)) if n else None
        result.append(VsMajority(name, n, agreement, kappa))
    return result


def vs_majority(
    reliability_data: Any,
    labels: Sequence[Any] | None = None,
    rater_names: Sequence[str] | None = None,
) -> list[VsMajority]:
    """Each rater (row) against the plurality label of the other raters, ties left out."""
    codes, categories = reliability_codes(reliability_data, labels)
    return vs_majority_codes(codes, len(categories), rater_names_for(codes, rater_names))


def rater_names_for(codes: Codes, rater_names: Sequence[str] | None) -> list[str]:
    if rater_names is None:
        return [f"rater_{i}" for i in range(codes.shape[0])]
    if len(rater_names) != codes.shape[0]:
        raise ValueError("one name per rater (row) is needed")
    return [str(n) for n in rater_names]


# --------------------------------------------------------------------------- copying check
@dataclass(frozen=True)
class CopyFlag:
    """`rater` repeats `partner`'s departures from the consensus of the other raters."""

    rater: str
    partner: str
    kappa_with_partner: float
    kappa_with_majority: float
    partner_deviations: int  # items where the partner departs from the consensus
    shared_deviations: int  # ... and the rater gives the partner's label
    expected_shared: float  # what the rater's own confusion with the consensus predicts
    p_value: float
    items: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _expected_follows(
    r: Codes, s: Codes, deviates: NDArray[np.bool_], truth: LatentClassFit, n_categories: int
) -> float:
    """How many of s's departures r would repeat if it worked alone.

    `truth` is the latent-class fit of every rater but r (s included, weighted by its estimated
    reliability). r's confusion against it is learned where s does not depart, so copied answers
    do not teach the model that repeating s is r's own habit. Sums run over rating patterns.
    """
    post, inverse = truth.pattern_posterior, truth.inverse
    n_patterns = post.shape[0]

    def pattern_counts(mask: NDArray[np.bool_], answer: Codes) -> NDArray[np.int64]:
        flat = inverse[mask] * n_categories + answer[mask]
        return np.bincount(flat, minlength=n_patterns * n_categories).reshape(n_patterns, -1)

    confusion = post.T @ pattern_counts((r >= 0) & ~deviates, r) + 1.0 / n_categories
    confusion /= confusion.sum(axis=1, keepdims=True)
    return float((pattern_counts(deviates, s) * (post @ confusion)).sum())


def copying_flags_codes(
    codes: Codes,
    n_categories: int,
    names: Sequence[str],
    *,
    kappa_matrix: NDArray[np.float64] | None = None,
    majority_kappa: Sequence[float | None] | None = None,
    min_votes: int = 2,
    min_shared: int = 5,
    min_follow: float = 0.5,
    max_p_value: float = 1e-3,
) -> list[CopyFlag]:
    """Ordered pairs (rater, partner) whose shared departures from the consensus are too many.

    The consensus of a pair is the plurality of the remaining raters with at least `min_votes`
    votes, so with the default the check needs four raters or more: with three, who follows whom
    cannot be told apart from who is right. A pair is flagged when the rater gives the partner's
    label on at least `min_follow` of the partner's departures (and `min_shared` items), far more
    than it would if it worked alone (its Dawid-Skene confusion against the latent label inferred
    from everyone else, Poisson tail below `max_p_value`), and it agrees more with the partner
    than with the majority of all others.

    A copied rater counts twice in everyone else's consensus and can make honest raters look
    like a pair. So the flagged pair that agrees most (copying inflates agreement; the pairs it
    fakes agree only moderately) is kept, its copier set aside, and the others re-checked.
    """
    if kappa_matrix is None:
        kappa_matrix = pairwise_kappa_codes(codes, n_categories)
    active = list(range(codes.shape[0]))
    kept: list[CopyFlag] = []
    while True:
        sub_names = [names[i] for i in active]
        candidates = _pair_flags(
            codes[active],
            n_categories,
            sub_names,
            kappa_matrix[np.ix_(active, active)],
            majority_kappa if len(active) == codes.shape[0] else None,
            min_votes=min_votes,
            min_shared=min_shared,
            min_follow=min_follow,
            max_p_value=max_p_value,
        )
        if not candidates:
            return kept
        top = max(candidates, key=lambda f: (f.kappa_with_partner, -f.p_value))
        kept += [f for f in candidates if {f.rater, f.partner} == {top.rater, top.partner}]
        active.pop(sub_names.index(top.rater))


def _pair_flags(
    codes: Codes,
    n_categories: int,
    names: Sequence[str],
    kappa_matrix: NDArray[np.float64],
    majority_kappa: Sequence[float | None] | None,
    *,
    min_votes: int,
    min_shared: int,
    min_follow: float,
    max_p_value: float,
) -> list[CopyFlag]:
    """One pass of the copying check over every ordered pair of the given raters."""
    if majority_kappa is None:
        majority_kappa = [v.kappa for v in vs_majority_codes(codes, n_categories, names)]
    n_raters = codes.shape[0]
    if n_raters < 2 + max(min_votes, 1):
        return []
    table = count_table(codes, n_categories)
    truth_without: dict[int, LatentClassFit] = {}  # fitted only for raters that need it
    flags = []
    for a, b in combinations(range(n_raters), 2):
        consensus = plurality(table, [codes[a], codes[b]], min_votes)
        for r, s in ((a, b), (b, a)):
            kappa_rs, kappa_rm = kappa_matrix[r, s], majority_kappa[r]
            rated = (codes[r] >= 0) & (codes[s] >= 0) & (consensus >= 0)
            deviates = rated & (codes[s] != consensus)
            shared = np.flatnonzero(deviates & (codes[r] == codes[s]))
            if (
                shared.size < max(min_shared, min_follow * deviates.sum())
                or kappa_rm is None
                or not kappa_rs > kappa_rm
            ):
                continue
            if r not in truth_without:
                truth_without[r] = fit_dawid_skene(np.delete(codes, r, axis=0), n_categories)
            expected = _expected_follows(
                codes[r], codes[s], deviates, truth_without[r], n_categories
            )
            p_value = float(stats.poisson.sf(shared.size - 1, expected))
            if p_value <= max_p_value:
                flags.append(
                    CopyFlag(
                        names[r],
                        names[s],
                        float(kappa_rs),
                        float(kappa_rm),
                        int(deviates.sum()),
                        int(shared.size),
                        expected,
                        p_value,
                        shared.tolist(),
                    )
                )
    return flags


def copying_flags(
    reliability_data: Any,
    labels: Sequence[Any] | None = None,
    rater_names: Sequence[str] | None = None,
    **options: Any,
) -> list[CopyFlag]:
    """The copying check on raters × items labels; see :func:`copying_flags_codes`."""
    codes, categories = reliability_codes(reliability_data, labels)
    return copying_flags_codes(
        codes, len(categories), rater_names_for(codes, rater_names), **options
    )


# --------------------------------------------------------------------------- gold accuracy
@dataclass(frozen=True)
class GoldAccuracy:
    """A rater's accuracy on gold items; with no gold item rated, accuracy is None, [0, 1]."""

    rater: str
    n_gold: int
    correct: int
    accuracy: float | None
    low: float
    high: float


def gold_accuracy(
    reliability_data: Any,
    gold: Any,
    labels: Sequence[Any] | None = None,
    rater_names: Sequence[str] | None = None,
    *,
    confidence: float = 0.95,
    method: Literal["wilson", "clopper-pearson"] = "wilson",
) -> list[GoldAccuracy]:
    """Each rater's accuracy on the items whose `gold` label is known (None elsewhere)."""
    codes, categories = reliability_codes(reliability_data, labels)
    gold_codes, _ = encode_labels(np.asarray(gold, dtype=object), categories)
    if gold_codes.shape != codes.shape[1:]:
        raise ValueError("gold must have one entry per item")
    scipy_method = {"wilson": "wilson", "clopper-pearson": "exact"}.get(method)
    if scipy_method is None:
        raise ValueError("method must be 'wilson' or 'clopper-pearson'")
    result = []
    for r, name in enumerate(rater_names_for(codes, rater_names)):
        judged = (codes[r] >= 0) & (gold_codes >= 0)
        n, k = int(judged.sum()), int((codes[r][judged] == gold_codes[judged]).sum())
        if n == 0:
            result.append(GoldAccuracy(name, 0, 0, None, 0.0, 1.0))
            continue
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method=scipy_method)
        result.append(GoldAccuracy(name, n, k, k / n, float(ci.low), float(ci.high)))
    return result
