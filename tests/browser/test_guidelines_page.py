"""The guidelines in the review page, in Chromium: a key toggles them, label descriptions show
on hover and in the label list, and hostile Markdown or descriptions stay inert."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from test_review_page import log_in, showing

from labelloop import review
from test_review_service import seed

pytestmark = pytest.mark.browser

HOSTILE_GUIDE = """# How to label

Sarcastic praise is **negative**.

<script>window.__pwned = 1; alert("script")</script>
<img src=x onerror="window.__pwned = 2; alert('img')">
[a javascript link](javascript:window.__pwned=3)
[a data link](data:text/html,<script>alert(4)</script>)
[the style guide](https://example.org/style)
"""
HOSTILE_DESCRIPTION = '<img src=x onerror="window.__pwned = 5; alert(5)"> praise'


def test_guidelines_toggle_and_descriptions_show_and_nothing_runs(live_server, page: Page):
    base, project = live_server
    seed(project, 2)
    project.set_guidelines(
        HOSTILE_GUIDE,
        label_descriptions={"positive": HOSTILE_DESCRIPTION, "negative": "Complaints, sarcasm"},
        author="ana",
    )
    review.add_user(project, "ann", password="ann-password")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, base, "ann", "ann-password")
    showing(page, "review text 0")

    panel = page.locator("#guidelines")
    expect(panel).to_be_hidden()
    page.keyboard.press("g")
    expect(panel).to_be_visible()
    expect(page.locator("#guidelines-text h1")).to_have_text("How to label")
    expect(page.locator("#guidelines-text strong")).to_have_text("negative")
    # Raw HTML is shown as text; only the http(s) link is a link.
    expect(page.locator("#guidelines-text")).to_contain_text("<script>window.__pwned = 1;")
    expect(page.locator("#guidelines-text script, #guidelines-text img")).to_have_count(0)
    links = page.locator("#guidelines-text a")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.org/style")
    expect(links).to_have_attribute("rel", "noopener noreferrer nofollow")
    # The label list in the panel, every label, described or not.
    expect(page.locator("#label-descriptions dt")).to_have_text(["positive", "negative", "neutral"])
    expect(page.locator("#label-descriptions dd")).to_have_text(
        [HOSTILE_DESCRIPTION, "Complaints, sarcasm", "—"]
    )
    page.keyboard.press("g")
    expect(panel).to_be_hidden()

    # Descriptions in the label buttons and on hover, as text.
    first = page.locator(".choice").nth(0)
    expect(first.locator(".label-desc")).to_have_text(HOSTILE_DESCRIPTION)
    expect(first).to_have_attribute("title", HOSTILE_DESCRIPTION)
    expect(page.locator(".choice").nth(2).locator(".label-desc")).to_have_count(0)
    expect(page.locator("#sugg-label")).to_have_attribute("title", HOSTILE_DESCRIPTION)
    first.hover()
    expect(page.locator("#card img, #choices img")).to_have_count(0)

    page.keyboard.press("1")  # the page still works as before: an answer, the next item
    showing(page, "review text 1")
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_without_guidelines_the_panel_says_so(live_server, page: Page):
    base, project = live_server
    seed(project, 1)
    review.add_user(project, "ann", password="ann-password")
    log_in(page, base, "ann", "ann-password")
    showing(page, "review text 0")
    page.click("#btn-guidelines")
    expect(page.locator("#guidelines")).to_contain_text("No guidelines for this project yet.")
    expect(page.locator(".label-desc")).to_have_count(0)


def test_after_a_gold_check_the_expected_label_shows_when_the_project_asks(live_server, page):
    import random

    base, project = live_server
    ids = seed(project, 2, n_gold=1)  # g0: gold label positive
    review.set_queue_settings(project, gold_rate=0.99)
    project.set_guidelines(
        label_descriptions={
            "positive": HOSTILE_DESCRIPTION,
            "negative": "Complaint",
            "neutral": "Neither",
        }
    )
    project.set_gold_feedback(True)
    review.add_user(project, "ann", password="ann-password")
    random.seed(0)  # gold checks are drawn at random (in this process: the server's thread)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, base, "ann", "ann-password")
    expect(page.locator("#text")).to_have_text("gold text 0")
    assert ids["gold"] == [project.item_id("g0")]
    page.keyboard.press("3")  # neutral: wrong
    message = page.locator("#message")
    expect(message).to_have_text(
        f"Gold check missed: expected positive, you gave neutral — positive: {HOSTILE_DESCRIPTION}"
    )
    expect(message).to_have_class("message error")
    expect(page.locator("#message img")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None and dialogs == []
