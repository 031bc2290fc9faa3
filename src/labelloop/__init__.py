"""labelloop: LLM-assisted data labeling with calibrated confidence, review and active learning.

The seed functions of the chapter this system grew from are importable here under the same
names and signatures; `Project` is the service layer behind the CLI and the web app.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import InputError, LabelloopError

if TYPE_CHECKING:
    from .project import Project as Project

__version__ = "0.1.0"

# Public names that live in heavier modules, imported on first use (the command line
# imports this package and pays only for what its command uses).
_LAZY = {
    "Project": "labelloop.project",
    "llm_prelabel": "labelloop.labelers",
    "PreLabel": "labelloop.labelers",
    "find_optimal_threshold": "labelloop.calibration",
    "uncertainty_sampling": "labelloop.active",
    "diversity_sampling": "labelloop.active",
    "hybrid_acquisition": "labelloop.active",
    "cohens_kappa": "labelloop.agreement",
    "fleiss_kappa": "labelloop.agreement",
    "krippendorff_alpha": "labelloop.agreement",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labelloop' has no attribute {name!r}")


__all__ = ["InputError", "LabelloopError", "__version__", *_LAZY]
