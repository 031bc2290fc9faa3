"""Multi-label computations on NumPy arrays: metrics, per-label calibration, routing, pooling.

Conventions: `y` is an (items x labels) boolean indicator matrix; `proba` an (items x labels)
matrix of per-label probabilities, each the probability that its label applies (rows do not sum
to one). Nothing here knows of storage; the service layer, labelers and UI feed these arrays.
The multi-label student and query strategies live in `labelloop.active`, set-valued agreement
in `labelloop.agreement.multilabel`.
"""

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
