"""Agreement between raters (people and LLMs) and label quality.

Multi-rater data is raters × items with missing ratings as None or NaN; every function encodes
labels to integer codes once and counts with NumPy. Team answers for final labels and adaptive
overlap come in long form (`Answers`), one row per answer.
"""

from labelloop.agreement.answers import Answers
from labelloop.agreement.bootstrap import (
    Interval,
    bootstrap_agreement,
    bootstrap_cohens_kappa,
)
from labelloop.agreement.consensus import (
    AnnotatorDrift,
    AnnotatorQuality,
    DriftWindow,
    WeightedConsensus,
    jeffreys_interval,
)
from labelloop.agreement.dawid_skene import LatentClassFit, fit_dawid_skene
from labelloop.agreement.gold import mix_gold
from labelloop.agreement.interpret import landis_koch
from labelloop.agreement.label_issues import (
    LabelIssues,
    LabelSetIssues,
    confident_joint,
    find_label_issues,
    find_label_set_issues,
    label_quality_scores,
)
from labelloop.agreement.metrics import (
    cohens_kappa,
    fleiss_kappa,
    fleiss_kappa_by_category,
    gwet_ac1,
    krippendorff_alpha,
    percent_agreement,
    ratings_table,
)
from labelloop.agreement.multilabel import (
    AnnotatorF1,
    annotator_f1,
    encode_label_sets,
    krippendorff_alpha_masi,
    masi_distance,
    masi_distances,
    per_label_kappa,
)
from labelloop.agreement.overlap import OverlapPolicy, expected_gain
from labelloop.agreement.raters import (
    CopyFlag,
    GoldAccuracy,
    VsMajority,
    copying_flags,
    gold_accuracy,
    pairwise_cohens_kappa,
    vs_majority,
)
from labelloop.agreement.report import agreement_report

__all__ = [
    "AnnotatorDrift",
    "AnnotatorF1",
    "AnnotatorQuality",
    "Answers",
    "CopyFlag",
    "DriftWindow",
    "GoldAccuracy",
    "Interval",
    "LabelIssues",
    "LabelSetIssues",
    "LatentClassFit",
    "OverlapPolicy",
    "VsMajority",
    "WeightedConsensus",
    "agreement_report",
    "annotator_f1",
    "bootstrap_agreement",
    "bootstrap_cohens_kappa",
    "cohens_kappa",
    "confident_joint",
    "copying_flags",
    "encode_label_sets",
    "expected_gain",
    "find_label_issues",
    "find_label_set_issues",
    "fit_dawid_skene",
    "fleiss_kappa",
    "fleiss_kappa_by_category",
    "gold_accuracy",
    "gwet_ac1",
    "jeffreys_interval",
    "krippendorff_alpha",
    "krippendorff_alpha_masi",
    "label_quality_scores",
    "landis_koch",
    "masi_distance",
    "masi_distances",
    "mix_gold",
    "pairwise_cohens_kappa",
    "per_label_kappa",
    "percent_agreement",
    "ratings_table",
    "vs_majority",
]
