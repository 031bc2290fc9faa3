"""`labelloop compare`: every labeler that answered the gold items, side by side."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from labelloop import InputError
from labelloop.labelers.openai import OpenAILabeler
from labelloop.store import GOLD, Item, Prediction
from labelloop.testing.fake_openai import FakeConfig, serve_fake_openai
from labelloop.workflows.compare import GoldQuality, compare

LABELS = ["positive", "negative"]


def first_label(text: str, labels: list[str]) -> str:
    return labels[0]


@pytest.fixture
def two_labelers(make_project):
    """Gold items whose text names their label (90% of them), labeled by a model that reads
    the text and by one that always answers the first label."""
    project = make_project(labels=LABELS)
    gold = []
    for i in range(60):
        said = LABELS[i % 2]
        truth = said if i % 10 else LABELS[1 - i % 2]
        gold.append({"id": f"g{i}", "text": f"review {i}: {said} overall", "label": truth})
    pool = [{"id": f"p{i}", "text": f"pool {i}: {LABELS[i % 2]}"} for i in range(20)]
    project.add_items(gold, id_col="id", split="gold")
    project.add_items(pool, id_col="id")
    with (
        serve_fake_openai() as reader,
        serve_fake_openai(FakeConfig(rule=first_label)) as lazy,
    ):
        for name, server in (("reader", reader), ("lazy", lazy)):
            labeler = OpenAILabeler(name, base_url=server.base_url, concurrency=4)
            try:
                project.prelabel(labeler)
            finally:
                labeler.close()
    return project


def gold_accuracy_by_hand(project, model: str) -> tuple[float, int]:
    excluded = set(project.settings.get("few_shot_item_ids") or [])
    with project.store.session() as session:
        rows = session.execute(
            select(Item.id, Item.gold_label, Prediction.label)
            .join(Prediction, Prediction.item_id == Item.id)
            .where(Item.split == GOLD, Prediction.model == model)
        ).all()
    kept = [(gold, label) for item, gold, label in rows if item not in excluded]
    return sum(gold == label for gold, label in kept) / len(kept), len(kept)


def test_compare_puts_every_labeler_of_the_gold_side_by_side(two_labelers) -> None:
    project = two_labelers
    compared = compare(project, target_accuracy=0.9)
    assert compared.target_accuracy == 0.9
    result = compared.to_dict()
    reader, lazy = result["labelers"]  # in the order they first answered
    assert (reader["model"], lazy["model"]) == ("reader", "lazy")
    assert (reader["active"], lazy["active"]) == (False, True)  # the last run is active
    for entry in (reader, lazy):
        accuracy, n = gold_accuracy_by_hand(project, entry["model"])
        assert entry["n_gold"] == n
        assert entry["accuracy"]["accuracy"] == pytest.approx(accuracy)
        assert entry["accuracy"]["low"] <= accuracy <= entry["accuracy"]["high"]
        assert entry["answers"] == 80 and entry["failed"] == 0
        assert entry["tokens"] > 0 and entry["seconds_per_item"] > 0
    assert reader["accuracy"]["accuracy"] == pytest.approx(0.9, abs=0.05)
    assert lazy["accuracy"]["accuracy"] < 0.6
    # The reader's confidence separates right from wrong no better than chance either (the
    # fake answers one confidence), but far less of its work needs people for 90%.
    assert reader["review_rate"] < lazy["review_rate"]
    assert reader["ece_after"] is not None and lazy["ece_before"] is not None


def test_compare_checks_its_options(two_labelers) -> None:
    with pytest.raises(InputError, match="target accuracy"):
        compare(two_labelers, target_accuracy=1.5)
    with pytest.raises(InputError, match="unknown calibration method"):
        compare(two_labelers, method="magic")


def test_compare_without_gold_answers_lists_nothing(make_project) -> None:
    project = make_project(labels=LABELS)
    project.add_items([{"id": "a", "text": "a text"}], id_col="id")
    assert compare(project).labelers == ()


def test_compare_command(two_labelers, cli, capsys) -> None:
    project = two_labelers
    assert cli("compare", "--project", project.path, "--json", "--target-accuracy", 0.9) == 0
    result = json.loads(capsys.readouterr().out)
    assert [e["model"] for e in result["labelers"]] == ["reader", "lazy"]
    assert list(result["labelers"][0]) == [
        "model",
        "prompt_version",
        "active",
        "n_gold",
        "accuracy",
        "auroc",
        "ece_before",
        "ece_after",
        "calibration",
        "review_rate",
        "expected_accuracy",
        "answers",
        "failed",
        "tokens",
        "cost_usd",
        "cost_per_1000_items_usd",
        "seconds_per_item",
        "items_per_s",
    ]
    assert cli("compare", "--project", project.path) == 0
    shown = capsys.readouterr().out
    assert "reader@" in shown and "lazy@" in shown and "(active)" in shown
    assert cli("compare", "--project", project.path, "--target-accuracy", 2) == 2


def test_a_labeler_not_measured_shows_why_and_no_empty_figures() -> None:
    few = GoldQuality(3, note="fewer than 10 gold answers: not measured")
    assert few.to_dict() == {"n_gold": 3, "note": "fewer than 10 gold answers: not measured"}
    interval = {"accuracy": 1.0, "low": 0.7, "high": 1.0}
    right = GoldQuality(12, accuracy=interval, note="every gold answer right")
    assert list(right.to_dict()) == ["n_gold", "accuracy", "note"]
