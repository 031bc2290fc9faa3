"""Active learning: embeddings, student models, query strategies, stopping rules, simulation.

Everything here is a pure computation on NumPy arrays (and texts, for embeddings); the
project's service layer feeds it from the store and records what it returns.
"""

from labelloop.active._distances import greedy_k_center, min_cosine_distance
from labelloop.active.embeddings import (
    Embedder,
    OnnxEmbedder,
    TfidfEmbedder,
    get_embedder,
)
from labelloop.active.loop import RoundResult, select_round
from labelloop.active.multilabel import OneVsRestStudent, cross_val_proba_multilabel
from labelloop.active.seed import diversity_sampling, hybrid_acquisition, uncertainty_sampling
from labelloop.active.simulate import (
    format_interval,
    format_simulation,
    labels_ratio_interval,
    plot_learning_curves,
    simulate,
)
from labelloop.active.stopping import (
    StabilizingLabelSets,
    StabilizingPredictions,
    StopDecision,
    label_budget,
    pool_uncertainty,
    target_accuracy,
)
from labelloop.active.strategies import (
    MULTILABEL_STRATEGIES,
    STRATEGIES,
    QueryStrategy,
    cold_start,
    get_multilabel_strategy,
    get_strategy,
)
from labelloop.active.students import (
    Committee,
    LogisticStudent,
    SklearnStudent,
    Student,
    cross_val_proba,
)

__all__ = [
    "MULTILABEL_STRATEGIES",
    "STRATEGIES",
    "Committee",
    "Embedder",
    "LogisticStudent",
    "OneVsRestStudent",
    "OnnxEmbedder",
    "QueryStrategy",
    "RoundResult",
    "SklearnStudent",
    "StabilizingLabelSets",
    "StabilizingPredictions",
    "StopDecision",
    "Student",
    "TfidfEmbedder",
    "cold_start",
    "cross_val_proba",
    "cross_val_proba_multilabel",
    "diversity_sampling",
    "format_interval",
    "format_simulation",
    "get_embedder",
    "get_multilabel_strategy",
    "get_strategy",
    "greedy_k_center",
    "hybrid_acquisition",
    "label_budget",
    "labels_ratio_interval",
    "min_cosine_distance",
    "plot_learning_curves",
    "pool_uncertainty",
    "select_round",
    "simulate",
    "target_accuracy",
    "uncertainty_sampling",
]
