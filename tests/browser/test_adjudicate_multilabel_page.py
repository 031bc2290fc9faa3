"""The adjudication page on a multi-label project in Chromium: each answer's set is shown, the
item's set comes pre-ticked, number keys tick or untick labels, Enter decides with the ticked
set, Backspace undoes it and the item has its set back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from test_adjudicate_page import log_in_to

from labelloop.review import adjudication
from test_adjudication_multilabel import LABELS, split_sets, state_of

pytestmark = pytest.mark.browser


def checked(page: Page) -> list[bool]:
    boxes = page.locator(".choice input[type=checkbox]")
    return [boxes.nth(k).is_checked() for k in range(boxes.count())]


@pytest.mark.parametrize(
    "live_server", [{"labels": LABELS, "task": "Topics.", "multi_label": True}], indirect=True
)
def test_a_reviewer_settles_different_sets_with_checkboxes(live_server, page: Page) -> None:
    base, project = live_server
    ids, _ann, _bob, rita = split_sets(project)
    before = state_of(project, "m1")
    log_in_to(page, base, "/adjudicate", "rita")

    expect(page.locator("#case")).to_be_visible()
    expect(page.locator("#text")).to_have_text("topic text m1")
    expect(page.locator("#reasons")).to_have_text("disagreement")
    expect(page.locator("#answers li")).to_have_text(
        ["Annotator 1: business (correct)", "Annotator 2: business, tech (correct)"]
    )
    expect(page.locator("#sugg-label")).to_have_text("business, sport")
    expect(page.locator(".choice .label-prob")).to_have_text(["90%", "55%", "30%"])
    expect(page.locator("#standing")).to_contain_text("business, tech (human)")
    assert checked(page) == [True, False, True]  # the item's set now

    page.keyboard.press("1")  # untick business
    page.keyboard.press("2")  # tick sport
    assert checked(page) == [False, True, True]
    page.keyboard.press("n")
    page.keyboard.type("sport and tech, not business")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#message")).to_have_text("Decided: sport, tech.")
    assert state_of(project, "m1") == ("human_labeled", ["sport", "tech"], "adjudicated")
    decision = adjudication.case(project, rita, ids["m1"]).to_dict()["decision"]
    assert decision["labels"] == ["sport", "tech"]

    page.keyboard.press("Backspace")
    expect(page.locator("#case")).to_be_visible()
    expect(page.locator("#message")).to_have_text("Decision withdrawn.")
    expect(page.locator("#standing")).to_contain_text("business, tech (human)")
    assert checked(page) == [True, False, True]
    assert state_of(project, "m1") == before

    page.keyboard.press("3")
    page.keyboard.press("1")  # nothing ticked: this project takes no empty set
    assert checked(page) == [False, False, False]
    page.keyboard.press("Enter")
    expect(page.locator("#message.error")).not_to_have_text("")
    assert state_of(project, "m1") == before
