"""calibrate_report end to end, the plots, and the ECE benchmark script on synthetic data."""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from labelloop.calibration import calibrate_report, calibrator_from_dict
from labelloop.calibration.plots import plot_accuracy_coverage, plot_reliability, plot_review_rate

BENCH = Path(__file__).resolve().parent.parent / "bench"


def overconfident(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.4, 1.0, n)
    right = rng.random(n) < conf**2
    return conf, np.where(right, "a", "b"), np.array(["a"] * n)


def test_report_has_the_cli_keys_and_is_json() -> None:
    conf, pred, gold = overconfident()
    cal, report = calibrate_report(conf, pred, gold, budget=0.3, confidence_level=0.9)
    for key in (
        "method",
        "threshold",
        "ece_before",
        "ece_after",
        "expected_accuracy",
        "review_rate",
        "cv_log_loss",
        "guarantee",
        "per_label_thresholds",
    ):
        assert key in report
    json.dumps(report, allow_nan=False)
    assert report["review_rate"] <= 0.3
    assert report["ece_after"] < report["ece_before"]
    # The threshold applies to calibrated confidences and gives the reported review rate.
    assert np.mean(cal.transform(conf) < report["threshold"]) == pytest.approx(
        report["review_rate"]
    )
    assert calibrator_from_dict(report["calibrator"]).method == report["method"]


def test_report_with_matrix_and_certified_target() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(400, 3)) * 2
    proba = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (true.cumsum(1) > rng.random((400, 1))).argmax(1)
    labels = np.array(["x", "y", "z"])
    _, report = calibrate_report(
        proba,
        labels[proba.argmax(1)],
        labels[y],
        labels=labels,
        target_accuracy=0.9,
        confidence_level=0.9,
    )
    g = report["guarantee"]
    assert "temperature" in report["cv_log_loss"]
    if g["certified"]:
        assert g["accuracy_lower_bound"] >= 0.9 and report["auto_accuracy"] >= 0.9
    else:
        assert report["review_rate"] == 1.0 and g["message"]
    with pytest.raises(ValueError, match="argmax"):
        calibrate_report(proba, labels[proba.argmin(1)], labels[y], labels=labels)


def test_gold_accuracy_interval_covers_the_accuracy_and_narrows_with_more_gold() -> None:
    widths = []
    for n in (100, 400, 1600):
        conf, pred, gold = overconfident(n, 3)
        _, report = calibrate_report(conf, pred, gold)
        g = report["gold_accuracy"]
        assert g["n"] == n and g["level"] == 0.95
        assert g["accuracy"] == pytest.approx(np.mean(pred == gold))
        assert g["low"] < g["accuracy"] < g["high"]
        widths.append(g["high"] - g["low"])
    # An exact binomial interval shrinks about as 1/sqrt(n).
    assert widths[0] > 1.7 * widths[1] > 1.7**2 * widths[2]


def test_report_with_few_gold_items_says_so() -> None:
    conf, pred, gold = overconfident(12, 2)
    _, report = calibrate_report(conf, pred, gold)
    assert report["fallback"] and "12 gold items" in report["fallback"]


def test_plots_write_png(tmp_path: Path) -> None:
    conf, pred, gold = overconfident()
    right = pred == gold
    for path in (
        plot_reliability(right, conf, conf**2, tmp_path / "rel.png"),
        plot_accuracy_coverage(conf, right, tmp_path / "cov.png"),
        plot_review_rate(conf, right, tmp_path / "rev.png", threshold=0.7),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ece_bench_script_on_synthetic_csv(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    import bench_calibration_ece as bench

    scores, pred, gold, labels = bench.synthetic(600, seed=3)
    path = tmp_path / "preds.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["predicted", "gold", *[f"p_{lab}" for lab in labels]])
        w.writerows([p, g, *row] for p, g, row in zip(pred, gold, scores.tolist(), strict=True))
    loaded = bench.load_csv(path)
    result = bench.run(loaded, "synthetic", gold_size=200)
    assert result["gold"] == 200
    assert result["ece_after"] < result["ece_before"]
