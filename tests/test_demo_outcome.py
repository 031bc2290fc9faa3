"""The demo's closing figures: what people's reviews add to the auto-accepted labels, and the
loop played on the demo's own sample (accuracy of the finished dataset against human effort)."""

from __future__ import annotations

import csv
import itertools
from types import SimpleNamespace

import pytest

from labelloop.demo import _reference_accuracy, format_outcome, run_demo, sample_file
from labelloop.labelers import OpenAILabeler
from labelloop.testing.fake_openai import FakeConfig, noisy_rule, serve_fake_openai

LIMIT = 100  # pool items pre-labeled, beside the 100 gold items
SAMPLES = 3  # self-consistency votes: confidences that differ between items


def _rows(*rows: tuple[str, str, str | None]) -> SimpleNamespace:
    """A stand-in project whose export rows are (state, label, reference label)."""
    export = [
        {"state": state, "label": label, "meta": {"reference_label": ref} if ref else {}}
        for state, label, ref in rows
    ]
    return SimpleNamespace(iter_export_rows=lambda: iter(export))


def test_the_finished_dataset_counts_reviewed_items_as_right_and_as_effort() -> None:
    project = _rows(
        ("auto_accepted", "positive", "positive"),
        ("auto_accepted", "positive", "negative"),
        ("auto_accepted", "negative", "negative"),
        ("in_review", "positive", "negative"),
        ("human_labeled", "negative", None),  # a gold item
    )
    result = _reference_accuracy(project)  # type: ignore[arg-type]
    assert result["auto_accepted"] == 3
    assert result["auto_accepted_accuracy"] == pytest.approx(2 / 3)
    assert result["items"] == 5
    assert result["human_effort"] == pytest.approx(2 / 5)
    assert result["finished_accuracy"] == pytest.approx(4 / 5)


def test_nothing_auto_accepted_means_all_human_and_no_auto_accuracy() -> None:
    project = _rows(("in_review", "positive", "positive"), ("human_labeled", "negative", None))
    result = _reference_accuracy(project)  # type: ignore[arg-type]
    assert result["auto_accepted_accuracy"] is None
    assert result["human_effort"] == 1.0
    assert result["finished_accuracy"] == 1.0


def _sample_truth() -> dict[str, str]:
    truth = {}
    for name, column in (("reviews_gold.csv", "label"), ("reviews_pool.csv", "reference_label")):
        with open(sample_file(name), newline="") as f:
            truth.update({row["text"]: row[column] for row in csv.DictReader(f)})
    return truth


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run through, its LLM an endpoint that is right 7 times in 10."""
    config = FakeConfig(rule=noisy_rule(_sample_truth()), sample_flip=0.3)
    with serve_fake_openai(config) as server:
        labeler = OpenAILabeler("fake-model", base_url=server.base_url, self_consistency=SAMPLES)
        try:
            folder = tmp_path_factory.mktemp("demo") / "project"
            result = run_demo(folder, limit=LIMIT, quiet=True, labeler=labeler)
        finally:
            labeler.close()
        requests = dict(server.stats.requests)
    return result, requests


def test_the_demo_ends_on_accuracy_against_human_effort(demo):
    result, _ = demo
    loop = result["loop"]
    assert loop["items"] == 100 + LIMIT  # every pre-labeled item, gold and pool
    assert "reference labels" in loop["stand_in_for_people"]
    rounds = loop["rounds"]
    assert len(rounds) >= 3
    efforts = [r["effort"] for r in rounds]
    assert efforts[0] == pytest.approx(loop["gold"] / loop["items"])
    assert all(b > a for a, b in itertools.pairwise(efforts))
    assert 0.0 < efforts[-1] <= 1.0
    for r in rounds:
        assert 0.0 <= r["accuracy"] <= 1.0
        # People alone: the dataset is what they labeled, right because they are the reference.
        assert r["all-human"] == pytest.approx(r["effort"])
        # Labels people gave are right, and the model labels the rest: never below people alone.
        assert r["accuracy"] >= r["all-human"] - 1e-9


def test_the_demo_reuses_its_llm_answers_for_the_loop(demo):
    _, requests = demo
    # One pre-labeling pass over gold and the pre-labeled pool: a second would double a count.
    assert len(requests) == 100 + LIMIT
    assert max(requests.values()) <= SAMPLES


def test_the_closing_lines_name_the_stand_in_and_the_baseline(demo):
    result, _ = demo
    text = format_outcome(result["loop"])
    assert "reference labels standing in for people" in text
    assert "all-human baseline" in text
    for r in result["loop"]["rounds"]:
        assert f"{100 * r['effort']:.1f}%" in text
        assert f"{100 * r['accuracy']:.1f}%" in text
