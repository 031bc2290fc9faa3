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
KEPT = ("id", "text", "state", "labels", "llm_labels", "labeler_labels", "gold_labels", "split",
        "label_source", "model", "prompt_version", "probs", "confidence", "annotators")


def build(folder: Path, db: str | None = None) -> Project:
    """Gold with sets, predictions with per-label probabilities, people's answers."""
    project = Project.create(folder, task="Topics.", labels=LABELS, db=db, multi_label=True, allow_empty=True)
    project.add_items(
        [{"id": "g1", "text": "markets and matches", "labels": ["business", "sport"]}],
        label_col="labels",
        split="gold",
    )
    project.add_items([{"id": f"p{i}", "text": f"text number {i}"} for i in range(4)])
    ids = {uid: project.item_id(uid) for uid in ("g1", "p0", "p1", "p2", "p3")}
    probs = {"g1": [0.9, 0.7, 0.1], "p0": [0.2, 0.95, 0.6], "p1": [0.1, 0.1, 0.1], "p2": [0.8, 0.3, 0.9], "p3": [0.5, 0.5, 0.4]}
    project.save_predictions("m", "v1", [(ids[u], multi_label_result(LABELS, p)) for u, p in probs.items()])
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
    assert found["g1"]["gold_labels"] == ["business", "sport"] and found["g1"]["labels"] == ["business", "sport"]
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
    target = Project.create(tmp_path / "dst", task="Topics.", labels=LABELS, multi_label=True, allow_empty=True)
    try:
        result = target.import_from(first, "labelloop")
        assert result["items"] == 5
        source.export(tmp_path / "a.jsonl", "jsonl", include="annotations,meta")
        target.export(tmp_path / "b.jsonl", "jsonl", include="annotations,meta")
        before, after = rows(tmp_path / "a.jsonl"), rows(tmp_path / "b.jsonl")
        assert {k: kept(v) for k, v in after.items()} == {k: kept(v) for k, v in before.items()}
        again = target.import_from(first, "labelloop")
        assert again["added"] == 0 and again["annotations"] == 0 and again["predictions"] == 0
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
        assert target.stats()["items"] == 0
    finally:
        target.close()
