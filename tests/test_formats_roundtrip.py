"""Export → import into a new project → the same items, labels and provenance, per format."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from labelloop.data.formats import BASE_KEYS, iter_provenance_rows
from labelloop.labelers.base import LabelResult
from labelloop.store import Prediction
from labelloop.workflows.exchange import export_project, import_project

LABELS = ("positive", "negative", "neutral")
PROBS = {"positive": 0.7, "negative": 0.2, "neutral": 0.1}


@pytest.fixture
def source(make_project):
    """A project with every kind of provenance: LLM labels (auto-accepted or not), calibrated
    confidences, two predictors, gold, accepted / corrected / rejected / skipped answers,
    several annotators on one item, metadata and awkward text."""
    project = make_project(name="source")
    texts = [f'review {i}: <b>odd</b> ünïcode \u202e and "quotes", newline\nhere' for i in range(8)]
    project.add_items(
        [{"id": f"i{i}", "text": t, "shop": f"s{i % 3}"} for i, t in enumerate(texts)], id_col="id"
    )
    project.add_items(
        [{"id": "g1", "text": "gold item", "label": "negative"}],
        id_col="id",
        label_col="label",
        split="gold",
    )
    ids = [project.item_id(f"i{i}") for i in range(8)]
    results = [
        (ids[i], LabelResult(LABELS[i % 2], PROBS, 0.6 + 0.05 * i, reasoning=f"because {i}"))
        for i in range(8)
    ]
    project.save_predictions("model-a", "p1", results)
    project.save_predictions("model-b", "p9", [(ids[0], LabelResult("neutral", None, 0.5))])
    with project.store.session() as session:
        session.execute(
            update(Prediction)
            .where(Prediction.model == "model-a", Prediction.item_id.in_(ids[4:]))
            .values(calibrated_confidence=0.93)
        )
        # A calibration that moved one label: people see (and routing accepts) "negative".
        session.execute(
            update(Prediction)
            .where(Prediction.model == "model-a", Prediction.item_id == ids[6])
            .values(calibrated_label="negative")
        )
    project.set_active_predictor("model-a", "p1")
    project.route(0.9)
    project.annotate("i0", action="accept", annotator="ann", time_spent_s=3.5)
    project.annotate("i1", action="correct", label="neutral", annotator="bob")
    project.annotate("i1", action="label", label="neutral", annotator="carol")
    project.annotate("i2", action="reject", annotator="bob")
    project.annotate("i3", action="skip", annotator="carol")
    return project


def rows_of(project, include="annotations,meta"):
    return {row["id"]: row for row in iter_provenance_rows(project, include)}


def assert_same(a: dict, b: dict, keys=None) -> None:
    assert set(a) == set(b)
    for uid, row in a.items():
        for key in keys or row:
            assert row[key] == b[uid][key], (uid, key)


def test_source_rows_carry_the_provenance_the_design_asks_for(source):
    rows = rows_of(source)
    assert all(set(BASE_KEYS) <= set(r) for r in rows.values())
    assert rows["i1"]["label"] == "neutral" and rows["i1"]["label_source"] == "human"
    assert rows["i1"]["annotators"] == ["bob", "carol"]
    assert [a["action"] for a in rows["i1"]["annotations"]] == ["correct", "label"]
    assert rows["i5"]["state"] == "auto_accepted" and rows["i5"]["label_source"] == "llm"
    assert rows["i5"]["calibrated_confidence"] == pytest.approx(0.93)
    assert rows["i5"]["labeled_at"] == rows["i5"]["predicted_at"] is not None
    assert rows["i0"]["annotations"][0]["time_spent_s"] == 3.5
    assert rows["i0"]["reasoning"] == "because 0" and rows["i0"]["model"] == "model-a"
    assert rows["i2"]["label"] is None and rows["i2"]["state"] == "in_review"
    assert rows["g1"]["split"] == "gold" and rows["g1"]["label"] == "negative"
    assert rows["i6"]["llm_label"] == rows["i6"]["label"] == "negative"
    assert rows["i6"]["labeler_label"] == "positive"
    assert rows["i4"]["llm_label"] == rows["i4"]["labeler_label"] == "positive"


@pytest.mark.parametrize(
    ("fmt", "name", "reader"),
    [
        ("jsonl", "out.jsonl", "labelloop"),
        ("csv", "out.csv", "labelloop"),
        ("parquet", "out.parquet", "labelloop"),
        ("labelstudio", "tasks.json", "labelstudio"),
        ("prodigy", "prodigy.jsonl", "prodigy"),
        ("argilla", "records.jsonl", "argilla"),
        ("hf", "dataset", "hf"),
    ],
)
def test_round_trip(source, make_project, tmp_path, fmt, name, reader):
    if fmt == "argilla":
        pytest.importorskip("argilla")
    if fmt == "hf":
        pytest.importorskip("datasets")
    include = "annotations,predictions,meta"
    out = tmp_path / name
    written = export_project(source, out, fmt, include=include)
    assert written.rows == 9
    target = make_project(name=f"target_{fmt}")
    result = import_project(target, out, reader)
    assert result.added == 9 and result.annotations == 5
    assert result.predictions == 9  # model-a on 8 items, model-b on one
    assert_same(rows_of(source, include), rows_of(target, include))
    # Importing the same file again adds nothing.
    again = import_project(target, out, reader)
    assert (again.added, again.annotations, again.predictions) == (0, 0, 0)
    assert_same(rows_of(source, include), rows_of(target, include))


def test_jsonl_export_keeps_the_design_keys(source, tmp_path, cli):
    out = tmp_path / "x.jsonl"
    assert cli("export", "--project", source.path, "--format", "jsonl", "--out", out) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 9 and all(set(BASE_KEYS) <= set(r) for r in rows)
    assert {r["state"] for r in rows} == {"auto_accepted", "in_review", "human_labeled"}
