"""Multi-label computations on NumPy arrays: metrics, per-label calibration, routing, pooling.

Conventions: `y` is an (items x labels) boolean indicator matrix; `proba` an (items x labels)
matrix of per-label probabilities, each the probability that its label applies (rows do not sum
to one). Nothing here knows of storage; the service layer, labelers and UI feed these arrays.
The multi-label student and query strategies live in `labelloop.active`, set-valued agreement
in `labelloop.agreement.multilabel`.

Names are imported on first use: reading a label set (`labelloop.multilabel.sets`, which every
import and answer goes through) must not pay for scikit-learn, which the calibrators cost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labelloop.multilabel.calibration import (
        BINARY_METHODS,
        LABEL_CALIBRATOR_KINDS,
        LabelCalibrator,
        PerLabelCalibrator,
        SharedPlattCalibrator,
        cross_fit_per_label,
        item_folds,
        label_calibrator_from_dict,
        make_label_calibrator,
    )
    from labelloop.multilabel.metrics import (
        clopper_pearson,
        hamming_accuracy,
        macro_f1,
        micro_f1,
        multilabel_summary,
        per_label_accuracy,
        per_label_ece,
        per_label_f1,
        per_label_reliability,
        subset_accuracy,
    )
    from labelloop.multilabel.routing import (
        Routing,
        RoutingCurve,
        RoutingResult,
        choose_threshold,
        decision_confidence,
        evaluate_threshold,
        route,
        routing_curve,
    )
    from labelloop.multilabel.stacking import PerLabelPool

__all__ = [
    "BINARY_METHODS",
    "LABEL_CALIBRATOR_KINDS",
    "LabelCalibrator",
    "PerLabelCalibrator",
    "PerLabelPool",
    "Routing",
    "RoutingCurve",
    "RoutingResult",
    "SharedPlattCalibrator",
    "choose_threshold",
    "clopper_pearson",
    "cross_fit_per_label",
    "decision_confidence",
    "evaluate_threshold",
    "hamming_accuracy",
    "item_folds",
    "label_calibrator_from_dict",
    "macro_f1",
    "make_label_calibrator",
    "micro_f1",
    "multilabel_summary",
    "per_label_accuracy",
    "per_label_ece",
    "per_label_f1",
    "per_label_reliability",
    "route",
    "routing_curve",
    "subset_accuracy",
]

_HOME = {
    "BINARY_METHODS": "calibration",
    "LABEL_CALIBRATOR_KINDS": "calibration",
    "LabelCalibrator": "calibration",
    "SharedPlattCalibrator": "calibration",
    "label_calibrator_from_dict": "calibration",
    "make_label_calibrator": "calibration",
    "PerLabelCalibrator": "calibration",
    "PerLabelPool": "stacking",
    "Routing": "routing",
    "RoutingCurve": "routing",
    "RoutingResult": "routing",
    "choose_threshold": "routing",
    "clopper_pearson": "metrics",
    "cross_fit_per_label": "calibration",
    "decision_confidence": "routing",
    "evaluate_threshold": "routing",
    "hamming_accuracy": "metrics",
    "item_folds": "calibration",
    "macro_f1": "metrics",
    "micro_f1": "metrics",
    "multilabel_summary": "metrics",
    "per_label_accuracy": "metrics",
    "per_label_ece": "metrics",
    "per_label_f1": "metrics",
    "per_label_reliability": "metrics",
    "route": "routing",
    "routing_curve": "routing",
    "subset_accuracy": "metrics",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value
