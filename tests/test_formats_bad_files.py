"""Bad files from other tools: exit status 2, a message naming the place, nothing imported."""

from __future__ import annotations

import json

import pytest

from labelloop.data.formats.labelstudio import parse_label_config


def choice(label: str) -> list[dict]:
    return [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
    ]


GOOD_TASK = {"data": {"text": "fine"}, "annotations": [{"id": 1, "result": choice("positive")}]}

CASES = {
    "labelstudio-not-tasks": ("labelstudio", "t.json", json.dumps({"tasks": 3}), ["'data'"]),
    "labelstudio-unknown-label": (
        "labelstudio",
        "t.json",
        json.dumps(
            [GOOD_TASK, {"data": {"text": "x"}, "annotations": [{"result": choice("meh")}]}]
        ),
        ["record 2", "meh", "label set"],
    ),
    "labelstudio-no-text": (
        "labelstudio",
        "t.json",
        json.dumps([GOOD_TASK, {"data": {"body": "x"}}]),
        ["record 2", "data.text"],
    ),
    "labelstudio-two-choices": (
        "labelstudio",
        "t.json",
        json.dumps(
            [
                {
                    "data": {"text": "x"},
                    "annotations": [
                        {
                            "result": [
                                {
                                    "from_name": "label",
                                    "type": "choices",
                                    "value": {"choices": ["positive", "negative"]},
                                }
                            ]
                        }
                    ],
                }
            ]
        ),
        ["single-label"],
    ),
    "labelstudio-truncated": ("labelstudio", "t.json", json.dumps([GOOD_TASK])[:-5], ["JSON"]),
    "prodigy-bad-answer": (
        "prodigy",
        "p.jsonl",
        '{"text": "a", "label": "positive", "answer": "accept"}\n'
        '{"text": "b", "label": "positive", "answer": "maybe"}\n',
        ["line 2", "'answer'", "maybe"],
    ),
    "prodigy-missing-text": (
        "prodigy",
        "p.jsonl",
        '{"label": "positive", "answer": "accept"}\n',
        ["line 1", "'text'", "missing"],
    ),
    "prodigy-unknown-label": (
        "prodigy",
        "p.jsonl",
        '{"text": "a", "label": "furious", "answer": "accept"}\n',
        ["line 1", "furious"],
    ),
    "labelloop-bad-state": (
        "labelloop",
        "e.jsonl",
        json.dumps({"id": "a", "text": "t", "state": "done", "label_source": None}) + "\n",
        ["line 1", "'state'", "done"],
    ),
    "argilla-no-fields": ("argilla", "r.jsonl", '{"id": "a", "metadata": {}}\n', ["'fields'"]),
    "argilla-unknown-label": (
        "argilla",
        "r.jsonl",
        json.dumps(
            {
                "id": "a",
                "fields": {"text": "t"},
                "responses": {
                    "label": [
                        {"value": "furious", "user_id": "7d0f8c51-0000-4000-8000-000000000000"}
                    ]
                },
            }
        )
        + "\n",
        ["line 1", "furious"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_exits_2_and_imports_nothing(case, make_project, tmp_path, cli, capsys):
    fmt, name, content, needles = CASES[case]
    if fmt == "argilla":
        pytest.importorskip("argilla")
    project = make_project()
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    status = cli("import", path, "--format", fmt, "--project", project.path)
    message = capsys.readouterr().err
    assert status == 2, message
    assert str(path) in message
    for needle in needles:
        assert needle in message
    assert project.stats().items == 0


def test_hf_import_of_a_folder_that_is_not_a_dataset(make_project, tmp_path, cli, capsys):
    pytest.importorskip("datasets")
    project = make_project()
    folder = tmp_path / "not-a-dataset"
    folder.mkdir()
    (folder / "junk.txt").write_text("x")
    assert cli("import", folder, "--format", "hf", "--project", project.path) == 2
    assert "Hugging Face" in capsys.readouterr().err
    assert project.stats().items == 0


def test_label_config_errors_are_clear():
    with pytest.raises(Exception, match="no <Choices"):
        parse_label_config('<View><Text name="t" value="$t"/></View>')
    with pytest.raises(Exception, match="not valid XML"):
        parse_label_config("<View><Choices name='a'")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<View><Text name="t" value="$t"/><Choices name="c" toName="t">'
        '<Choice value="&b;"/></Choices></View>'
    )
    try:  # defusedxml refuses entities; plain expat expands this small one
        config = parse_label_config(bomb)
    except Exception as exc:
        assert "XML" in str(exc)
    else:
        assert config.choices == ("a" * 100,)
