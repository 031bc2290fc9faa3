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


def test_prelabel_dry_run_command(project, cli, capsys) -> None:
    with serve_fake_openai() as fake:
        endpoint = ["--model", "gpt-4o-mini", "--base-url", fake.base_url]
        args = ["prelabel", "--project", project.path, *endpoint, "--dry-run"]
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
