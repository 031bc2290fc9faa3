"""The seed's ``llm_prelabel`` / ``PreLabel`` API, on the concurrent, fault-tolerant labelers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labelloop.labelers.base import LabelTask
from labelloop.labelers.factory import get_labeler

__all__ = ["PreLabel", "llm_prelabel"]


@dataclass
class PreLabel:
    """One pre-label, as the seed returns it. ``label`` is None (and ``confidence`` 0.0) when the
    item could not be labeled; ``reasoning`` then says why."""

    text: str
    label: str | None
    confidence: float
    reasoning: str


def llm_prelabel(
    texts: Sequence[str],
    label_options: Sequence[str],
    task_description: str,
    model: str = "gpt-4o-mini",
    **kwargs: Any,
) -> list[PreLabel]:
    """Pre-label ``texts`` (in input order) with a label, a confidence and a reason.

    ``model="local"`` or a ``.gguf`` path uses the embedded model; any other name an
    OpenAI-compatible endpoint (``base_url=`` / ``OPENAI_BASE_URL`` / OpenAI with
    ``OPENAI_API_KEY``), ``concurrency`` requests at a time. ``examples=[(text, label), ...]``
    gives few-shot examples; other keyword arguments go to :func:`get_labeler`.
    """
    examples = list(kwargs.pop("examples", []))
    task = LabelTask(task_description, list(label_options), examples)
    labeler = get_labeler(model, **kwargs)
    out: list[PreLabel | None] = [None] * len(texts)
    try:
        for i, result in labeler.label_stream(list(texts), task):
            if result.ok:
                out[i] = PreLabel(
                    texts[i], result.label, float(result.confidence or 0.0), result.reasoning
                )
            else:
                out[i] = PreLabel(texts[i], None, 0.0, f"failed: {result.error}")
    finally:
        labeler.close()
    return [
        p if p is not None else PreLabel(texts[i], None, 0.0, "failed: no result")
        for i, p in enumerate(out)
    ]
