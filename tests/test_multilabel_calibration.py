import json

import numpy as np
import pytest
from scipy.special import expit, logit

from labelloop.calibration import make_calibrator
from labelloop.multilabel import (
    PerLabelCalibrator,
    PerLabelPool,
    SharedPlattCalibrator,
    cross_fit_per_label,
    label_calibrator_from_dict,
    make_label_calibrator,
    per_label_ece,
)
from labelloop.stacking import LogLinearPool


def labeler(n: int, rng: np.random.Generator):
    """Three labels with different habits: calibrated, over-confident, and biased towards yes."""
    true_p = rng.beta(0.6, 1.5, size=(n, 3))
    y = rng.random((n, 3)) < true_p
    z = logit(np.clip(true_p, 1e-4, 1 - 1e-4))
    reported = np.column_stack([true_p[:, 0], expit(3.0 * z[:, 1]), expit(z[:, 2] + 1.5)])
    return reported, y


def test_each_label_gets_its_own_map_and_held_out_ece_falls():
    rng = np.random.default_rng(0)
    reported, y = labeler(3000, rng)
    before = per_label_ece(y, reported, n_boot=10)
    held_out = cross_fit_per_label(reported, y, method="platt", random_state=0)
    after = per_label_ece(y, held_out, n_boot=10)
    assert before[1].estimate > 0.08 and before[2].estimate > 0.08
    assert after[1].estimate < 0.03 and after[2].estimate < 0.03
    assert after[0].estimate < before[0].estimate + 0.02  # the calibrated label is not spoiled


def test_the_per_label_maps_are_the_binary_calibrators_of_each_column():
    rng = np.random.default_rng(1)
    reported, y = labeler(500, rng)
    fitted = PerLabelCalibrator("isotonic").fit(reported, y)
    for j in range(3):
        single = make_calibrator("isotonic").fit(reported[:, j], y[:, j])
        np.testing.assert_allclose(
            fitted.transform(reported)[:, j], single.transform(reported[:, j])
        )
    assert fitted.methods_ == ["isotonic"] * 3


def test_auto_handles_a_label_never_seen_positive():
    rng = np.random.default_rng(2)
    reported, y = labeler(200, rng)
    y[:, 2] = False
    fitted = PerLabelCalibrator("auto").fit(reported, y)
    assert fitted.methods_[2] == "platt" and "all 200" in fitted.notes_[2]
    out = fitted.transform(reported)
    assert 0 < out[:, 2].max() < 0.02  # cautious, never a certain 0


def test_round_trip_through_json():
    rng = np.random.default_rng(3)
    reported, y = labeler(300, rng)
    fitted = PerLabelCalibrator("auto").fit(reported, y)
    again = PerLabelCalibrator.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(again.transform(reported), fitted.transform(reported))
    with pytest.raises(ValueError, match="fitted on 3 labels"):
        again.transform(reported[:, :2])


def test_matrix_methods_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="platt"):
        PerLabelCalibrator("temperature")


# -- calibration that shares strength across labels -------------------------------------------


def same_habit(n: int, rng: np.random.Generator, rates: list[float]):
    """A labeler with one habit on every label (over-confident and saying yes too readily), on
    labels of very different frequency; returns what it reports, the truth and the true
    probabilities."""
    true_logit = logit(np.array(rates)) + rng.normal(0.0, 1.5, size=(n, len(rates)))
    true_p = expit(true_logit)
    return expit(2.0 * true_logit + 1.5), rng.random(true_p.shape) < true_p, true_p


RARE = [0.0065] * 5  # 3-5 positives each among 200 gold items, on average
COMMON = [0.15, 0.3, 0.5]


def test_rare_labels_borrow_the_shared_map_and_come_out_calibrated():
    """With 3-5 positives a label's own map is noise; the shared one is right (the truth is
    known here: the error is measured against the true probabilities on fresh items)."""
    errors = {"per label": [], "shared": []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        reported, y, _ = same_habit(200, rng, RARE + COMMON)
        fresh, _, truth = same_habit(20_000, rng, RARE + COMMON)
        assert y[:, :5].sum(axis=0).min() >= 2 and y[:, :5].sum(axis=0).max() <= 8
        for name, calibrator in (
            ("per label", PerLabelCalibrator("auto")),
            ("shared", SharedPlattCalibrator()),
        ):
            out = calibrator.fit(reported, y).transform(fresh)
            errors[name].append(np.abs(out - truth).mean(axis=0))
    per_label, shared = (np.mean(errors[k], axis=0) for k in ("per label", "shared"))
    assert shared[:5].max() < 0.004 and per_label[:5].mean() > 0.006
    assert np.all(shared <= per_label + 0.005)  # the common labels are not spoiled


def test_labels_with_their_own_habits_keep_their_own_maps():
    rng = np.random.default_rng(0)
    reported, y = labeler(3000, rng)
    fitted = SharedPlattCalibrator().fit(reported, y)
    assert fitted.choice_ not in ("none", "inf/inf")
    held_out = cross_fit_per_label(reported, y, method="auto", random_state=0)
    after = per_label_ece(y, held_out, n_boot=10)
    assert max(iv.estimate for iv in after) < 0.03


def test_a_calibrated_labeler_is_left_as_it_is_and_an_empty_label_stays_cautious():
    rng = np.random.default_rng(4)
    true_p = rng.beta(0.6, 1.5, size=(300, 3))
    y = rng.random(true_p.shape) < true_p
    y[:, 2] = False
    fitted = SharedPlattCalibrator().fit(true_p, y)
    out = fitted.transform(true_p)
    assert np.all(np.isfinite(out)) and out[:, 2].max() < out[:, 0].max()
    again = label_calibrator_from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(again.transform(true_p), out)
    with pytest.raises(ValueError, match="fitted on 3 labels"):
        again.transform(true_p[:, :2])


def test_auto_and_shared_name_the_shared_calibrator_binary_methods_stay_per_label():
    assert isinstance(make_label_calibrator("auto"), SharedPlattCalibrator)
    assert isinstance(make_label_calibrator("shared"), SharedPlattCalibrator)
    assert make_label_calibrator("isotonic").method == "isotonic"
    with pytest.raises(ValueError, match="penalties"):
        SharedPlattCalibrator(penalties=(-1.0,))


# -- per-label pooling ---------------------------------------------------------------------------


def views(n: int, rng: np.random.Generator):
    y = rng.random((n, 4)) < 0.3
    sign = np.where(y, 1.0, -1.0)
    good = expit(sign * 2.0 + rng.normal(0, 1.5, (n, 4)))
    weak = expit(sign * 0.8 + rng.normal(0, 1.5, (n, 4)))
    return np.stack([good, weak], axis=1), y


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def test_pool_of_two_independent_views_beats_either():
    rng = np.random.default_rng(4)
    probs, y = views(4000, rng)
    pool = PerLabelPool().fit(probs[:2000], y[:2000])
    pooled = pool.predict_proba(probs[2000:])
    assert pooled.shape == (2000, 4)
    assert log_loss(pooled, y[2000:]) < min(
        log_loss(probs[2000:, 0], y[2000:]), log_loss(probs[2000:, 1], y[2000:])
    )
    assert np.all(pool.weights_[:, 0] > pool.weights_[:, 1])


def test_each_label_is_the_two_column_log_linear_pool():
    rng = np.random.default_rng(5)
    probs, y = views(600, rng)
    pool = PerLabelPool(alpha=1e-3).fit(probs, y)
    for j in range(4):
        two_column = np.stack([1 - probs[:, :, j], probs[:, :, j]], axis=2)
        single = LogLinearPool(alpha=1e-3).fit(two_column, y[:, j].astype(int))
        np.testing.assert_allclose(
            pool.predict_proba(probs)[:, j], single.predict_proba(two_column)[:, 1], atol=2e-3
        )


def test_missing_answers_count_as_no_evidence_and_shared_weights_are_shared():
    rng = np.random.default_rng(6)
    probs, y = views(500, rng)
    pool = PerLabelPool(shared_weights=True).fit(probs, y)
    assert np.allclose(pool.weights_, pool.weights_[0])
    only_good = probs.copy()
    only_good[:, 1] = np.nan
    direct = pool.weights_[:, 0] * logit(np.clip(probs[:, 0], 1e-6, 1 - 1e-6)) + pool.bias_
    np.testing.assert_allclose(pool.predict_proba(only_good), expit(direct), rtol=1e-6)
    with pytest.raises(ValueError, match="components"):
        pool.predict_proba(probs[:, :1])
