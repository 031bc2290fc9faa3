"""Choosing a labeler from the CLI's ``--model`` / ``--base-url`` options."""

from __future__ import annotations

import os
from typing import Any

from labelloop.errors import InputError
from labelloop.labelers.base import Labeler

__all__ = ["LOCAL_MODELS", "get_labeler"]

#: Names of the embedded models; ``local`` is the default one.
LOCAL_MODELS = ("local", "local:smollm2", "local:gemma3")


def get_labeler(
    model: str = "local",
    *,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 16,
    **options: Any,
) -> Labeler:
    """``local`` (or ``local:smollm2`` / ``local:gemma3``) = an embedded model; a path ending
    ``.gguf`` = that GGUF file; any other name = an OpenAI-compatible endpoint, at ``base_url``
    (or ``OPENAI_BASE_URL``, or OpenAI's own when the key variable is set).

    Extra keyword options go to the backend's constructor. A missing model file or endpoint is
    an `InputError`: the options name them.
    """
    if is_local(model):
        from labelloop.labelers.local import LocalLabeler

        return local_labeler(LocalLabeler, model, options)
    from labelloop.labelers.openai import OpenAILabeler

    base_url = base_url or os.environ.get("OPENAI_BASE_URL")
    if base_url is None and not os.environ.get(api_key_env):
        raise InputError(
            f"model {model!r} needs an endpoint: pass --base-url, set OPENAI_BASE_URL, "
            f"or set {api_key_env} to use OpenAI"
        )
    return OpenAILabeler(
        model, base_url=base_url, api_key_env=api_key_env, concurrency=concurrency, **options
    )


def is_local(model: str) -> bool:
    """Whether ``--model`` names an embedded model or a GGUF file (else an endpoint's model)."""
    return model in LOCAL_MODELS or model.lower().endswith(".gguf")


def local_labeler(kind: Any, model: str, options: dict[str, Any]) -> Labeler:
    """A local backend of class `kind` (with ``embedded``) for an embedded model or GGUF file."""
    if "timeout_s" in options:
        raise InputError("--timeout applies to an endpoint (--base-url), not to a local model")
    if model.lower().endswith(".gguf"):
        if not os.path.isfile(model):
            raise InputError(f"GGUF model file not found: {model}")
        return kind(model, **options)
    return kind.embedded(model.partition(":")[2] or None, **options)
