"""A committee of two endpoints (two fake servers answering differently), over real HTTP."""

from __future__ import annotations

import pytest

from labelloop.labelers import Committee, LabelTask, OpenAILabeler, disagreement
from labelloop.testing.fake_openai import FakeConfig, serve_fake_openai

LABELS = ["positive", "negative", "neutral"]
TASK = LabelTask("Classify the sentiment.", LABELS)


def always_negative(text: str, labels: list[str]) -> str:
    return "negative"


def test_committee_votes_and_averages_members():
    texts = ["a positive review", "a negative review", "a neutral one"] * 10
    with (
        serve_fake_openai(FakeConfig(label_prob=0.8, latency_s=0.01)) as keyword,
        serve_fake_openai(FakeConfig(rule=always_negative, p_500=0.2, latency_s=0.01)) as grumpy,
    ):
        members = [
            OpenAILabeler("keyword", base_url=keyword.base_url),
            OpenAILabeler(
                "grumpy",
                base_url=grumpy.base_url,
                logprobs=False,
                backoff_base_s=0.01,
                max_retries=10,
            ),
        ]
        committee = Committee(members)
        pairs = list(committee.label_stream(texts, TASK))
    assert sorted(i for i, _ in pairs) == list(range(len(texts)))
    assert committee.model_id == "committee(keyword+grumpy)"
    for i, result in pairs:
        assert [m.label for m in result.members] == [texts[i].split()[1], "negative"]
        if texts[i].startswith("a positive"):
            # (0.8, 0.1, 0.1) from the first member, one-hot "negative" from the second.
            assert result.probs == pytest.approx(
                {"positive": 0.4, "negative": 0.55, "neutral": 0.05}
            )
            assert result.label == "negative" and disagreement(result) == 0.5
        elif texts[i].startswith("a negative"):
            assert result.votes == {"negative": 2} and disagreement(result) == 0.0
            assert result.confidence == pytest.approx(0.9)


def test_committee_prompt_version_depends_on_members():
    a = OpenAILabeler("a", base_url="http://127.0.0.1:1/v1")
    b = OpenAILabeler("b", base_url="http://127.0.0.1:1/v1", self_consistency=3)
    assert Committee([a, b]).prompt_version(TASK) != Committee([a, a]).prompt_version(TASK)
    assert Committee([a, b]).prompt_version(TASK) == Committee([a, b]).prompt_version(TASK)
