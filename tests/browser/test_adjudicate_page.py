"""The adjudication page in Chromium: a reviewer settles a disagreement with the keyboard
(number key, n for a note, Enter), undoes it with Backspace; hostile notes stay text;
annotators are kept out and flag items from the review page with f (a reason, Enter), and take
the flag back with f again."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from test_review_page import log_in, showing

from labelloop.review import adjudication
from test_adjudication import item_row, split_team

pytestmark = pytest.mark.browser
HOSTILE_NOTE = '<img src=x onerror="window.__pwned = 1"> sarcasm, see rule 3'


def log_in_to(page: Page, base: str, path: str, name: str) -> None:
    page.goto(f"{base}{path}")
    expect(page).to_have_url(f"{base}/login?next={path}")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", f"{name}-password")
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}{path}")


def test_a_reviewer_settles_a_disagreement_with_the_keyboard(live_server, page: Page) -> None:
    base, project = live_server
    ids, _ann, _bob, rita = split_team(project)
    before = item_row(project, ids[1])
    log_in_to(page, base, "/adjudicate", "rita")

    expect(page.locator("#case")).to_be_visible()
    expect(page.locator("#text")).to_have_text("review text 1")
    expect(page.locator("#reasons")).to_have_text("disagreement")
    expect(page.locator("#waiting")).to_have_text("1 waiting")
    expect(page.locator("#answers li")).to_have_text(
        ["Annotator 1: positive (correct)", "Annotator 2: negative (correct)"]
    )
    expect(page.locator("#sugg-label")).to_have_text("negative")
    expect(page.locator("#sugg-conf")).to_contain_text("%")
    expect(page.locator("#btn-decide")).to_be_disabled()
    expect(page.locator("#standing")).to_contain_text("Label now: ")
    expect(page.locator("#standing")).to_contain_text("(human)")

    page.keyboard.press("3")  # neutral
    expect(page.locator(".choice.chosen")).to_contain_text("neutral")
    page.keyboard.press("n")
    expect(page.locator("#note")).to_be_focused()
    page.keyboard.type(HOSTILE_NOTE)
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#message")).to_have_text("Decided: neutral.")
    assert item_row(project, ids[1]) == ("human_labeled", "neutral", "adjudicated")
    decision = adjudication.case(project, rita, ids[1]).to_dict()["decision"]
    assert decision["note"] == HOSTILE_NOTE

    page.keyboard.press("Backspace")
    expect(page.locator("#case")).to_be_visible()
    expect(page.locator("#text")).to_have_text("review text 1")
    expect(page.locator("#message")).to_have_text("Decision withdrawn.")
    expect(page.locator("#standing")).to_contain_text("(human)")
    assert item_row(project, ids[1]) == before
    assert page.evaluate("window.__pwned") is None


def test_names_show_when_the_project_says_so(live_server, page: Page) -> None:
    base, project = live_server
    split_team(project)
    adjudication.set_show_names(project, True)
    log_in_to(page, base, "/adjudicate", "rita")
    expect(page.locator("#answers .annotator")).to_have_text(["ann:", "bob:"])


def test_annotators_flag_from_the_review_page_and_cannot_adjudicate(
    live_server, page: Page
) -> None:
    base, project = live_server
    _ids, _ann, _bob, rita = split_team(project)
    project.add_items([{"id": "r9", "text": "review text 9"}], id_col="id")
    project.route(threshold=0.85)
    log_in(page, base, "ann", "ann-password")
    showing(page, "review text 9")
    page.keyboard.press("f")
    expect(page.locator("#flag-reason")).to_be_focused()
    page.keyboard.type("1x" + HOSTILE_NOTE)  # keys typed into the reason are no answers
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text("Flagged for a reviewer.")
    expect(page.locator("#flag-form")).to_be_hidden()
    expect(page.locator("#flagged")).to_be_visible()
    listed = adjudication.queue(project, rita).to_dict()["items"]
    assert [(i["uid"], i["reasons"]) for i in listed] == [
        ("r1", ["disagreement"]),
        ("r9", ["flagged"]),
    ]
    case = adjudication.case(project, rita, listed[1]["id"]).to_dict()
    assert [f["reason"] for f in case["flags"]] == ["1x" + HOSTILE_NOTE]
    showing(page, "review text 9")  # the item stays on screen, unanswered

    page.keyboard.press("f")  # again: the flag is taken back
    expect(page.locator("#message")).to_have_text("Flag taken back.")
    expect(page.locator("#flagged")).to_be_hidden()
    assert [i["uid"] for i in adjudication.queue(project, rita).to_dict()["items"]] == ["r1"]
    page.keyboard.press("f")  # a third time: the form again; Escape leaves without a flag
    expect(page.locator("#flag-reason")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#flag-form")).to_be_hidden()
    assert adjudication.queue(project, rita).count == 1
    showing(page, "review text 9")

    response = page.goto(f"{base}/adjudicate")
    assert response is not None and response.status == 403
    expect(page.locator("nav a[href='/adjudicate']")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None


def test_a_flag_s_reason_reaches_the_reviewer_as_text(live_server, page: Page) -> None:
    base, project = live_server
    ids, _ann, bob, _rita = split_team(project)
    adjudication.flag(project, bob, ids[0], HOSTILE_NOTE)
    log_in_to(page, base, "/adjudicate", "rita")
    expect(page.locator("#waiting")).to_have_text("2 waiting")
    expect(page.locator("#text")).to_have_text("review text 0")  # the oldest item first
    expect(page.locator("#reasons")).to_have_text("flagged")
    expect(page.locator("#flags .reason")).to_have_text(HOSTILE_NOTE)
    assert page.evaluate("window.__pwned") is None
