"""One reader per tool: each tool's reader takes labels or sets as the project's label policy
says, so what one reader can do it does for both kinds of project."""

from __future__ import annotations

import json

import pytest

from labelloop import Project
from labelloop.data import formats
from labelloop.data.formats import argilla, hf, labelstudio, multilabel, prodigy
from labelloop.data.formats.records import LabelPolicy
from labelloop.vocabulary import Action
from test_multilabel_formats import LABELS, build, rows


def test_each_tool_has_one_reader() -> None:
    readers = {
        "labelstudio": labelstudio.read_labelstudio,
        "argilla": argilla.read_argilla,
        "prodigy": prodigy.read_prodigy,
        "hf": hf.read_hf,
    }
    for name, reader in readers.items():
        assert formats.IMPORTERS[name] is reader
    assert not [name for name in dir(multilabel) if name.startswith("read_")]


def test_the_policy_says_which_fields_a_choice_fills() -> None:
    single, sets = LabelPolicy(), LabelPolicy(sets=True)
    assert single.answer("sport", "sport") == {
        "action": Action.ACCEPT,
        "label": "sport",
        "suggested_label": "sport",
    }
    assert single.answer(None, "sport")["action"] == Action.SKIP
    assert sets.answer(["tech", "sport"], ["sport", "tech"]) == {
        "action": Action.ACCEPT,
        "label": None,
        "labels": ["tech", "sport"],
    }
    assert sets.answer([], ["sport"])["action"] == Action.CORRECT
    assert sets.answer(["sport"], None)["action"] == Action.LABEL
    assert single.prediction("sport") == {"label": "sport", "labels": None}
    assert sets.prediction(["sport"]) == {"label": None, "labels": ["sport"]}
    assert single.gold("tech") == {"gold_label": "tech"}
    assert sets.gold(["tech"]) == {"gold_labels": ["tech"]}


def test_label_studio_ids_come_from_a_data_field_on_multi_label_projects(tmp_path) -> None:
    entry = {"from_name": "labels", "to_name": "text", "type": "choices"}
    tasks = [
        {
            "id": 9,
            "data": {"text": "a merger of chip makers", "key": "doc-1"},
            "annotations": [
                {"id": 4, "completed_by": 2, "result": [{**entry, "value": {"choices": ["tech"]}}]}
            ],
        }
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    with Project.create(tmp_path / "p", task="Topics.", labels=LABELS, multi_label=True) as project:
        project.import_from(path, "labelstudio", id_key="key")
        project.export(tmp_path / "o.jsonl", "jsonl")
    row = rows(tmp_path / "o.jsonl")["doc-1"]
    assert row["labels"] == ["tech"] and row["state"] == "human_labeled"


def test_argilla_json_arrays_carry_sets_too(tmp_path) -> None:
    with build(tmp_path / "src") as source:
        source.export(tmp_path / "a.jsonl", "argilla")
        source.export(tmp_path / "before.jsonl", "jsonl")
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    (tmp_path / "a.json").write_text(json.dumps(records))
    target = Project.create(
        tmp_path / "t", task="Topics.", labels=LABELS, multi_label=True, allow_empty=True
    )
    with target:
        target.import_from(tmp_path / "a.json", "argilla")
        target.export(tmp_path / "after.jsonl", "jsonl")
    before, after = rows(tmp_path / "before.jsonl"), rows(tmp_path / "after.jsonl")
    assert {uid: r["labels"] for uid, r in after.items()} == {
        uid: r["labels"] for uid, r in before.items()
    }
    assert after["p0"]["probs"] == pytest.approx(before["p0"]["probs"])
