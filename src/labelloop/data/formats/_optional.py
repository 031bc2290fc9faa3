"""Optional packages, imported when a format needs them, with the install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ...errors import LabelloopError

EXTRAS = {"argilla": "argilla", "datasets": "hf"}


def require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], module)
        raise LabelloopError(
            f"this format needs the {module!r} package: pip install 'labelloop[{extra}]'"
        ) from exc
