"""Agreement on set-valued answers: several raters each tick any subset of the labels.

Reliability data is *raters × items* as elsewhere in this package; each entry is the set (list,
tuple, frozenset) of labels the rater ticked, an empty set for "none applies", or None / NaN
when the rater did not see the item. A plain string is one label, not a set of characters.

- Krippendorff's alpha with the MASI distance (Passonneau 2006): partial credit when two
  answers overlap, more when one contains the other.
- Cohen's kappa per label: every label as its own yes/no question, averaged over rater pairs
  (Light 1971) when there are more than two raters.
- Each rater's F1 against the consensus of the others (or against given reference sets).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from labelloop.agreement._encode import _is_missing, _sorted_categories
from labelloop.agreement.bootstrap import Interval
from labelloop.agreement.metrics import kappa_from_confusion
from labelloop.multilabel._validation import as_indicator

__all__ = [
    "AnnotatorF1",
    "annotator_f1",
    "encode_label_sets",
    "krippendorff_alpha_masi",
    "masi_distance",
    "masi_distances",
    "per_label_kappa",
]

_BLOCK_CELLS = 1 << 22


def _as_set(answer: Any) -> frozenset[Any]:
    if isinstance(answer, (str, bytes)):
        return frozenset([answer])
    if isinstance(answer, Iterable):
        return frozenset(answer)
    return frozenset([answer])


def encode_label_sets(
    reliability_data: Any, labels: Sequence[Any] | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], list[Any]]:
    """(indicators (R, N, L), rated (R, N), label order) from raters × items label sets.

    The label order is `labels` when given (every used label must be in it), else sorted."""
    rows = [list(r) for r in reliability_data]
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError("every rater must rate the same items (use None for missing)")
    n_raters, n_items = len(rows), len(rows[0])
    if n_items == 0:
        raise ValueError("no items to compare")
    rated = np.array([[not _is_missing(a) for a in r] for r in rows], dtype=bool)
    sets = [
        [_as_set(a) if ok else frozenset() for a, ok in zip(r, m, strict=True)]
        for r, m in zip(rows, rated, strict=True)
    ]
    used = set().union(*(s for r in sets for s in r))
    order = list(labels) if labels is not None else _sorted_categories(used)
    position = {label: j for j, label in enumerate(order)}
    unknown = used - position.keys()
    if unknown:
        raise ValueError(f"labels not in the label set: {sorted(map(str, unknown))}")
    indicators = np.zeros((n_raters, n_items, len(order)), dtype=bool)
    for r, row in enumerate(sets):
        for i, answer in enumerate(row):
            indicators[r, i, [position[label] for label in answer]] = True
    return indicators, rated, order


def masi_distances(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> NDArray[np.float64]:
    """MASI distance 1 - J·M between every row of `a` (V, L) and of `b` (W, L), shape (V, W).

    J is the Jaccard overlap; M is 1 for equal sets, 2/3 when one contains the other, 1/3 when
    they only overlap, 0 when disjoint (Passonneau 2006; NLTK rounds these to 0.67 and 0.33).
    Two empty sets are equal (distance 0)."""
    x, z = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    inter = x @ z.T
    size_a, size_b = x.sum(axis=1)[:, None], z.sum(axis=1)[None, :]
    union = size_a + size_b - inter
    jaccard = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    equal = (inter == size_a) & (inter == size_b)
    nested = inter == np.minimum(size_a, size_b)
    monotonicity = np.select([equal, nested, inter > 0], [1.0, 2.0 / 3.0, 1.0 / 3.0], 0.0)
    return 1.0 - jaccard * monotonicity


def masi_distance(a: Iterable[Any], b: Iterable[Any]) -> float:
    """MASI distance between two label sets (see `masi_distances`)."""
    sa, sb = _as_set(a), _as_set(b)
    order = {label: j for j, label in enumerate(sa | sb)}
    rows = np.zeros((2, len(order)), dtype=bool)
    for r, answer in enumerate((sa, sb)):
        rows[r, [order[label] for label in answer]] = True
    return float(masi_distances(rows[:1], rows[1:])[0, 0])


def krippendorff_alpha_masi(reliability_data: Any, labels: Sequence[Any] | None = None) -> float:
    """Krippendorff's alpha of set-valued answers with the MASI distance.

    alpha = 1 - (n - 1) Σ_u Σ_{pairs in u} δ / (m_u - 1) / Σ_c Σ_k n_c n_k δ_ck, over the units
    with two ratings or more (Krippendorff 2011), where the values c, k are the distinct answered
    sets. Each unit's sum is a quadratic form of its counts of distinct sets, computed in blocks
    of units, so the cost does not grow with the number of raters. Returns 1.0 when every
    rating is the same set (no disagreement expected, none observed)."""
    indicators, rated, _ = encode_label_sets(reliability_data, labels)
    distinct, codes = np.unique(indicators[rated], axis=0, return_inverse=True)
    n_raters, n_items = rated.shape
    item_of = np.broadcast_to(np.arange(n_items), (n_raters, n_items))[rated]
    counts = sparse.csr_matrix(
        (np.ones(codes.size), (item_of, codes.ravel())), shape=(n_items, len(distinct))
    )
    ratings_per_item = np.asarray(counts.sum(axis=1)).ravel()
    pairable = ratings_per_item >= 2
    if not pairable.any():
        raise ValueError("no item has two ratings to compare (one rater, or all missing?)")
    counts = counts[pairable]
    m = ratings_per_item[pairable]
    delta = masi_distances(distinct, distinct)
    block = max(1, _BLOCK_CELLS // max(len(distinct), 1))
    within = np.zeros(counts.shape[0])
    for start in range(0, counts.shape[0], block):
        part = counts[start : start + block]
        within[start : start + block] = np.asarray(part.multiply(part @ delta).sum(axis=1)).ravel()
    observed = float((within / (m - 1.0)).sum())
    totals = np.asarray(counts.sum(axis=0)).ravel()
    expected = float(totals @ delta @ totals)
    if expected <= 0.0:
        return 1.0
    return 1.0 - (m.sum() - 1.0) * observed / expected


def per_label_kappa(reliability_data: Any, labels: Sequence[Any] | None = None) -> dict[Any, float]:
    """Cohen's kappa of each label's yes/no answers, averaged over rater pairs (Light 1971) and
    computed on the items both raters of a pair saw. A label with no pair of ratings to compare
    is NaN; one that every rater always answered alike is 1.0 (see `agreement.metrics`)."""
    indicators, rated, order = encode_label_sets(reliability_data, labels)
    if rated.shape[0] < 2:
        raise ValueError("per-label kappa needs at least two raters")
    kappas = []
    for a, b in combinations(range(rated.shape[0]), 2):
        both = rated[a] & rated[b]
        if not both.any():
            continue
        x, y = indicators[a][both], indicators[b][both]
        confusion = np.stack(
            [
                np.stack([(~x & ~y).sum(axis=0), (~x & y).sum(axis=0)], axis=-1),
                np.stack([(x & ~y).sum(axis=0), (x & y).sum(axis=0)], axis=-1),
            ],
            axis=1,
        )  # (L, 2, 2): rows rater a's no/yes, columns rater b's
        kappas.append(kappa_from_confusion(confusion))
    if not kappas:
        return {label: float("nan") for label in order}
    mean = np.mean(np.stack(kappas), axis=0)
    return {label: float(v) for label, v in zip(order, mean, strict=True)}


@dataclass(frozen=True)
class AnnotatorF1:
    """One rater's label decisions against the consensus, on the items both exist for."""

    rater: Any
    f1: Interval
    precision: float
    recall: float
    n_items: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "rater": self.rater,
            "f1": self.f1.to_dict(),
            "precision": self.precision,
            "recall": self.recall,
            "n_items": self.n_items,
        }


def _leave_one_out_majority(
    indicators: NDArray[np.bool_], rated: NDArray[np.bool_], rater: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Per item, the labels more than half of the *other* raters ticked, and which items have
    another rater at all. Leaving the rater out keeps a rater from agreeing with themself."""
    others = rated.copy()
    others[rater] = False
    n_others = others.sum(axis=0)
    votes = (indicators & others[:, :, None]).sum(axis=0)
    return votes * 2 > n_others[:, None], n_others > 0


def annotator_f1(
    reliability_data: Any,
    labels: Sequence[Any] | None = None,
    *,
    consensus: Any = None,
    raters: Sequence[Any] | None = None,
    confidence_level: float = 0.95,
    n_boot: int = 1000,
    random_state: int | np.random.Generator | None = 0,
) -> list[AnnotatorF1]:
    """Each rater's micro F1 (with a bootstrap interval over items), precision and recall
    against the consensus.

    `consensus` is an (N, L) indicator matrix of reference answers (gold, or a latent-class
    estimate) in the label order; without it, each rater is compared with the majority of the
    other raters on each item (a label agreed when more than half of them ticked it)."""
    # Imported here: labelloop.multilabel.metrics itself imports this package's bootstrap.
    from labelloop.multilabel.metrics import micro_f1

    indicators, rated, _ = encode_label_sets(reliability_data, labels)
    names = list(raters) if raters is not None else list(range(rated.shape[0]))
    if len(names) != rated.shape[0]:
        raise ValueError(f"raters names {len(names)} raters, the data has {rated.shape[0]}")
    reference = None if consensus is None else as_indicator(consensus, "consensus")
    if reference is not None and reference.shape != indicators.shape[1:]:
        raise ValueError(f"consensus must have shape {indicators.shape[1:]}, got {reference.shape}")
    out = []
    for r, name in enumerate(names):
        if reference is None:
            truth, known = _leave_one_out_majority(indicators, rated, r)
        else:
            truth, known = reference, np.ones(rated.shape[1], dtype=bool)
        keep = rated[r] & known
        if not keep.any():
            continue
        said, right = indicators[r][keep], truth[keep]
        tp = float((said & right).sum())
        out.append(
            AnnotatorF1(
                rater=name,
                f1=micro_f1(
                    right,
                    said,
                    confidence_level=confidence_level,
                    n_boot=n_boot,
                    random_state=random_state,
                ),
                precision=tp / said.sum() if said.any() else float("nan"),
                recall=tp / right.sum() if right.any() else float("nan"),
                n_items=int(keep.sum()),
            )
        )
    return out
