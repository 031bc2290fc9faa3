"""One agreement report for a raters × items label matrix: what ``labelloop agreement`` prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from labelloop.agreement._encode import count_table
from labelloop.agreement.bootstrap import Interval, confusion_interval, table_intervals
from labelloop.agreement.interpret import landis_koch
from labelloop.agreement.metrics import (
    Level,
    fleiss_by_category_from_sums,
    reliability_codes,
    sums_of_table,
)
from labelloop.agreement.raters import (
    copying_flags_codes,
    gold_accuracy,
    loo_majority_codes,
    pairwise_kappa_codes,
    vs_majority_codes,
)

MAX_FLAG_ITEMS = 100


def _clean(value: Any) -> Any:
    """JSON-safe: NaN becomes None, NumPy scalars become Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _interval(estimate: float | None, interval: Interval | None) -> dict[str, Any]:
    low = interval.low if interval else None
    high = interval.high if interval else None
    estimate = _clean(estimate)
    return {
        "estimate": estimate,
        "low": _clean(low),
        "high": _clean(high),
        "interpretation": landis_koch(estimate),
    }


def _kappa(
    a: np.ndarray, b: np.ndarray, k: int, n_boot: int, confidence: float, rng: np.random.Generator
) -> dict[str, Any]:
    n = int(((a >= 0) & (b >= 0)).sum())
    if n == 0:
        return {"n_items": 0, **_interval(None, None)}
    ci = confusion_interval(a, b, k, None, max(n_boot, 1), confidence, rng)
    return {"n_items": n, **_interval(ci.estimate, ci if n_boot else None)}


def agreement_report(
    labels_matrix: Any,
    label_set: Sequence[Any],
    rater_names: Sequence[str] | None = None,
    *,
    level_of_measurement: Level = "nominal",
    n_boot: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    gold: Any = None,
) -> dict[str, Any]:
    """Every agreement figure for a raters × items matrix of labels (None/NaN = not rated).

    Keys: ``raters``, ``n_items``, ``labels``, ``percent_agreement``, ``fleiss_kappa`` (with
    ``by_category``), ``krippendorff_alpha``, ``gwet_ac1`` (each estimate, low, high,
    interpretation), ``pairwise_cohen`` (one entry per pair), ``vs_majority``, ``flags`` (the
    copying check, items cut to the first 100), ``gold_accuracy`` (when `gold` is given), and
    ``notes`` for figures that could not be computed. ``n_boot=0`` skips the intervals.
    """
    codes, categories = reliability_codes(labels_matrix, list(label_set))
    k = len(categories)
    names = (
        [f"rater_{i}" for i in range(codes.shape[0])] if rater_names is None else list(rater_names)
    )
    if len(names) != codes.shape[0]:
        raise ValueError("one name per rater (row) is needed")
    rng = np.random.default_rng(random_state)
    notes: list[str] = []
    report: dict[str, Any] = {
        "raters": [
            {"name": name, "n_rated": int((row >= 0).sum())}
            for name, row in zip(names, codes, strict=True)
        ],
        "n_items": int(codes.shape[1]),
        "labels": [_clean(c) for c in categories],
        "level_of_measurement": level_of_measurement,
        "confidence": confidence,
        "n_boot": n_boot,
    }
    multi = ("percent_agreement", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1")
    try:
        intervals = table_intervals(
            codes, categories, level_of_measurement, max(n_boot, 1), confidence, rng
        )
        for name in multi:
            report[name] = _interval(intervals[name].estimate, intervals[name] if n_boot else None)
        by_category = fleiss_by_category_from_sums(sums_of_table(count_table(codes, k)))[0]
        report["fleiss_kappa"]["by_category"] = {
            str(c): _clean(v) for c, v in zip(categories, by_category, strict=True)
        }
    except ValueError as exc:
        notes.append(str(exc))
        for name in multi:
            report[name] = _interval(None, None)
    report["pairwise_cohen"] = [
        {"a": names[r], "b": names[s], **_kappa(codes[r], codes[s], k, n_boot, confidence, rng)}
        for r, s in combinations(range(len(names)), 2)
    ]
    majority = loo_majority_codes(codes, k)
    report["vs_majority"] = [
        {"rater": name, **_kappa(codes[r], majority[r], k, n_boot, confidence, rng)}
        for r, name in enumerate(names)
    ]
    flags = copying_flags_codes(
        codes,
        k,
        names,
        kappa_matrix=pairwise_kappa_codes(codes, k),
        majority_kappa=[v.kappa for v in vs_majority_codes(codes, k, names, majority)],
    )
    report["flags"] = [
        {
            **{key: _clean(v) for key, v in flag.to_dict().items() if key != "items"},
            "kind": "copying",
            "items": flag.items[:MAX_FLAG_ITEMS],
        }
        for flag in flags
    ]
    if gold is not None:
        report["gold_accuracy"] = [
            {key: _clean(v) for key, v in vars(g).items()}
            for g in gold_accuracy(labels_matrix, gold, categories, names)
        ]
    report["notes"] = notes
    return report
