"""A file's own ids are the items' ids: an `id` column by default, `--id-col`, `--hash-ids`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from labelloop import InputError
from labelloop.data.importer import hash_id, text_hash

ROWS = "id,text,shop\nr-1,great phone,north\nr-2,awful battery,south\nr-3,it is fine,north\n"


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text(ROWS, encoding="utf-8")
    return path


def uids(project) -> dict[str, str]:
    return {row["id"]: row["text"] for row in project.iter_export_rows()}


def test_the_id_column_gives_the_ids(make_project, data, tmp_path):
    project = make_project()
    result = project.import_file(data)
    assert (result.added, result.id_col) == (3, "id")
    assert uids(project) == {"r-1": "great phone", "r-2": "awful battery", "r-3": "it is fine"}
    rows = {row["id"]: row for row in project.iter_export_rows()}
    assert rows["r-1"]["meta"] == {"shop": "north"}  # the id is the id, not metadata
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"out.{fmt}"
        project.export(out, fmt)
        if fmt == "jsonl":
            ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        else:
            ids = [row["id"] for row in csv.DictReader(out.open(newline=""))]
        assert ids == ["r-1", "r-2", "r-3"]


def test_another_column_or_content_hashes(make_project, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": 7, "ref": "a", "text": "one"}\n{"id": 8, "ref": "b", "text": "two"}\n',
        encoding="utf-8",
    )
    by_ref = make_project(name="by_ref")
    assert by_ref.import_file(path, id_col="ref").id_col == "ref"
    rows = {row["id"]: row for row in by_ref.iter_export_rows()}
    assert set(rows) == {"a", "b"} and rows["a"]["meta"] == {"id": 7}

    by_id = make_project(name="by_id")
    by_id.import_file(path)
    assert set(uids(by_id)) == {"7", "8"}  # numbers become text ids

    hashed = make_project(name="hashed")
    result = hashed.import_file(path, hash_ids=True)
    assert result.id_col is None
    rows = {row["text"]: row for row in hashed.iter_export_rows()}
    assert rows["one"]["id"] == hash_id(text_hash("one"))
    assert rows["one"]["meta"] == {"id": 7, "ref": "a"}
    with pytest.raises(InputError, match="not both"):
        hashed.import_file(path, id_col="ref", hash_ids=True)


def test_without_an_id_column_ids_are_hashes(make_project):
    project = make_project()
    result = project.add_items([{"text": "one", "id_of_shop": 3}, {"text": "two"}])
    assert result.id_col is None
    assert set(uids(project)) == {hash_id(text_hash("one")), hash_id(text_hash("two"))}


def test_same_id_different_text_is_an_error_naming_both_rows(make_project, tmp_path, cli, capsys):
    project = make_project()
    path = tmp_path / "clash.csv"
    path.write_text("id,text\nx,first\ny,other\nx,second\n", encoding="utf-8")
    with pytest.raises(
        InputError, match=r"duplicate id 'x' with a different text on lines 2 and 4"
    ):
        project.import_file(path)
    assert project.stats().items == 0  # nothing imported
    assert cli("import", path, "--project", project.path) == 2
    message = capsys.readouterr().err
    assert "lines 2 and 4" in message and "--hash-ids" in message
    # With content hashes the same file imports: the texts differ.
    assert project.import_file(path, hash_ids=True).added == 3


def test_same_id_same_text_is_a_duplicate_row(make_project, tmp_path):
    project = make_project()
    path = tmp_path / "dup.csv"
    path.write_text("id,text\nx,same\nx,same\ny,same\n", encoding="utf-8")
    result = project.import_file(path)
    assert (result.added, result.duplicates_in_file) == (2, 1)  # y: its own item, same text
    assert set(uids(project)) == {"x", "y"}


def test_an_empty_id_is_an_error_that_says_where_ids_come_from(make_project, tmp_path):
    project = make_project()
    path = tmp_path / "gap.csv"
    path.write_text("id,text\na,one\n,two\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"the id is empty.*'id' column.*--hash-ids"):
        project.import_file(path)


def test_reimport_adds_nothing(make_project, data):
    project = make_project()
    project.import_file(data)
    again = project.import_file(data)
    assert (again.added, again.unchanged, again.ids_adopted) == (0, 3, 0)
    assert project.stats().items == 3


def test_items_imported_with_hash_ids_take_the_files_ids_on_reimport(make_project, data):
    """A project whose file was imported when ids were content hashes (the id in `meta`)."""
    project = make_project()
    project.import_file(data, hash_ids=True)
    old = hash_id(text_hash("great phone"))
    project.annotate(old, action="label", label="positive", annotator="ann")
    result = project.import_file(data)
    assert (result.added, result.unchanged, result.ids_adopted) == (0, 3, 3)
    assert set(uids(project)) == {"r-1", "r-2", "r-3"}
    row = next(r for r in project.iter_export_rows("annotations") if r["id"] == "r-1")
    assert row["label"] == "positive" and row["annotations"][0]["annotator"] == "ann"
    # A different text under a hash id that matches nothing is a new item as usual.
    assert project.import_file(data).ids_adopted == 0


def test_dataframes_and_the_cli_summary(make_project, tmp_path, cli, capsys):
    project = make_project()
    frame = pd.DataFrame({"id": [10, 11], "text": ["first", "second"]})
    assert project.add_items(frame).id_col == "id"
    assert set(uids(project)) == {"10", "11"}
    path = tmp_path / "more.csv"
    path.write_text("id,text\nm1,more\n", encoding="utf-8")
    assert cli("import", path, "--project", project.path) == 0
    assert "ids from column 'id'" in capsys.readouterr().out
    assert cli("import", path, "--project", project.path, "--hash-ids", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["id_col"] is None and result["added"] == 1


def test_of_two_rows_with_one_text_the_row_imported_before_takes_the_item(make_project, tmp_path):
    project = make_project()
    path = tmp_path / "twins.csv"
    path.write_text("id,text\nb,same text\na,same text\n", encoding="utf-8")
    assert project.import_file(path, hash_ids=True).added == 1  # one text, kept with id b
    result = project.import_file(path)
    assert (result.added, result.ids_adopted) == (1, 1)
    assert set(uids(project)) == {"a", "b"}
