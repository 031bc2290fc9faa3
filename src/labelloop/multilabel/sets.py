"""Label sets as people and files write them, read into the project's own spelling and order.

A multi-label item's labels are a set; files write it as a list (JSONL, Parquet, Hugging Face),
as a JSON list in a cell, or as names joined by `;`, `|` or `,` (CSV). Every reader and every
answer goes through `parse_label_set`, so a set is stored one way: a list in the project's label
order, without repeats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelloop.errors import InputError
from labelloop.vocabulary import ALLOW_EMPTY as ALLOW_EMPTY  # the settings' names, shared
from labelloop.vocabulary import MULTI_LABEL as MULTI_LABEL

#: Characters that join label names in a text cell; a multi-label project's labels avoid them.
SEPARATORS = (";", "|", ",")
#: The most labels one multi-label project may have (bounds every per-label loop).
MAX_LABELS = 1000


def _key(label: str) -> str:
    return " ".join(str(label).split()).casefold()


def check_multilabel_names(labels: Sequence[str]) -> None:
    """A multi-label project's labels must be writable in a CSV cell: no separator in them."""
    if len(labels) > MAX_LABELS:
        raise InputError(f"a project may have at most {MAX_LABELS} labels, not {len(labels)}")
    for label in labels:
        bad = [sep for sep in SEPARATORS if sep in label]
        if bad:
            raise InputError(
                f"a multi-label project's labels may not hold {' '.join(bad)}", value=label
            )


def _split_text(value: str) -> list[Any]:
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not a JSON list of labels: {exc.msg}", value=value) from exc
        if not isinstance(parsed, list):
            raise InputError("not a JSON list of labels", value=value)
        return parsed
    for sep in SEPARATORS:
        if sep in text:
            return [part for part in text.split(sep) if part.strip()]
    return [text] if text else []


def raw_label_list(value: Any) -> list[Any] | None:
    """The names in a cell or field, unchecked: None for a missing value, [] for an empty set."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return _split_text(value)
    if isinstance(value, np.ndarray):
        return list(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    raise InputError(f"a label set is a list or text, not a {type(value).__name__}", value=value)


def parse_label_set(
    value: Any, labels: Sequence[str], *, allow_empty: bool = True
) -> list[str] | None:
    """The label set `value` names, in the project's order (None when the value is missing).

    Case and spacing are forgiven, repeats dropped; an unknown name, a non-text entry or (unless
    `allow_empty`) an empty set is bad input.
    """
    names = raw_label_list(value)
    if names is None:
        return None
    canonical = {_key(label): label for label in labels}
    chosen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise InputError(f"a label is a {type(name).__name__}, not text", value=name)
        found = canonical.get(_key(name))
        if found is None:
            raise InputError(f"label not in the label set ({', '.join(labels)})", value=name)
        chosen.add(found)
    if not chosen and not allow_empty:
        raise InputError("the label set is empty and this project does not allow empty sets")
    return [label for label in labels if label in chosen]


def indicator(sets: Sequence[Sequence[str] | None], labels: Sequence[str]) -> NDArray[np.bool_]:
    """(items x labels) indicator matrix of label sets (a missing set is a row of False)."""
    column = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(sets), len(labels)), dtype=bool)
    for i, chosen in enumerate(sets):
        for label in chosen or ():
            out[i, column[label]] = True
    return out


def label_probabilities(probs: Mapping[str, Any] | None, labels: Sequence[str]) -> list[float]:
    """Each label's own probability from a stored `{label: p}` (a missing label is NaN)."""
    probs = probs or {}
    return [float(probs[label]) if label in probs else float("nan") for label in labels]


def resolve_label_sets(
    answers: Sequence[tuple[Any, Sequence[str] | None]], labels: Sequence[str]
) -> list[str] | None:
    """The final set from people's answers, oldest first as (annotator, set or None).

    Each annotator's latest set counts once (None withdraws nothing: it is no label); a label is
    in the final set when more than half of the sets hold it, and on a tie when the latest set
    holds it. None when nobody gave a set.
    """
    latest: dict[Any, Sequence[str]] = {}
    order: list[Any] = []
    for annotator, chosen in answers:
        if chosen is None:
            continue
        key = annotator if annotator is not None else ("anonymous", len(order))
        latest.pop(key, None)
        latest[key] = chosen
        order.append(key)
    if not latest:
        return None
    sets = list(latest.values())
    newest = set(sets[-1])
    votes = {label: sum(label in chosen for chosen in sets) for label in labels}
    half = len(sets) / 2
    return [
        label
        for label in labels
        if votes[label] > half or (votes[label] == half and label in newest)
    ]
