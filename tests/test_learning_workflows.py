"""learn, select, simulate and agreement on a real store with the real embedding model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import func, select

from labelloop.cli import run
from labelloop.engines import Engine, LocalEngine, engine_for
from labelloop.errors import InputError, NotReadyError
from labelloop.store import ActiveLearningRound, ReviewTask
from test_routing import Result

LABELS = ["positive", "negative"]
GOOD = ["loved", "wonderful", "brilliant", "delightful", "superb", "moving", "funny", "great"]
BAD = ["hated", "boring", "awful", "dreadful", "tedious", "clumsy", "dull", "terrible"]
THINGS = ["film", "plot", "cast", "ending", "script", "soundtrack", "pacing", "dialogue"]


def review(rng: np.random.Generator, positive: bool) -> str:
    words = GOOD if positive else BAD
    return (
        f"The {rng.choice(THINGS)} was {rng.choice(words)} and the {rng.choice(THINGS)} "
        f"felt {rng.choice(words)}. Review {rng.integers(1_000_000)}."
    )


def corpus(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        positive = bool(i % 2)
        rows.append(
            {
                "id": f"r{seed}-{i}",
                "text": review(rng, positive),
                "label": LABELS[0] if positive else LABELS[1],
            }
        )
    return rows


@pytest.fixture
def learning_project(make_project):
    """60 gold items, 100 pool items, and a noisy LLM that is right 65% of the time."""
    project = make_project(labels=LABELS)
    gold, pool = corpus(60, 1), corpus(100, 2)
    project.add_items(gold, id_col="id", split="gold")
    project.add_items([{k: v for k, v in r.items() if k != "label"} for r in pool], id_col="id")
    rng = np.random.default_rng(3)
    results = []
    for row in gold + pool:
        right = rng.random() < 0.65
        label = row["label"] if right else LABELS[1 - LABELS.index(row["label"])]
        p = float(rng.uniform(0.55, 0.95))
        results.append(
            (
                project.item_id(row["id"]),
                Result(label, p, {label: p, LABELS[1 - LABELS.index(label)]: 1 - p}),
            )
        )
    project.save_predictions("toy-llm", "v1", results)
    project.set_active_predictor("toy-llm", "v1")
    project.truth = {r["id"]: r["label"] for r in gold + pool}
    return project


def test_learn_picks_the_better_predictor(learning_project):
    project = learning_project
    project.calibrate(budget=0.3)
    project.route()
    report = project.learn()
    components = report.components
    # Beside an LLM's answers the zero-shot labeler is left out of the stack.
    assert set(components) == {"toy-llm@v1", "student", "ensemble"}
    assert components["student"]["accuracy"] > components["toy-llm@v1"]["accuracy"] + 0.15
    assert report.best in ("student", "ensemble")
    assert project.settings["active_predictor"]["model"] == report.best
    assert report.calibration is not None and report.route is not None  # refreshed
    rows = list(project.iter_export_rows())
    gold_rows = [r for r in rows if r["split"] == "gold"]
    assert all("out-of-fold" in (r["reasoning"] or "") for r in gold_rows)
    pool_rows = [r for r in rows if r["split"] == "pool"]
    accuracy = np.mean([r["llm_label"] == project.truth[r["id"]] for r in pool_rows])
    assert accuracy > 0.8  # the active predictor now labels the pool well


@pytest.fixture
def project_without_llm(make_project):
    """The same 60 gold and 100 pool items, and no LLM answers: the cold start."""
    project = make_project(labels=LABELS)
    project.add_items(corpus(60, 1), id_col="id", split="gold")
    project.add_items(
        [{k: v for k, v in r.items() if k != "label"} for r in corpus(100, 2)], id_col="id"
    )
    return project


def test_learn_stacks_the_zero_shot_labeler(project_without_llm):
    """Without an LLM, the zero-shot labeler (label names, no gold) is a stack member; the label
    descriptions change its version."""
    project = project_without_llm
    report = project.learn(recalibrate=False)
    zero_shot = next(name for name in report.components if name.startswith("zero-shot@"))
    assert report.components[zero_shot]["accuracy"] > 0.6  # no gold used: names alone
    assert zero_shot in report.stack_weights
    assert report.best in ("student", "ensemble")  # never an unstored input
    project.set_guidelines(label_descriptions={"positive": "the critic liked the film"})
    again = project.learn(recalibrate=False)
    assert zero_shot not in again.components
    assert any(name.startswith("zero-shot@") for name in again.components)


def test_learn_needs_labels(make_project):
    project = make_project(labels=LABELS)
    project.add_items(["a text", "another"])
    with pytest.raises(NotReadyError, match="trusted labels"):
        project.learn()


def test_select_queues_new_unlabeled_items(learning_project):
    project = learning_project
    first = project.select("margin", 10, label_budget_total=500)
    assert first.queued == 10 and len(set(first.selected)) == 10
    assert all(uid.startswith("r2-") for uid in first.selected)  # pool items only
    second = project.select("hybrid", 10)
    assert not set(first.selected) & set(second.selected)  # queued items are skipped
    with project.store.session() as session:
        queued = session.scalar(
            select(func.count()).select_from(ReviewTask).where(ReviewTask.queue == "active")
        )
        rounds = session.scalar(select(func.count()).select_from(ActiveLearningRound))
    assert queued == 20 and rounds == 2
    assert first.stopping["label_budget"]["stop"] is False
    assert "stabilizing_predictions" in second.stopping


def test_select_cold_start_without_labels(make_project):
    project = make_project(labels=LABELS)
    project.add_items([r["text"] for r in corpus(40, 5)])
    result = project.select("entropy", 5)
    assert result.queued == 5


def test_select_unknown_strategy_is_bad_input(learning_project, capsys):
    status = run(["select", "--strategy", "psychic", "--k", "3", "-p", str(learning_project.path)])
    assert status == 2 and "unknown strategy" in capsys.readouterr().err


def test_simulate_cli(tmp_path, capsys):
    data = tmp_path / "labeled.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in corpus(200, 7)))
    plot = tmp_path / "curves.png"
    status = run(
        [
            "simulate",
            "--data",
            str(data),
            "--strategy",
            "random",
            "--strategy",
            "margin",
            "--seed-size",
            "6",
            "--batch",
            "6",
            "--rounds",
            "4",
            "--repeats",
            "2",
            "--plot",
            str(plot),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert status == 0
    for name in ("random", "margin"):
        entry = result["strategies"][name]
        assert len(entry["curve"]) == 5 and {"labels", "accuracy_mean", "accuracy_std"} <= set(
            entry["curve"][0]
        )
        assert 0 <= entry["aulc"] <= 1 and "labels_to_target" in entry
    assert plot.stat().st_size > 1000
    assert list(result) == [
        "strategies",
        "full_accuracy",
        "target_accuracy",
        "settings",
        "items",
        "labels",
        "embedder",
        "plot",
    ]
    assert (result["items"], result["plot"]) == (200, str(plot))
    args = ["simulate", "--data", str(data), "--strategy", "random", "--rounds", "2"]
    assert run([*args, "--seed-size", "6", "--batch", "6", "--repeats", "1"]) == 0
    assert "full-pool accuracy" in capsys.readouterr().out  # the text table


def test_agreement_and_label_issues(learning_project, capsys):
    project = learning_project
    gold_ids = [uid for uid in project.truth if uid.startswith("r1-")][:30]
    for i, uid in enumerate(gold_ids):
        truth = project.truth[uid]
        project.annotate(uid, action="label", label=truth, annotator="ann")
        other = truth if i % 5 else LABELS[1 - LABELS.index(truth)]
        project.annotate(uid, action="label", label=other, annotator="bob")
    report = project.agreement(n_boot=50)
    names = [r["name"] for r in report.raters]
    assert names == ["human:ann", "human:bob", "llm:toy-llm@v1"]
    assert report.fleiss_kappa["estimate"] is not None
    pair = next(p for p in report.pairwise_cohen if {p["a"], p["b"]} == {"human:ann", "human:bob"})
    assert pair["estimate"] == pytest.approx(0.6, abs=0.15)
    with pytest.raises(NotReadyError):
        project.label_issues()
    project.learn(recalibrate=False)
    # `agreement --json` carries them in the form scripts parse: keys in this order.
    folder = str(project.path)
    assert run(["agreement", "--bootstrap", "0", "--json", "-p", folder]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert list(whole) == [
        "raters",
        "n_items",
        "labels",
        "level_of_measurement",
        "confidence",
        "n_boot",
        "percent_agreement",
        "fleiss_kappa",
        "krippendorff_alpha",
        "gwet_ac1",
        "pairwise_cohen",
        "vs_majority",
        "flags",
        "gold_accuracy",
        "notes",
        "annotator_quality",
        "label_issues",
    ]
    assert list(whole["fleiss_kappa"]) == [
        "estimate",
        "low",
        "high",
        "interpretation",
        "by_category",
    ]
    printed = whole["label_issues"]
    assert list(printed) == ["checked", "suspects", "queued"]
    for suspect in printed["suspects"]:
        assert list(suspect) == ["id", "label", "suggested", "score"]
    issues = project.label_issues(top=5)
    assert issues.checked >= 60 and issues.queued == len(issues.suspects) <= 5


def test_unknown_engine_is_bad_input(learning_project, capsys):
    status = run(["learn", "--engine", "spark", "-p", str(learning_project.path)])
    assert status == 2 and "engine must be" in capsys.readouterr().err


def test_every_engine_name_is_checked_at_the_edge(learning_project, capsys):
    """One function turns a name into an engine; a name it does not know is bad input, for
    every command that takes one (none of them falls back to running locally)."""
    with pytest.raises(InputError, match="engine must be one of local, ray, not 'spark'"):
        engine_for("spark")
    assert isinstance(engine_for("local"), LocalEngine)
    assert isinstance(engine_for("local"), Engine)
    for command in (["learn"], ["select", "--k", "3"], ["prelabel"]):
        status = run([*command, "--engine", "spark", "-p", str(learning_project.path)])
        assert status == 2 and "engine must be" in capsys.readouterr().err


class CountingEngine(LocalEngine):
    """The local engine, counting what the workflows hand it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prefill_embeddings(self, project, embedder):
        self.calls.append("prefill")
        return super().prefill_embeddings(project, embedder)

    def predict(self, project, models, item_ids, X, embedder):
        self.calls.append(f"predict:{len(models)}")
        return super().predict(project, models, item_ids, X, embedder)


def test_learn_and_select_run_on_the_engine_they_are_given(learning_project):
    project = learning_project
    engine = CountingEngine()
    project.learn(recalibrate=False, engine=engine)
    assert engine.calls == ["prefill", "predict:1"]  # the student scores the pool
    engine.calls.clear()
    result = project.select("committee", 5, engine=engine)
    assert result.queued == 5
    # The student and the committee's members score the pool in one pass.
    assert engine.calls[0] == "prefill" and engine.calls[1].startswith("predict:")
    assert int(engine.calls[1].split(":")[1]) > 1


def test_select_runs_the_round_that_simulate_measures(learning_project, monkeypatch):
    from labelloop.active import loop
    from labelloop.workflows import select as select_workflow

    rounds = []

    def spy(*args, **kwargs):
        rounds.append(loop.select_round(*args, **kwargs))
        return rounds[-1]

    monkeypatch.setattr(select_workflow, "select_round", spy)
    result = learning_project.select("margin", 6)
    assert len(rounds) == 1 and len(rounds[0].selected) == result.queued == 6
    assert rounds[0].n_labeled == result.trusted_labels == 60


def test_select_json_keeps_its_keys_and_their_order(learning_project, capsys):
    folder = str(learning_project.path)
    status = run(["select", "--strategy", "margin", "--k", "3", "--json", "-p", folder])
    printed = json.loads(capsys.readouterr().out)
    assert status == 0
    assert list(printed) == [
        "strategy",
        "k",
        "queued",
        "selected",
        "trusted_labels",
        "stopping",
        "embedder",
    ]
    assert printed["queued"] == len(printed["selected"]) == 3


LEARN_KEYS = [
    "trusted_labels",
    "majority_rate",
    "components",
    "weak_labelers",
    "stack_weights",
    "best",
    "active_predictor",
    "embedder",
]


def test_learn_json_keeps_its_keys_and_their_order(learning_project, capsys):
    """`learn --json` names calibration and route only once they were refreshed."""
    folder = str(learning_project.path)
    assert run(["learn", "--json", "-p", folder]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == LEARN_KEYS
    assert list(printed["components"]["student"]) == ["n", "accuracy", "log_loss", "auroc"]
    learning_project.calibrate(budget=0.3)
    learning_project.route()
    assert run(["learn", "--json", "-p", folder]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == [*LEARN_KEYS, "calibration", "route"]
    assert printed["route"]["auto_accepted"] + printed["route"]["in_review"] > 0


def test_learn_options_come_from_the_project_setting(learning_project):
    project = learning_project
    plain = project.learn()
    project.update_settings(learning={"ngram_student": True, "self_training": True})
    both = project.learn()
    assert "student-ngrams" in both.stack_weights and "student-ngrams" not in plain.stack_weights
    assert both.components["student-ngrams"]["n"] == plain.components["student"]["n"]
    # the n-gram student lives only inside the stack: it is never stored nor made active
    assert both.best != "student-ngrams"
    # soft labels from the stack moved the embedding student's out-of-fold answers
    assert both.components["student"]["log_loss"] != plain.components["student"]["log_loss"]
    project.update_settings(learning={"self_trainng": True})
    with pytest.raises(InputError, match="self_trainng"):
        project.learn()
    project.update_settings(learning={"student_c": 0})
    with pytest.raises(InputError, match="student_c"):
        project.learn()


def test_learn_can_choose_the_students_regularisation(learning_project):
    project = learning_project
    fixed = project.learn()
    project.update_settings(learning={"student_c": "auto"})
    auto = project.learn()
    # the chosen C is the grid's best out-of-fold fit: never worse than the fixed default
    assert auto.components["student"]["log_loss"] < fixed.components["student"]["log_loss"]


def test_select_queues_one_round_of_the_measured_loop_by_default(learning_project, capsys):
    assert run(["select", "--json", "-p", str(learning_project.path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["queued"] == 20 and result["strategy"] == "margin"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # not a store test
def test_select_and_learn_load_no_model_when_every_vector_is_stored(learning_project, monkeypatch):
    import onnxruntime

    from labelloop.active import get_embedder
    from labelloop.active._int8_graph import int8_kernels_exact
    from labelloop.workflows.embed import item_embeddings
    from labelloop.workflows.learn import load_pool

    project = learning_project
    pool = load_pool(project)
    stored = item_embeddings(project, get_embedder("auto"), pool.ids, pool.texts)
    int8_kernels_exact()  # the CPU's probe, once per process
    made = []
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(
        onnxruntime, "InferenceSession", lambda *a, **kw: made.append(a) or real(*a, **kw)
    )
    project.select("margin", 5)
    project.learn()
    assert made == []
    # A new item's vector needs the model: it is loaded then, once, and the stored vectors stay.
    project.add_items([{"id": "late", "text": "The cast was superb."}], id_col="id")
    project.select("margin", 5)
    assert len(made) == 1
    embedder = get_embedder("auto")
    np.testing.assert_array_equal(item_embeddings(project, embedder, pool.ids, pool.texts), stored)
    late = item_embeddings(project, embedder, [project.item_id("late")], ["The cast was superb."])
    np.testing.assert_allclose(late, embedder.embed(["The cast was superb."]), atol=1e-6)
