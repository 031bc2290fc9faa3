"""The simulation engine: output shape, and that it can tell a good strategy from random."""

import json

import numpy as np
import pytest

from labelloop.active import (
    format_interval,
    format_simulation,
    labels_ratio_interval,
    plot_learning_curves,
    simulate,
)


@pytest.fixture(scope="module")
def easy():
    # A noise-free linear boundary: the textbook case where asking near the boundary pays.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 10)).astype(np.float32)
    y = (x @ rng.normal(size=10) > 0).astype(int)
    return x, y


@pytest.fixture(scope="module")
def result(easy):
    x, y = easy
    return simulate(
        x, y, ["random", "margin"], seed_size=10, batch=10, rounds=8, repeats=3, random_state=0
    )


def test_output_has_the_documented_shape(result):
    json.dumps(result)  # JSON-able
    assert set(result["strategies"]) == {"random", "margin"}
    for s in result["strategies"].values():
        labels = [p["labels"] for p in s["curve"]]
        assert labels == list(range(10, 100, 10))
        for point in s["curve"]:
            assert 0 <= point["accuracy_mean"] <= 1 and point["accuracy_std"] >= 0
        assert 0 < s["aulc"] <= 1
        assert s["labels_to_target"] is None or s["labels_to_target"] in labels
    assert 0.5 < result["full_accuracy"] <= 1


def test_uncertainty_beats_random_on_an_easy_problem(result):
    margin, random = result["strategies"]["margin"], result["strategies"]["random"]
    assert margin["aulc"] > random["aulc"]
    assert margin["curve"][-1]["accuracy_mean"] > random["curve"][-1]["accuracy_mean"]


def test_same_seed_same_result(easy):
    x, y = easy
    kwargs = {"seed_size": 6, "batch": 4, "rounds": 2, "repeats": 2, "random_state": 5}
    assert simulate(x, y, ["entropy"], **kwargs) == simulate(x, y, ["entropy"], **kwargs)


def test_committee_and_disagreement_run_in_simulation(easy):
    x, y = easy
    llm = np.eye(2)[y] * 0.8 + 0.1
    out = simulate(
        x,
        y,
        ["committee", "disagreement", "badge", "coreset"],
        seed_size=6,
        batch=4,
        rounds=2,
        repeats=1,
        llm_proba=llm,
    )
    assert all(len(s["curve"]) == 3 for s in out["strategies"].values())


def test_text_and_plot(result, tmp_path):
    text = format_simulation(result)
    assert "margin" in text and "random" in text
    png = plot_learning_curves(result, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_round_retrains_selects_and_reports(easy):
    from labelloop.active import select_round

    x, y = easy
    labeled = np.zeros(len(y), dtype=bool)
    labeled[:40] = True
    labels = np.where(labeled, y, -1)  # unlabeled entries are never read
    step = select_round("margin", x, labeled, labels, 15, classes=np.array([0, 1]), random_state=0)
    assert step.proba.shape == (len(y), 2)
    assert len(set(step.selected.tolist())) == 15 and not labeled[step.selected].any()
    assert step.n_labeled == 40 and 0.5 < step.cv_accuracy <= 1.0
    assert step.to_dict()["strategy"] == "margin"
    committee = select_round("committee", x, labeled, labels, 5, random_state=0)
    assert len(committee.selected) == 5


def test_cold_start_lets_each_strategy_pick_its_own_seed():
    # Six tight, well-apart clusters, one class each: six typical items cover every class,
    # six random ones rarely do.
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(6, 16)) * 10
    y = np.repeat(np.arange(6), 150)
    x = (centers[y] + rng.normal(size=(len(y), 16))).astype(np.float32)
    out = simulate(
        x, y, ["random", "margin"], seed_size=6, batch=2, rounds=1, repeats=3, cold_start=True
    )
    assert out["settings"]["cold_start"] is True
    first = {name: s["curve"][0]["accuracy_mean"] for name, s in out["strategies"].items()}
    assert first["margin"] == 1.0
    assert first["random"] < 0.95
    shared = simulate(x, y, ["random", "margin"], seed_size=6, batch=2, rounds=1, repeats=3)
    points = [s["curve"][0]["accuracy_mean"] for s in shared["strategies"].values()]
    assert points[0] == points[1]  # one random seed set for both without cold start


def test_ratio_interval_brackets_the_ratio_and_is_none_without_a_crossing(result):
    margin, random = result["strategies"]["margin"], result["strategies"]["random"]
    assert np.asarray(margin["accuracy_by_repeat"]).shape == (3, len(margin["curve"]))
    # Each repeat's curve averages to the reported mean curve.
    assert np.allclose(
        np.mean(margin["accuracy_by_repeat"], axis=0),
        [p["accuracy_mean"] for p in margin["curve"]],
    )
    interval = labels_ratio_interval(result, "margin")
    if margin["labels_to_target"] and random["labels_to_target"]:
        ratio = margin["labels_to_target"] / random["labels_to_target"]
        assert interval is not None and interval[0] <= ratio <= interval[1]
    unreachable = {**result, "target_accuracy": 1.01}
    assert labels_ratio_interval(unreachable, "margin") is None
    assert "vs random" in format_simulation(result)
    assert format_interval((0.5, float("inf"))) == "0.50–∞"


def test_ratio_interval_is_wide_for_identical_noisy_strategies():
    # Two copies of the same noisy curves: the point ratio is 1 but the interval is honest.
    rng = np.random.default_rng(0)
    labels = np.arange(10, 210, 20)
    curves = 0.6 + 0.1 * (1 - np.exp(-labels / 80)) + rng.normal(0, 0.02, (5, labels.size))
    other = 0.6 + 0.1 * (1 - np.exp(-labels / 80)) + rng.normal(0, 0.02, (5, labels.size))

    def entry(c):
        return {
            "curve": [
                {"labels": int(n), "accuracy_mean": float(m)}
                for n, m in zip(labels, c.mean(0), strict=True)
            ],
            "accuracy_by_repeat": c.tolist(),
        }

    fake = {"target_accuracy": 0.68, "strategies": {"a": entry(curves), "random": entry(other)}}
    low, high = labels_ratio_interval(fake, "a")
    assert low < 1.0 < high


def test_select_round_trains_on_the_trusted_rows_and_scores_in_one_pass(easy):
    from labelloop.active import select_round

    x, y = easy
    trusted = np.zeros(len(y), dtype=bool)
    trusted[:40] = True
    excluded = trusted.copy()
    excluded[40:60] = True  # say, already queued: never picked, never trained on
    passes = []

    def score(models, embeddings):
        passes.append(len(models))
        return np.stack([m.predict_proba(embeddings) for m in models])

    step = select_round(
        "committee",
        x,
        excluded,
        np.where(trusted, y, -1),
        10,
        train_mask=trusted,
        committee_size=3,
        score=score,
        evaluate=False,
        random_state=0,
    )
    assert passes == [4]  # the student and three members, together
    assert step.n_labeled == 40 and not excluded[step.selected].any()


def test_select_round_reads_the_llm_while_the_student_is_not_trusted(easy):
    from labelloop.active import select_round
    from labelloop.active.strategies import StrategyNotReady

    x, y = easy
    labeled = np.zeros(len(y), dtype=bool)
    labeled[np.flatnonzero(y == 1)[:5]] = True  # one class only
    unsure = int(np.flatnonzero(y == 0)[0])
    llm = np.tile([0.9, 0.1], (len(y), 1))
    llm[unsure] = [0.5, 0.5]  # the LLM is sure of every item but this one

    def never(models, embeddings):
        raise AssertionError("an untrusted student is not scored")

    options = {"classes": np.array([0, 1]), "min_classes": 2, "score": never, "evaluate": False}
    step = select_round("least-confidence", x, labeled, y, 1, llm_proba=llm, **options)
    assert step.proba is llm and step.selected.tolist() == [unsure]
    with pytest.raises(StrategyNotReady) as missing:
        select_round("margin", x, labeled, y, 1, **options)
    assert missing.value.missing == ["proba"] and missing.value.strategy == "margin"
