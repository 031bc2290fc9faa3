"""Calibration and threshold selection: pure computations on NumPy arrays.

From a model's reported confidence to the accuracy it actually has (calibrators), how good that
is (metrics, always on held-out folds), and where to cut (thresholds, budgets, guarantees).
"""

from .calibrators import (
    CALIBRATORS,
    Calibrator,
    HistogramBinning,
    IdentityCalibrator,
    IsotonicCalibrator,
    MatrixCalibrator,
    PlattScaling,
    ScalarCalibrator,
    TemperatureScaling,
    VectorScaling,
    calibrator_from_dict,
    make_calibrator,
)
from .evaluate import Selection, cross_fit, evaluate_calibration, select_calibrator
from .metrics import (
    accuracy,
    accuracy_coverage_curve,
    area_under_accuracy_coverage,
    auroc,
    brier_score,
    calibration_summary,
    expected_calibration_error,
    log_loss,
    maximum_calibration_error,
    reliability_bins,
)
from .report import calibrate_report
from .seed import find_optimal_threshold
from .thresholds import (
    CertifiedThreshold,
    PerLabelResult,
    ThresholdResult,
    accept_mask,
    audit_estimate,
    audit_sample,
    certify_threshold,
    clopper_pearson_upper,
    evaluate_threshold,
    per_label_thresholds,
    threshold_curve,
    threshold_for_accuracy,
    threshold_for_budget,
)

__all__ = [
    "CALIBRATORS",
    "Calibrator",
    "CertifiedThreshold",
    "HistogramBinning",
    "IdentityCalibrator",
    "IsotonicCalibrator",
    "MatrixCalibrator",
    "PerLabelResult",
    "PlattScaling",
    "ScalarCalibrator",
    "Selection",
    "TemperatureScaling",
    "ThresholdResult",
    "VectorScaling",
    "accept_mask",
    "accuracy",
    "accuracy_coverage_curve",
    "area_under_accuracy_coverage",
    "audit_estimate",
    "audit_sample",
    "auroc",
    "brier_score",
    "calibrate_report",
    "calibration_summary",
    "calibrator_from_dict",
    "certify_threshold",
    "clopper_pearson_upper",
    "cross_fit",
    "evaluate_calibration",
    "evaluate_threshold",
    "expected_calibration_error",
    "find_optimal_threshold",
    "log_loss",
    "make_calibrator",
    "maximum_calibration_error",
    "per_label_thresholds",
    "reliability_bins",
    "select_calibrator",
    "threshold_curve",
    "threshold_for_accuracy",
    "threshold_for_budget",
]
