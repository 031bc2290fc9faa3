"""LLM labelers: the ``Labeler`` protocol, the embedded local model, OpenAI-compatible endpoints
and committees of several, plus the seed-compatible ``llm_prelabel``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labelloop.labelers.base import Labeler, LabelResult, LabelTask
from labelloop.labelers.committee import Committee, disagreement
from labelloop.labelers.factory import get_labeler
from labelloop.labelers.openai import OpenAILabeler
from labelloop.labelers.seed import PreLabel, llm_prelabel

if TYPE_CHECKING:
    from labelloop.labelers.local import LocalLabeler

__all__ = [
    "Committee",
    "LabelResult",
    "LabelTask",
    "Labeler",
    "LocalLabeler",
    "OpenAILabeler",
    "PreLabel",
    "disagreement",
    "get_labeler",
    "llm_prelabel",
]


def __getattr__(name: str) -> Any:
    # The local backend imports llama-cpp-python, which is slow to load: only on first use.
    if name == "LocalLabeler":
        from labelloop.labelers.local import LocalLabeler

        return LocalLabeler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
