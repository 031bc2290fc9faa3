"""Calibrators keep scikit-learn's estimator rules, and what earlier releases stored still loads.

The rules: hyper-parameters only in `__init__` (stored unchanged, so `clone` works), learned
values in trailing-underscore attributes set by `fit`, `NotFittedError` before `fit`. The stored
records below were written by the release before calibrators became estimators; a project
calibrated then must route the same way after upgrading.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from labelloop.calibration import (
    CALIBRATORS,
    Calibrator,
    HistogramBinning,
    MatrixCalibrator,
    ScalarCalibrator,
    VectorScaling,
    calibrator_from_dict,
    make_calibrator,
)
from labelloop.store import Calibration
from labelloop.workflows.calibrate import apply_calibration
from test_routing import Result

LABELS = ["a", "b", "c"]
#: The rows the stored records were applied to when they were written; their top confidences
#: are [0.7, 0.4, 0.9, 0.4, 1.0].
ROWS = np.array(
    [[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.05, 0.9, 0.05], [0.3, 0.3, 0.4], [1.0, 0.0, 0.0]]
)

#: name -> (record as stored in `calibrations.calibrator`, transform(ROWS), predict(ROWS)), each
#: written and computed by the release before calibrators became estimators. Records with
#: "confidence" scores were fitted and applied on the top confidence alone.
OLD_RECORDS: dict[str, tuple[dict[str, Any], list[float], list[int]]] = {
    "none": (
        {"method": "none", "format_version": 1, "n_fit": 40, "params": {}},
        [0.7000000000000001, 0.4, 0.9, 0.4, 1.0],
        [0, 0, 1, 2, 0],
    ),
    "temperature": (
        {
            "method": "temperature",
            "format_version": 1,
            "n_fit": 40,
            "params": {"temperature": 4.127774386420682},
        },
        [
            0.4233074720591318,
            0.34958339767844654,
            0.5017695042927777,
            0.3489965404656886,
            0.9975292999476021,
        ],
        [0, 0, 1, 2, 0],
    ),
    "vector": (
        {
            "method": "vector",
            "format_version": 1,
            "n_fit": 40,
            "params": {
                "temperature": 4.285823685322033,
                "bias": [-0.010621187578595231, 0.1583590965258478, -0.1477379089472521],
            },
        },
        [
            0.41022826015974473,
            0.3918538950671149,
            0.5539012397447055,
            0.37994472790147243,
            0.996751565095979,
        ],
        [0, 1, 1, 1, 0],
    ),
    "platt": (
        {
            "method": "platt",
            "format_version": 1,
            "n_fit": 40,
            "params": {"a": -0.021669658199428316, "b": 0.13540147622447507},
        },
        [
            0.5292268491168233,
            0.5359846195345106,
            0.5219330083650802,
            0.5359846195345106,
            0.4590976344051416,
        ],
        [0, 0, 1, 2, 0],
    ),
    "isotonic": (
        {
            "method": "isotonic",
            "format_version": 1,
            "n_fit": 40,
            "params": {
                "x": [0.6362418158132445, 0.9189861837639614, 0.997],
                "y": [0.47619047619047616, 0.5555555555555556, 0.9761904761904762],
            },
        },
        [
            0.49408711330063504,
            0.47619047619047616,
            0.5502262186984217,
            0.47619047619047616,
            0.9761904761904762,
        ],
        [0, 0, 1, 2, 0],
    ),
    "histogram": (
        {
            "method": "histogram",
            "format_version": 1,
            "n_fit": 40,
            "params": {
                "n_bins": None,
                "prior_strength": 2.0,
                "edges": [0.8025],
                "values": [0.5021645021645021, 0.5476190476190476],
            },
        },
        [
            0.5021645021645021,
            0.5021645021645021,
            0.5476190476190476,
            0.5021645021645021,
            0.5476190476190476,
        ],
        [0, 0, 1, 2, 0],
    ),
    "platt-confidence": (
        {
            "method": "platt",
            "format_version": 1,
            "n_fit": 60,
            "params": {"a": 0.8418432646161658, "b": -0.8903223835127779},
        },
        [
            0.45585762744501757,
            0.22589093961843193,
            0.7230009236079254,
            0.22589093961843193,
            0.9999783432406498,
        ],
        [0, 0, 1, 0, 1],
    ),
}


def gold_matrix(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) * 2
    proba = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=np.exp(r / 3) / np.exp(r / 3).sum()) for r in z])
    return proba, y


#: Every registered calibrator, plus the two with hyper-parameters set away from their defaults.
ESTIMATORS = [make_calibrator(m) for m in sorted(CALIBRATORS)] + [
    HistogramBinning(n_bins=7, prior_strength=3),
    VectorScaling(penalty=0.01),
]
IDS = [f"{type(e).__name__}({e.get_params()})" for e in ESTIMATORS]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_using_a_calibrator_before_fit_raises_not_fitted(estimator: Calibrator) -> None:
    unfitted = clone(estimator)
    for use in (unfitted.transform, unfitted.predict_proba, unfitted.predict):
        with pytest.raises(NotFittedError):
            use(ROWS)
    with pytest.raises(NotFittedError):
        unfitted.to_dict()
    if not unfitted.needs_proba:
        with pytest.raises(NotFittedError):
            unfitted.transform(ROWS.max(1))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_fit_learns_only_trailing_underscore_state_and_clone_forgets_it(
    estimator: Calibrator,
) -> None:
    params = estimator.get_params()
    assert set(vars(estimator)) == set(params)  # __init__ stores its arguments and nothing else
    proba, y = gold_matrix()
    fitted = clone(estimator)
    assert fitted.fit(proba, y) is fitted
    assert fitted.get_params() == params  # fit does not touch the hyper-parameters
    learned = set(vars(fitted)) - set(params)
    assert "n_fit_" in learned and all(name.endswith("_") for name in learned)
    assert set(type(fitted).fitted_attributes) <= learned
    again = clone(fitted)
    assert type(again) is type(fitted) and again.get_params() == params
    assert not set(vars(again)) - set(params)
    with pytest.raises(NotFittedError):
        again.transform(proba)
    # Refitting a clone on other items leaves the original's calibration as it was.
    before = fitted.transform(proba)
    other, other_y = gold_matrix(seed=1)
    again.fit(other, other_y)
    np.testing.assert_array_equal(fitted.transform(proba), before)


def test_hyper_parameters_are_set_unchanged_and_used() -> None:
    cal = HistogramBinning().set_params(n_bins=3, prior_strength=1)
    assert cal.get_params() == {"n_bins": 3, "prior_strength": 1}
    conf = np.linspace(0.4, 1.0, 90)
    assert cal.fit(conf, (conf > 0.7).astype(int)).values_.size == 3
    with pytest.raises(ValueError, match="n_bins"):
        HistogramBinning(n_bins=0).fit(conf, (conf > 0.7).astype(int))
    proba, y = gold_matrix()
    loose = VectorScaling(penalty=0.0).fit(proba, y)
    tight = VectorScaling(penalty=10.0).fit(proba, y)
    assert np.abs(tight.bias_).max() < np.abs(loose.bias_).max()


def test_each_calibrator_belongs_to_one_family() -> None:
    for method, cls in CALIBRATORS.items():
        scalar, matrix = issubclass(cls, ScalarCalibrator), issubclass(cls, MatrixCalibrator)
        assert scalar != matrix, method
        assert cls.needs_proba == matrix, method
    for base in (Calibrator, ScalarCalibrator, MatrixCalibrator):
        with pytest.raises(TypeError, match="abstract"):
            base()


@pytest.mark.parametrize("name", sorted(OLD_RECORDS))
def test_records_stored_by_earlier_releases_load_and_calibrate_the_same(name: str) -> None:
    record, transformed, predicted = OLD_RECORDS[name]
    scores = ROWS.max(1) if name.endswith("-confidence") else ROWS
    cal = calibrator_from_dict(json.loads(json.dumps(record)))
    assert type(cal) is CALIBRATORS[record["method"]] and cal.n_fit_ == record["n_fit"]
    np.testing.assert_allclose(cal.transform(scores), transformed, rtol=1e-12, atol=0)
    if scores.ndim == 2:
        np.testing.assert_array_equal(cal.predict(scores), predicted)
    else:
        np.testing.assert_array_equal(cal.predict(scores), np.array(transformed) >= 0.5)
    # Stored again, the record keeps every value it had (new hyper-parameters are added).
    stored = cal.to_dict()
    assert {k: stored[k] for k in record if k != "params"} == {
        k: v for k, v in record.items() if k != "params"
    }
    assert {k: stored["params"][k] for k in record["params"]} == record["params"]


def test_a_record_missing_a_learned_value_is_rejected() -> None:
    record = {"method": "platt", "format_version": 1, "n_fit": 3, "params": {"a": 1.0}}
    with pytest.raises(ValueError, match="'b'"):
        calibrator_from_dict(record)


@pytest.mark.parametrize(
    ("name", "kind"), [("vector", "probabilities"), ("platt-confidence", "confidence")]
)
def test_a_project_calibrated_by_an_earlier_release_still_routes(
    make_project: Any, name: str, kind: str
) -> None:
    project = make_project(labels=LABELS)
    project.add_items([{"id": f"t{i}", "text": f"item {i}"} for i in range(len(ROWS))], id_col="id")
    predictions = [
        (LABELS[int(row.argmax())], float(row.max()), dict(zip(LABELS, row.tolist(), strict=True)))
        for row in ROWS
    ]
    project.save_predictions(
        "m", "v1", [(project.item_id(f"t{i}"), Result(*p)) for i, p in enumerate(predictions)]
    )
    project.set_active_predictor("m", "v1")
    record, transformed, predicted = OLD_RECORDS[name]
    with project.store.session() as session:
        session.add(
            Calibration(
                project_id=project.id,
                model="m",
                prompt_version="v1",
                method=record["method"],
                calibrator={**record, "scores": kind},
                threshold=0.5,
                report={},
                active=True,
            )
        )
    assert apply_calibration(project, "m", "v1") == len(ROWS)
    project.route(0.5)
    rows = {r["id"]: r for r in project.iter_export_rows()}
    for i, (confidence, column) in enumerate(zip(transformed, predicted, strict=True)):
        row = rows[f"t{i}"]
        assert row["calibrated_confidence"] == pytest.approx(confidence, rel=1e-12)
        label = LABELS[column] if kind == "probabilities" else LABELS[int(ROWS[i].argmax())]
        assert row["llm_label"] == label
        assert row["state"] == ("auto_accepted" if confidence >= 0.5 else "in_review")
