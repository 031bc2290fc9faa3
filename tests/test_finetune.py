"""The fine-tuned student: contrastive training of the encoder, its ONNX export, and `learn`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labelloop.active import finetune
from labelloop.errors import NotReadyError

TOPICS = ["hotel", "pizza", "laptop", "concert", "train ride", "haircut", "museum", "phone"]
GOOD = ["wonderful", "lovely", "superb", "delightful", "excellent", "pleasant"]
BAD = ["awful", "dreadful", "horrible", "miserable", "terrible", "disappointing"]


def texts_of(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Short opinions on many topics: the label is the opinion, the topic is noise that a
    frozen sentence encoder weighs heavily."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    texts = [
        f"The {rng.choice(TOPICS)} near the {rng.choice(TOPICS)} was "
        f"{rng.choice(GOOD if label else BAD)}."
        for label in y
    ]
    return texts, y


def separation(X: np.ndarray, y: np.ndarray) -> float:
    """Mean cosine within a label less mean cosine across labels (unit vectors)."""
    cos = X @ X.T
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return float(cos[same & off].mean() - cos[~same].mean())


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    texts, y = texts_of(32, 0)
    return finetune.fine_tune(
        texts, y, folder=tmp_path_factory.mktemp("encoder"), random_state=0, max_pairs=256
    )


def test_the_fine_tuned_encoder_separates_the_labels_better_than_the_frozen_one(tuned):
    held_out, y = texts_of(40, 1)
    frozen = separation(finetune.encode(finetune.load_encoder(), held_out), y)
    after = separation(tuned.embedder.embed(held_out), y)
    assert after > frozen + 0.05, (frozen, after)
    assert tuned.pairs == 256 and tuned.labels == 32 and tuned.cpu_seconds > 0


def test_the_int8_onnx_export_agrees_with_the_torch_encoder(tuned):
    texts, _ = texts_of(16, 2)
    reference = finetune.encode(tuned.encoder, texts)
    for graph in (tuned.embedder, finetune.OnnxEmbedder(tuned.onnx_path, int8_products=False)):
        cosine = (reference * graph.embed(texts)).sum(axis=1)
        assert cosine.min() >= 0.99, cosine
    assert tuned.embedder.model_id.endswith("-setfit-" + tuned.embedder.model_id[-12:])


def test_the_frozen_torch_encoder_is_the_shipped_model():
    texts, _ = texts_of(8, 3)
    torch_vectors = finetune.encode(finetune.load_encoder(), texts)
    shipped = finetune.OnnxEmbedder(int8_products=False).embed(texts)
    assert (torch_vectors * shipped).sum(axis=1).min() > 0.98


def test_pairs_are_bounded_balanced_and_reproducible():
    y = np.array([0, 0, 0, 1, 1, 2])
    left, right, target = finetune.contrastive_pairs(y, 40, np.random.default_rng(0))
    assert len(left) == 40
    assert np.all((y[left] == y[right]) == (target == 1.0))
    assert np.all(left != right)
    assert 0.3 < target.mean() < 0.6  # about one positive per negative
    again = finetune.contrastive_pairs(y, 40, np.random.default_rng(0))
    assert np.array_equal(left, again[0]) and np.array_equal(right, again[1])
    assert len(finetune.contrastive_pairs(np.zeros(5, int), 10, np.random.default_rng(0))[0]) == 0


def test_a_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(NotReadyError, match=r"labelloop\[finetune\]"):
        finetune.require_torch()


def test_the_default_code_path_never_imports_torch():
    code = (
        "import sys, labelloop.cli, labelloop.workflows.learn, labelloop.loop_simulation, "
        "labelloop.active.finetune; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def labeled_project(make_project):
    """60 gold items, 100 pool items of which people labeled 16, no LLM."""
    from test_learning_workflows import LABELS, corpus

    project = make_project(labels=LABELS)
    project.add_items(corpus(60, 1), id_col="id", split="gold")
    pool = corpus(100, 2)
    project.add_items([{k: v for k, v in r.items() if k != "label"} for r in pool], id_col="id")
    project.pool_rows = pool
    for row in pool[:16]:
        project.annotate(row["id"], action="label", label=row["label"], annotator="ann")
    return project


def _label_more(project, start: int, stop: int) -> None:
    for row in project.pool_rows[start:stop]:
        project.annotate(row["id"], action="label", label=row["label"], annotator="ann")


def test_the_learning_setting_fine_tunes_the_students_encoder_and_only_when_labels_grew(
    labeled_project, capsys
):
    project = labeled_project
    plain = project.learn(recalibrate=False)
    assert plain.fine_tune is None and "fine_tune" not in plain.to_dict()
    setting = {"fine_tune": True, "fine_tune_min_labels": 10, "fine_tune_pairs": 64}
    setting["fine_tune_growth"] = 0.5
    project.update_settings(learning=setting)
    first = project.learn(recalibrate=False)
    record = first.fine_tune
    assert record is not None and record["labels"] == 16  # the people's labels, not gold
    assert first.to_dict()["fine_tune"]["cpu_seconds"] == record["cpu_seconds"] > 0
    assert (project.path / record["file"]).is_file()
    # the student read other vectors, so its out-of-fold answers moved
    assert first.components["student"]["log_loss"] != plain.components["student"]["log_loss"]
    _label_more(project, 16, 20)  # 20 < 1.5 × 16: the encoder is reused
    assert project.learn(recalibrate=False).fine_tune["model_id"] == record["model_id"]
    _label_more(project, 20, 24)  # 24 = 1.5 × 16: fine-tuned again, the old encoder removed
    again = project.learn(recalibrate=False).fine_tune
    assert again["model_id"] != record["model_id"] and again["labels"] == 24
    assert not (project.path / record["file"]).exists()
    from labelloop.cli import run

    capsys.readouterr()
    assert run(["learn", "-p", str(project.path)]) == 0  # reuses the encoder: 24 < 2 × 24
    assert "student encoder fine-tuned on 24 people's labels" in capsys.readouterr().out


def test_learn_names_the_extra_when_torch_is_missing(labeled_project, monkeypatch):
    project = labeled_project
    project.update_settings(learning={"fine_tune": True})
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(NotReadyError, match=r"labelloop\[finetune\]"):
        project.learn(recalibrate=False)


def test_learn_rejects_bad_fine_tune_settings(labeled_project):
    from labelloop.errors import InputError

    labeled_project.update_settings(learning={"fine_tune": True, "fine_tune_pairs": 0})
    with pytest.raises(InputError, match="fine_tune_pairs"):
        labeled_project.learn(recalibrate=False)


def test_simulate_loop_takes_the_learning_setting(tmp_path, capsys):
    from labelloop.cli import run

    data = tmp_path / "items.csv"
    data.write_text("text,label\na,x\nb,y\n")
    args = ["simulate", "--loop", "--data", str(data), "--model", "none"]
    assert run([*args, "--learning", "[1]"]) == 2
    assert "--learning must be a JSON object" in capsys.readouterr().err
    assert run([*args, "--learning", '{"fine_tun": true}']) == 2
    assert "fine_tun" in capsys.readouterr().err
