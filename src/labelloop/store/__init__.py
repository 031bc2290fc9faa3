"""The project store: models, sessions, migrations, and the queries the services run.

`Session` (an ORM session, `Store.session`) and `Connection` (a Core connection inside a
transaction, `Store.engine.begin()`) are the units of work the services hold and hand to the
store's functions; they are named here so that code outside `store/` never imports the database
library itself.

Names are imported on first use: `labelloop.store.db`'s lean read path (what `labelloop stats`
runs) must not pay for SQLAlchemy's ORM, which importing the models costs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Connection, Record, Session, Store, make_engine, migrate, rowcount
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
    "Connection",
    "Embedding",
    "GoldLease",
    "GuidelineVersion",
    "Item",
    "Prediction",
    "ProjectRow",
    "Record",
    "ReviewTask",
    "Session",
    "Store",
    "make_engine",
    "migrate",
    "rowcount",
]

_FROM_DB = {"Connection", "Record", "Session", "Store", "make_engine", "migrate", "rowcount"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = ".db" if name in _FROM_DB else ".models"
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # looked up once
    return value
