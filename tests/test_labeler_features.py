"""A labeler's own features of the items (a local model's hidden state where it gives the
label): stored beside its answers by `prelabel`, learned from by a probe student in `learn`."""

from __future__ import annotations

import numpy as np

from labelloop.active import get_embedder
from labelloop.labelers import LabelResult, LabelTask
from labelloop.labelers.base import FEATURE_VIEWS
from labelloop.workflows.embed import labeler_features
from labelloop.workflows.learn import PROBE, learn

LABELS = ("a", "b")
MIDDLE, LAST = FEATURE_VIEWS


class FeaturesLabeler:
    """Answers no better than a coin, with features of two views: the middle one carries the
    true label, the last one is noise."""

    model_id = "feat"

    def __init__(self, truth: dict[str, str], seed: int = 0) -> None:
        self.truth, self.rng = truth, np.random.default_rng(seed)
        self.asked: list[str] = []

    def prompt_version(self, task: LabelTask) -> str:
        return "v1"

    def label_stream(self, texts, task):
        for i, text in enumerate(texts):
            self.asked.append(text)
            signal = np.zeros(8, dtype=np.float32)
            signal[LABELS.index(self.truth[text])] = 3.0
            middle = signal + self.rng.normal(size=8).astype(np.float32)
            features = {MIDDLE: middle, LAST: self.rng.normal(size=8).astype(np.float32)}
            label = LABELS[int(self.rng.integers(2))]
            yield (
                i,
                LabelResult(
                    label, {label: 0.55, ({*LABELS} - {label}).pop(): 0.45}, 0.55, features=features
                ),
            )


def _project(make_project, n: int = 120, gold: int = 60):
    rng = np.random.default_rng(1)
    words = ["lorem", "ipsum", "dolor", "amet", "sed", "magna", "nulla", "velit"]
    truth, rows = {}, []
    for k in range(n):
        text = f"{k} " + " ".join(rng.choice(words, size=6))
        truth[text] = LABELS[k % 2]
        rows.append({"id": f"i{k}", "text": text, "label": truth[text]})
    project = make_project(labels=LABELS)
    project.add_items([{"id": r["id"], "text": r["text"]} for r in rows[gold:]], id_col="id")
    project.add_items(rows[:gold], id_col="id", split="gold")
    return project, truth, rows


def test_prelabel_stores_the_features_the_answers_carry_once_per_item(make_project):
    project, truth, rows = _project(make_project, n=30, gold=10)
    labeler = FeaturesLabeler(truth)
    project.prelabel(labeler)
    ids = [project.item_id(r["id"]) for r in rows]
    X, has = labeler_features(project, MIDDLE, "feat@v1", ids)
    assert has.all() and X.shape == (30, 8)
    noise, _ = labeler_features(project, LAST, "feat@v1", ids)
    assert not np.allclose(noise, X)
    label_of = np.array([LABELS.index(truth[r["text"]]) for r in rows])
    assert (X[:, :2].argmax(axis=1) == label_of).mean() > 0.8  # each row is its own item's
    project.prelabel(labeler)  # nothing left to ask, nothing stored twice
    assert len(labeler.asked) == 30
    assert labeler_features(project, MIDDLE, "feat@v2", ids) is None


def test_learn_stacks_a_probe_on_the_view_that_carries_the_task(make_project):
    # The probe on the noise view would be near chance: the 0.9 below needs the middle one.
    project, truth, _ = _project(make_project)
    project.prelabel(FeaturesLabeler(truth))
    learned = learn(project, embedder=get_embedder("tfidf"))
    probe = learned.components[PROBE + "feat@v1"]
    assert probe["n"] == 60  # every gold item, out of fold
    assert probe["accuracy"] >= 0.9
    assert learned.components["feat@v1"]["accuracy"] < 0.75
    assert learned.components["ensemble"]["accuracy"] >= 0.9
    weights = learned.stack_weights
    assert max(weights, key=lambda name: abs(weights[name])) == PROBE + "feat@v1", weights
    assert learned.best != PROBE + "feat@v1"  # a probe has no stored answers to activate


def test_learn_without_features_has_no_probe(make_project):
    project, truth, _ = _project(make_project, n=60, gold=40)
    labeler = FeaturesLabeler(truth)
    original = labeler.label_stream

    def without(texts, task):
        for i, result in original(texts, task):
            result.features = None
            yield i, result

    labeler.label_stream = without
    project.prelabel(labeler)
    learned = learn(project, embedder=get_embedder("tfidf"))
    assert not [name for name in learned.components if name.startswith(PROBE)]


def test_features_are_read_in_the_middle_of_the_model():
    from labelloop.labelers.llama_scorer import feature_layers

    assert feature_layers(18) == (8, 9, 10)  # the embedded 270M model
    assert feature_layers(30) == (13, 14, 15, 16, 17)
    assert feature_layers(1) == (0,)
