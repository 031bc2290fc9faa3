"""Multi-label projects: creation, label sets on import, answers and predictions in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labelloop import Project
from labelloop.errors import InputError
from labelloop.labelers.multilabel import multi_label_result
from labelloop.store import Annotation, Item, Prediction, ReviewTask

LABELS = ["business", "sport", "tech"]


@pytest.fixture
def ml_project(tmp_path: Path, db_url: str):
    project = Project.create(
        tmp_path / "ml", task="Topics of a news text.", labels=LABELS, db=db_url, multi_label=True
    )
    yield project
    project.close()


def _items(project: Project) -> dict[str, Item]:
    with project.store.session() as session:
        rows = session.scalars(select(Item).where(Item.project_id == project.id)).all()
        return {row.uid: row for row in rows}


def test_create_keeps_the_setting_and_single_label_projects_are_unchanged(tmp_path, db_url):
    ml = Project.create(tmp_path / "a", task="t", labels=LABELS, db=db_url, multi_label=True)
    single = Project.create(tmp_path / "b", task="t", labels=LABELS, db=db_url, name="b")
    try:
        assert ml.multi_label and not ml.allow_empty
        assert not single.multi_label and single.settings == {}
        reopened = Project.open(tmp_path / "a", db=db_url)
        assert reopened.multi_label
        reopened.close()
    finally:
        ml.close()
        single.close()


def test_allow_empty_needs_multi_label_and_labels_must_fit_a_csv_cell(tmp_path):
    with pytest.raises(InputError, match="--multi-label"):
        Project.create(tmp_path / "a", task="t", labels=LABELS, allow_empty=True)
    with pytest.raises(InputError, match="may not hold"):
        Project.create(tmp_path / "b", task="t", labels=["a|b", "c"], multi_label=True)


def test_import_reads_lists_json_cells_and_separated_names(ml_project, tmp_path):
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"id": "g1", "text": "markets and a match", "labels": ["Business", "sport", "sport"]},
        {"id": "g2", "text": "a new chip", "labels": "tech"},
    ]
    gold.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ml_project.import_file(gold, label_col="labels", split="gold")
    pool = tmp_path / "pool.csv"
    pool.write_text(
        'id,text,labels\np1,one,"[""tech"", ""sport""]"\np2,two,business;tech\np3,three,\n'
    )
    ml_project.import_file(pool, label_col="labels")
    items = _items(ml_project)
    assert items["g1"].gold_labels == ["business", "sport"]
    assert items["g1"].final_labels == ["business", "sport"]
    assert items["g1"].gold_label is None and items["g1"].state == "human_labeled"
    assert items["g2"].final_labels == ["tech"]
    assert items["p1"].meta == {"source_label": ["sport", "tech"]}
    assert items["p2"].meta == {"source_label": ["business", "tech"]}
    assert items["p3"].final_labels is None and items["p3"].state == "unresolved"


def test_import_rejects_unknown_labels_and_empty_gold_sets_naming_the_row(ml_project, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "labels": ["sport", "weather"]}) + "\n")
    with pytest.raises(InputError, match=r"line 1.*'labels'.*weather"):
        ml_project.import_file(bad, label_col="labels", split="gold")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"text": "x", "labels": []}) + "\n")
    with pytest.raises(InputError, match="empty"):
        ml_project.import_file(empty, label_col="labels", split="gold")
    assert _items(ml_project) == {}


def test_empty_sets_where_the_project_allows_them(tmp_path, db_url):
    project = Project.create(
        tmp_path / "e", task="t", labels=LABELS, db=db_url, multi_label=True, allow_empty=True
    )
    try:
        project.add_items(
            [{"id": "g", "text": "nothing here", "labels": []}], label_col="labels", split="gold"
        )
        project.add_items(["plain"])
        assert _items(project)["g"].gold_labels == []
        uid = next(uid for uid in _items(project) if uid != "g")
        answer = project.annotate(uid, action="label", labels=[], annotator="ann")
        assert answer.labels == [] and answer.state == "human_labeled"
    finally:
        project.close()


def test_answers_are_sets_resolved_label_by_label(ml_project):
    ml_project.add_items([{"id": "a", "text": "a text"}])
    first = ml_project.annotate("a", action="label", labels=["sport", "TECH"], annotator="ann")
    assert first.labels == ["sport", "tech"]
    ml_project.annotate("a", action="label", labels=["sport"], annotator="bob")
    third = ml_project.annotate("a", action="label", labels=["sport"], annotator="cy")
    assert third.labels == ["sport"]  # tech: one of three sets
    with ml_project.store.session() as session:
        stored = session.scalars(select(Annotation.labels).order_by(Annotation.id)).all()
    assert stored == [["sport", "tech"], ["sport"], ["sport"]]
    assert _items(ml_project)["a"].final_labels == ["sport"]
    with pytest.raises(InputError, match="not in the label set"):
        ml_project.annotate("a", action="label", labels=["weather"], annotator="ann")
    with pytest.raises(InputError, match="empty"):
        ml_project.annotate("a", action="label", labels=[], annotator="ann")
    with pytest.raises(InputError, match="labels"):
        ml_project.annotate("a", action="label", label="sport", annotator="ann")


def test_predictions_keep_the_set_and_each_labels_probability(ml_project):
    ml_project.add_items([{"id": "a", "text": "a text"}])
    item_id = ml_project.item_id("a")
    result = multi_label_result(LABELS, [0.9, 0.2, 0.6])
    ml_project.save_predictions("m", "v1", [(item_id, result)])
    ml_project.set_active_predictor("m", "v1")
    with ml_project.store.session() as session:
        prediction = session.scalars(select(Prediction)).one()
    assert prediction.labels == ["business", "tech"]
    assert prediction.probs == pytest.approx({"business": 0.9, "sport": 0.2, "tech": 0.6})
    assert prediction.confidence == pytest.approx(0.9 * 0.8 * 0.6)
    assert _items(ml_project)["a"].llm_labels == ["business", "tech"]
    accepted = ml_project.annotate("a", action="accept", annotator="ann")
    assert accepted.labels == ["business", "tech"]


def test_cli_init_multi_label(cli, capsys, tmp_path):
    folder = tmp_path / "cli"
    status = cli(
        "init",
        folder,
        "--task",
        "Topics.",
        "--labels",
        "a,b,c",
        "--multi-label",
        "--allow-empty",
        "--json",
    )
    assert status == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["multi_label"] is True and shown["allow_empty"] is True
    with Project.open(folder) as project:
        assert project.multi_label and project.allow_empty


def _simulated(
    project: Project, n_gold: int = 60, n_pool: int = 40, seed: int = 0, pool_raw=None
) -> None:
    """Gold and pool items with predictions whose 'sport' probabilities run too high: the
    label applies where p > 0.75, while the labeler says yes from 0.5. `pool_raw`: the pool's
    predictions instead (items x labels)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = n_gold + n_pool
    raw = rng.uniform(0, 1, size=(n, len(LABELS)))
    if pool_raw is not None:
        raw[n_gold:] = pool_raw
    truth = raw > np.array([0.5, 0.75, 0.5])
    gold = [
        {
            "id": f"g{i}",
            "text": f"gold {i}",
            "labels": [lab for j, lab in enumerate(LABELS) if truth[i, j]],
        }
        for i in range(n_gold)
    ]
    project.update_settings(allow_empty=True)
    project.add_items(gold, label_col="labels", split="gold")
    project.add_items([{"id": f"p{i}", "text": f"pool {i}"} for i in range(n_pool)])
    results = [
        (
            project.item_id(f"g{i}" if i < n_gold else f"p{i - n_gold}"),
            multi_label_result(LABELS, raw[i]),
        )
        for i in range(n)
    ]
    project.save_predictions("m", "v1", results)
    project.set_active_predictor("m", "v1")


def test_calibrate_fits_each_label_and_route_asks_about_uncertain_labels(ml_project):
    _simulated(ml_project)
    report = ml_project.calibrate(budget=0.5, method="isotonic")
    assert report.method == "per_label" and set(report.details["label_methods"]) == set(LABELS)
    assert (
        report.details["per_label_ece_after"]["sport"]
        < report.details["per_label_ece_before"]["sport"]
    )
    assert 0.5 <= report.threshold <= 1.0 and report.review_rate <= 0.5
    stats = ml_project.stats()
    assert stats.gold_predicted == 60 and stats.gold_accuracy is not None
    assert 0.0 < stats.gold_accuracy < 1.0
    routed = ml_project.route()
    assert routed.auto_accepted + routed.in_review == 40
    assert routed.auto_accepted > 0 and routed.in_review > 0
    items = _items(ml_project)
    pool = [item for uid, item in items.items() if uid.startswith("p")]
    for item in pool:
        if item.state == "auto_accepted":
            assert item.final_labels == item.llm_labels and item.uncertain_labels is None
            assert item.calibrated_confidence >= report.threshold
        else:
            assert item.final_labels is None and item.uncertain_labels
            assert item.calibrated_confidence < report.threshold
    # The calibrated suggestion says sport only where the probability is high.
    with ml_project.store.session() as session:
        predictions = session.scalars(select(Prediction)).all()
    for prediction in predictions:
        if "sport" in (prediction.calibrated_labels or []):
            assert prediction.probs["sport"] > 0.6
    with ml_project.store.session() as session:
        tasks = session.execute(select(func.count()).select_from(ReviewTask)).scalar()
    assert tasks == routed.in_review
    exported = {row["id"]: row for row in ml_project.iter_export_rows()}
    assert all(exported[i.uid]["uncertain_labels"] == i.uncertain_labels for i in pool)


def test_cli_calibrate_and_route_a_multi_label_project(cli, capsys, tmp_path):
    folder = tmp_path / "cli"
    with Project.create(folder, task="Topics.", labels=LABELS, multi_label=True) as project:
        _simulated(project)
    assert cli("calibrate", "-p", folder, "--target-accuracy", "0.9", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "per_label" and report["expected_accuracy"] >= 0.9
    assert list(report) == [
        "model",
        "prompt_version",
        "n_gold",
        "calibrated_predictions",
        "method",
        "threshold_rule",
        "label_methods",
        "threshold",
        "ece_before",
        "ece_after",
        "per_label_ece_before",
        "per_label_ece_after",
        "expected_accuracy",
        "review_rate",
        "routing",
    ]
    assert cli("calibrate", "-p", folder, "--method", "temperature") == 2
    capsys.readouterr()
    assert cli("route", "-p", folder, "--json") == 0
    routed = json.loads(capsys.readouterr().out)
    assert routed["auto_accepted"] + routed["in_review"] == 40
    assert cli("stats", "-p", folder, "--json") == 0
    counts = [key for key in json.loads(capsys.readouterr().out) if key != "threshold"]
    # The threshold first, then the project's counts as `stats --json` prints them.
    assert list(routed) == ["threshold", *counts]


def test_select_queues_the_items_with_the_least_settled_label(ml_project):
    _simulated(ml_project)
    ml_project.calibrate(budget=0.5, method="platt")
    first = ml_project.select("ml-max-uncertainty", 5)
    assert first.queued == 5
    second = ml_project.select("ml-max-uncertainty", 5)
    assert second.queued == 5  # the first five are not chosen again
    with ml_project.store.session() as session:
        queued = set(
            session.scalars(select(ReviewTask.item_id).where(ReviewTask.queue == "active"))
        )
    pool = [item for uid, item in _items(ml_project).items() if uid.startswith("p")]
    chosen = [item.calibrated_confidence for item in pool if item.id in queued]
    others = [item.calibrated_confidence for item in pool if item.id not in queued]
    assert len(chosen) == 10 and max(chosen) <= min(others)
    assert ml_project.select("mmc", 3).queued == 3
    ml_project.annotate("p0", action="label", labels=["sport"], annotator="ann")
    assert ml_project.select("ml-mean-uncertainty", 1).trusted_labels == 1
    with pytest.raises(InputError, match="ml-mean-uncertainty"):
        ml_project.select("least-confidence", 3)


def test_undo_recomputes_the_final_set(ml_project):
    ml_project.add_items([{"id": "a", "text": "a text"}])
    first = ml_project.annotate("a", action="label", labels=["sport"], annotator="ann")
    second = ml_project.annotate("a", action="label", labels=["tech"], annotator="bob")
    assert second.labels == ["tech"]  # a tie on both: the newest set decides
    undone = ml_project.undo_annotation(second.annotation_id)
    assert undone.state == "human_labeled" and _items(ml_project)["a"].final_labels == ["sport"]
    ml_project.undo_annotation(first.annotation_id)
    item = _items(ml_project)["a"]
    assert item.state == "in_review" and item.final_labels is None


def test_agreement_of_label_sets(ml_project):
    from labelloop.agreement.multilabel import krippendorff_alpha_masi

    ml_project.add_items([{"id": f"a{k}", "text": f"text {k}"} for k in range(4)])
    ann = [["sport"], ["tech"], ["business", "tech"], ["sport"]]
    bob = [["sport"], ["tech", "sport"], ["business"], ["business"]]
    for k in range(4):
        ml_project.annotate(f"a{k}", action="label", labels=["tech"], annotator="ann")
        ml_project.annotate(f"a{k}", action="label", labels=ann[k], annotator="ann")  # latest
        ml_project.annotate(f"a{k}", action="label", labels=bob[k], annotator="bob")
    report = ml_project.agreement(n_boot=50)
    assert report.raters == ["ann", "bob"] and report.items == 4
    expected = krippendorff_alpha_masi([ann, bob], LABELS)
    assert report.krippendorff_alpha["estimate"] == pytest.approx(expected)
    assert report.per_label_kappa["business"] is not None
    assert {row["rater"] for row in report.vs_majority} == {"ann", "bob"}
    assert all(0.0 <= row["estimate"] <= 1.0 for row in report.vs_majority)
    json.dumps(report.to_dict())  # JSON-able as the CLI prints it


def test_the_agreement_command_shows_each_labels_kappa_and_names_as_written(
    ml_project, cli, capsys
):
    ml_project.add_items([{"id": f"a{k}", "text": f"text {k}"} for k in range(4)])
    raters = {"ann[/]": ["sport"], "[bold]bob": ["sport", "tech"]}  # names from files: text
    for name, labels in raters.items():
        for k in range(4):
            given = labels if k % 2 else ["business"]
            ml_project.annotate(f"a{k}", action="label", labels=given, annotator=name)
    status = cli("agreement", "--bootstrap", "20", "--no-issues", "--project", ml_project.path)
    shown = capsys.readouterr().out
    assert status == 0, shown
    assert all(f"κ {label} (label applies or not)" in shown for label in LABELS)
    assert all(f"{name} vs the majority" in shown for name in raters)


def test_cli_select_json_keeps_its_keys_and_their_order(cli, capsys, tmp_path):
    folder = tmp_path / "cli"
    with Project.create(folder, task="Topics.", labels=LABELS, multi_label=True) as project:
        _simulated(project)
    assert cli("select", "-p", folder, "--strategy", "ml-max-uncertainty", "--k", "4") == 0
    capsys.readouterr()
    assert cli("select", "-p", folder, "--strategy", "mmc", "--k", "2", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["strategy", "k", "selected", "queued", "trusted_labels", "stopping"]
    assert printed["selected"] == printed["queued"] == 2
    rules = printed["stopping"]
    assert {"stabilizing_predictions", "pool_uncertainty", "stop"} <= set(rules)
    assert all(isinstance(rules[name]["reason"], str) for name in rules if name != "stop")


def test_an_answer_keeps_the_form_the_label_studio_backend_replies_with(ml_project):
    _simulated(ml_project)
    answer = ml_project.annotate("p0", action="label", labels=["sport"], annotator="ann")
    assert list(answer.to_dict()) == ["annotation_id", "item", "state", "labels"]
    assert answer.to_dict()["item"] == "p0" and answer.labels == ["sport"]


def _predict(project: Project, version: str, raw, n_pool: int = 40) -> None:
    """Pool predictions of `raw` (items x labels) as the active predictor `m@version`."""
    results = [
        (project.item_id(f"p{i}"), multi_label_result(LABELS, raw[i])) for i in range(n_pool)
    ]
    project.save_predictions("m", version, results)
    project.set_active_predictor("m", version)


def test_select_stops_once_every_labels_decisions_settle_over_answered_rounds(ml_project):
    import numpy as np

    _simulated(ml_project)
    rng = np.random.default_rng(3)

    def round_(answer: int | None) -> dict:
        if answer is not None:  # a person labels one more item before the round
            ml_project.annotate(f"p{answer}", action="label", labels=["tech"], annotator="ann")
        return ml_project.select("ml-mean-uncertainty", 2).stopping

    # Rounds with no answer in between see the same decisions: they are not evidence.
    idle = [round_(None)["stabilizing_predictions"]["stop"] for _ in range(4)]
    changing, settled = [], []
    for r in range(3):
        _predict(ml_project, f"changing-{r}", rng.uniform(0, 1, (40, 3)))
        changing.append(round_(r)["stabilizing_predictions"]["stop"])
    fixed = rng.uniform(0, 1, (40, 3))
    for r in range(4):
        _predict(ml_project, f"settled-{r}", fixed)
        settled.append(round_(3 + r))
    assert idle == [False] * 4 and changing == [False] * 3
    assert [s["stabilizing_predictions"]["stop"] for s in settled] == [False, False, False, True]
    assert [s["stop"] for s in settled] == [False, False, False, True]
    assert "least per-label kappa" in settled[-1]["stabilizing_predictions"]["reason"]
    last = ml_project.select("ml-mean-uncertainty", 1, label_budget_total=5, target=0.99)
    assert last.trusted_labels == 7  # pool items people labeled
    assert last.stopping["label_budget"]["stop"] is True
    assert last.stopping["target_accuracy"]["stop"] is False  # uncalibrated sets on gold
    assert "subset accuracy" in last.stopping["target_accuracy"]["reason"]


def test_pool_uncertainty_rule_reads_calibrated_probabilities_only(tmp_path, db_url):
    import numpy as np

    sure = np.where(np.arange(120).reshape(40, 3) % 2, 0.001, 0.999)  # every decision sure
    decisions = {}
    for pool, name in ((None, "unsure"), (sure, "sure")):
        project = Project.create(
            tmp_path / name, task="Topics.", labels=LABELS, db=db_url, multi_label=True
        )
        try:
            _simulated(project, pool_raw=pool)
            before = project.select("ml-max-uncertainty", 2).stopping["pool_uncertainty"]
            assert before["stop"] is False and "calibrate" in before["reason"]
            project.calibrate(method="isotonic")
            decisions[name] = project.select("ml-max-uncertainty", 2).stopping
        finally:
            project.close()
    assert decisions["unsure"]["pool_uncertainty"]["stop"] is False
    assert "bound" in decisions["unsure"]["pool_uncertainty"]["reason"]
    assert decisions["sure"]["pool_uncertainty"]["stop"] is True
    assert decisions["sure"]["stop"] is True
