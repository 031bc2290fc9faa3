"""The reviewers' results keep their JSON form: the keys, in order, that `adjudicate --json` and
the API have always sent, on single-label and multi-label projects."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.review import adjudication
from test_adjudication import split_team
from test_adjudication_multilabel import LABELS, split_sets

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def sent(result: Any) -> dict[str, Any]:
    """What `--json` and the API send of a result."""
    return result.to_dict() if hasattr(result, "to_dict") else result


SUGGESTED = ["id", "uid", "text", "truncated", "suggestion", "queue"]
CASE_TAIL = ["reasons", "answers", "flags"]


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_the_json_form_of_every_adjudication_result(make_project, multi: bool) -> None:
    if multi:
        project = make_project(labels=LABELS, task="Topics.", multi_label=True)
        ids, ann, _bob, rita = split_sets(project)
        item, decided = ids["m1"], {"labels": ["tech"]}
    else:
        project = make_project()
        ids, ann, _bob, rita = split_team(project)
        item, decided = ids[1], {"label": "neutral"}
    sets = ["labels"] if multi else []

    queued = sent(adjudication.queue(project, rita))
    assert list(queued) == ["count", "items"] and queued["count"] == 1
    assert list(queued["items"][0]) == ["id", "uid", "reasons", "label", *sets, "label_source"]

    assert sent(adjudication.flag(project, ann, item, "look")) == {"item_id": item, "flagged": True}
    case = sent(adjudication.case(project, rita, item))
    shown = [*SUGGESTED, *(["suggested_set"] if multi else []), *CASE_TAIL]
    label_fields = ["label", *sets, "label_source", "label_posterior", "decision"]
    assert list(case) == [*shown, *label_fields]
    assert list(case["answers"][0]) == ["id", "annotator", "label", *sets, "action", "created_at"]
    assert list(case["flags"][0]) == ["annotator", "reason"] and case["decision"] is None
    assert sent(adjudication.next_case(project, rita)) == case
    assert sent(adjudication.unflag(project, ann, item)) == {
        "item_id": item,
        "flagged": False,
        "cleared": 1,
    }

    made = sent(adjudication.decide(project, rita, item, note="n", **decided))
    previous = ["labels", "previous_labels"] if multi else []
    assert list(made) == [
        "decision_id",
        "item_id",
        "label",
        "state",
        "previous_label",
        "previous_source",
        "note",
        *previous,
    ]
    decision = sent(adjudication.case(project, rita, item))["decision"]
    assert list(decision) == ["id", "label", *sets, "note"]

    undone = sent(adjudication.undo(project, rita))
    assert list(undone) == ["undone", "item"] and undone["undone"] == made["decision_id"]
    assert list(undone["item"]) == [*shown, *label_fields]
    assert sent(adjudication.set_show_names(project, True)) == {adjudication.SHOW_NAMES: True}
