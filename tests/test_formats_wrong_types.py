"""Tools' files whose fields have the wrong JSON types, on both kinds of project: exit status 2
with a message naming the file and the field, nothing imported (never a traceback)."""

from __future__ import annotations

import json

import pytest

LABELS = ("business", "sport", "tech")
PROVENANCE = "labelloop_provenance"  # Argilla metadata: labelloop's export row, as JSON text


def entry(value: object) -> dict:
    """A `choices` result of the question the project's default config asks."""
    return {"to_name": "text", "type": "choices", "value": value}


def ls_task(**fields: object) -> dict:
    return {"id": 1, "data": {"text": "a chip maker"}, **fields}


def provenance(probs: dict) -> dict:
    """A labelloop export row (as the tools' files carry it) whose prediction holds `probs`."""
    return {
        "id": "a",
        "text": "a chip maker",
        "state": "in_review",
        "label_source": "llm",
        "split": "pool",
        "model": "m",
        "prompt_version": "v1",
        "probs": probs,
    }


#: name -> (format, file name, content, words the message must hold)
CASES = {
    "labelstudio-value-not-an-object": (
        "labelstudio",
        "t.json",
        json.dumps([ls_task(annotations=[{"id": 1, "result": [entry("tech")]}])]),
        ["annotations.result", "value.choices"],
    ),
    "labelstudio-predictions-not-a-list": (
        "labelstudio",
        "t.json",
        json.dumps([ls_task(predictions=5)]),
        ["'predictions'", "list"],
    ),
    "labelstudio-probability-not-a-number": (
        "labelstudio",
        "t.json",
        json.dumps([{"data": {"text": "a chip maker", "labelloop": provenance({"tech": "zz"})}}]),
        ["prediction.probs", "zz"],
    ),
    "argilla-provenance-not-json": (
        "argilla",
        "r.jsonl",
        json.dumps({"id": "a", "fields": {"text": "a chip maker"}, "metadata": {PROVENANCE: "{zz"}})
        + "\n",
        ["line 1", PROVENANCE],
    ),
    "argilla-provenance-not-an-object": (
        "argilla",
        "r.jsonl",
        json.dumps({"id": "a", "fields": {"text": "a chip maker"}, "metadata": {PROVENANCE: "[]"}})
        + "\n",
        ["line 1", PROVENANCE],
    ),
    "prodigy-probability-not-a-number": (
        "prodigy",
        "p.jsonl",
        json.dumps({"text": "a chip maker", "_labelloop": provenance({"tech": [1]})}) + "\n",
        ["line 1", "prediction.probs"],
    ),
    "prodigy-probability-out-of-range": (
        "prodigy",
        "p.jsonl",
        json.dumps({"text": "a chip maker", "_labelloop": provenance({"tech": 7})}) + "\n",
        ["line 1", "prediction.probs", "[0, 1]"],
    ),
}


#: Multi-label projects only: the sets of Prodigy's choice tasks.
SET_CASES = {
    "prodigy-accept-not-a-list": (
        "prodigy",
        "p.jsonl",
        json.dumps({"text": "a chip maker", "answer": "accept", "accept": 5}) + "\n",
        ["line 1", "'accept'"],
    ),
    "prodigy-options-not-a-list": (
        "prodigy",
        "p.jsonl",
        json.dumps({"text": "a chip maker", "answer": "accept", "accept": ["t"], "options": 5})
        + "\n",
        ["line 1", "'options'"],
    ),
}


def _bad_file_is_refused(case, multi_label, make_project, tmp_path, cli, capsys) -> None:
    fmt, name, content, needles = case
    if fmt == "argilla":
        pytest.importorskip("argilla")
    project = make_project(labels=LABELS, multi_label=multi_label)
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    status = cli("import", path, "--format", fmt, "--project", project.path)
    message = capsys.readouterr().err
    assert status == 2, message
    assert "Traceback" not in message
    assert str(path) in message
    for needle in needles:
        assert needle in message
    assert project.stats().items == 0


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_field_of_the_wrong_type_is_bad_input(
    case, multi_label, make_project, tmp_path, cli, capsys
):
    _bad_file_is_refused(CASES[case], multi_label, make_project, tmp_path, cli, capsys)


@pytest.mark.parametrize("case", sorted(SET_CASES))
def test_a_choice_task_of_the_wrong_shape_is_bad_input(case, make_project, tmp_path, cli, capsys):
    _bad_file_is_refused(SET_CASES[case], True, make_project, tmp_path, cli, capsys)
