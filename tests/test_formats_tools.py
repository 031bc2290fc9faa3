"""Files as the tools themselves write them (not only labelloop's own exports)."""

from __future__ import annotations

import json

import pytest

from labelloop.data.formats import iter_provenance_rows
from labelloop.data.formats.labelstudio import default_label_config, parse_label_config
from labelloop.workflows.exchange import import_project


def rows(project) -> dict:
    return {r["id"]: r for r in iter_provenance_rows(project)}


def test_label_config_names_come_from_the_view():
    config = parse_label_config(
        '<View><Header value="x"/><Text name="body" value="$review"/>'
        '<Choices name="mood" toName="body"><Choice value="pos"/><Choice value="neg"/></Choices>'
        "</View>"
    )
    assert (config.from_name, config.to_name, config.data_key) == ("mood", "body", "review")
    assert config.choices == ("pos", "neg")
    made = parse_label_config(default_label_config(["a & b", "<c>"]))
    assert made.choices == ("a & b", "<c>") and made.data_key == "text"


def test_label_studio_export_with_ids_users_and_cancelled_answers(make_project, tmp_path):
    project = make_project()
    choice = {"from_name": "label", "to_name": "text", "type": "choices"}
    tasks = [
        {
            "id": 41,
            "data": {"text": "great stuff"},
            "annotations": [
                {
                    "id": 900,
                    "completed_by": 3,
                    "result": [{**choice, "value": {"choices": ["Positive"]}}],
                    "was_cancelled": False,
                    "lead_time": 12.5,
                    "created_at": "2024-05-01T10:00:00Z",
                },
                {
                    "id": 901,
                    "completed_by": {"id": 4, "email": "eve@example.com"},
                    "result": [],
                    "was_cancelled": True,
                    "created_at": "2024-05-01T11:00:00Z",
                },
            ],
            "predictions": [7],  # Label Studio's default export lists prediction ids only
        },
        {
            "id": 42,
            "data": {"text": "awful"},
            "annotations": [],
            "predictions": [
                {
                    "model_version": "my-model",
                    "score": 0.66,
                    "result": [{**choice, "value": {"choices": ["negative"]}}],
                }
            ],
        },
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    result = import_project(project, path, "labelstudio")
    assert (result.added, result.annotations, result.predictions) == (2, 2, 1)
    got = rows(project)
    assert got["ls-41"]["label"] == "positive"  # the project's own spelling
    answers = got["ls-41"]["annotations"]
    assert [(a["annotator"], a["action"], a["external_id"]) for a in answers] == [
        ("labelstudio:3", "label", "900"),
        ("labelstudio:eve@example.com", "skip", "901"),
    ]
    assert answers[0]["time_spent_s"] == 12.5
    assert answers[0]["created_at"].startswith("2024-05-01T10:00:00")
    assert got["ls-42"]["llm_label"] == "negative" and got["ls-42"]["confidence"] == 0.66
    assert got["ls-42"]["model"] == "my-model" and got["ls-42"]["label"] is None


def test_prodigy_answers_from_several_annotators(make_project, tmp_path):
    project = make_project()
    lines = [
        {
            "text": "so good",
            "label": "positive",
            "answer": "accept",
            "_annotator_id": "s-ann",
            "_input_hash": 11,
            "_task_hash": 101,
            "_timestamp": 1714550000,
        },
        {
            "text": "so good",
            "label": "positive",
            "answer": "accept",
            "_annotator_id": "s-bob",
            "_input_hash": 11,
            "_task_hash": 102,
        },
        {"text": "fine", "label": "negative", "answer": "reject", "_input_hash": 12},
        {
            "text": "hmm",
            "options": [{"id": 0, "text": "positive"}, {"id": 2, "text": "neutral"}],
            "accept": [2],
            "answer": "accept",
            "_input_hash": 13,
        },
        {"text": "later", "label": "positive", "answer": "ignore", "_input_hash": 14},
    ]
    path = tmp_path / "db-out.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    result = import_project(project, path, "prodigy")
    assert (result.added, result.annotations) == (4, 5)
    got = rows(project)
    assert got["prodigy-11"]["label"] == "positive"
    assert got["prodigy-11"]["annotators"] == ["prodigy:s-ann", "prodigy:s-bob"]
    assert got["prodigy-12"]["label"] is None
    assert got["prodigy-12"]["annotations"][0]["action"] == "reject"
    assert got["prodigy-13"]["label"] == "neutral"
    assert got["prodigy-14"]["annotations"][0]["action"] == "skip"


def test_argilla_records_and_settings_match_the_sdk(make_project, tmp_path):
    rg = pytest.importorskip("argilla")
    from labelloop.data.formats.argilla import record_from_row, settings_dict, user_id

    project = make_project()
    user = user_id("someone")
    record = rg.Record(
        id="r1",
        fields={"text": "lovely"},
        suggestions=[rg.Suggestion("label", "positive", score=0.8, agent="gpt-x")],
        responses=[rg.Response("label", "neutral", user_id=user)],
    )
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record.to_dict()) + "\n")
    result = import_project(project, path, "argilla")
    assert result.added == 1
    row = rows(project)["r1"]
    assert (row["llm_label"], row["confidence"], row["model"]) == ("positive", 0.8, "gpt-x")
    assert row["label"] == "neutral"
    assert row["annotations"][0]["annotator"] == f"argilla:{user}"
    assert row["annotations"][0]["action"] == "correct"
    # Our records are the SDK's own: they survive its dict round trip unchanged.
    (exported,) = iter_provenance_rows(project)
    again = rg.Record.from_dict(record_from_row(exported).to_dict())
    assert again.suggestions["label"].value == "positive"
    # The settings file parses with the SDK's own settings models.
    from argilla._models._settings._fields import FieldModel
    from argilla._models._settings._questions import QuestionModel

    settings = settings_dict(["positive", "negative", "neutral"], "task")
    question = QuestionModel(**settings["questions"][0])
    assert [o["value"] for o in question.settings.options] == ["positive", "negative", "neutral"]
    assert FieldModel(**settings["fields"][0]).settings.type == "text"
