"""Adjudication at the service layer, on both databases: which items wait for a reviewer, a
decision's label and source, undo, flags, the name setting, roles, and the exports."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from labelloop import review
from labelloop.review import adjudication
from labelloop.review.accounts import Principal
from labelloop.vocabulary import LabelSource
from test_review_service import seed

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def people(project, *names: str, role: str = "annotator") -> list[Principal]:
    found = []
    for name in names:
        row = review.add_user(project, name, role=role, password=f"{name}-password")
        found.append(Principal(row.id, name, role))
    return found


def item_row(project, item_id: int) -> tuple:
    return next(
        (r["state"], r["label"], r["label_source"])
        for r in project.iter_export_rows()
        if project.item_id(r["id"]) == item_id
    )


def split_team(project) -> tuple:
    """Two uncertain items answered by two annotators with overlap 2: r0 agreed (positive),
    r1 split (positive / negative). Returns (ids, ann, bob, rita the reviewer)."""
    ids = seed(project, 2)["review"]
    project.set_queue_settings(overlap=2)
    ann, bob = people(project, "ann", "bob")
    (rita,) = people(project, "rita", role="reviewer")
    for who, second in ((ann, "positive"), (bob, "negative")):
        served = review.next_item(project, who.id)
        assert served.id == ids[0]
        review.submit(project, who, ids[0], action="correct", label="positive")
        served = review.next_item(project, who.id)
        review.submit(project, who, served.id, action="correct", label=second)
    return ids, ann, bob, rita


@pytest.fixture
def team(make_project):
    """(project, ids, ann, bob, rita): see `split_team`."""
    project = make_project()
    return (project, *split_team(project))


def test_disagreement_waits_for_a_reviewer_whose_decision_sets_the_label(team) -> None:
    project, ids, _ann, _bob, rita = team
    listed = adjudication.queue(project, rita).to_dict()
    assert listed["count"] == 1
    assert listed["items"][0]["id"] == ids[1]
    assert listed["items"][0]["reasons"] == ["disagreement"]

    shown = adjudication.next_case(project, rita).to_dict()
    assert shown["id"] == ids[1] and shown["queue"] == "adjudication"
    assert [(a["annotator"], a["label"]) for a in shown["answers"]] == [
        ("Annotator 1", "positive"),
        ("Annotator 2", "negative"),
    ]
    assert shown["suggestion"]["label"] == "negative"  # seed: item i suggested LABELS[i % 3]
    before = item_row(project, ids[1])

    done = adjudication.decide(project, rita, ids[1], "NEGATIVE", note="sarcasm\x00 ").to_dict()
    assert done["label"] == "negative" and done["note"] == "sarcasm"
    assert item_row(project, ids[1]) == ("human_labeled", "negative", "adjudicated")
    assert adjudication.queue(project, rita).count == 0
    assert adjudication.next_case(project, rita) is None

    undone = adjudication.undo(project, rita).to_dict()
    assert undone["item"]["id"] == ids[1] and undone["item"]["reasons"] == ["disagreement"]
    assert item_row(project, ids[1]) == before
    assert adjudication.queue(project, rita).count == 1


def test_a_decision_stands_when_answers_change_and_through_a_refit(team) -> None:
    project, ids, _ann, bob, rita = team
    adjudication.decide(project, rita, ids[1], "neutral")
    review.undo(project, bob)  # bob withdraws "negative": the answers now agree
    assert item_row(project, ids[1]) == ("human_labeled", "neutral", "adjudicated")
    project.resolve(final_label="majority")
    project.route(threshold=0.85)
    assert item_row(project, ids[1]) == ("human_labeled", "neutral", "adjudicated")
    adjudication.undo(project, rita)
    assert item_row(project, ids[1]) == ("human_labeled", "positive", "human")


def test_names_are_shown_only_when_the_project_says_so(team) -> None:
    project, ids, _ann, _bob, rita = team
    adjudication.set_show_names(project, True)
    shown = adjudication.case(project, rita, ids[1]).to_dict()
    assert [a["annotator"] for a in shown["answers"]] == ["ann", "bob"]


def test_rejected_by_everyone_and_flagged_items_wait_too(make_project) -> None:
    project = make_project()
    ids = seed(project, 3)["review"]
    ann, bob = people(project, "ann", "bob")
    (rita,) = people(project, "rita", role="reviewer")
    served = review.next_item(project, ann.id)
    review.submit(project, ann, served.id, action="reject")
    assert adjudication.queue(project, rita).to_dict()["items"][0]["reasons"] == ["rejected"]

    with pytest.raises(review.ConflictError):  # never served to ann
        adjudication.flag(project, ann, ids[2], "unclear")
    served = review.next_item(project, bob.id)
    assert served.id == ids[0]  # a rejection asks one more person
    review.submit(project, bob, ids[0], action="skip")
    served = review.next_item(project, bob.id)
    adjudication.flag(project, bob, served.id, "is this about the film?")
    adjudication.flag(project, bob, served.id)  # once per person
    listed = adjudication.queue(project, rita).to_dict()
    assert [(i["id"], i["reasons"]) for i in listed["items"]] == [
        (ids[0], ["rejected"]),
        (served.id, ["flagged"]),
    ]
    shown = adjudication.case(project, rita, served.id).to_dict()
    assert shown["flags"] == [{"annotator": "Annotator 1", "reason": "is this about the film?"}]
    adjudication.unflag(project, bob, served.id)
    assert adjudication.queue(project, rita).count == 1


def test_only_reviewers_and_admins_adjudicate(team) -> None:
    project, ids, ann, _bob, rita = team
    with pytest.raises(review.ForbiddenError):
        adjudication.queue(project, ann)
    with pytest.raises(review.ForbiddenError):
        adjudication.decide(project, ann, ids[1], "positive")
    (boss,) = people(project, "boss", role="admin")
    adjudication.decide(project, rita, ids[1], "positive")
    decision = adjudication.case(project, boss, ids[1]).to_dict()["decision"]
    (ravi,) = people(project, "ravi", role="reviewer")
    with pytest.raises(review.ForbiddenError):  # another reviewer's decision
        adjudication.undo(project, ravi, decision["id"])
    with pytest.raises(review.NotFoundError):  # ravi has none of his own
        adjudication.undo(project, ravi)
    adjudication.undo(project, boss, decision["id"])  # an admin may undo anyone's
    assert item_row(project, ids[1])[2] == LabelSource.HUMAN


def test_gold_items_and_bad_input_are_refused(make_project) -> None:
    project = make_project()
    ids = seed(project, 1, n_gold=1)
    (rita,) = people(project, "rita", role="reviewer")
    with pytest.raises(review.ConflictError):
        adjudication.decide(project, rita, ids["gold"][0], "positive")
    with pytest.raises(review.InputError):
        adjudication.decide(project, rita, ids["review"][0], "sideways")
    with pytest.raises(review.InputError):
        adjudication.decide(project, rita, ids["review"][0], "positive", note="x" * 2001)
    with pytest.raises(review.NotFoundError):
        adjudication.decide(project, rita, 10**9, "positive")


def exported_text(out, fmt: str) -> str:
    """Everything an export wrote, as text (Parquet and Hugging Face read back as rows)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return json.dumps(pq.read_table(out).to_pylist(), default=str)
    if fmt == "hf":
        import datasets

        return json.dumps(datasets.load_from_disk(str(out)).to_list(), default=str)
    return out.read_text()


@pytest.mark.parametrize(
    "fmt", ["jsonl", "csv", "parquet", "labelstudio", "argilla", "prodigy", "hf"]
)
def test_exports_carry_the_answers_and_the_decision(team, tmp_path, fmt) -> None:
    project, ids, _ann, _bob, rita = team
    adjudication.decide(project, rita, ids[1], "neutral", note="neither, really")
    out = tmp_path / f"out.{fmt}"
    project.export(out, fmt)
    text = exported_text(out, fmt)
    for expected in ("adjudicated", "rita", "neither, really", '"ann', '"bob'):
        assert expected in text, (fmt, expected)


def test_the_jsonl_row_of_a_decided_item(team, tmp_path) -> None:
    project, ids, _ann, _bob, rita = team
    adjudication.decide(project, rita, ids[1], "neutral", note="neither")
    out = tmp_path / "out.jsonl"
    project.export(out, "jsonl")
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    row = rows["r1"]
    assert row["label"] == "neutral" and row["label_source"] == "adjudicated"
    assert row["adjudication"]["reviewer"] == "rita"
    assert row["adjudication"]["note"] == "neither"
    assert row["adjudication"]["previous_label"] in ("positive", "negative")
    assert row["adjudication"]["reasons"] == ["disagreement"]
    assert [a["label"] for a in row["annotations"]] == ["positive", "negative"]
    assert rows["r0"]["adjudication"] is None


def adjudicate_command(cli, capsys, project) -> Callable[..., tuple[int, Any]]:
    """`labelloop adjudicate ARGS --json` on the project: (exit status, its JSON or None)."""

    def run(*args: str) -> tuple[int, Any]:
        code = cli("adjudicate", *args, "--project", str(project.path), "--json")
        captured = capsys.readouterr().out
        return code, json.loads(captured) if captured else None

    return run


def test_the_command_line_lists_decides_and_undoes(team, cli, capsys) -> None:
    project, ids, _ann, _bob, _rita = team
    run = adjudicate_command(cli, capsys, project)
    code, listed = run("list")
    assert code == 0 and [i["uid"] for i in listed["items"]] == ["r1"]
    assert run("decide", "r1", "neutral", "--as", "ann")[0] == 2  # an annotator
    code, made = run("decide", "r1", "neutral", "--as", "rita", "--note", "both wrong")
    assert code == 0 and made["label"] == "neutral"
    assert item_row(project, ids[1]) == ("human_labeled", "neutral", "adjudicated")
    assert run("list")[1]["count"] == 0
    code, undone = run("undo", "--as", "rita")
    assert code == 0 and undone["item"] == "r1"
    assert run("list")[1]["count"] == 1
    assert run("names", "shown")[1] == {"adjudication_show_names": True}


def test_the_terminal_shows_item_ids_as_written(make_project, cli, capsys) -> None:
    project = make_project()
    uids = ["x[/]", "[bold]y"]  # rich markup: shown as text, never read as styles
    project.add_items([{"id": uid, "text": f"text of {uid}"} for uid in uids])
    for uid in uids:
        project.annotate(uid, action="label", label="positive", annotator="u1")
        project.annotate(uid, action="label", label="negative", annotator="u2")
    people(project, "rita", role="reviewer")
    folder = str(project.path)
    assert cli("adjudicate", "list", "--as", "rita", "--project", folder) == 0
    listed = capsys.readouterr().out
    assert all(uid in listed for uid in uids)
    for uid in uids:
        assert cli("adjudicate", "show", uid, "--as", "rita", "--project", folder) == 0
        assert capsys.readouterr().out.startswith(f"{uid} (disagreement)")


def test_stats_count_settled_and_waiting_items(team, cli, capsys) -> None:
    project, ids, _ann, _bob, rita = team
    folder = str(project.path)

    def stats() -> dict[str, Any]:
        assert cli("stats", "--project", folder, "--json") == 0
        return json.loads(capsys.readouterr().out)

    before = stats()
    assert (before["adjudicated"], before["adjudication_waiting"]) == (0, 1)
    adjudication.decide(project, rita, ids[1], "neutral")
    after = stats()
    assert (after["adjudicated"], after["adjudication_waiting"]) == (1, 0)
    assert cli("stats", "--project", folder) == 0
    table = capsys.readouterr().out
    assert "adjudicated" in table and "adjudication waiting" in table
    adjudication.undo(project, rita)
    assert (project.stats().adjudicated, project.stats().adjudication_waiting) == (0, 1)


def test_user_add_makes_reviewers(team, cli, capsys, monkeypatch) -> None:
    project = team[0]
    monkeypatch.setenv("LABELLOOP_PASSWORD", "ravi-password")
    code = cli("user", "add", "ravi", "--role", "reviewer", "--project", project.path, "--json")
    assert code == 0 and json.loads(capsys.readouterr().out)["role"] == "reviewer"
    ravi = review.authenticate(project, "ravi", "ravi-password")
    assert ravi is not None and ravi.is_reviewer and not ravi.is_admin
    assert adjudication.queue(project, ravi).count == 1


@pytest.mark.parametrize(
    "fmt", ["jsonl", "csv", "parquet", "labelstudio", "argilla", "prodigy", "hf"]
)
def test_a_decision_comes_back_from_every_export(team, make_project, tmp_path, fmt) -> None:
    project, ids, _ann, _bob, rita = team
    adjudication.decide(project, rita, ids[1], "neutral", note="neither, really")
    out = tmp_path / f"out.{fmt}"
    project.export(out, fmt)
    copy = make_project(name="copy")
    reader = "labelloop" if fmt in ("jsonl", "csv", "parquet") else fmt
    assert copy.import_from(out, reader).decisions == 1
    assert copy.import_from(out, reader).decisions == 0  # once
    item = copy.item_id("r1")
    assert item_row(copy, item) == ("human_labeled", "neutral", "adjudicated")
    reviewer = Principal(copy.annotator_id("rita", create=False), "rita", "admin")
    shown = adjudication.case(copy, reviewer, item).to_dict()
    assert shown["decision"]["note"] == "neither, really"
    copy.resolve(final_label="majority")  # the answers alone would say positive or negative
    assert item_row(copy, item) == ("human_labeled", "neutral", "adjudicated")


def test_adjudicated_labels_train_the_student(team) -> None:
    from labelloop.workflows.learn import load_pool

    project, ids, _ann, _bob, rita = team
    adjudication.decide(project, rita, ids[1], "neutral")
    pool = load_pool(project)
    trusted = dict(zip(pool.ids, pool.y.tolist(), strict=True))
    assert trusted[ids[1]] == project.labels.index("neutral")


def test_importing_answers_keeps_a_decision_in_force(team, tmp_path) -> None:
    project, ids, _ann, _bob, rita = team
    adjudication.decide(project, rita, ids[1], "neutral")
    answers = tmp_path / "answers.jsonl"
    task = {"text": "review text 1", "label": "positive", "answer": "accept", "meta": {"id": "r1"}}
    answers.write_text(json.dumps(task) + "\n")
    project.import_from(answers, "prodigy")
    assert item_row(project, ids[1]) == ("human_labeled", "neutral", "adjudicated")
