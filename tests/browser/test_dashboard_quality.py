"""The dashboard in Chromium: each annotator's estimated accuracy with its interval, against
gold and against the team's consensus, and its drift over time."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from test_adjudicate_page import log_in_to

pytestmark = pytest.mark.browser

LABELS = ("pos", "neg")
N_GOLD, N_POOL = 80, 30
TIRED_AFTER = 50  # `tired` is right on the first fifty answers, then wrong on every one
NUMBERS = re.compile(r"[-+]?\d+\.\d")


def quality_project(make_project):
    """Gold and pool items answered by `good` (always right), `poor` (right on a third) and
    `tired` (right, then wrong), in time order."""
    project = make_project(labels=LABELS)
    truth = {f"g{i}": LABELS[i % 2] for i in range(N_GOLD)}
    project.add_items(
        [{"id": uid, "text": f"gold text {uid}", "label": label} for uid, label in truth.items()],
        label_col="label",
        split="gold",
    )
    pool = {f"p{i}": LABELS[(i // 2) % 2] for i in range(N_POOL)}
    project.add_items([{"id": uid, "text": f"pool text {uid}"} for uid in pool])
    for n, (uid, right) in enumerate([*truth.items(), *pool.items()]):
        wrong = LABELS[1 - LABELS.index(right)]
        given = {
            "good": right,
            "poor": right if n % 3 == 0 else wrong,
            "tired": right if n < TIRED_AFTER else wrong,
        }
        for who, label in given.items():
            project.annotate(uid, action="label", label=label, annotator=who)
    project.add_user("root", role="admin", password="root-password")
    return project


def shown(value: dict) -> list[float]:
    """The numbers the page prints for an estimate with its interval (percent, points)."""
    return [round(100 * value[key], 1) for key in ("estimate", "low", "high")]


def cells(page: Page, name: str) -> dict[str, list[float]]:
    row = page.locator("tr", has=page.locator("bdi", has_text=re.compile(f"^{name}$")))
    expect(row).to_have_count(1)
    return {
        column: [float(n) for n in NUMBERS.findall(row.locator(f"td.{column}").inner_text())]
        for column in ("gold-accuracy", "consensus-accuracy", "drift")
    }


def test_each_annotator_s_accuracy_with_intervals_and_drift(
    make_project, fast_password_hashing, page: Page
) -> None:
    from labelloop.server import create_app
    from labelloop.testing.server import serve_app

    project = quality_project(make_project)
    quality = project.dashboard().to_dict()["annotator_quality"]
    with serve_app(create_app(project)) as base:
        log_in_to(page, base, "/dashboard", "root")
        expect(page.get_by_text("estimated accuracy vs consensus")).to_be_visible()
        rows = {name: cells(page, name) for name in ("good", "poor", "tired")}

    for name, row in rows.items():
        q = quality[name]
        assert row["gold-accuracy"] == shown(q["against_gold"]), name
        assert row["consensus-accuracy"] == shown(q["against_consensus"]), name
        assert row["drift"] == shown(q["drift"]["recent_change"]), name
        estimate, low, high = row["gold-accuracy"]
        assert low <= estimate <= high and low < high
    # What a lead reads off the page: who is reliable, who is not, who got worse.
    assert rows["good"]["gold-accuracy"][1] > rows["poor"]["gold-accuracy"][2]
    assert rows["good"]["consensus-accuracy"][0] > rows["poor"]["consensus-accuracy"][0]
    assert rows["tired"]["drift"][2] < 0 < rows["tired"]["gold-accuracy"][0]
    assert rows["good"]["drift"][1] <= 0 <= rows["good"]["drift"][2]
