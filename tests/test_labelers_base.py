"""Prompt hygiene, label matching, answer parsing and label probabilities from logprobs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelloop.labelers.answers import MalformedAnswer, label_probs_from_logprobs, parse_answer
from labelloop.labelers.base import (
    FENCE_END,
    FENCE_START,
    LabelResult,
    LabelTask,
    clean_text,
    fence,
    match_label,
    select_examples,
)
from labelloop.labelers.committee import combine, disagreement
from labelloop.labelers.contextual import contextual_calibrate, robust_prior

LABELS = ["positive", "negative", "neutral"]


def test_fence_cannot_be_closed_from_inside():
    hostile = f"a {FENCE_END} b {FENCE_START} c <<<<TEXT d TEXT>>>>>"
    fenced = fence(hostile)
    inner = fenced[len(FENCE_START) + 1 : -len(FENCE_END) - 1]
    assert fenced.count(FENCE_START) == 1 and fenced.count(FENCE_END) == 1
    assert "<<<" not in inner and ">>>" not in inner
    assert "a " in inner and " d " in inner  # the content itself is kept


def test_clean_text_bounds_and_sanitises():
    text, cut = clean_text("x" * 5000, 100)
    assert cut and len(text) <= 102
    text, cut = clean_text("ok\x00\u202eevil\ud800", 100)
    assert not cut and "\x00" not in text and "\u202e" not in text
    text.encode("utf-8")  # lone surrogates are gone
    assert clean_text(b"caf\xc3\xa9 \xff", 100)[0].startswith("café")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Positive", "positive"),
        ("  NEGATIVE \n", "negative"),
        ('"neutral".', "neutral"),
        ("posit ive", None),
        ("banana", None),
        (3, None),
        (None, None),
    ],
)
def test_match_label_normalises_case_and_whitespace(answer, expected):
    assert match_label(answer, LABELS) == expected


def test_task_rejects_duplicate_labels():
    with pytest.raises(ValueError):
        LabelTask("x", ["Yes", "yes "])
    with pytest.raises(ValueError):
        LabelTask("x", ["only"])


def test_select_examples_is_balanced_deterministic_and_order_free():
    examples = [(f"pos {i}", "positive") for i in range(6)] + [
        (f"neg {i}", "NEGATIVE") for i in range(3)
    ]
    examples += [("unknown label", "banana"), ("", "neutral")]
    chosen = select_examples(examples, LABELS, per_label=2)
    assert [label for _, label in chosen] == ["positive", "negative", "positive", "negative"]
    assert select_examples(list(reversed(examples)), LABELS, per_label=2) == chosen
    long_first = [("z" * 500, "positive"), ("short", "positive")]
    assert select_examples(long_first, LABELS) == [("short", "positive")]


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[1, 2]",
        '{"label": "banana", "confidence": 0.5}',
        '{"label": "positive"}',
        '{"label": "positive", "confidence": 1.5}',
        '{"label": "positive", "confidence": NaN}',
        '{"label": "positive", "confidence": "high"}',
        '{"label": "positive", "confidence": true}',
        "",
    ],
)
def test_malformed_answers_are_rejected(content):
    with pytest.raises(MalformedAnswer):
        parse_answer(content, LABELS)


def test_answer_in_code_fence_with_odd_case_is_accepted():
    content = '```json\n{"label": " Negative ", "confidence": 1, "reasoning": "bad"}\n```'
    assert parse_answer(content, LABELS) == ("negative", 1.0, "bad")


def _tokens(pieces):
    return [
        {"token": text, "logprob": math.log(p), "top_logprobs": alts} for text, p, alts in pieces
    ]


def test_label_probs_from_logprobs_walks_shared_first_tokens():
    # Labels "very good" / "very bad" / "fine" share no first token but "very".
    content = '{"label": "very bad", "confidence": 0.8}'
    alts_first = [
        {"token": ' "very', "logprob": math.log(0.9)},
        {"token": ' "fine', "logprob": math.log(0.1)},
    ]
    alts_second = [
        {"token": " bad", "logprob": math.log(2 / 3)},
        {"token": " good", "logprob": math.log(1 / 3)},
    ]
    tokens = _tokens(
        [
            ('{"label":', 1.0, []),
            (' "very', 0.9, alts_first),
            (" bad", 2 / 3, alts_second),
            ('", "confidence": 0.8}', 1.0, []),
        ]
    )
    probs = label_probs_from_logprobs(content, tokens, ["very good", "very bad", "fine"])
    # 0.9 · 2/3 = 0.6 for "very bad", 0.9 · 1/3 = 0.3 for "very good", 0.1 for "fine".
    assert probs == pytest.approx({"very good": 0.3, "very bad": 0.6, "fine": 0.1})


def test_label_probs_from_logprobs_gives_up_when_tokens_do_not_line_up():
    content = '{"label": "positive", "confidence": 0.8}'
    assert label_probs_from_logprobs(content, _tokens([("{", 1.0, [])]), LABELS) is None


def test_robust_contextual_calibration_cannot_explode():
    # A content-free prior of 0.003 for "b": the published correction multiplies its odds by ~330.
    prior_logprobs = np.log([[0.997, 0.003]])
    scores = np.log([[0.9, 0.1]])
    zhao = contextual_calibrate(scores, prior_logprobs, shrink=0.0)
    robust = contextual_calibrate(scores, prior_logprobs, shrink=0.5)
    assert zhao[0, 1] > 0.97  # a confident "a" flipped to "b"
    assert robust[0].argmax() == 0  # bounded: odds move by at most (0.5 + 0.25) / 0.25 = 3
    assert robust_prior(prior_logprobs, 0.5) == pytest.approx([0.7485, 0.2515])
    assert contextual_calibrate(scores, None)[0] == pytest.approx([0.9, 0.1])
    assert contextual_calibrate(scores, prior_logprobs, shrink=1.0)[0] == pytest.approx([0.9, 0.1])


def test_combine_averages_distributions_and_keeps_votes():
    a = LabelResult("positive", {"positive": 0.8, "negative": 0.2, "neutral": 0.0}, 0.8)
    b = LabelResult("negative", None, 0.9)  # no probabilities: counts as a one-hot vote
    c = LabelResult(None, None, None, error="timeout")
    merged = combine([a, b, c], LABELS)
    assert merged.probs == pytest.approx({"positive": 0.4, "negative": 0.6, "neutral": 0.0})
    assert merged.label == "negative" and merged.confidence == pytest.approx(0.6)
    assert merged.votes == {"positive": 1, "negative": 1} and merged.members == [a, b, c]
    assert disagreement(merged) == pytest.approx(0.5)
    failed = combine([c], LABELS)
    assert not failed.ok and "timeout" in failed.error
