"""The project store: models, sessions and migrations.

Names are imported on first use: `labelloop.store.db`'s lean read path (what `labelloop stats`
runs) must not pay for SQLAlchemy's ORM, which importing the models costs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Store, make_engine, migrate
    from .models import (
        AUTO_ACCEPTED,
        GOLD,
        HUMAN_LABELED,
        IN_REVIEW,
        POOL,
        STATES,
        UNRESOLVED,
        ActiveLearningRound,
        Annotation,
        Annotator,
        ApiToken,
        Base,
        Calibration,
        Embedding,
        GoldLease,
        GuidelineVersion,
        Item,
        Prediction,
        ProjectRow,
        ReviewTask,
    )

__all__ = [
    "AUTO_ACCEPTED",
    "GOLD",
    "HUMAN_LABELED",
    "IN_REVIEW",
    "POOL",
    "STATES",
    "UNRESOLVED",
    "ActiveLearningRound",
    "Annotation",
    "Annotator",
    "ApiToken",
    "Base",
    "Calibration",
    "Embedding",
    "GoldLease",
    "GuidelineVersion",
    "Item",
    "Prediction",
    "ProjectRow",
    "ReviewTask",
    "Store",
    "make_engine",
    "migrate",
]

_HOMES = {"Store": ".db", "make_engine": ".db", "migrate": ".db"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, ".models"), __name__), name)
    globals()[name] = value  # looked up once
    return value
