"""`labelloop prelabel --dry-run`: items, tokens, cost and time of a run, asking no endpoint."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from labelloop.labelers.openai import OpenAILabeler, estimate_cost
from labelloop.store import Prediction
from labelloop.testing.fake_openai import serve_fake_openai
from labelloop.workflows.estimate import estimate_prelabel

LABELS = ["positive", "negative"]


@pytest.fixture
def project(make_project):
    project = make_project(labels=LABELS)
    gold = [
        {
            "id": f"g{i}",
            "text": f"gold review {i}, {LABELS[i % 2]} " + "x" * (i * 7),
            "label": LABELS[i % 2],
        }
        for i in range(20)
    ]
    pool = [{"id": f"p{i}", "text": f"pool text {i} " + "word " * (i % 30)} for i in range(100)]
    project.add_items(gold, id_col="id", split="gold")
    project.add_items(pool, id_col="id")
    return project


def stored(project) -> tuple[int, int, int]:
    with project.store.session() as session:
        n, tokens_in, tokens_out = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Prediction.tokens_in), 0),
                func.coalesce(func.sum(Prediction.tokens_out), 0),
            )
        ).one()
    return n, tokens_in, tokens_out


def test_the_estimate_asks_nothing_and_matches_the_run_that_follows(project) -> None:
    """The estimate's input tokens are those of the requests the run then sends (the fake
    server counts characters / 4 as well, so they must agree closely), its cost follows the
    price table, and nothing is stored or changed before the run."""
    settings = dict(project.settings)
    with serve_fake_openai() as fake:
        labeler = OpenAILabeler("gpt-4o-mini", base_url=fake.base_url, concurrency=4)
        try:
            estimate = estimate_prelabel(project, labeler, limit=50)
            assert fake.stats.total == 0 and stored(project)[0] == 0
            assert project.settings == settings
            assert estimate.items == 70 and estimate.to_dict()["dry_run"] is True
            assert estimate.cost_usd == pytest.approx(
                estimate_cost("gpt-4o-mini", estimate.tokens_in, estimate.tokens_out)
            )
            assert estimate.price_per_mtok == pytest.approx((0.15, 0.60))
            assert estimate.elapsed_s is None  # no earlier answers from this model
            assert any("assumed" in note for note in estimate.notes)
            result = project.prelabel(labeler, limit=50)
            n, tokens_in, tokens_out = stored(project)
            assert (result.done, n) == (70, 70)
            assert estimate.tokens_in == pytest.approx(tokens_in, rel=0.03)
            # With answers stored, the next estimate takes their length and latency.
            later = estimate_prelabel(project, labeler)
            assert later.items == 50
            assert later.tokens_out == pytest.approx(50 * tokens_out / n, rel=0.05)
            assert later.items_per_s > 0 and later.elapsed_s > 0
            assert not any("assumed" in note for note in later.notes)
        finally:
            labeler.close()


def prelabel_args(project, fake) -> list:
    """`labelloop prelabel` on `project` with the fake endpoint's model."""
    return [
        "prelabel",
        "--project",
        project.path,
        "--model",
        "gpt-4o-mini",
        "--base-url",
        fake.base_url,
    ]


def test_prelabel_dry_run_command(project, cli, capsys) -> None:
    with serve_fake_openai() as fake:
        args = [*prelabel_args(project, fake), "--dry-run"]
        assert cli(*args, "--json", "--limit", 10) == 0
        result = json.loads(capsys.readouterr().out)
        assert list(result) == [
            "dry_run",
            "model",
            "prompt_version",
            "items",
            "tokens_in",
            "tokens_out",
            "tokens",
            "price_per_mtok",
            "cost_usd",
            "items_per_s",
            "elapsed_s",
            "time_from",
            "notes",
        ]
        assert result["items"] == 30 and result["tokens_in"] > 0
        assert result["tokens"] == result["tokens_in"] + result["tokens_out"]
        assert cli(*args, "--json", "--price-in", 1000, "--price-out", 0) == 0
        priced = json.loads(capsys.readouterr().out)
        assert priced["price_per_mtok"] == [1000, 0]
        assert priced["cost_usd"] == pytest.approx(priced["tokens_in"] / 1000)
        assert cli(*args) == 0
        assert "dry run, nothing labeled: 120 items" in capsys.readouterr().out
        assert fake.stats.total == 0
    assert stored(project)[0] == 0
    local = ["prelabel", "--project", project.path, "--dry-run", "--price-in", 1]
    assert cli(*local) == 2


TOPICS = ["sport", "business", "politics"]


@pytest.fixture
def ml_project(make_project):
    project = make_project(labels=TOPICS, task="Topics of a news text.", multi_label=True)
    project.update_settings(allow_empty=True)
    pool = [{"id": f"p{i}", "text": f"sport news {i} " + "word " * (i % 30)} for i in range(40)]
    project.add_items(pool, id_col="id")
    return project


def test_a_multi_label_estimate_counts_every_labels_request(ml_project) -> None:
    """A multi-label run asks one yes/no request per label and item: the estimate's input
    tokens are those of all of them (as the fake server counts them), its key is the run's."""
    from labelloop.labelers.multilabel import PerLabelDecisions
    from labelloop.testing.fake_openai import FakeConfig, keyword_decision

    with serve_fake_openai(FakeConfig(decision_rule=keyword_decision)) as fake:
        inner = OpenAILabeler("gpt-4o-mini", base_url=fake.base_url, concurrency=4)
        labeler = PerLabelDecisions(inner)
        try:
            estimate = estimate_prelabel(ml_project, labeler)
            single = estimate_prelabel(ml_project, inner)
            assert fake.stats.total == 0
            assert estimate.items == single.items == 40
            assert estimate.tokens_out == len(TOPICS) * single.tokens_out  # assumed, per answer
            result = ml_project.prelabel(labeler)
            n, tokens_in, _ = stored(ml_project)
            assert (result.done, n) == (40, 40) and fake.stats.total == 40 * len(TOPICS)
            assert estimate.tokens_in == pytest.approx(tokens_in, rel=0.03)
            assert estimate_prelabel(ml_project, labeler).items == 0  # nothing left to ask
        finally:
            labeler.close()


def test_the_dry_run_command_estimates_a_multi_label_run(ml_project, cli, capsys) -> None:
    with serve_fake_openai() as fake:
        args = [*prelabel_args(ml_project, fake), "--json"]
        assert cli(*args, "--dry-run") == 0
        estimate = json.loads(capsys.readouterr().out)
        assert fake.stats.total == 0
        assert cli(*args, "--limit", 5) == 0
        capsys.readouterr()
        assert cli(*args, "--dry-run") == 0
        after = json.loads(capsys.readouterr().out)
    assert estimate["prompt_version"] == ml_project.active_predictor()[1]
    assert (estimate["items"], after["items"]) == (40, 35)
    assert any("one request per label: 3 per item" in note for note in estimate["notes"])
