"""Multi-label projects exchanged with files and tools: label sets, per-label scores and
provenance survive every round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelloop import Project
from labelloop.errors import InputError
from labelloop.labelers.multilabel import multi_label_result

LABELS = ["business", "sport", "tech"]
KEPT = (
    "id",
    "text",
    "state",
    "labels",
    "llm_labels",
    "labeler_labels",
    "gold_labels",
    "split",
    "label_source",
    "model",
    "prompt_version",
    "probs",
    "confidence",
    "annotators",
)


def build(folder: Path, db: str | None = None) -> Project:
    """Gold with sets, predictions with per-label probabilities, people's answers."""
    project = Project.create(
        folder, task="Topics.", labels=LABELS, db=db, multi_label=True, allow_empty=True
    )
    project.add_items(
        [{"id": "g1", "text": "markets and matches", "labels": ["business", "sport"]}],
        label_col="labels",
        split="gold",
    )
    project.add_items([{"id": f"p{i}", "text": f"text number {i}"} for i in range(4)])
    ids = {uid: project.item_id(uid) for uid in ("g1", "p0", "p1", "p2", "p3")}
    probs = {
        "g1": [0.9, 0.7, 0.1],
        "p0": [0.2, 0.95, 0.6],
        "p1": [0.1, 0.1, 0.1],
        "p2": [0.8, 0.3, 0.9],
        "p3": [0.5, 0.5, 0.4],
    }
    project.save_predictions(
        "m", "v1", [(ids[u], multi_label_result(LABELS, p)) for u, p in probs.items()]
    )
    project.set_active_predictor("m", "v1")
    project.annotate("p0", action="correct", labels=["sport"], annotator="ann", time_spent_s=3.5)
    project.annotate("p0", action="accept", annotator="bob")
    project.annotate("p1", action="label", labels=[], annotator="ann")
    project.annotate("p2", action="reject", annotator="ann")
    return project


def rows(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def kept(row: dict) -> dict:
    out = {key: row.get(key) for key in KEPT}
    out["answers"] = [
        (a["annotator"], a["action"], a.get("labels"), a["time_spent_s"], a["created_at"])
        for a in row.get("annotations") or []
    ]
    return out


@pytest.fixture
def source(tmp_path: Path):
    project = build(tmp_path / "src")
    yield project
    project.close()


def test_jsonl_rows_hold_the_sets(source, tmp_path):
    out = tmp_path / "out.jsonl"
    source.export(out, "jsonl")
    found = rows(out)
    assert found["g1"]["gold_labels"] == ["business", "sport"] and found["g1"]["labels"] == [
        "business",
        "sport",
    ]
    assert found["p0"]["labels"] == ["sport", "tech"]  # a tie on tech: the newest answer has it
    assert found["p0"]["llm_labels"] == ["sport", "tech"]
    assert found["p0"]["probs"] == pytest.approx({"business": 0.2, "sport": 0.95, "tech": 0.6})
    assert [a["labels"] for a in found["p0"]["annotations"]] == [["sport"], ["sport", "tech"]]
    assert found["p1"]["labels"] == [] and found["p1"]["label_source"] == "human"
    assert found["p2"]["labels"] is None and found["p2"]["state"] == "in_review"
    assert found["p0"]["label"] is None  # the single-label keys stay empty


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_own_formats_round_trip(source, tmp_path, fmt):
    first = tmp_path / f"first.{fmt}"
    source.export(first, fmt)
    target = Project.create(
        tmp_path / "dst", task="Topics.", labels=LABELS, multi_label=True, allow_empty=True
    )
    try:
        result = target.import_from(first, "labelloop")
        assert result.items == 5
        source.export(tmp_path / "a.jsonl", "jsonl", include="annotations,meta")
        target.export(tmp_path / "b.jsonl", "jsonl", include="annotations,meta")
        before, after = rows(tmp_path / "a.jsonl"), rows(tmp_path / "b.jsonl")
        assert {k: kept(v) for k, v in after.items()} == {k: kept(v) for k, v in before.items()}
        again = target.import_from(first, "labelloop")
        assert again.added == 0 and again.annotations == 0 and again.predictions == 0
    finally:
        target.close()


def test_import_names_an_unknown_label_in_a_set(source, tmp_path):
    bad = tmp_path / "bad.jsonl"
    source.export(bad, "jsonl")
    lines = bad.read_text().splitlines()
    row = json.loads(lines[1])
    row["annotations"][0]["labels"] = ["sport", "weather"]
    bad.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    target = Project.create(tmp_path / "dst", task="Topics.", labels=LABELS, multi_label=True)
    try:
        with pytest.raises(InputError, match=r"line 2.*weather"):
            target.import_from(bad, "labelloop")
        assert target.stats().items == 0
    finally:
        target.close()


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("labelstudio", "t.json"), ("argilla", "t.jsonl"), ("prodigy", "t.jsonl"), ("hf", "t_hf")],
)
def test_tool_formats_round_trip(source, tmp_path, fmt, name):
    out = tmp_path / name
    assert source.export(out, fmt).rows == 5
    target = Project.create(
        tmp_path / "dst", task="Topics.", labels=LABELS, multi_label=True, allow_empty=True
    )
    try:
        target.import_from(out, fmt)
        source.export(tmp_path / "a.jsonl", "jsonl")
        target.export(tmp_path / "b.jsonl", "jsonl")
        before, after = rows(tmp_path / "a.jsonl"), rows(tmp_path / "b.jsonl")
        assert {k: kept(v) for k, v in after.items()} == {k: kept(v) for k, v in before.items()}
    finally:
        target.close()


def test_labelstudio_shape_is_multiple_choice(source, tmp_path):
    out = tmp_path / "t.json"
    source.export(out, "labelstudio")
    config = (tmp_path / "t.label_config.xml").read_text()
    assert 'choice="multiple"' in config
    tasks = {t["data"]["labelloop_id"]: t for t in json.loads(out.read_text())}
    prediction = tasks["p0"]["predictions"][0]
    assert prediction["result"][0]["value"]["choices"] == ["sport", "tech"]
    assert [a["result"][0]["value"]["choices"] for a in tasks["p0"]["annotations"]] == [
        ["sport"],
        ["sport", "tech"],
    ]
    assert tasks["g1"]["annotations"][-1]["ground_truth"] is True


def test_labelstudio_tasks_made_in_label_studio(tmp_path):
    config = tmp_path / "c.xml"
    config.write_text(
        '<View><Text name="t" value="$body"/><Choices name="topics" toName="t" choice="multiple">'
        '<Choice value="business"/><Choice value="sport"/><Choice value="tech"/></Choices></View>'
    )

    def result(*chosen: str) -> list[dict]:
        entry = {"from_name": "topics", "to_name": "t", "type": "choices"}
        return [{**entry, "value": {"choices": list(chosen)}}]

    tasks = [
        {
            "id": 7,
            "data": {"body": "a match and a merger"},
            "predictions": [{"model_version": "m1", "score": 0.4, "result": result("sport")}],
            "annotations": [
                {
                    "id": 1,
                    "completed_by": 3,
                    "result": result("Sport", "business"),
                    "lead_time": 2.0,
                },
                {"id": 2, "completed_by": 4, "result": result("sport")},
            ],
        }
    ]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps(tasks))
    project = Project.create(tmp_path / "p", task="Topics.", labels=LABELS, multi_label=True)
    try:
        summary = project.import_from(path, "labelstudio", label_config=config)
        assert summary.annotations == 2 and summary.predictions == 1
        project.export(tmp_path / "o.jsonl", "jsonl")
        row = rows(tmp_path / "o.jsonl")["ls-7"]
        assert row["llm_labels"] == ["sport"] and row["labels"] == ["sport"]  # business: a tie
        assert [a["action"] for a in row["annotations"]] == ["correct", "accept"]
    finally:
        project.close()


def test_argilla_records_use_a_multi_label_question(source, tmp_path, monkeypatch):
    import argilla as rg

    out = tmp_path / "a.jsonl"
    source.export(out, "argilla")
    records = [rg.Record.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    p0 = next(r for r in records if r.id == "p0")
    assert p0.suggestions["labels"].value == ["sport", "tech"]
    assert p0.suggestions["labels"].score == pytest.approx([0.95, 0.6])
    assert [r.value for r in p0.responses] == [["sport"], ["sport", "tech"]]
    written = json.loads((tmp_path / "a.settings.json").read_text())["questions"][0]
    from argilla._api import _client

    monkeypatch.setattr(_client.APIClient, "_validate_connection", lambda self: None)
    rg.Argilla(api_url="http://127.0.0.1:9", api_key="offline", retries=0, timeout=2)
    expected = rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.MultiLabelQuestion(name="labels", labels=LABELS)],
    ).serialize()["questions"][0]
    assert written["settings"] == expected["settings"] and written["type"] == expected["type"]


def test_argilla_records_made_with_the_sdk(tmp_path):
    import argilla as rg

    record = rg.Record(
        id="r1",
        fields={"text": "a chip maker's shares"},
        suggestions=[
            rg.Suggestion(
                question_name="labels", value=["business", "tech"], score=[0.7, 0.9], agent="m"
            )
        ],
        responses=[
            rg.Response(
                question_name="labels",
                value=["tech"],
                user_id="6f1c0c51-3e7a-4f43-9a5e-1a2b3c4d5e6f",
            )
        ],
    )
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record.to_dict()) + "\n")
    project = Project.create(tmp_path / "p", task="Topics.", labels=LABELS, multi_label=True)
    try:
        project.import_from(path, "argilla")
        project.export(tmp_path / "o.jsonl", "jsonl", include="all")
        row = rows(tmp_path / "o.jsonl")["r1"]
        assert row["llm_labels"] == ["business", "tech"] and row["labels"] == ["tech"]
        assert row["probs"] == pytest.approx({"business": 0.7, "tech": 0.9})
    finally:
        project.close()


def test_prodigy_choice_tasks_both_ways(source, tmp_path):
    out = tmp_path / "p.jsonl"
    source.export(out, "prodigy")
    tasks = {t["meta"]["id"]: t for t in map(json.loads, out.read_text().splitlines())}
    assert [o["id"] for o in tasks["p0"]["options"]] == LABELS
    assert tasks["p0"]["accept"] == ["sport", "tech"] and tasks["p0"]["answer"] == "accept"
    assert tasks["p0"]["meta"]["scores"] == pytest.approx(
        {"business": 0.2, "sport": 0.95, "tech": 0.6}
    )
    native = tmp_path / "n.jsonl"
    options = [{"id": k, "text": label} for k, label in enumerate(LABELS)]
    native.write_text(
        json.dumps(
            {
                "text": "goal!",
                "options": options,
                "accept": [1, 2],
                "answer": "accept",
                "_annotator_id": "s-ann",
                "_task_hash": 5,
            }
        )
        + "\n"
    )
    project = Project.create(tmp_path / "p", task="Topics.", labels=LABELS, multi_label=True)
    try:
        project.import_from(native, "prodigy")
        project.export(tmp_path / "o.jsonl", "jsonl")
        (row,) = rows(tmp_path / "o.jsonl").values()
        assert row["labels"] == ["sport", "tech"] and row["annotators"] == ["prodigy:s-ann"]
    finally:
        project.close()


def test_hf_sets_are_class_label_sequences(source, tmp_path):
    import datasets

    out = tmp_path / "hf"
    source.export(out, "hf")
    dataset = datasets.load_from_disk(str(out))
    assert dataset.features["labels"].feature.names == LABELS
    by_id = {r["id"]: r for r in dataset}
    assert by_id["p0"]["labels"] == [1, 2] and by_id["p1"]["labels"] == []
    assert by_id["p2"]["labels"] is None  # in review: no set, not an empty one
    plain = datasets.Dataset.from_list(
        [{"text": "a goal", "labels": [1]}],
        features=datasets.Features(
            {
                "text": datasets.Value("string"),
                "labels": datasets.Sequence(datasets.ClassLabel(names=LABELS)),
            }
        ),
    )
    plain.save_to_disk(str(tmp_path / "plain"))
    project = Project.create(tmp_path / "p", task="Topics.", labels=LABELS, multi_label=True)
    try:
        project.import_from(tmp_path / "plain", "hf")
        project.export(tmp_path / "o.jsonl", "jsonl")
        (row,) = rows(tmp_path / "o.jsonl").values()
        assert row["meta"] == {"source_label": ["sport"]}
    finally:
        project.close()
