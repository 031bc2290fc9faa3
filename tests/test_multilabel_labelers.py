"""Multi-label labelers: a probability for every label, from per-label yes/no decisions.

OpenAI-compatible endpoints are played by the fake server over real HTTP; the embedded model
runs for real (llama.cpp on CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from labelloop import Project
from labelloop.labelers import LabelTask, OpenAILabeler
from labelloop.labelers.base import FEATURE_VIEWS
from labelloop.labelers.multilabel import LocalMultiLabeler, PerLabelDecisions
from labelloop.store import Item, Prediction
from labelloop.testing.fake_openai import FakeConfig, keyword_decision, serve_fake_openai

LABELS = ["sport", "business", "politics"]
TASK = LabelTask("Topics of a news text.", LABELS)
TEXTS = [
    "sport news: the club won the final",
    "business and politics: the tax on shares",
    "the weather stays mild",
]


def decisions(server, **options) -> PerLabelDecisions:
    settings = dict(concurrency=8, timeout_s=2.0, backoff_base_s=0.01, backoff_max_s=0.05)
    return PerLabelDecisions(
        OpenAILabeler("fake-model", base_url=server.base_url, **settings | options)
    )


def test_every_label_gets_its_probability_from_the_yes_no_token_logprobs():
    config = FakeConfig(decision_rule=keyword_decision, label_prob=0.9)
    with serve_fake_openai(config) as server:
        results = dict(decisions(server).label_stream(TEXTS, TASK))
        assert server.stats.total == len(TEXTS) * len(LABELS)  # one decision per label and item
        assert server.stats.top_logprobs  # log-probabilities were asked for
    assert sorted(results) == [0, 1, 2]
    first, second, third = results[0], results[1], results[2]
    assert first.probs == pytest.approx({"sport": 0.9, "business": 0.1, "politics": 0.1})
    assert first.labels == ["sport"] and first.label == "sport"
    assert second.labels == ["business", "politics"]
    assert third.labels == [] and third.ok  # an empty set is an answer
    assert first.confidence == pytest.approx(0.9**3)
    assert first.reported_confidence is None
    assert first.tokens_in > 0


def test_without_logprobs_the_written_confidence_is_used_and_flagged():
    config = FakeConfig(decision_rule=keyword_decision, logprobs=False, confidence=0.7)
    with serve_fake_openai(config) as server:
        results = dict(decisions(server).label_stream(TEXTS[:1], TASK))
    result = results[0]
    assert result.probs == pytest.approx({"sport": 0.7, "business": 0.3, "politics": 0.3})
    assert result.reported_confidence == pytest.approx(result.confidence)


def test_an_item_whose_decision_fails_on_one_label_fails_naming_it():
    config = FakeConfig(decision_rule=keyword_decision, always_garbage=lambda t: "weather" in t)
    with serve_fake_openai(config) as server:
        results = dict(decisions(server, max_malformed=0).label_stream(TEXTS, TASK))
    assert results[0].ok and results[1].ok
    assert not results[2].ok and "label 'sport'" in (results[2].error or "")


def test_prompt_version_changes_with_the_labels_and_not_between_runs():
    with serve_fake_openai(FakeConfig()) as server:
        labeler = decisions(server)
        same = labeler.prompt_version(TASK) == labeler.prompt_version(
            LabelTask(TASK.description, list(LABELS))
        )
        other = labeler.prompt_version(LabelTask(TASK.description, [*LABELS, "tech"]))
    assert same and other != labeler.prompt_version(TASK)


def test_prelabel_on_a_multi_label_project_stores_sets_and_probabilities(tmp_path: Path, db_url):
    project = Project.create(
        tmp_path / "p", task="Topics.", labels=LABELS, db=db_url, multi_label=True
    )
    try:
        project.add_items([{"id": str(i), "text": t} for i, t in enumerate(TEXTS)])
        config = FakeConfig(decision_rule=keyword_decision, label_prob=0.8)
        with serve_fake_openai(config) as server:
            summary = project.prelabel(model="fake-model", base_url=server.base_url, concurrency=4)
        assert summary.done == len(TEXTS) and summary.failed == 0
        with project.store.session() as session:
            rows = session.execute(
                select(Item.uid, Item.llm_labels, Prediction.probs).join(
                    Prediction, Prediction.item_id == Item.id
                )
            ).all()
        by_uid = {uid: (labels, probs) for uid, labels, probs in rows}
        assert by_uid["1"][0] == ["business", "politics"]
        assert by_uid["1"][1] == pytest.approx({"sport": 0.2, "business": 0.8, "politics": 0.8})
        assert by_uid["2"][0] == []
    finally:
        project.close()


@pytest.mark.slow
def test_embedded_model_scores_each_label_once_on_a_shared_prefix():
    labeler = LocalMultiLabeler.embedded("smollm2", chunk_items=2)
    texts = ["The striker scored twice in the final.", "Shares fell after the report.", "x"]
    try:
        results = dict(labeler.label_stream(texts, TASK))
        scorer = labeler._scorer
        assert scorer is not None
        prefix = scorer.tokenize(labeler.prefix_text(TASK), bos=scorer.add_bos)
        assert scorer._prefix == prefix  # evaluated once, kept for every chunk
        # Scored in the stream's chunks: how many rows a decode holds changes the CPU kernels
        # llama.cpp runs, and with them the rounding (by 0.2 in the log-odds on AVX2).
        raw = np.vstack([labeler.log_odds(texts[:2], TASK), labeler.log_odds(texts[2:], TASK)])
    finally:
        labeler.close()
    assert sorted(results) == [0, 1, 2]
    for i, result in results.items():
        assert set(result.probs) == set(LABELS)
        p = np.array([result.probs[label] for label in LABELS])
        assert np.all((p > 0) & (p < 1))
        assert result.labels == [label for label in LABELS if result.probs[label] >= 0.5]
        # The stream's probabilities are the raw yes/no odds less each label's content-free part.
        shift = np.log(p / (1 - p)) - raw[i]
        assert np.allclose(shift, shift_of(results, raw, 0), atol=0.2)
    assert json.dumps(results[0].probs)  # plain floats, ready for the store
    # The same decode keeps each item's hidden states at the end of its text, in both views.
    for view in FEATURE_VIEWS:
        states = np.stack([results[i].features[view] for i in range(3)])
        assert states.shape[0] == 3 and states.shape[1] >= 64 and np.isfinite(states).all()
        assert not np.allclose(states[0], states[1])  # each item's own


@pytest.mark.slow
def test_embedded_model_without_features_keeps_none():
    labeler = LocalMultiLabeler.embedded("smollm2", features=False)
    try:
        results = dict(labeler.label_stream(["The striker scored twice in the final."], TASK))
    finally:
        labeler.close()
    assert results[0].features is None and set(results[0].probs) == set(LABELS)


def shift_of(results, raw, i) -> np.ndarray:
    p = np.array([results[i].probs[label] for label in LABELS])
    return np.log(p / (1 - p)) - raw[i]


@pytest.mark.slow
def test_side_by_side_workers_give_the_probabilities_of_one_context():
    # Chunks decoded by two single-threaded contexts on shared weights, each holding the prefix
    # in its own cache, against one context (on one thread, and on two as before): the same
    # numbers, in input order, and those of scoring each chunk directly.
    texts = [*TEXTS, "The striker scored twice in the final.", "Shares fell after the report."] * 3
    one = LocalMultiLabeler.embedded("smollm2", n_threads=1, workers=1, chunk_items=3)
    two_threads = LocalMultiLabeler.embedded("smollm2", n_threads=2, workers=1, chunk_items=3)
    workers = LocalMultiLabeler.embedded("smollm2", chunk_items=3, workers=2)
    try:
        expected = list(one.label_stream(texts, TASK))
        before = list(two_threads.label_stream(texts, TASK))
        got = list(workers.label_stream(texts, TASK))
        assert len(workers._siblings) == 1 and workers._siblings[0]._prefix is not None
        assert workers._siblings[0]._prefix == workers._scorer._prefix
        assert workers._scorer.pinned is None  # later calls choose their threads again
        assert one._siblings == [] and two_threads._siblings == []
        prior = one._prior(TASK)
        direct = np.vstack([one.log_odds(texts[s : s + 3], TASK) for s in range(0, len(texts), 3)])
    finally:
        one.close()
        two_threads.close()
        workers.close()
    assert [i for i, _ in got] == list(range(len(texts)))
    assert [r.probs for _, r in got] == [r.probs for _, r in expected]
    assert [r.probs for _, r in before] == [r.probs for _, r in expected]
    p_direct = 1.0 / (1.0 + np.exp(-(direct - prior)))
    p_got = np.array([[r.probs[label] for label in LABELS] for _, r in got])
    assert np.array_equal(p_got, p_direct)
