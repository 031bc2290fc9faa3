"""The review page in Chromium: keyboard review, undo, hostile items, two people at once."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from labelloop import review
from labelloop.labelers.base import LabelResult
from labelloop.store import Annotation, Item, ReviewTask
from test_review_service import seed

pytestmark = pytest.mark.browser  # on both stores: the `db_url` fixture of tests/conftest.py
SCREENSHOT = os.environ.get("LABELLOOP_SCREENSHOT")


def log_in(page: Page, base: str, name: str, password: str) -> None:
    page.goto(f"{base}/review")
    expect(page).to_have_url(f"{base}/login?next=/review")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/review")


def review_predictions(
    page: Page, base: str, project: Any, results: list[Any], threshold: float
) -> list[str]:
    """Route `results` as the active predictor's and log `ann` in to review them; the list
    collects the message of any dialog the page opens (hostile data must open none)."""
    project.save_predictions("fake", "v1", results)
    project.set_active_predictor("fake", "v1")
    project.route(threshold=threshold)
    review.add_user(project, "ann", password="ann-password")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, base, "ann", "ann-password")
    return dialogs


def showing(page: Page, text: str) -> None:
    expect(page.locator("#card")).to_be_visible()
    expect(page.locator("#text")).to_have_text(text)


def test_review_with_the_keyboard_and_undo(live_server, page: Page) -> None:
    base, project = live_server
    ids = seed(project, 4)
    review.add_user(project, "ann", password="ann-password")
    log_in(page, base, "ann", "ann-password")
    showing(page, "review text 0")  # suggested: positive
    expect(page.locator("#sugg-label")).to_have_text("positive")
    expect(page.locator("#sugg-reason")).to_have_text("why 0")
    expect(page.locator(".choice")).to_have_count(3)
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    page.keyboard.press("1")  # positive = the suggestion: accept
    showing(page, "review text 1")
    page.keyboard.press("3")  # neutral: a correction
    showing(page, "review text 2")
    page.keyboard.press("x")  # reject
    showing(page, "review text 3")
    page.keyboard.press("Backspace")  # undo the rejection: item 2 is back
    showing(page, "review text 2")
    page.keyboard.press("Enter")  # accept neutral
    showing(page, "review text 3")
    page.keyboard.press("a")  # accept positive
    expect(page.locator("#empty")).to_be_visible()
    page.keyboard.press("Backspace")
    showing(page, "review text 3")
    page.keyboard.press(" ")  # skip
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#message")).to_have_text("Skipped.")

    with project.store.session() as session:
        rows = session.execute(
            select(
                Annotation.item_id,
                Annotation.action,
                Annotation.label,
                Annotation.undone,
                Annotation.time_spent_s,
            ).order_by(Annotation.id)
        ).all()
        finals = dict(session.execute(select(Item.id, Item.final_label)).all())
        open_tasks = set(
            session.scalars(select(ReviewTask.item_id).where(ReviewTask.done.is_(False)))
        )
    r = ids["review"]
    assert [(row.item_id, row.action, row.label, row.undone) for row in rows] == [
        (r[0], "accept", "positive", False),
        (r[1], "correct", "neutral", False),
        (r[2], "reject", None, True),
        (r[2], "accept", "neutral", False),
        (r[3], "accept", "positive", True),
        (r[3], "skip", None, False),
    ]
    assert all(row.time_spent_s is not None and row.time_spent_s > 0 for row in rows)
    assert [finals[i] for i in r] == ["positive", "neutral", "neutral", None]
    assert open_tasks == {r[3]}  # only the skipped item still waits for someone


HOSTILE = [
    "<script>window.__pwned = 1; alert('script')</script>",
    "<img src=x onerror=\"window.__pwned = 2; alert('img')\">",
    '"><svg onload=alert(3)>',
]


def test_each_answer_is_one_round_trip_that_brings_the_next_item(live_server, page: Page):
    base, project = live_server
    seed(project, 6)
    review.add_user(project, "ann", password="ann-password")
    calls: list[str] = []
    page.on("request", lambda r: calls.append(f"{r.method} {r.url}") if "/api/" in r.url else 0)
    log_in(page, base, "ann", "ann-password")
    for i in range(6):
        showing(page, f"review text {i}")
        page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    posts = [c for c in calls if c.startswith("POST") and "/annotations" in c]
    fetches = [c for c in calls if c.startswith("GET") and "/queue/next" in c]
    assert len(posts) == 6 and all("next=true" in c for c in posts)
    assert len(fetches) <= 2  # the first item and one prefetch; answers bring the rest
    with project.store.session() as session:
        assert len(session.scalars(select(Annotation.id)).all()) == 6


def test_hostile_items_are_shown_as_text(live_server, page: Page) -> None:
    base, project = live_server
    project.add_items(
        [{"id": f"h{i}", "text": text} for i, text in enumerate(HOSTILE)], id_col="id"
    )
    results = [
        (project.item_id(f"h{i}"), LabelResult("positive", None, 0.1 + i / 10, HOSTILE[1]))
        for i in range(len(HOSTILE))
    ]
    dialogs = review_predictions(page, base, project, results, threshold=0.85)
    for text in HOSTILE:
        showing(page, text)
        expect(page.locator("#sugg-reason")).to_have_text(HOSTILE[1])
        assert page.locator("#card img, #card script, #card svg").count() == 0
        page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it would be shown reversed
MARKER = "\u27e8U+202E\u27e9"
# The characters of an element's text nodes (one line of them) in the order they appear on
# screen, left to right, each placed by the box of its own Range.
VISUAL_ORDER = """selector => {
  const chars = [];
  const walker = document.createTreeWalker(document.querySelector(selector), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const box = range.getBoundingClientRect();
      if (box.width > 0) chars.push([box.left, node.data[i]]);
    }
  }
  chars.sort((a, b) => a[0] - b[0]);
  return chars.map((c) => c[1]).join("");
}"""


@pytest.mark.parametrize(
    "live_server", [{"labels": ("positive", f"neg{RLO}ative", "neutral")}], indirect=True
)
def test_bidi_overrides_are_shown_not_applied(live_server, page: Page) -> None:
    """A right-to-left override in a text, a label, a reasoning or an id does not reorder what
    the annotator reads: it shows as a marked placeholder, and the rest keeps its order."""
    base, project = live_server
    label, uid = f"neg{RLO}ative", f"u{RLO}1"
    project.add_items([{"id": uid, "text": f"abc{RLO}def"}], id_col="id")
    item = project.item_id(uid)
    project.save_predictions("fake", "v1", [(item, LabelResult(label, None, 0.2, f"why{RLO}so"))])
    project.set_active_predictor("fake", "v1")
    project.route(threshold=0.85)
    review.add_user(project, "ann", password="ann-password")
    log_in(page, base, "ann", "ann-password")
    expect(page.locator("#card")).to_be_visible()
    shown = {
        "#text": f"abc{MARKER}def",
        "#sugg-reason": f"why{MARKER}so",
        "#sugg-label": f"neg{MARKER}ative",
        ".choice:nth-child(2) .label-name": f"neg{MARKER}ative",
        "#uid": f"u{MARKER}1",
    }
    for selector, text in shown.items():
        expect(page.locator(selector)).to_have_text(text)
        assert page.evaluate(VISUAL_ORDER, selector) == text, selector
        expect(page.locator(f"{selector} .bidi-control")).to_be_visible()
    styles = page.evaluate(
        """() => [getComputedStyle(document.getElementById("text")).unicodeBidi,
                  getComputedStyle(document.querySelector(".bidi-control")).borderTopStyle]"""
    )
    assert styles == ["plaintext", "solid"]
    # Only the display changes: picking the label stores it as it is.
    page.keyboard.press("2")
    expect(page.locator("#empty")).to_be_visible()
    with project.store.session() as session:
        assert session.scalars(select(Annotation.label)).all() == [label]


def test_two_annotators_in_parallel_lose_nothing(live_server, browser) -> None:
    base, project = live_server
    ids = seed(project, 8)
    pages = []
    for name in ("ann", "bob"):
        review.add_user(project, name, password=f"{name}-password")
        context = browser.new_context()
        page = context.new_page()
        log_in(page, base, name, f"{name}-password")
        pages.append(page)
    texts = [page.locator("#text") for page in pages]
    for text in texts:
        expect(text).not_to_have_text("")
    # Take turns pressing Enter until both are out of work; every press answers one item.
    finished = [False, False]
    while not all(finished):
        for k, page in enumerate(pages):
            if finished[k]:
                continue
            if page.locator("#empty").is_visible():
                finished[k] = True
                continue
            before = texts[k].text_content()
            page.keyboard.press("Enter")
            page.wait_for_function(
                "before => document.getElementById('empty').hidden === false || "
                "document.getElementById('text').textContent !== before",
                arg=before,
            )
    with project.store.session() as session:
        rows = session.execute(select(Annotation.item_id, Annotation.annotator_id)).all()
    answered = sorted(item for item, _ in rows)
    assert answered == sorted(ids["review"])  # every item once: nothing lost, nothing twice
    assert len({who for _, who in rows}) == 2  # both people did some of the work
    assert project.stats().human_labeled == 8
