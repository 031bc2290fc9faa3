"""Label issues on multi-label projects: suspect label decisions found label by label (as
cleanlab's multi-label filter finds them), on the project and through `agreement`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop import Project
from labelloop.agreement import find_label_set_issues
from labelloop.labelers.multilabel import multi_label_result

LABELS = ["business", "sport", "tech"]


def _noisy_sets(seed: int, n: int = 600, n_labels: int = 4, rate: float = 0.05):
    """True sets, sets with `rate` of the decisions turned over, per-label probabilities."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_labels))
    truth = x > 0.3
    probs = 1.0 / (1.0 + np.exp(-3.0 * (x - 0.3)))
    flipped = rng.random((n, n_labels)) < rate
    return truth, truth ^ flipped, probs, flipped


@pytest.mark.parametrize("seed", range(3))
def test_planted_flips_are_found_label_by_label(seed: int) -> None:
    _truth, noisy, probs, flipped = _noisy_sets(seed)
    issues = find_label_set_issues(noisy, probs)
    found = np.zeros_like(flipped)
    found[issues.items, issues.labels] = True
    assert (found & flipped).sum() / found.sum() > 0.8  # precision, per decision (5% flipped)
    assert (found & flipped).sum() / flipped.sum() > 0.6  # recall
    assert np.array_equal(issues.given, noisy[issues.items, issues.labels])
    assert np.all(np.diff(issues.scores) >= 0)  # most suspicious first
    given_p = np.where(
        issues.given, probs[issues.items, issues.labels], 1 - probs[issues.items, issues.labels]
    )
    assert issues.scores == pytest.approx(given_p)


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "confident_learning"])
def test_matches_cleanlab_multilabel(filter_by: str) -> None:
    multilabel_filter = pytest.importorskip("cleanlab.multilabel_classification.filter")
    _truth, noisy, probs, _flipped = _noisy_sets(5)
    ours = "confident_joint" if filter_by == "confident_learning" else filter_by
    found = np.zeros(noisy.shape[0], dtype=bool)
    found[find_label_set_issues(noisy, probs, filter_by=ours).items] = True
    reference = multilabel_filter.find_label_issues(
        [list(np.flatnonzero(row)) for row in noisy], probs, filter_by=filter_by
    )
    assert found.sum() > 0
    assert (found & reference).sum() / (found | reference).sum() > 0.95


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError):
        find_label_set_issues(np.zeros((3, 2), bool), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        find_label_set_issues(np.zeros((2, 2), bool), np.full((2, 2), 1.5))


def _project_with_planted_gold(tmp_path, db_url) -> tuple[Project, dict[str, str]]:
    """Gold items whose per-label probabilities follow their true sets; six of them carry a
    set with one decision turned over. Returns the project and uid → the turned label."""
    rng = np.random.default_rng(3)
    n = 90
    truth = rng.random((n, len(LABELS))) < 0.4
    planted = {f"g{i}": LABELS[i % len(LABELS)] for i in range(0, 60, 10)}
    gold = []
    for i in range(n):
        given = set(np.array(LABELS)[truth[i]])
        if f"g{i}" in planted:
            given ^= {planted[f"g{i}"]}
        gold.append({"id": f"g{i}", "text": f"gold {i}", "labels": sorted(given)})
    project = Project.create(
        tmp_path / "ml", task="Topics.", labels=LABELS, db=db_url, multi_label=True
    )
    project.update_settings(allow_empty=True)
    project.add_items(gold, label_col="labels", split="gold")
    p_yes = np.where(
        truth, rng.uniform(0.6, 0.95, truth.shape), rng.uniform(0.05, 0.4, truth.shape)
    )
    for uid, label in planted.items():  # the model is sure of the true decision there
        i, j = int(uid[1:]), LABELS.index(label)
        p_yes[i, j] = 0.97 if truth[i, j] else 0.03
    results = [(project.item_id(f"g{i}"), multi_label_result(LABELS, p_yes[i])) for i in range(n)]
    project.save_predictions("m", "v1", results)
    project.set_active_predictor("m", "v1")
    return project, planted


def test_label_issues_of_a_multi_label_project_name_the_doubtful_labels(tmp_path, db_url):
    project, planted = _project_with_planted_gold(tmp_path, db_url)
    with project:
        # Two pool items a person labeled sport alone, where the model is sure of business.
        project.add_items([{"id": f"q{i}", "text": f"pool {i}"} for i in range(2)])
        sure = multi_label_result(LABELS, [0.97, 0.03, 0.03])
        project.save_predictions("m", "v1", [(project.item_id(f"q{i}"), sure) for i in range(2)])
        project.set_active_predictor("m", "v1")
        for i in range(2):
            project.annotate(f"q{i}", action="label", labels=["sport"], annotator="ann")
        planted.update({"q0": "business", "q1": "business"})
        found = project.label_issues(top=20)
        assert found.checked == 92
        by_uid = {s.id: s for s in found.suspects}
        assert set(planted) <= set(by_uid)
        assert {s.id for s in found.suspects[: len(planted)]} == set(planted)  # surest first
        for uid, label in planted.items():
            suspect = by_uid[uid]
            assert label in suspect.doubtful
            assert (label in suspect.suggested) != (label in suspect.labels)
            assert suspect.score == suspect.scores[label] < 0.3
        assert [s.score for s in found.suspects] == sorted(s.score for s in found.suspects)
        assert by_uid["q0"].doubtful == ["business", "sport"]
        assert by_uid["q0"].suggested == ["business"]
        # Gold items are reported, not queued: the two pool items go to the recheck queue.
        assert found.queued == 2


def test_agreement_reports_label_set_issues(tmp_path, db_url, cli, capsys):
    project, planted = _project_with_planted_gold(tmp_path, db_url)
    with project:
        project.add_items([{"id": f"p{i}", "text": f"pool {i}"} for i in range(4)])
        for name, labels in (("ann", ["sport"]), ("bob", ["sport", "tech"])):
            for i in range(4):
                project.annotate(f"p{i}", action="label", labels=labels, annotator=name)
    status = cli("agreement", "--project", tmp_path / "ml", "--db", db_url, "--json")
    assert status == 0
    issues = json.loads(capsys.readouterr().out)["label_issues"]
    assert issues is not None and issues["checked"] == 90  # the pool items have no prediction
    suspects = {s["id"]: s for s in issues["suspects"]}
    assert set(planted) <= set(suspects)
    assert all(suspects[uid]["doubtful"] == [label] for uid, label in planted.items())
