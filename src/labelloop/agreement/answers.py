"""Answers in long form: one row per (item, annotator, label, time), integer-coded once.

Team labeling is sparse — most annotators never see most items, and how many answers an item
gets depends on how uncertain it is — so the models of annotator quality take answers as rows
rather than as an items × annotators matrix. Items are positions ``0..n_items-1`` (the caller maps
its own ids, as it does for the rows of the model's probabilities); annotators are any names;
labels must belong to the label set, and anything else is refused with the row that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labelloop.agreement._encode import MISSING, _is_missing, _sorted_categories, as_array


def _label_codes(
    values: np.ndarray, label_set: Sequence[Any], what: str, noun: str = "label"
) -> np.ndarray:
    """Codes of `values` in `label_set` (-1 where missing); ValueError naming the first stranger
    (`what` and its index, the `noun` and its value)."""
    lookup = {value: code for code, value in enumerate(label_set)}
    if len(lookup) != len(label_set):
        raise ValueError("the label set has duplicates")
    flat = values.ravel().tolist()
    try:  # look up each distinct value once: answers are many, labels few
        distinct, inverse = np.unique(values.ravel(), return_inverse=True)
    except TypeError:  # mixed or missing values that cannot be sorted
        codes = np.fromiter((lookup.get(v, MISSING) for v in flat), np.int64, len(flat))
    else:
        found = [lookup.get(v, MISSING) for v in distinct.tolist()]
        codes = np.asarray(found, dtype=np.int64)[inverse.ravel()]
    for i in np.flatnonzero(codes == MISSING):
        if not _is_missing(flat[i]):
            raise ValueError(
                f"{what} {int(i)}: {noun} {flat[i]!r} is not in the {noun} set {list(label_set)!r}"
            )
    return codes.reshape(values.shape)


def _check_label_set(label_set: Sequence[Any]) -> tuple[Any, ...]:
    labels = tuple(label_set)
    if len(labels) < 2:
        raise ValueError("a label set needs at least two labels")
    return labels


@dataclass(frozen=True)
class Answers:
    """Integer-coded answers, one entry per answer.

    `order` ranks the answers in time (ties keep the given order); drift is measured along it.
    The same annotator may answer an item twice: both answers count, so pass only the answers
    that stand (the latest, say) when an annotator changed their mind.
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    order: np.ndarray
    n_items: int
    labels: tuple[Any, ...]
    annotators: tuple[str, ...]

    @property
    def n_answers(self) -> int:
        return int(self.item.size)

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def n_annotators(self) -> int:
        return len(self.annotators)

    def answers_per_item(self) -> np.ndarray:
        """(n_items,) how many answers each item has."""
        return np.bincount(self.item, minlength=self.n_items)

    def votes(self) -> np.ndarray:
        """(n_items, n_labels) how many answers gave each label."""
        flat = self.item * self.n_labels + self.label
        counts = np.bincount(flat, minlength=self.n_items * self.n_labels)
        return counts.reshape(self.n_items, self.n_labels)

    def take(self, rows: np.ndarray) -> Answers:
        """The answers at `rows` (a mask or indices), same items, labels and annotators."""
        return Answers(
            self.item[rows],
            self.annotator[rows],
            self.label[rows],
            self.order[rows],
            self.n_items,
            self.labels,
            self.annotators,
        )

    @classmethod
    def from_records(
        cls,
        items: Any,
        annotators: Any,
        labels: Any,
        *,
        label_set: Sequence[Any],
        n_items: int | None = None,
        times: Any = None,
        annotator_names: Sequence[str] | None = None,
    ) -> Answers:
        """Answers from three parallel sequences (item position, annotator name, label).

        `times` (numbers or datetimes, any order) sets the time order; without it the order
        given is the time order. `annotator_names` fixes the annotators and their order (an
        annotator may have no answer); otherwise they are the sorted distinct names.
        """
        label_set = _check_label_set(label_set)
        item = np.asarray(items)
        if item.ndim != 1:
            raise ValueError("items must be a 1-D sequence of item positions")
        if item.size and item.dtype.kind not in "iu":
            raise ValueError("items must be integer positions 0..n_items-1")
        item = item.astype(np.int64)
        names = as_array(annotators).ravel()
        label_values = as_array(labels).ravel()
        if not (names.size == label_values.size == item.size):
            raise ValueError("items, annotators and labels must have the same length")
        n = int(item.max()) + 1 if n_items is None and item.size else int(n_items or 0)
        if item.size and (item.min() < 0 or item.max() >= n):
            raise ValueError(f"item positions must lie in 0..{n - 1}")
        codes = _label_codes(label_values, label_set, "answer")
        if np.any(codes == MISSING):
            raise ValueError(f"answer {int(np.argmax(codes == MISSING))} has no label")
        if annotator_names is None:
            annotator_names = _sorted_categories(set(names.tolist()))
        who = _label_codes(names, list(annotator_names), "answer", "annotator")
        if np.any(who == MISSING):
            raise ValueError(f"answer {int(np.argmax(who == MISSING))} has no annotator")
        if times is None:
            order = np.arange(item.size, dtype=np.int64)
        else:
            stamps = np.asarray(times)
            if stamps.shape != item.shape:
                raise ValueError("times must have one entry per answer")
            order = np.empty(item.size, dtype=np.int64)
            order[np.argsort(stamps, kind="stable")] = np.arange(item.size)
        return cls(
            item,
            who,
            codes,
            order,
            n,
            label_set,
            tuple(str(a) for a in annotator_names),
        )

    @classmethod
    def from_matrix(
        cls,
        matrix: Any,
        *,
        label_set: Sequence[Any],
        annotator_names: Sequence[str] | None = None,
    ) -> Answers:
        """Answers from an items × annotators table, None or NaN where an annotator did not
        answer. Time order is item order (row by row)."""
        table = as_array(matrix)
        if table.ndim != 2:
            raise ValueError("the answer table must be 2-D: items × annotators")
        label_set = _check_label_set(label_set)
        codes = _label_codes(np.asarray(table, dtype=object), label_set, "cell")
        item, annotator = np.nonzero(codes >= 0)
        if annotator_names is None:
            annotator_names = [f"annotator_{j}" for j in range(table.shape[1])]
        if len(annotator_names) != table.shape[1]:
            raise ValueError("one name per annotator (column) is needed")
        return cls(
            item.astype(np.int64),
            annotator.astype(np.int64),
            codes[item, annotator],
            np.arange(item.size, dtype=np.int64),
            int(table.shape[0]),
            label_set,
            tuple(str(a) for a in annotator_names),
        )


def gold_codes(gold: Any, labels: Sequence[Any], n_items: int) -> np.ndarray:
    """(n_items,) code of each item's gold label, -1 where none is known.

    `gold` is a sequence with one entry per item (None/NaN where unknown) or a mapping from item
    position to its gold label.
    """
    codes = np.full(n_items, MISSING, dtype=np.int64)
    if gold is None:
        return codes
    if isinstance(gold, dict):
        spread = [None] * n_items
        for position, label in gold.items():
            if not 0 <= int(position) < n_items:
                raise ValueError(f"gold item position {position!r} is not in 0..{n_items - 1}")
            spread[int(position)] = label
        gold = spread
    values = np.empty(len(gold), dtype=object)
    values[:] = list(gold)
    if values.size != n_items:
        raise ValueError(f"gold must have one entry per item ({n_items}), got {values.size}")
    return _label_codes(values, labels, "gold item")
