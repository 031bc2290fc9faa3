"""The project store: models, sessions, migrations, and the queries the services run.

`Session` (an ORM session, `Store.session`) and `Connection` (a Core connection inside a
transaction, `Store.engine.begin()`) are the units of work the services hold and hand to the
store's functions; they are named here so that code outside `store/` never imports the database
library itself.
"""

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
