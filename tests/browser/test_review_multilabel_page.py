"""The review page on a multi-label project in Chromium: checkboxes, number keys, sets stored."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from test_review_page import SCREENSHOT, log_in, review_predictions

from labelloop import review
from labelloop.labelers.multilabel import multi_label_result
from labelloop.store import Annotation, Item

pytestmark = pytest.mark.browser  # on both stores: the `db_url` fixture of tests/conftest.py
HOSTILE = '<img src=x onerror="window.__pwned = 1">'
LABELS = ("business", "sport", HOSTILE)
P_YES = [0.97, 0.6, 0.02]  # suggested: business and sport; only sport is uncertain at 0.9


def checked(page: Page) -> list[bool]:
    boxes = page.locator(".choice input[type=checkbox]")
    return [boxes.nth(k).is_checked() for k in range(boxes.count())]


def answered(page: Page, count: int) -> None:
    expect(page.locator("#done-count")).to_have_text(str(count))


@pytest.mark.parametrize(
    "live_server", [{"labels": LABELS, "task": "Topics.", "multi_label": True}], indirect=True
)
def test_tick_labels_with_number_keys_and_submit_the_set(live_server, page: Page) -> None:
    base, project = live_server
    project.add_items([{"id": f"m{k}", "text": f"topic text {k}"} for k in range(3)])
    results = [(project.item_id(f"m{k}"), multi_label_result(LABELS, P_YES)) for k in range(3)]
    dialogs = review_predictions(page, base, project, results, threshold=0.9)
    expect(page.locator("#card")).to_be_visible()

    rows = page.locator(".choice")
    expect(rows).to_have_count(3)
    expect(rows.locator(".label-name")).to_have_text(list(LABELS))  # the HTML label as text
    assert page.locator("#card img, #card script").count() == 0
    expect(rows.locator(".label-prob")).to_have_text(["97%", "60%", "2%"])
    expect(page.locator(".choice.uncertain")).to_have_count(1)
    expect(page.locator(".choice.uncertain .label-name")).to_have_text("sport")
    expect(page.locator("#sugg-label")).to_have_text("business, sport")
    assert checked(page) == [True, True, False]  # the suggestion, pre-ticked
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    texts = []

    texts.append(page.locator("#text").text_content())
    page.keyboard.press("Enter")  # the suggested set as it is
    answered(page, 1)
    assert checked(page) == [True, True, False]  # the next item starts from its suggestion
    texts.append(page.locator("#text").text_content())
    page.keyboard.press("2")  # untick sport
    page.keyboard.press("3")  # tick the third label
    assert checked(page) == [True, False, True]
    page.keyboard.press("Enter")
    answered(page, 2)
    texts.append(page.locator("#text").text_content())
    page.keyboard.press("1")
    page.keyboard.press("2")
    assert checked(page) == [False, False, False]
    page.keyboard.press("Enter")  # the project does not allow an empty set: refused, stays
    expect(page.locator("#message.error")).not_to_have_text("")
    answered(page, 2)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_be_visible()
    assert dialogs == []
    assert page.evaluate("window.__pwned") is None

    with project.store.session() as session:
        stored = session.execute(
            select(
                Annotation.item_id, Annotation.action, Annotation.labels, Annotation.label
            ).order_by(Annotation.id)
        ).all()
        finals = dict(session.execute(select(Item.uid, Item.final_labels)).all())
    uids = [text.replace("topic text ", "m") for text in texts if text]
    assert [(row.action, row.labels, row.label) for row in stored] == [
        ("accept", ["business", "sport"], None),
        ("correct", ["business", HOSTILE], None),
        ("correct", ["business"], None),
    ]
    assert [finals[uid] for uid in uids] == [
        ["business", "sport"],
        ["business", HOSTILE],
        ["business"],
    ]


@pytest.mark.parametrize(
    "live_server", [{"labels": LABELS, "task": "Topics.", "multi_label": True}], indirect=True
)
def test_a_gold_check_shows_the_missed_and_added_labels(live_server, page: Page) -> None:
    import random

    base, project = live_server
    project.add_items(
        [{"id": "g0", "text": "gold text 0", "labels": ["business", "sport"]}],
        label_col="labels",
        split="gold",
    )
    project.add_items([{"id": "m0", "text": "topic text 0"}])
    project.save_predictions(
        "fake", "v1", [(project.item_id("m0"), multi_label_result(LABELS, P_YES))]
    )
    project.set_active_predictor("fake", "v1")
    project.route(threshold=0.9)  # m0 goes to review: gold checks are served among its items
    review.set_queue_settings(project, gold_rate=0.99)
    project.set_guidelines(label_descriptions={"sport": "Games", HOSTILE: "Never " + HOSTILE})
    project.set_gold_feedback(True)
    review.add_user(project, "ann", password="ann-password")
    random.seed(0)  # gold checks are drawn at random (in this process: the server's thread)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, base, "ann", "ann-password")
    expect(page.locator("#text")).to_have_text("gold text 0")
    page.keyboard.press("1")  # business
    page.keyboard.press("3")  # the third label: not in the gold set
    page.keyboard.press("Enter")
    message = page.locator("#message")
    expect(message).to_have_text(
        f"Gold check missed: expected business, sport, you gave business, {HOSTILE}; "
        f"missed sport; added {HOSTILE} — sport: Games; {HOSTILE}: Never {HOSTILE}"
    )
    expect(message).to_have_class("message error")
    expect(page.locator("#message img")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None and dialogs == []
