"""The report behind ``labelloop agreement --json``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.agreement import (
    agreement_report,
    cohens_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    landis_koch,
    ratings_table,
)

HUMAN_A = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "neu"]
HUMAN_B = ["pos", "neg", "pos", "pos", "neg", "pos", "neg", "neg", "pos", "neu"]
LLM = ["pos", "neg", "neu", "pos", "neg", "pos", "neu", "neg", "pos", "pos"]
LABELS = ["neg", "neu", "pos"]


def test_report_on_the_seed_example() -> None:
    report = agreement_report([HUMAN_A, HUMAN_B, LLM], LABELS, ["a", "b", "llm"], n_boot=200)
    json.dumps(report, allow_nan=False)
    for key in ("raters", "fleiss_kappa", "krippendorff_alpha", "pairwise_cohen", "vs_majority"):
        assert key in report
    assert [r["name"] for r in report["raters"]] == ["a", "b", "llm"]
    assert report["fleiss_kappa"]["estimate"] == pytest.approx(
        fleiss_kappa(ratings_table([HUMAN_A, HUMAN_B, LLM])[0])
    )
    assert report["krippendorff_alpha"]["estimate"] == pytest.approx(
        krippendorff_alpha([HUMAN_A, HUMAN_B, LLM])
    )
    pairs = {(p["a"], p["b"]): p for p in report["pairwise_cohen"]}
    assert pairs["a", "b"]["estimate"] == pytest.approx(cohens_kappa(HUMAN_A, HUMAN_B))
    assert pairs["a", "llm"]["interpretation"] == "almost perfect"
    fleiss = report["fleiss_kappa"]
    assert fleiss["low"] <= fleiss["estimate"] <= fleiss["high"]
    assert set(fleiss["by_category"]) == set(LABELS)
    assert report["flags"] == [] and report["notes"] == []


def test_report_flags_copying_and_reads_gold() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 800)
    labels = np.where(rng.random((5, 800)) < 0.8, truth, rng.integers(0, 3, (5, 800)))
    labels[3] = np.where(truth == 2, 1, labels[3])  # rater 3 never says 2
    labels[4] = labels[3]  # the LLM repeats rater 3
    matrix = np.array(LABELS, dtype=object)[labels]
    gold = np.where(np.arange(800) < 100, np.array(LABELS, dtype=object)[truth], None)
    report = agreement_report(matrix, LABELS, ["a", "b", "c", "d", "llm"], n_boot=0, gold=gold)
    json.dumps(report, allow_nan=False)
    assert {(f["rater"], f["partner"]) for f in report["flags"]} == {("llm", "d"), ("d", "llm")}
    assert all(len(f["items"]) <= 100 for f in report["flags"])
    assert report["fleiss_kappa"]["low"] is None  # n_boot=0: no intervals
    gold_rows = {g["rater"]: g for g in report["gold_accuracy"]}
    assert gold_rows["a"]["n_gold"] == 100
    assert gold_rows["llm"]["accuracy"] < gold_rows["a"]["accuracy"]


def test_report_with_one_rater_explains_instead_of_failing() -> None:
    report = agreement_report([HUMAN_A], LABELS)
    json.dumps(report, allow_nan=False)
    assert report["fleiss_kappa"]["estimate"] is None
    assert report["notes"]


@pytest.mark.parametrize(
    ("value", "reading"),
    [
        (-0.1, "poor"), (0.0, "slight"), (0.2, "slight"), (0.21, "fair"), (0.4, "fair"),
        (0.41, "moderate"), (0.6, "moderate"), (0.61, "substantial"), (0.8, "substantial"),
        (0.81, "almost perfect"), (1.0, "almost perfect"), (None, "undefined"),
        (float("nan"), "undefined"),
    ],
)  # fmt: skip
def test_landis_koch(value: float | None, reading: str) -> None:
    assert landis_koch(value) == reading
