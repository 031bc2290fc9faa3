"""Query strategies behind one interface, and the registry the CLI names them by."""

from __future__ import annotations

from labelloop.active.strategies.badge import Badge
from labelloop.active.strategies.base import (
    Pool,
    QueryStrategy,
    ScoreStrategy,
    cold_start,
    take_distinct,
)
from labelloop.active.strategies.committee import (
    CommitteeDisagreement,
    kl_to_consensus,
    vote_entropy,
)
from labelloop.active.strategies.disagreement import LLMDisagreement, jensen_shannon
from labelloop.active.strategies.diversity import CoreSet, Diversity
from labelloop.active.strategies.hybrid import Hybrid
from labelloop.active.strategies.model_change import ExpectedModelChange, expected_gradient_length
from labelloop.active.strategies.multilabel import (
    MULTILABEL_STRATEGIES,
    MaxLabelUncertainty,
    MaxLossReduction,
    MeanLabelUncertainty,
    get_multilabel_strategy,
)
from labelloop.active.strategies.random import RandomSampling
from labelloop.active.strategies.uncertainty import Entropy, LeastConfidence, Margin

STRATEGIES: dict[str, type[QueryStrategy]] = {
    cls.name: cls
    for cls in (
        RandomSampling,
        LeastConfidence,
        Margin,
        Entropy,
        Diversity,
        CoreSet,
        CommitteeDisagreement,
        ExpectedModelChange,
        Badge,
        Hybrid,
        LLMDisagreement,
    )
}


def get_strategy(name: str, **params: object) -> QueryStrategy:
    """A strategy instance by its CLI name (`random`, `margin`, `badge`, ...)."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}"
        ) from None
    return cls(**params)


__all__ = [
    "MULTILABEL_STRATEGIES",
    "STRATEGIES",
    "Badge",
    "CommitteeDisagreement",
    "CoreSet",
    "Diversity",
    "Entropy",
    "ExpectedModelChange",
    "Hybrid",
    "LLMDisagreement",
    "LeastConfidence",
    "Margin",
    "MaxLabelUncertainty",
    "MaxLossReduction",
    "MeanLabelUncertainty",
    "Pool",
    "QueryStrategy",
    "RandomSampling",
    "ScoreStrategy",
    "cold_start",
    "expected_gradient_length",
    "get_multilabel_strategy",
    "get_strategy",
    "jensen_shannon",
    "kl_to_consensus",
    "take_distinct",
    "vote_entropy",
]
