"""`calibrate` on a project: fit on gold, apply to every prediction, route on it; audits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop import InputError
from labelloop.cli import run
from labelloop.errors import NotReadyError
from test_routing import Result

LABELS = ["positive", "negative"]


def overconfident_project(make_project, n_gold=120, n_pool=200, seed=0):
    """The model always says 0.8–1.0, but is right only about 60% of the time."""
    rng = np.random.default_rng(seed)
    project = make_project(labels=LABELS)
    gold = [
        {"id": f"g{i}", "text": f"gold review {i}", "label": LABELS[i % 2]} for i in range(n_gold)
    ]
    pool = [{"id": f"p{i}", "text": f"pool review {i}"} for i in range(n_pool)]
    project.add_items(gold, id_col="id", split="gold")
    project.add_items(pool, id_col="id")
    results = []
    for row in gold + pool:
        truth = row.get("label", LABELS[int(row["id"][1:]) % 2])
        right = rng.random() < 0.6
        label = truth if right else LABELS[1 - LABELS.index(truth)]
        p = float(rng.uniform(0.8, 1.0))
        probs = {label: p, LABELS[1 - LABELS.index(label)]: 1 - p}
        results.append((project.item_id(row["id"]), Result(label, p, probs)))
    project.save_predictions("m", "v1", results)
    project.set_active_predictor("m", "v1")
    return project


def test_calibrate_lowers_overconfidence_and_routes(make_project, tmp_path):
    project = overconfident_project(make_project)
    before = project.route()  # raw confidences ≥ 0.8 < 0.85 … some auto-accepted
    assert before.auto_accepted > 0
    report = project.calibrate(budget=0.3, plots_dir=tmp_path / "plots")
    for key in (
        "method",
        "threshold",
        "ece_before",
        "ece_after",
        "expected_accuracy",
        "review_rate",
    ):
        assert key in report.details
    assert report.ece_after < report.ece_before
    assert report.calibrated_predictions == 320
    rows = list(project.iter_export_rows())
    calibrated = [r["calibrated_confidence"] for r in rows if r["split"] == "pool"]
    assert all(c is not None for c in calibrated)
    assert np.mean(calibrated) < 0.8  # pulled down toward the real accuracy (~0.6)
    assert project.threshold == pytest.approx(report.threshold)
    # Its confidences are noise (uniform whether right or wrong): calibration says so, and
    # routing sends everything to review unless told to trust the labeler.
    assert not report.details["labeler_check"]["useful"] and report.warnings
    distrusted = project.route()
    assert distrusted.labeler_distrusted and distrusted.auto_accepted == 0
    routed = project.route(trust_labeler=True)
    assert not routed.labeler_distrusted
    pool_rows = [r for r in project.iter_export_rows() if r["split"] == "pool"]
    for row in pool_rows:
        accepted = row["calibrated_confidence"] >= report.threshold
        assert row["state"] == ("auto_accepted" if accepted else "in_review")
    assert routed.in_review / 200 <= 0.3 + 0.15  # the budget holds roughly on the pool
    assert (tmp_path / "plots" / "reliability.png").stat().st_size > 1000


def test_calibrate_needs_gold_and_predictions(make_project):
    project = make_project(labels=LABELS)
    with pytest.raises(NotReadyError, match="prelabel"):
        project.calibrate()
    project.add_items(["a", "b"])
    project.save_predictions(
        "m",
        "v1",
        [(project.item_id(r["id"]), Result("positive", 0.9)) for r in project.iter_export_rows()],
    )
    project.set_active_predictor("m", "v1")
    with pytest.raises(NotReadyError, match="gold"):
        project.calibrate()
    with pytest.raises(InputError, match="not both"):
        project.calibrate(budget=0.2, target_accuracy=0.9)


def test_target_accuracy_with_guarantee(make_project):
    project = overconfident_project(make_project, n_gold=200)
    report = project.calibrate(target_accuracy=0.95, confidence_level=0.9)
    assert report.details["guarantee"] is not None
    assert "threshold" in report.to_dict()


def test_calibrate_cli_json(make_project, capsys):
    project = overconfident_project(make_project)
    status = run(["calibrate", "--method", "isotonic", "-p", str(project.path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert status == 0 and result["method"] in ("isotonic", "platt", "temperature")
    g = result["gold_accuracy"]
    assert g["low"] < g["accuracy"] < g["high"]
    # The text report says how precise the gold set lets calibrated confidences be.
    assert run(["calibrate", "-p", str(project.path)]) == 0
    text = capsys.readouterr().out
    assert f"interval {100 * g['low']:.1f}%" in text and "accuracy on gold" in text


def test_audit_queue_and_estimate(make_project, capsys):
    project = overconfident_project(make_project)
    routed = project.route(0.5, audit_rate=0.1)
    assert routed.audit_queued == round(0.1 * routed.auto_accepted)
    audited = [r for r in project.iter_export_rows() if r["state"] == "auto_accepted"]
    assert project.stats().audit is None
    # People check a few audited items: two confirmations, one rejection.
    from sqlalchemy import select

    from labelloop.store import Item

    with project.store.session() as session:
        uids = list(
            session.scalars(
                select(Item.uid).where(Item.project_id == project.id, Item.audit.is_(True))
            )
        )
    assert len(uids) == routed.audit_queued and len(audited) >= len(uids)
    project.annotate(uids[0], action="accept", annotator="a", queue="audit")
    project.annotate(uids[1], action="accept", annotator="a", queue="audit")
    project.annotate(uids[2], action="reject", annotator="a", queue="audit")
    estimate = project.stats().audit
    assert estimate["n_audited"] == 3 and estimate["accuracy"] == pytest.approx(2 / 3)
    assert 0 <= estimate["lower"] < 2 / 3 < estimate["upper"] <= 1
    # `labelloop stats` reads the store without the service layer: the same figures.
    assert run(["stats", "--json", "-p", str(project.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(project.stats().to_dict(), default=str))
    assert printed["gold_accuracy"] is not None and printed["audit"]["n_audited"] == 3
    again = project.route(0.5)
    assert again.audit_queued == 0  # audited items are not drawn twice


def label_biased_project(make_project, n_gold=200, n_pool=400, seed=3):
    """A labeler that says "positive" for most items of a balanced set: its weak "positive"
    answers are mostly wrong, as with a small model's habit for one label."""
    rng = np.random.default_rng(seed)
    project = make_project(labels=LABELS)
    truth = {f"g{i}": LABELS[i % 2] for i in range(n_gold)}
    truth |= {f"p{i}": LABELS[i % 2] for i in range(n_pool)}
    gold = [{"id": uid, "text": f"review {uid}", "label": y} for uid, y in truth.items()][:n_gold]
    pool = [{"id": uid, "text": f"review {uid}"} for uid in list(truth)[n_gold:]]
    project.add_items(gold, id_col="id", split="gold")
    project.add_items(pool, id_col="id")
    results = []
    for uid, y in truth.items():
        z = rng.normal(1.0 if y == "positive" else -1.0, 1.0) + 1.2  # log-odds of "positive"
        p = float(1 / (1 + np.exp(-z)))
        label = "positive" if p >= 0.5 else "negative"
        probs = {"positive": p, "negative": 1 - p}
        results.append((project.item_id(uid), Result(label, max(p, 1 - p), probs)))
    project.save_predictions("m", "v1", results)
    project.set_active_predictor("m", "v1")
    return project, truth


def test_vector_calibration_moves_a_biased_labelers_labels(make_project, capsys):
    project, truth = label_biased_project(make_project)
    report = project.calibrate(method="vector", budget=0.3)
    assert report.method == "vector" and report.details["relabeled_gold"] > 0
    assert run(["calibrate", "--method", "vector", "-p", str(project.path)]) == 0
    assert f"moved {report.details['relabeled_gold']} of 200 gold labels" in capsys.readouterr().out
    # Held-out accuracy of the labels after calibration beats the labeler's own.
    assert (
        report.details["metrics_after"]["accuracy"]
        > report.details["metrics_before"]["accuracy"] + 0.05
    )
    rows = [r for r in project.iter_export_rows() if r["split"] == "pool"]
    moved = [r for r in rows if r["llm_label"] != r["labeler_label"]]
    assert moved and all(r["labeler_label"] == "positive" for r in moved)
    raw_accuracy = np.mean([r["labeler_label"] == truth[r["id"]] for r in rows])
    shown_accuracy = np.mean([r["llm_label"] == truth[r["id"]] for r in rows])
    assert shown_accuracy > raw_accuracy + 0.05
    # Routing accepts the moved label, with the calibrated confidence of that label.
    project.route()
    for r in project.iter_export_rows():
        if r["state"] == "auto_accepted":
            assert r["label"] == r["llm_label"] and r["calibrated_confidence"] >= 0.5
    # A method that cannot move labels puts them back.
    project.calibrate(method="temperature")
    rows = [r for r in project.iter_export_rows() if r["split"] == "pool"]
    assert all(r["llm_label"] == r["labeler_label"] for r in rows)


def test_only_the_options_are_bad_input(make_project, monkeypatch, capsys):
    """A wrong option is bad input (exit 2); an error raised while fitting is a failure of
    labelloop (exit 1), not something the user could fix by changing the command."""
    from labelloop.workflows import calibrate as calibrate_workflow

    project = overconfident_project(make_project)
    with pytest.raises(InputError, match="unknown calibration method 'magic'"):
        project.calibrate(method="magic")
    assert run(["calibrate", "--method", "magic", "-p", str(project.path)]) == 2

    def broken(*args, **kwargs):
        raise ValueError("an internal shape mismatch")

    monkeypatch.setattr(calibrate_workflow, "calibrate_report", broken)
    with pytest.raises(ValueError, match="internal shape mismatch") as raised:
        project.calibrate(budget=0.3)
    assert not isinstance(raised.value, InputError)
    capsys.readouterr()
    assert run(["calibrate", "-p", str(project.path)]) == 1
    assert "ValueError" in capsys.readouterr().err


def labeled_project(make_project, *, accuracy, ranks, n_gold=150, seed=1):
    """Gold where the labeler is right with probability `accuracy`; its confidence is higher
    when it is right if `ranks`, else the same 0.9 for every item (as a model writing 0.9)."""
    rng = np.random.default_rng(seed)
    project = make_project(labels=LABELS)
    gold = [
        {"id": f"g{i}", "text": f"g {i}", "label": LABELS[int(i % 4 == 0)]} for i in range(n_gold)
    ]
    project.add_items(gold, id_col="id", split="gold")
    project.add_items([{"id": f"p{i}", "text": f"p {i}"} for i in range(40)], id_col="id")
    results = []
    for row in project.iter_export_rows():
        truth = row.get("gold_label") or LABELS[0]
        right = rng.random() < accuracy
        label = truth if right else LABELS[1 - LABELS.index(truth)]
        p = (
            (float(rng.uniform(0.75, 1.0)) if right else float(rng.uniform(0.5, 0.8)))
            if ranks
            else 0.9
        )
        probs = {label: p, LABELS[1 - LABELS.index(label)]: 1 - p}
        results.append((project.item_id(row["id"]), Result(label, p, probs)))
    project.save_predictions("m", "v1", results)
    project.set_active_predictor("m", "v1")
    return project


@pytest.mark.parametrize(
    ("accuracy", "ranks", "useful"),
    [(0.95, True, True), (0.75, True, False), (0.95, False, False)],
)
def test_a_labeler_no_better_than_the_majority_or_unable_to_rank_is_not_routed_on(
    make_project, tmp_path, accuracy, ranks, useful
):
    # 75% of gold is the majority label: 0.75 accuracy does not beat it; constant confidences
    # cannot rank, whatever the accuracy.
    project = labeled_project(make_project, accuracy=accuracy, ranks=ranks)
    report = project.calibrate(budget=0.3, plots_dir=tmp_path / "plots")
    check = report.details["labeler_check"]
    assert check["useful"] is useful and check["majority_share"] == pytest.approx(0.75, abs=0.01)
    assert bool(report.warnings) is not useful
    routed = project.route()
    assert routed.labeler_distrusted is not useful
    if not useful:
        assert routed.auto_accepted == 0 and routed.in_review == 40
        assert any("not worth routing on" in w for w in routed.warnings)
        assert project.route(trust_labeler=True).labeler_distrusted is False
    else:
        assert routed.auto_accepted > 0


#: `calibrate --json` as scripts parse it: the key, prompt version and counts, then the
#: calibration report in the order calibration writes it.
CALIBRATE_KEYS = [
    "model",
    "prompt_version",
    "n_gold",
    "calibrated_predictions",
    "method",
    "requested_method",
    "fallback",
    "cv_log_loss",
    "calibrator",
    "gold_accuracy",
    "labeler_check",
    "ece_before",
    "ece_after",
    "metrics_before",
    "metrics_after",
    "threshold",
    "threshold_rule",
    "budget",
    "target_accuracy",
    "expected_accuracy",
    "review_rate",
    "auto_accuracy",
    "guarantee",
    "per_label_thresholds",
    "per_label",
    "warnings",
    "plots",
]


def test_calibrate_json_keeps_its_keys_and_their_order(make_project, capsys):
    """A method that moves labels adds `relabeled_gold` before the threshold's part."""
    project = overconfident_project(make_project)
    assert run(["calibrate", "--method", "isotonic", "--json", "-p", str(project.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == CALIBRATE_KEYS
    assert printed["n_gold"] == 120 and printed["calibrated_predictions"] == 320
    biased, _ = label_biased_project(make_project)
    assert run(["calibrate", "--method", "vector", "--json", "-p", str(biased.path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    at = CALIBRATE_KEYS.index("threshold")
    assert list(printed) == [*CALIBRATE_KEYS[:at], "relabeled_gold", *CALIBRATE_KEYS[at:]]
