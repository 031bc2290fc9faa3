"""The whole product played with a file's labels as the people: `simulate --loop` and `plan`."""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from labelloop import Project
from labelloop.labelers import OpenAILabeler
from labelloop.loop_simulation import (
    LabeledItems,
    format_loop,
    simulate_loop,
)
from labelloop.store import Annotation, Item, Prediction
from labelloop.testing.fake_openai import FakeConfig, noisy_rule, serve_fake_openai

N_ITEMS, N_GOLD = 120, 20
SAMPLES = 5  # self-consistency votes: confidences that differ between items


def _sample_rows(name: str, n: int) -> list[dict[str, str]]:
    with open(Path(str(files("labelloop") / "sample_data" / name)), newline="") as f:
        return list(csv.DictReader(f))[:n]


@pytest.fixture(scope="module")
def items() -> LabeledItems:
    rows = _sample_rows("reviews_pool.csv", N_ITEMS)
    labels = [r["reference_label"] for r in rows]
    return LabeledItems(
        [r["id"] for r in rows], [r["text"] for r in rows], labels, sorted(set(labels))
    )


@pytest.fixture(scope="module")
def played(items, tmp_path_factory):
    truth = dict(zip(items.texts, items.labels, strict=True))
    config = FakeConfig(rule=noisy_rule(truth), sample_flip=0.3)
    plot = tmp_path_factory.mktemp("plots") / "loop.png"
    with serve_fake_openai(config) as server:
        labeler = OpenAILabeler("fake-model", base_url=server.base_url, self_consistency=SAMPLES)
        try:
            result = simulate_loop(
                items,
                task="Classify the sentiment of this movie review.",
                labeler=labeler,
                n_gold=N_GOLD,
                budget=1.0,
                batch=40,
                repeats=2,
                plot=plot,
            )
        finally:
            labeler.close()
        requests = dict(server.stats.requests)
        prompts = list(server.stats.prompts)
    return result, requests, prompts


#: What `simulate --loop --json` sends, in order: the summary, then how it was played.
SENT = ["settings", "target_accuracy", "budget", "level", "items", "gold", "batch", "repeats"]
SENT += ["strategies", "confidence_level", "labeler", "embedder", "cache"]


def _runs(result, name):
    return result.settings[name]["runs"]


def test_every_setting_and_baseline_is_played_and_the_result_is_json(played):
    result, _, _ = played
    assert list(result.settings) == [
        "loop",
        "random-order",
        "one-pass",
        "student-alone",
        "all-human",
    ]
    for s in result.settings.values():
        assert len(s["runs"]) == 2
        assert {"curve", "effort_to_target", "accuracy_at_budget", "start", "end"} <= set(s)
    json.dumps(result.to_dict(), allow_nan=False)  # strict JSON: no NaN or infinity anywhere
    assert Path(result.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_llm_answers_every_item_once_per_gold_draw_with_examples_from_that_gold(played, items):
    _, requests, prompts = played
    # Two repeats of five settings: each gold draw's template is pre-labeled once, then its
    # settings play from copies; a run that asked again would raise a count.
    assert len(requests) == N_ITEMS
    assert set(requests.values()) == {min(requests.values())}
    assert 2 <= min(requests.values()) <= 2 * SAMPLES
    # As `prelabel` asks in a project with gold: few-shot examples from the draw's gold, so
    # the two draws asked with two different prompts around the items.
    shared = {json.dumps(messages[:-1], sort_keys=True) for messages in prompts}
    assert len(shared) == 2
    shown = [
        text
        for text in items.texts
        if any(text[:60] in json.dumps(m, ensure_ascii=False) for m in prompts[0][:-1])
    ]
    assert shown  # the examples are items of the pool (its gold)


def test_effort_starts_at_the_gold_share_and_never_goes_back(played):
    result, _, _ = played
    for name in result.settings:
        for run in _runs(result, name):
            efforts = [p["effort"] for p in run]
            assert efforts[0] == pytest.approx(N_GOLD / N_ITEMS)
            assert all(b > a for a, b in itertools.pairwise(efforts))
            assert efforts[-1] <= 1.0


def test_labeling_everything_gives_a_perfect_dataset(played):
    result, _, _ = played
    for name in ("random-order", "all-human"):
        for run in _runs(result, name):
            assert run[-1]["effort"] == pytest.approx(1.0)
            assert run[-1]["accuracy"] == pytest.approx(1.0)
        assert result.settings[name]["accuracy_at_budget"]["mean"] == pytest.approx(1.0)


def test_all_human_accuracy_is_its_effort(played):
    result, _, _ = played
    for run in _runs(result, "all-human"):
        for point in run:
            assert point["accuracy"] == pytest.approx(point["effort"])
    effort = result.settings["all-human"]["effort_to_target"]
    assert effort["mean"] == pytest.approx(result.target_accuracy, abs=1e-9)


def test_finished_dataset_is_human_labels_plus_the_predictor_s(played):
    """Accuracy = effort (people are right) + the rest at the routing predictor's accuracy."""
    result, _, _ = played
    for name in ("loop", "random-order", "one-pass", "student-alone"):
        for run in _runs(result, name):
            for p in run:
                if p["auto_accuracy"] is None:  # nothing left for the predictor
                    assert p["accuracy"] == pytest.approx(1.0)
                    continue
                expected = p["effort"] + (1 - p["effort"]) * p["auto_accuracy"]
                assert p["accuracy"] == pytest.approx(expected)
                assert p["accuracy"] >= p["auto_accuracy"]


def test_settings_of_a_repeat_share_gold_and_llm_answers(played):
    result, _, _ = played
    for r in range(2):
        # Both retraining settings learn from the same gold before anyone answers.
        starts = {_runs(result, name)[r][0]["accuracy"] for name in ("loop", "random-order")}
        assert len(starts) == 1
    # One routing pass trusts the LLM alone; the student alone never saw its answers.
    assert result.settings["one-pass"]["start"] != result.settings["student-alone"]["start"]


def test_curves_carry_means_and_intervals_and_the_text_names_every_setting(played):
    result, _, _ = played
    text = format_loop(result)
    for name, s in result.settings.items():
        assert name in text
        efforts = [p["effort"] for p in s["curve"]]
        assert efforts == sorted(efforts) and efforts[0] >= N_GOLD / N_ITEMS - 1e-9
        for p in s["curve"]:
            assert 0.0 <= p["accuracy_low"] <= p["accuracy_mean"] <= p["accuracy_high"] <= 1.0
    ratio = result.settings["all-human"]["effort_vs_random_order"]
    assert ratio["ratio"] >= 1.0  # people alone never need less than the loop with an LLM


def test_the_result_sends_its_keys_in_order_and_the_plot_only_when_drawn(played):
    result, _, _ = played
    sent = result.to_dict()
    assert list(sent) == [*SENT, "plot"]
    assert sent["plot"] == result.plot and sent["settings"] == result.settings
    assert (sent["items"], sent["gold"], sent["batch"], sent["repeats"]) == (N_ITEMS, N_GOLD, 40, 2)
    assert sent["strategies"] == ["review"] and sent["cache"] is None
    assert list(replace(result, plot=None).to_dict()) == SENT


def _write_labeled(path: Path, n: int) -> Path:
    rows = _sample_rows("reviews_pool.csv", n)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "sentiment"])
        for r in rows:
            writer.writerow([r["text"], r["reference_label"]])
    return path


def test_cli_simulate_loop_without_an_llm(cli, capsys, tmp_path):
    data = _write_labeled(tmp_path / "labeled.csv", 80)
    plot = tmp_path / "curves.png"
    args = ["simulate", "--loop", "--data", data, "--label-col", "sentiment", "--model", "none"]
    args += ["--gold", 20, "--budget", 0.6, "--batch", 20, "--repeats", 1]
    assert cli(*args, "--plot", plot, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == [*SENT, "plot"]
    assert list(result["settings"]) == ["loop", "random-order", "all-human"]
    assert result["labeler"] is None and result["items"] == 80
    for s in result["settings"].values():
        assert s["runs"][0][-1]["effort"] <= 0.6 + 1e-9
    assert plot.stat().st_size > 0
    assert cli(*args) == 0
    assert "all-human" in capsys.readouterr().out


def test_cli_simulate_loop_reports_bad_settings(cli, capsys, tmp_path):
    data = _write_labeled(tmp_path / "labeled.csv", 40)
    base = ["simulate", "--loop", "--data", data, "--label-col", "sentiment", "--model", "none"]
    assert cli(*base, "--gold", 60) == 2
    assert "--gold" in capsys.readouterr().err
    assert cli(*base, "--gold", 20, "--budget", 0.3) == 2  # the gold alone spends it
    assert "budget" in capsys.readouterr().err
    assert cli(*base, "--gold", 10, "--strategy", "nonsense") == 2
    assert "nonsense" in capsys.readouterr().err


def _counts(project: Project) -> tuple[int, ...]:
    with project.store.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (Item, Prediction, Annotation)
        )


def test_plan_gives_the_effort_for_a_target_from_the_project_gold(cli, capsys, make_project):
    project = make_project(labels=("negative", "positive"), task="Sentiment of the review.")
    rows = _sample_rows("reviews_gold.csv", 40)
    project.add_items(rows, id_col="id", label_col="label", split="gold")
    truth = {r["text"]: r["label"] for r in rows}
    config = FakeConfig(rule=noisy_rule(truth), sample_flip=0.3)
    with serve_fake_openai(config) as server:
        labeler = OpenAILabeler("fake-model", base_url=server.base_url, self_consistency=SAMPLES)
        project.prelabel(labeler)
        labeler.close()
        asked = server.stats.total
        before = _counts(project)
        args = ["plan", "--project", project.path, "--target-accuracy", 0.9]
        assert cli(*args, "--repeats", 2, "--batch", 10, "--json") == 0
        assert server.stats.total == asked  # the stored answers are played, nobody is asked
    result = json.loads(capsys.readouterr().out)
    assert list(result) == [*SENT, "plan"]  # no plot asked for
    assert _counts(project) == before  # the project itself is left as it was
    assert result["items"] == 40 and result["gold"] == 12
    assert result["labeler"].startswith("fake-model@")
    plan = result["plan"]
    assert plan["setting"] == "loop" and plan["repeats"] == 2
    assert plan["mean"] is None or 0.3 <= plan["mean"] <= 1.0
    # All human: the target as effort, whatever the gold.
    all_human = result["settings"]["all-human"]["effort_to_target"]
    assert all_human["mean"] == pytest.approx(0.9)
    assert np.isclose(result["target_accuracy"], 0.9)


def test_plan_needs_enough_gold(cli, capsys, make_project):
    project = make_project(labels=("negative", "positive"))
    project.add_items(_sample_rows("reviews_gold.csv", 12), id_col="id", split="gold")
    assert cli("plan", "--project", project.path) == 2
    assert "at least 30 gold items" in capsys.readouterr().err


def test_cli_simulate_loop_certifies_routing_at_the_level_given(cli, capsys, tmp_path):
    data = _write_labeled(tmp_path / "labeled.csv", 60)
    base = ["simulate", "--loop", "--data", data, "--label-col", "sentiment", "--model", "none"]
    base += ["--gold", 20, "--budget", 0.5, "--batch", 20, "--repeats", 1, "--json"]
    assert cli(*base, "--confidence-level", 0.8, "--target-accuracy", 0.99) == 0
    certified = json.loads(capsys.readouterr().out)
    assert list(certified) == SENT
    assert certified["confidence_level"] == 0.8
    # 20 gold items cannot certify 0.99: routing keeps every item for people, so the loop
    # spends its whole budget instead of declaring the dataset finished.
    assert certified["settings"]["loop"]["runs"][0][-1]["effort"] == pytest.approx(0.5)
    assert cli(*base, "--confidence-level", 0) == 0
    assert json.loads(capsys.readouterr().out)["confidence_level"] is None
    assert cli(*base, "--confidence-level", 1.5) == 2
    assert "--confidence-level" in capsys.readouterr().err


def test_a_labeler_showing_more_examples_is_asked_again(items, tmp_path):
    """The template of answers is keyed by what the prompt shows: the gold and how many of its
    examples per label the labeler takes."""
    from labelloop.active import get_embedder
    from labelloop.loop_simulation import base_template, llm_template

    base = base_template(items, "Sentiment.", get_embedder("auto"), tmp_path, print)
    gold = [
        {"id": u, "text": t, "label": label}
        for u, t, label in list(zip(items.uids, items.texts, items.labels, strict=True))[:N_GOLD]
    ]
    truth = dict(zip(items.texts, items.labels, strict=True))
    with serve_fake_openai(FakeConfig(rule=noisy_rule(truth))) as server:
        paths = []
        for shots in (1, 2, 2):
            labeler = OpenAILabeler(
                "fake-model", base_url=server.base_url, examples_per_label=shots
            )
            try:
                paths.append(llm_template(base, labeler, gold=gold, log=print))
            finally:
                labeler.close()
        asked = dict(server.stats.requests)
    assert paths[0] != paths[1] == paths[2]
    assert set(asked.values()) == {2}  # once per number of examples; the third reused
