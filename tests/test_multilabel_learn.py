"""`learn` on a multi-label project: the one-vs-rest student on the embeddings, stacked per label
with the labeler, made the predictor that calibration, routing and the server's retraining use."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop import Project, review
from labelloop.cli import run
from labelloop.errors import NotReadyError
from labelloop.labelers.base import FEATURE_VIEWS
from labelloop.labelers.multilabel import multi_label_result
from labelloop.multilabel import PerLabelPool
from labelloop.server import create_app
from labelloop.store import Item, Prediction
from labelloop.workflows.embed import save_labeler_features
from labelloop.workflows.learn import PROBE

LABELS = ["sport", "tech", "urgent"]
#: Words that give "sport" and "tech" away; "urgent" has none (only the labeler knows it).
WORDS = {
    "sport": ["match", "goal", "league", "striker", "tournament", "coach"],
    "tech": ["software", "laptop", "server", "chip", "startup", "browser"],
}
FILLER = ["today", "report", "people", "city", "week", "story", "news", "update"]
EPS = 1e-6


def _text(rng: np.random.Generator, truth: np.ndarray) -> str:
    words = [str(rng.choice(FILLER)) for _ in range(4)]
    for j, label in enumerate(LABELS[:2]):
        if truth[j]:
            words += [str(w) for w in rng.choice(WORDS[label], size=2, replace=False)]
    rng.shuffle(words)
    return " ".join(words) + f". Note {rng.integers(1_000_000)}."


def _labeler_p(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """A labeler that ranks every label better than chance but says yes far too readily."""
    return np.where(truth, rng.uniform(0.5, 0.95, 3), rng.uniform(0.3, 0.8, 3))


@pytest.fixture
def corpus() -> dict:
    rng = np.random.default_rng(7)
    n_gold, n_pool = 80, 120
    truth = rng.random((n_gold + n_pool, 3)) < np.array([0.45, 0.4, 0.35])
    return {
        "truth": truth,
        "texts": [_text(rng, t) for t in truth],
        "p": np.array([_labeler_p(rng, t) for t in truth]),
        "n_gold": n_gold,
    }


def _fill(project: Project, corpus: dict) -> dict[str, np.ndarray]:
    truth, n_gold = corpus["truth"], corpus["n_gold"]
    ids = [f"g{i}" if i < n_gold else f"p{i}" for i in range(len(truth))]
    chosen = [[lab for j, lab in enumerate(LABELS) if t[j]] for t in truth]
    project.update_settings(allow_empty=True)
    project.add_items(
        [{"id": ids[i], "text": corpus["texts"][i], "labels": chosen[i]} for i in range(n_gold)],
        label_col="labels",
        split="gold",
    )
    project.add_items(
        [{"id": ids[i], "text": corpus["texts"][i]} for i in range(n_gold, len(truth))]
    )
    results = [
        (project.item_id(uid), multi_label_result(LABELS, corpus["p"][i]))
        for i, uid in enumerate(ids)
    ]
    project.save_predictions("toy-llm", "v1", results)
    project.set_active_predictor("toy-llm", "v1")
    return {uid: truth[i] for i, uid in enumerate(ids)}


@pytest.fixture
def ml_project(tmp_path, db_url, corpus):
    project = Project.create(
        tmp_path / "ml", task="Topics of a news text.", labels=LABELS, db=db_url, multi_label=True
    )
    project.truth = _fill(project, corpus)
    yield project
    project.close()


def _pool_log_loss(project: Project, model: str) -> float:
    """Mean per-label log loss of `model`'s stored probabilities on the pool items."""
    with project.store.session() as session:
        rows = session.execute(
            select(Item.uid, Prediction.probs)
            .join(Prediction, Prediction.item_id == Item.id)
            .where(Item.split == "pool", Prediction.model == model)
        ).all()
    p = np.clip([[probs[lab] for lab in LABELS] for _, probs in rows], EPS, 1 - EPS)
    t = np.array([project.truth[uid] for uid, _ in rows])
    return float(-np.where(t, np.log(p), np.log(1 - p)).mean())


def test_learn_stacks_the_student_with_the_labeler_and_beats_it_per_label(ml_project):
    ml_project.calibrate(budget=0.3)
    ml_project.route()
    report = ml_project.learn()
    components = report.components
    assert set(components) == {"toy-llm@v1", "student", "ensemble"}
    assert report.trusted_labels == 80
    llm, student, stack = components["toy-llm@v1"], components["student"], components["ensemble"]
    # The student reads the words of sport and tech; only the labeler knows "urgent".
    for label in ("sport", "tech"):
        assert student["per_label_log_loss"][label] < llm["per_label_log_loss"][label]
    # The stack takes each label from whichever knows it (the labeler's too-ready yes made
    # usable for "urgent"): better than either alone.
    urgent = stack["per_label_log_loss"]["urgent"]
    assert (
        urgent
        < min(llm["per_label_log_loss"]["urgent"], student["per_label_log_loss"]["urgent"]) - 0.05
    )
    assert stack["log_loss"] < min(llm["log_loss"], student["log_loss"])
    assert report.best == "ensemble" and set(report.stack_weights) == {"toy-llm@v1", "student"}
    assert ml_project.settings["active_predictor"]["model"] == "ensemble"
    # ... and so on items none of them was trained on.
    assert _pool_log_loss(ml_project, "ensemble") < _pool_log_loss(ml_project, "toy-llm") - 0.05
    # Gold items carry out-of-fold answers, as calibration needs.
    rows = list(ml_project.iter_export_rows())
    assert all("out-of-fold" in r["reasoning"] for r in rows if r["split"] == "gold")
    assert all(r["probs"] is not None and set(r["probs"]) == set(LABELS) for r in rows)


def _store_features(project: Project, corpus: dict, carried: int) -> None:
    """The toy labeler's features of every item, as a local model stores them beside its
    answers: the middle view carries label `carried`, the last view is noise."""
    rng = np.random.default_rng(3)
    truth, n_gold = corpus["truth"], corpus["n_gold"]
    middle, last = FEATURE_VIEWS
    results = []
    for i, t in enumerate(truth):
        signal = np.zeros(8, dtype=np.float32)
        signal[0] = 3.0 if t[carried] else -3.0
        result = multi_label_result(LABELS, corpus["p"][i])
        result.features = {
            middle: signal + rng.normal(size=8).astype(np.float32),
            last: rng.normal(size=8).astype(np.float32),
        }
        uid = f"g{i}" if i < n_gold else f"p{i}"
        results.append((project.item_id(uid), result))
    save_labeler_features(project, "toy-llm", "v1", results)


def test_learn_stacks_a_probe_per_label_on_the_labelers_features(ml_project, corpus):
    # "urgent" is in no word of the text, and the labeler's answer only ranks it: the probe on
    # its features knows it, and the stack takes it from there. Without features, no probe.
    before = ml_project.learn()
    assert not [name for name in before.components if name.startswith(PROBE)]
    _store_features(ml_project, corpus, carried=LABELS.index("urgent"))
    after = ml_project.learn()
    probe = after.components[PROBE + "toy-llm@v1"]
    assert probe["n"] == 80  # every gold set, out of fold
    llm = after.components["toy-llm@v1"]
    assert probe["per_label_log_loss"]["urgent"] < llm["per_label_log_loss"]["urgent"] - 0.2
    # The middle view was kept: on the noise view the probe could not know "urgent".
    assert probe["per_label_log_loss"]["urgent"] < 0.3
    urgent_before, urgent_after = (
        r.components["ensemble"]["per_label_log_loss"]["urgent"] for r in (before, after)
    )
    assert urgent_after < urgent_before - 0.1
    assert after.stack_weights[PROBE + "toy-llm@v1"] > 0.1
    assert after.best != PROBE + "toy-llm@v1"  # a probe has no stored answers to activate
    assert ml_project.settings["active_predictor"]["model"] in {"ensemble", "student", "toy-llm"}


def test_calibration_and_routing_follow_the_stack(ml_project):
    ml_project.calibrate(budget=0.3)
    ml_project.route()
    report = ml_project.learn()
    assert report.calibration is not None and report.calibration["method"] == "per_label"
    assert report.route is not None and report.route["auto_accepted"] > 0
    with ml_project.store.session() as session:
        items = session.scalars(
            select(Item).where(Item.project_id == ml_project.id, Item.split == "pool")
        ).all()
        shown = {
            p.id: p
            for p in session.scalars(select(Prediction).where(Prediction.model == "ensemble"))
        }
    assert items and all(item.prediction_id in shown for item in items)
    threshold = ml_project.settings["threshold"]
    for item in items:
        prediction = shown[item.prediction_id]
        assert item.llm_labels == prediction.calibrated_labels
        assert (item.state == "auto_accepted") == (prediction.calibrated_confidence >= threshold)
        if item.state == "auto_accepted":
            assert item.final_labels == prediction.calibrated_labels
    # The finished pool is better with the stack than with the labeler's calibrated sets.
    right = np.mean(
        [
            np.array_equal(np.isin(LABELS, item.llm_labels or []), ml_project.truth[item.uid])
            for item in items
        ]
    )
    assert right > 0.6
    # select ranks the stack's probabilities too.
    assert ml_project.select("ml-max-uncertainty", 5).queued == 5


def test_learn_needs_trusted_sets(tmp_path, db_url):
    with Project.create(
        tmp_path / "few", task="t", labels=LABELS, db=db_url, multi_label=True
    ) as project:
        project.add_items(
            [{"id": "a", "text": "a match", "labels": ["sport"]}], split="gold", label_col="labels"
        )
        with pytest.raises(NotReadyError, match="trusted label sets"):
            project.learn()


def test_people_sets_are_trusted_like_gold(ml_project):
    """Sets people gave on pool items train the student (and count as trusted)."""
    for uid in ["p80", "p81", "p82"]:
        chosen = [lab for j, lab in enumerate(LABELS) if ml_project.truth[uid][j]]
        ml_project.annotate(uid, action="label", labels=chosen, annotator="ann")
    assert ml_project.learn(recalibrate=False).trusted_labels == 83


def test_learn_json_on_a_multi_label_project(ml_project, capsys):
    folder = str(ml_project.path)
    assert run(["learn", "--json", "-p", folder]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == [
        "trusted_labels",
        "label_rates",
        "components",
        "stack_weights",
        "best",
        "active_predictor",
        "embedder",
    ]
    assert list(printed["components"]["student"]) == [
        "n",
        "log_loss",
        "auroc",
        "micro_f1",
        "hamming_accuracy",
        "subset_accuracy",
        "per_label_log_loss",
    ]
    assert run(["learn", "-p", folder]) == 0
    assert "per-label log loss" in capsys.readouterr().out


@pytest.mark.usefixtures("fast_password_hashing")
def test_the_server_retrains_a_multi_label_project_after_answers(ml_project):
    ml_project.calibrate(budget=0.3)
    ml_project.route()
    review.add_user(ml_project, "ann", password="ann-password")
    headers = {"Authorization": f"Bearer {review.create_token(ml_project, 'ann')}"}
    with TestClient(create_app(ml_project, retrain_every=2)) as client:
        for _ in range(2):
            item = client.get("/api/v1/queue/next", headers=headers).json()
            chosen = [lab for j, lab in enumerate(LABELS) if ml_project.truth[item["uid"]][j]]
            answer = client.post(
                f"/api/v1/items/{item['id']}/annotations",
                headers=headers,
                json={"action": "correct", "labels": chosen},
            )
            assert answer.status_code == 201, answer.text
        from labelloop.server.ml_backend import training_runtime

        done = training_runtime(client.app).last_training
    assert done is not None and done.to_dict() == {"learn": "done", "best": "ensemble"}
    assert ml_project.settings["active_predictor"]["model"] == "ensemble"
    assert ml_project.learn(recalibrate=False).trusted_labels == 82


def test_per_label_pool_influence_follows_its_weights():
    rng = np.random.default_rng(0)
    y = rng.random((200, 2)) < 0.5
    informative = np.where(y, 0.8, 0.2)
    noise = rng.uniform(0.1, 0.9, (200, 2))
    probs = np.stack([informative, noise], axis=1)
    pool = PerLabelPool().fit(probs, y)
    shares = pool.influence(probs)
    assert shares.sum() == pytest.approx(1.0) and shares[0] > 0.9


def test_the_stack_leaves_out_an_input_that_carries_nothing_and_keeps_complementary_ones():
    from scipy.special import expit

    from labelloop.workflows.multilabel_learn import stack_sets

    names, labels = ["noise", "good"], [str(j) for j in range(8)]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        y = rng.random((200, 8)) < 0.25
        good = expit(np.where(y, 1.5, -1.5) + rng.normal(0.0, 1.5, y.shape) - 1.0)
        noise = expit(rng.normal(0.0, 2.0, y.shape))
        rows = np.ones(200, dtype=bool)
        stacked = stack_sets(np.stack([noise, good], axis=1), y, rows, names, labels, 5, 0)
        assert stacked.weights["noise"] == 0.0 and stacked.weights["good"] == 1.0
        # Each input knows half of the labels: both stay, weighed label by label.
        first = np.arange(8) < 4
        halves = np.stack([np.where(first, good, noise), np.where(first, noise, good)], axis=1)
        both = stack_sets(halves, y, rows, ["a", "b"], labels, 5, 0)
        assert both.metrics["pooling"] == "one weight per input and label"
        assert min(both.weights.values()) > 0.4
