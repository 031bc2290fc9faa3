"""Calibrators recover known miscalibration on held-out data, survive degenerate inputs and
serialise losslessly."""

import json

import numpy as np
import pytest

from labelloop.calibration import (
    CALIBRATORS,
    HistogramBinning,
    IsotonicCalibrator,
    PlattScaling,
    TemperatureScaling,
    calibrator_from_dict,
    evaluate_calibration,
    expected_calibration_error,
    make_calibrator,
    select_calibrator,
)


def squared_miscalibration(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reported confidence c, true accuracy c**2: an over-confident model."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.3, 1.0, n)
    return conf, (rng.random(n) < conf**2).astype(int)


def overconfident_softmax(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports softmax(3 z): true temperature 3."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (true.cumsum(1) > rng.random((n, 1))).argmax(1)
    reported = np.exp(3 * z) / np.exp(3 * z).sum(1, keepdims=True)
    return reported, y


@pytest.mark.parametrize("method", ["platt", "isotonic", "histogram"])
def test_scalar_methods_fix_squared_miscalibration_on_held_out_data(method: str) -> None:
    conf, correct = squared_miscalibration(2000, 0)
    test_conf, test_correct = squared_miscalibration(5000, 1)
    cal = make_calibrator(method).fit(conf, correct)
    before = expected_calibration_error(test_conf, test_correct)
    after = expected_calibration_error(cal.transform(test_conf), test_correct)
    assert before > 0.15
    assert after < 0.04


def test_temperature_recovers_the_true_temperature() -> None:
    proba, y = overconfident_softmax(3000, 4, 2)
    cal = TemperatureScaling().fit(proba, y)
    assert cal.temperature_ == pytest.approx(3.0, rel=0.1)
    test_proba, test_y = overconfident_softmax(3000, 4, 3)
    calibrated = cal.predict_proba(test_proba)
    assert np.allclose(calibrated.sum(1), 1.0)
    assert (calibrated.argmax(1) == test_proba.argmax(1)).all()
    correct = test_proba.argmax(1) == test_y
    # 3000 items in 15 bins leave about 0.02 of sampling noise in ECE.
    assert expected_calibration_error(cal.transform(test_proba), correct) < 0.045
    assert expected_calibration_error(test_proba.max(1), correct) > 0.1


def label_biased_softmax(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports softmax(2 z + 1.5 on label 0): it is
    over-confident and over-says label 0."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (true.cumsum(1) > rng.random((n, 1))).argmax(1)
    shifted = 2 * z + np.r_[1.5, np.zeros(k - 1)]
    return np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True), y


def test_vector_scaling_fixes_a_label_bias_that_one_temperature_cannot() -> None:
    proba, y = label_biased_softmax(3000, 3, 11)
    test_proba, test_y = label_biased_softmax(3000, 3, 12)
    vector = make_calibrator("vector").fit(proba, y)
    assert vector.temperature_ == pytest.approx(2.0, rel=0.15)
    assert vector.bias_[0] - vector.bias_[1:].mean() == pytest.approx(-0.75, abs=0.15)
    predicted = test_proba.argmax(1)
    correct = predicted == test_y
    relabeled = vector.predict(test_proba)
    relabeled_correct = relabeled == test_y
    temperature = TemperatureScaling().fit(proba, y)
    # Items predicted as the favoured label and the others: one temperature is off on both
    # groups in opposite directions, the biases fix each.
    for group in (predicted == 0, predicted != 0):
        ece_vector = expected_calibration_error(
            vector.transform(test_proba[group]), relabeled_correct[group]
        )
        ece_temperature = expected_calibration_error(
            temperature.transform(test_proba[group]), correct[group]
        )
        assert ece_vector < 0.045 < 0.08 < ece_temperature
    # The biases move the weak answers for the favoured label to the label the calibrated
    # distribution puts first, and that label is right more often than the labeler's.
    assert vector.relabels and not temperature.relabels
    moved = relabeled != predicted
    assert 0.02 < moved.mean() < 0.3 and (predicted[moved] == 0).mean() > 0.9
    assert relabeled_correct.mean() > correct.mean() + 0.01
    rows = np.arange(len(predicted))
    calibrated = vector.predict_proba(test_proba)
    np.testing.assert_allclose(calibrated[rows, relabeled], vector.transform(test_proba))
    np.testing.assert_allclose(calibrated.sum(1), 1.0)


def test_temperature_needs_a_matrix() -> None:
    with pytest.raises(ValueError, match="per-label probability"):
        TemperatureScaling().fit([0.5, 0.9], [1, 0])
    with pytest.raises(ValueError, match="per-label probability"):
        make_calibrator("vector").fit([0.5, 0.9], [1, 0])


def test_isotonic_is_strictly_increasing_inside_and_clipped_outside() -> None:
    conf, correct = squared_miscalibration(500, 4)
    cal = IsotonicCalibrator().fit(conf, correct)
    grid = np.linspace(min(cal.x_), max(cal.x_), 200)
    assert np.all(np.diff(cal.transform(grid)) > 0)
    out = cal.transform([0.0, 1.0])
    assert out[0] == pytest.approx(cal.y_[0]) and out[1] == pytest.approx(cal.y_[-1])
    assert min(cal.y_) > 0 and max(cal.y_) < 1


def test_histogram_smoothing_keeps_a_small_perfect_bin_below_one() -> None:
    conf = np.r_[np.linspace(0.1, 0.5, 27), [0.95, 0.96, 0.97]]
    correct = np.r_[np.zeros(27, int)[:], [1, 1, 1]]
    correct[:9] = 1
    cal = HistogramBinning(n_bins=10).fit(conf, correct)
    top = cal.transform([0.97])[0]
    assert 0.5 < top < 1.0


@pytest.mark.parametrize("method", ["platt", "isotonic", "histogram"])
@pytest.mark.parametrize("all_right", [True, False])
def test_all_right_or_all_wrong_gives_a_finite_cautious_answer(
    method: str, all_right: bool
) -> None:
    conf = np.linspace(0.5, 0.99, 30)
    cal = make_calibrator(method).fit(conf, np.full(30, int(all_right)))
    out = cal.transform(conf)
    assert np.all((out > 0) & (out < 1))
    assert (out > 0.8).all() if all_right else (out < 0.2).all()


@pytest.mark.parametrize("method", sorted(CALIBRATORS))
def test_round_trip_through_json(method: str) -> None:
    proba, y = overconfident_softmax(300, 3, 5)
    cal = make_calibrator(method).fit(proba, y)
    again = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    assert type(again) is type(cal)
    assert np.allclose(again.predict_proba(proba), cal.predict_proba(proba))
    assert again.n_fit_ == 300


def test_unknown_method_and_newer_format_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown calibration method"):
        make_calibrator("magic")
    data = PlattScaling().fit([0.2, 0.8, 0.9], [0, 1, 1]).to_dict() | {"format_version": 99}
    with pytest.raises(ValueError, match="newer"):
        calibrator_from_dict(data)


def test_scalar_calibrator_on_matrix_rescales_rows() -> None:
    proba, y = overconfident_softmax(500, 3, 6)
    cal = PlattScaling().fit(proba, y)
    out = cal.predict_proba(proba)
    assert np.allclose(out.sum(1), 1.0)
    rows, top = np.arange(500), proba.argmax(1)
    assert np.allclose(out[rows, top], cal.transform(proba))
    assert (cal.predict(proba) == top).all()


def test_auto_picks_by_cv_log_loss_and_is_deterministic() -> None:
    proba, y = overconfident_softmax(400, 4, 7)
    a = select_calibrator(proba, y, "auto", random_state=3)
    b = select_calibrator(proba, y, "auto", random_state=3)
    assert set(a.cv_log_loss) == {"none", "temperature", "vector", "platt", "isotonic", "histogram"}
    assert a.method == min(a.cv_log_loss, key=a.cv_log_loss.get)
    assert a.cv_log_loss == b.cv_log_loss
    # The data were generated by a pure temperature change: a temperature should win.
    assert a.method in ("temperature", "vector", "platt")


def test_auto_mostly_leaves_calibrated_confidences_alone() -> None:
    picked = []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        conf = rng.uniform(0.5, 1.0, 400)
        correct = (rng.random(400) < conf).astype(float)  # calibrated by construction
        picked.append(select_calibrator(conf, correct, "auto").method)
    assert picked.count("none") >= 5, picked


def test_auto_without_probabilities_uses_scalar_methods_only() -> None:
    conf, correct = squared_miscalibration(300, 8)
    sel = select_calibrator(conf, correct, "auto")
    assert set(sel.cv_log_loss) == {"none", "platt", "isotonic", "histogram"}


def test_few_gold_items_fall_back_and_say_so() -> None:
    conf, correct = squared_miscalibration(12, 9)
    correct[:2] = [0, 1]
    sel = select_calibrator(conf, correct, "isotonic")
    assert sel.method == "platt" and "12 gold items" in (sel.fallback or "")
    assert select_calibrator(np.ones((0,)), np.ones(0, int), "auto").method == "none"


def test_cross_fitted_evaluation_never_scores_fitted_items() -> None:
    # A calibrator evaluated on its own training items would look perfect with isotonic on
    # pure noise; held-out evaluation must not.
    rng = np.random.default_rng(10)
    conf = rng.uniform(size=200)
    correct = (rng.random(200) < 0.5).astype(int)
    result = evaluate_calibration(conf, correct, "isotonic")
    assert not np.isnan(result["oof_confidence"]).any()
    in_sample = IsotonicCalibrator().fit(conf, correct).transform(conf)
    assert result["after"]["log_loss"] > -np.mean(
        correct * np.log(in_sample) + (1 - correct) * np.log(1 - in_sample)
    )
    assert result["after"]["auroc"] < 0.7
