"""Final labels weighted by who gave them, in the service: the setting, the refit, the answer
path between refits, the stored posterior and the exports, on both databases."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select

from labelloop.errors import InputError
from labelloop.store import Item

LABELS = ("pos", "neg")
N_GOLD = 30


def team_project(make_project):
    """Gold items answered by three people: `good` is always right, `poor1` and `poor2` are right
    on a third of them. Then item `x`: both poor annotators say neg, `good` says pos (the
    majority says neg); item `y`: all three say neg."""
    project = make_project(labels=LABELS)
    gold = [
        {"id": f"g{i}", "text": f"gold text {i}", "label": LABELS[i % 2]} for i in range(N_GOLD)
    ]
    project.add_items(gold, label_col="label", split="gold")
    project.add_items([{"id": "x", "text": "item x"}, {"id": "y", "text": "item y"}])
    for i, row in enumerate(gold):
        right, wrong = row["label"], LABELS[(i + 1) % 2]
        project.annotate(row["id"], action="label", label=right, annotator="good")
        for poor in ("poor1", "poor2"):
            given = right if (i + (poor == "poor2")) % 3 == 0 else wrong
            project.annotate(row["id"], action="label", label=given, annotator=poor)
    for who, label in (("poor1", "neg"), ("good", "pos"), ("poor2", "neg")):
        project.annotate("x", action="label", label=label, annotator=who)
    for who in ("poor1", "good", "poor2"):
        project.annotate("y", action="label", label="neg", annotator=who)
    return project


def final(project, uid: str) -> tuple[str | None, str | None, dict | None]:
    with project.store.session() as session:
        item = session.execute(
            select(Item).where(Item.project_id == project.id, Item.uid == uid)
        ).scalar_one()
        return item.final_label, item.final_source, item.label_posterior


def test_weighted_label_follows_the_annotator_gold_shows_reliable(make_project) -> None:
    project = team_project(make_project)
    # Before any fit the answer path has no annotator model: the majority stands.
    assert final(project, "x")[:2] == ("neg", "human")
    summary = project.resolve()
    assert summary.final_label == "weighted"
    assert summary.annotators == 3 and summary.answers == 3 * N_GOLD + 6
    assert summary.labels_changed == 1
    label, source, posterior = final(project, "x")
    assert (label, source) == ("pos", "human")
    assert set(posterior) == set(LABELS) and posterior["pos"] > 0.9
    assert sum(posterior.values()) == pytest.approx(1.0, abs=1e-5)
    assert final(project, "y")[0] == "neg"  # everyone agrees: no change
    assert final(project, "g0") == ("pos", "human", None)  # gold labels are never overruled

    # Majority is kept as an option, and going back to it clears the posteriors.
    back = project.resolve("majority")
    assert back.final_label == "majority" and back.labels_changed == 1
    assert final(project, "x") == ("neg", "human", None)
    assert project.settings["consensus"] is None
    with pytest.raises(InputError, match="final_label must be one of weighted, majority"):
        project.resolve("loudest")
    assert project.settings["final_label"] == "majority"


def test_answers_between_refits_are_weighed_with_the_stored_model(make_project) -> None:
    project = team_project(make_project)
    project.resolve()
    project.add_items([{"id": "z", "text": "item z"}])
    project.annotate("z", action="label", label="neg", annotator="poor1")
    one = final(project, "z")
    assert one[0] == "neg" and one[2] is not None  # one answer is the label, with its posterior
    assert one[2]["neg"] < 0.5  # a poor annotator's single neg says little, even the opposite
    project.annotate("z", action="label", label="pos", annotator="good")
    project.annotate("z", action="label", label="neg", annotator="poor2")
    assert final(project, "z")[0] == "pos"  # no refit ran: the stored model weighed them
    # A newcomer counts as a typical annotator until the next refit.
    project.annotate("z", action="label", label="neg", annotator="newcomer")
    assert final(project, "z")[2] is not None
    # Undoing answers recomputes the posterior with the same model.
    answers = project.annotate("x", action="label", label="neg", annotator="good")
    assert final(project, "x")[0] == "neg"
    project.undo_annotation(answers.annotation_id)
    assert final(project, "x")[0] == "pos"


def test_route_refits_and_exports_carry_the_posterior(make_project, tmp_path) -> None:
    project = team_project(make_project)
    result = project.route()
    assert result.consensus.labels_changed == 1
    assert final(project, "x")[0] == "pos"
    project.export(tmp_path / "out.jsonl", "jsonl")
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out.jsonl").open())}
    assert rows["x"]["label"] == "pos"
    assert rows["x"]["label_posterior"]["pos"] > 0.9
    assert rows["g0"]["label_posterior"] is None
    project.export(tmp_path / "out.csv", "csv")
    with (tmp_path / "out.csv").open(newline="") as handle:
        by_id = {r["id"]: r for r in csv.DictReader(handle)}
    assert json.loads(by_id["x"]["label_posterior"]) == rows["x"]["label_posterior"]
    # A labelloop export comes back with the same labels.
    copy = make_project(labels=LABELS, name="copy")
    copy.import_from(tmp_path / "out.jsonl", "labelloop")
    assert final(copy, "x") == final(project, "x")


def test_the_resolve_command_sets_the_method(make_project, cli, capsys) -> None:
    project = team_project(make_project)
    folder, db = project.path, project.store.url
    assert cli("resolve", "--project", folder, "--db", db, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["final_label"] == "weighted" and out["labels_changed"] == 1
    assert cli("resolve", "--final-label", "majority", "--project", folder, "--db", db) == 0
    assert "majority" in capsys.readouterr().out
    assert final(project, "x")[0] == "neg"
    assert cli("resolve", "--final-label", "vote", "--project", folder, "--db", db) == 2


def test_annotator_quality_against_gold_and_consensus_and_drift(make_project) -> None:
    from labelloop.workflows.consensus import annotator_quality

    project = team_project(make_project)
    for i in range(N_GOLD):  # right on the first twenty gold items, then wrong on every one
        right = LABELS[i % 2]
        given = right if i < 20 else LABELS[(i + 1) % 2]
        project.annotate(f"g{i}", action="label", label=given, annotator="tired")
    quality = annotator_quality(project, window=10)
    good, poor, tired = quality["good"], quality["poor1"], quality["tired"]
    assert good["n_gold"] == N_GOLD and good["against_gold"]["estimate"] == 1.0
    assert poor["against_gold"]["high"] < good["against_gold"]["low"]
    low, high = poor["against_gold"]["low"], poor["against_gold"]["high"]
    assert low < poor["against_gold"]["estimate"] < high
    assert good["against_consensus"]["estimate"] > poor["against_consensus"]["estimate"]
    windows = tired["drift"]["windows"]
    assert [w["n_answers"] for w in windows] == [10, 10, 10]
    assert [w["accuracy"]["estimate"] for w in windows] == [1.0, 1.0, 0.0]
    assert tired["drift"]["recent_change"]["high"] < 0  # got worse, and surely so
    # The agreement report carries the same figures.
    report = project.agreement(n_boot=0)
    by_name = {q["annotator"]: q for q in report.annotator_quality}
    assert by_name["poor1"]["against_gold"] == poor["against_gold"]


def test_dashboard_shows_accuracy_intervals_and_drift(make_project, fast_password_hashing) -> None:
    from fastapi.testclient import TestClient

    from labelloop.server import create_app
    from test_server_api import login

    project = team_project(make_project)
    project.add_user("root", role="admin", password="root-password")
    board = project.dashboard().to_dict()
    assert board["annotator_quality"]["good"]["against_gold"]["estimate"] == 1.0
    with TestClient(create_app(project), follow_redirects=False) as client:
        login(client, "root", "root-password")
        page = client.get("/dashboard").text
    poor = board["annotator_quality"]["poor1"]["against_gold"]
    shown = f"{100 * poor['estimate']:.1f}% [{100 * poor['low']:.1f}, {100 * poor['high']:.1f}]"
    assert shown in page and "vs consensus" in page


def task_of(project, uid: str) -> tuple[bool, int, int]:
    from labelloop.store import ReviewTask

    with project.store.session() as session:
        task = session.execute(
            select(ReviewTask)
            .join(Item, Item.id == ReviewTask.item_id)
            .where(Item.project_id == project.id, Item.uid == uid)
        ).scalar_one()
        return task.done, task.answers, task.answers_needed


def test_adaptive_overlap_asks_another_answer_only_while_the_label_is_uncertain(
    make_project,
) -> None:
    project = team_project(make_project)
    project.add_items([{"id": uid, "text": f"item {uid}"} for uid in ("a", "b", "c")])
    project.enqueue([project.item_id(uid) for uid in ("a", "b", "c")])
    project.set_queue_settings(
        overlap=3, overlap_mode="adaptive", overlap_target=0.9, overlap_cap=3
    )
    assert task_of(project, "a") == (False, 0, 1)
    # Before any fit there is no posterior: one answer settles an item, as a fixed overlap of 1.
    project.annotate("b", action="label", label="neg", annotator="poor1", queue="active")
    assert task_of(project, "b") == (True, 1, 1)
    # The refit finds poor1's answer says little: the item wants another answer again.
    project.resolve()
    assert task_of(project, "b") == (False, 1, 2)
    # A reliable annotator's answer settles an item at once.
    project.annotate("a", action="label", label="pos", annotator="good", queue="active")
    assert task_of(project, "a") == (True, 1, 1)
    # Poor answers keep an item open up to the cap.
    project.annotate("b", action="label", label="neg", annotator="poor2", queue="active")
    assert task_of(project, "b") == (False, 2, 3)
    project.annotate("b", action="label", label="pos", annotator="good", queue="active")
    assert task_of(project, "b") == (True, 3, 3)
    # Undoing the answer that settled an item opens its task again.
    with project.store.session() as session:
        from labelloop.store import Annotation

        last = session.scalars(
            select(Annotation.id)
            .where(Annotation.item_id == project.item_id("a"))
            .order_by(Annotation.id.desc())
        ).first()
    project.undo_annotation(last)
    assert task_of(project, "a") == (False, 0, 1)
    # The fixed overlap comes back as it was.
    project.set_queue_settings(overlap_mode="fixed")
    assert task_of(project, "a") == (False, 0, 3) and task_of(project, "b") == (True, 3, 3)
    assert task_of(project, "c") == (False, 0, 3)


def test_adaptive_overlap_settings_are_checked(make_project) -> None:
    from labelloop import review

    project = make_project()
    for name, value in (("overlap_mode", "sometimes"), ("overlap_target", 1.0), ("overlap_cap", 0)):
        with pytest.raises(InputError, match=f"^{name} must be "):
            review.set_queue_settings(project, **{name: value})
    assert review.queue_settings(project).overlap_mode == "fixed"


def test_resolve_json_keeps_its_keys_and_their_order(make_project, cli, capsys) -> None:
    project = make_project(labels=LABELS)
    assert cli("resolve", "-p", project.path, "--final-label", "majority", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {
        "final_label": "majority",
        "answers": 0,
        "annotators": 0,
        "labels_changed": 0,
    }
    assert list(printed) == ["final_label", "answers", "annotators", "labels_changed"]
