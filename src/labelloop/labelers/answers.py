"""Reading a chat model's answer: the JSON verdict and per-label probabilities from logprobs."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from labelloop.labelers.base import match_label, normalise_label

__all__ = ["MalformedAnswer", "label_probs_from_logprobs", "parse_answer"]


class MalformedAnswer(ValueError):
    """The model answered, but not with a usable verdict (retried, then recorded as failed)."""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


_CODE_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S | re.I)


def parse_answer(content: object, labels: Sequence[str]) -> tuple[str, float, str]:
    """``(label, confidence, reasoning)`` from a JSON answer, or raise :class:`MalformedAnswer`.

    The label must name one of ``labels`` after normalising case and whitespace; the confidence
    must be a finite number in [0, 1] (NaN, strings, booleans and missing values are rejected).
    """
    if not isinstance(content, str) or not content.strip():
        raise MalformedAnswer("empty answer")
    text = content.strip()
    fenced = _CODE_FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise MalformedAnswer(f"answer is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedAnswer("answer is not a JSON object")
    label = match_label(data.get("label"), labels)
    if label is None:
        raise MalformedAnswer(f"label {data.get('label')!r} is not in the label set")
    confidence = data.get("confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise MalformedAnswer(f"confidence {confidence!r} is not a number")
    if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
        raise MalformedAnswer(f"confidence {confidence!r} is outside [0, 1]")
    reasoning = data.get("reasoning", "")
    return label, float(confidence), str(reasoning if reasoning is not None else "")[:2000]


_LABEL_VALUE = re.compile(r'"label"\s*:\s*"')


def label_probs_from_logprobs(
    content: str, tokens: Sequence[dict[str, Any]], labels: Sequence[str]
) -> dict[str, float] | None:
    """Per-label probabilities from the token logprobs of a JSON answer, or None.

    The label value's first token is located in the answer; its ``top_logprobs`` alternatives are
    mapped to the labels they begin, after case and spacing are normalised, so ``positive``,
    ``Positive`` and `` positive`` all count for one label. When several labels share the
    generated token, the walk goes on to the next token (so "very good" / "very bad" are told
    apart). Labels outside the top alternatives share the unseen mass, capped by the least likely
    seen alternative. The result is normalised over the label set: mass on tokens that begin no
    label (a copied placeholder, a stray quote) says nothing about which label is right. None when
    the tokens do not line up with the answer or no alternative begins a label.
    """
    found = _LABEL_VALUE.search(content)
    if not found or not tokens:
        return None
    starts, pos = [], 0
    for token in tokens:
        starts.append(pos)
        pos += len(str(token.get("token", "")))
    if pos != len(content):
        return None
    value_at = found.end()
    first = max(j for j, s in enumerate(starts) if s <= value_at)
    lead = content[starts[first] : value_at]
    mass: dict[str, float] = dict.fromkeys(labels, 0.0)
    floor = _walk(tokens, first, lead, "", list(labels), 1.0, mass)
    total = sum(mass.values())
    if total <= 0.0:
        return None
    unseen = [label for label, p in mass.items() if p == 0.0]
    if unseen:
        share = min(floor, (1.0 - min(total, 1.0)) / len(unseen)) or 1e-6
        for label in unseen:
            mass[label] = max(share, 1e-6)
    norm = sum(mass.values())
    return {label: p / norm for label, p in mass.items()}


def _walk(
    tokens: Sequence[dict[str, Any]],
    j: int,
    lead: str,
    consumed: str,
    candidates: list[str],
    weight: float,
    mass: dict[str, float],
) -> float:
    """Spread ``weight`` over ``candidates`` along token ``j``'s alternatives; returns the least
    probability seen (an upper bound for the labels that never appeared)."""
    generated = str(tokens[j].get("token", ""))
    alternatives = tokens[j].get("top_logprobs") or [tokens[j]]
    least = 1.0
    for alt in alternatives:
        piece = str(alt.get("token", ""))
        if not piece.startswith(lead):
            continue
        p = weight * math.exp(float(alt.get("logprob", -math.inf)))
        least = min(least, p)
        text = consumed + piece[len(lead) :]
        complete = '"' in text
        value = " ".join(text.split('"', 1)[0].casefold().split())  # as normalise_label does
        if not complete and text[-1:].isspace():
            value += " "
        matching = [
            label
            for label in candidates
            if normalise_label(label) == value.strip() or (not complete and _starts(label, value))
        ]
        if not matching:
            continue
        if len(matching) > 1 and piece == generated and j + 1 < len(tokens):
            _walk(tokens, j + 1, "", consumed + piece[len(lead) :], matching, p, mass)
            continue
        for label in matching:
            mass[label] += p / len(matching)
    return least


def _starts(label: str, prefix: str) -> bool:
    """Whether a label's normalised form begins with a (whitespace-collapsed) answer prefix."""
    return normalise_label(label).startswith(prefix.lstrip())
