"""The labelloop command end to end: init, import, route, stats, export, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelloop.cli import run


def call(capsys, *args) -> tuple[int, str, str]:
    status = run([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def project_dir(tmp_path, db_url, capsys) -> Path:
    folder = tmp_path / "proj"
    status, _, err = call(
        capsys,
        "init",
        folder,
        "--task",
        "Sentiment of reviews",
        "--labels",
        "positive,negative,neutral",
        "--db",
        db_url,
    )
    assert status == 0, err
    return folder


def test_init_import_route_stats_export(project_dir, tmp_path, capsys):
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\nGreat film,positive\nTerrible,negative\nIt was fine,neutral\n")
    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"text": "Loved every minute"}\n{"text": "<b>bold</b> & risky"}\n')
    status, out, _ = call(capsys, "import", gold, "--split", "gold", "-p", project_dir, "--json")
    assert status == 0 and json.loads(out)["added"] == 3
    assert list(json.loads(out)) == [
        "rows",
        "added",
        "updated",
        "unchanged",
        "duplicates_in_file",
        "id_col",
        "ids_adopted",
    ]
    status, out, _ = call(capsys, "import", pool, "-p", project_dir, "--json")
    assert json.loads(out)["added"] == 2
    status, out, _ = call(capsys, "route", "-p", project_dir, "--json")
    routed = json.loads(out)
    assert status == 0 and routed["in_review"] == 2 and routed["threshold"] == 0.85
    status, out, _ = call(capsys, "stats", "-p", project_dir, "--json")
    stats = json.loads(out)
    assert stats["items"] == 5 and stats["gold"] == 3 and stats["in_review"] == 2
    assert stats["gold_accuracy"] is None and stats["predicted"] == 0
    target = tmp_path / "out.jsonl"
    status, out, _ = call(
        capsys, "export", "--format", "jsonl", "--out", target, "-p", project_dir, "--json"
    )
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert status == 0 and json.loads(out)["rows"] == 5 == len(rows)
    assert json.loads(out) == {"rows": 5, "out": str(target), "format": "jsonl"}
    for key in (
        "id",
        "text",
        "state",
        "label",
        "label_source",
        "llm_label",
        "confidence",
        "calibrated_confidence",
    ):
        assert all(key in row for row in rows)
    assert {r["text"] for r in rows} >= {"<b>bold</b> & risky"}


def test_import_from_a_tool_keeps_its_json_form(project_dir, tmp_path, capsys):
    """`import --format TOOL --json` sends the same keys, in the same order, for every tool;
    text output says what was added."""
    (tmp_path / "p.csv").write_text("text\none\ntwo\n")
    call(capsys, "import", tmp_path / "p.csv", "-p", project_dir)
    target = tmp_path / "out.jsonl"
    call(capsys, "export", "--format", "jsonl", "--out", target, "-p", project_dir)
    status, out, err = call(
        capsys, "import", target, "--format", "labelloop", "-p", project_dir, "--json"
    )
    assert status == 0, err
    assert list(json.loads(out).items()) == list(
        {
            "format": "labelloop",
            "items": 2,
            "added": 0,
            "existing": 2,
            "predictions": 0,
            "annotations": 0,
            "decisions": 0,
        }.items()
    )
    status, out, _ = call(capsys, "import", target, "--format", "labelloop", "-p", project_dir)
    assert status == 0 and "0 items added, 2 already present" in out


def test_human_readable_output(project_dir, capsys):
    status, out, _ = call(capsys, "stats", "-p", project_dir)
    assert status == 0 and "review rate" in out


def test_typed_results_keep_their_json_form(
    project_dir, capsys, monkeypatch, fast_password_hashing
):
    """`--json` sends a typed result as its fields in order (the form scripts already parse),
    and a list of them as a list; text output renders the same result."""
    status, out, _ = call(capsys, "stats", "-p", project_dir, "--json")
    assert status == 0 and list(json.loads(out)) == [
        "items",
        "gold",
        "pool",
        "predicted",
        "auto_accepted",
        "in_review",
        "human_labeled",
        "unresolved",
        "review_rate",
        "gold_accuracy",
        "gold_predicted",
        "threshold",
        "active_predictor",
        "audit",
        "adjudicated",
        "adjudication_waiting",
    ]
    monkeypatch.setenv("LABELLOOP_PASSWORD", "a-long-password")
    status, out, _ = call(capsys, "user", "add", "ann", "-p", project_dir, "--json")
    made = {"id": 1, "name": "ann", "role": "annotator", "active": True, "password": True}
    assert status == 0 and json.loads(out) == {**made, "tokens": 0, "labelstudio_user": None}
    assert list(json.loads(out)) == [*made, "tokens", "labelstudio_user"]
    status, out, _ = call(capsys, "user", "list", "-p", project_dir, "--json")
    assert status == 0 and [user["name"] for user in json.loads(out)] == ["ann"]
    assert [list(user) for user in json.loads(out)] == [[*made, "tokens", "labelstudio_user"]]
    status, out, _ = call(capsys, "user", "token", "ann", "-p", project_dir, "--json")
    issued = json.loads(out)
    assert status == 0 and list(issued) == ["name", "token", "expires_at"]
    assert issued["name"] == "ann" and issued["expires_at"] is None
    status, out, _ = call(capsys, "user", "disable", "ann", "-p", project_dir, "--json")
    assert status == 0 and json.loads(out)["active"] is False
    status, out, _ = call(capsys, "user", "revoke", "ann", "-p", project_dir, "--json")
    assert status == 0 and list(json.loads(out).items()) == [
        ("name", "ann"),
        ("tokens", 1),
        ("sessions", 0),
    ]
    status, out, _ = call(capsys, "user", "revoke", "ann", "-p", project_dir)
    assert status == 0 and "Revoked 0 tokens and 0 sessions of 'ann'." in out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_formats(project_dir, tmp_path, capsys, fmt):
    import pandas as pd

    (tmp_path / "p.csv").write_text("text\none\ntwo\n")
    call(capsys, "import", tmp_path / "p.csv", "-p", project_dir)
    target = tmp_path / f"out.{fmt}"
    status, _, err = call(capsys, "export", "--format", fmt, "--out", target, "-p", project_dir)
    assert status == 0, err
    frame = pd.read_csv(target) if fmt == "csv" else pd.read_parquet(target)
    assert sorted(frame["text"]) == ["one", "two"]
    assert not (tmp_path / f"out.{fmt}.partial").exists()


def test_errors_exit_2_with_one_message(tmp_path, capsys):
    status, _, err = call(capsys, "stats", "-p", tmp_path / "nowhere")
    assert status == 2 and "not a labelloop project" in err
    status, _, err = call(capsys, "init", tmp_path / "x", "--task", "t", "--labels", "only")
    assert status == 2 and "at least two labels" in err
    status, _, err = call(capsys, "init", tmp_path / "y", "--task", "t", "--labels", "a,A")
    assert status == 2 and "repeat" in err
    status, _, _ = call(capsys, "import")  # usage error from the parser
    assert status == 2


def test_init_twice_is_refused(project_dir, capsys):
    status, _, err = call(capsys, "init", project_dir, "--task", "t", "--labels", "a,b")
    assert status == 2 and "already a labelloop project" in err


def test_route_with_bad_threshold(project_dir, capsys):
    status, _, err = call(capsys, "route", "--threshold", "2", "-p", project_dir)
    assert status == 2 and "threshold" in err


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--threshold", "nan", "threshold must be a number from 0 to 1, not nan"),
        ("--threshold", "inf", "threshold must be a number from 0 to 1, not inf"),
        ("--audit-rate", "nan", "audit_rate must be a number from 0 to 1, not nan"),
        ("--audit-rate", "1.5", "audit_rate must be a number from 0 to 1, not 1.5"),
    ],
)
def test_route_options_name_their_range(project_dir, capsys, option, value, expected):
    status, _, err = call(capsys, "route", option, value, "-p", project_dir)
    assert status == 2 and expected in " ".join(err.split())


def test_help_lists_the_design_commands(capsys):
    status, out, _ = call(capsys, "--help")
    assert status == 0
    for command in ("init", "import", "prelabel", "calibrate", "route", "stats", "export", "demo"):
        assert command in out
