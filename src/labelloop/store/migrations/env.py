"""Alembic environment: runs against the engine the store hands over (or a URL for the CLI).

On SQLite, Alembic alters a table by copying it and dropping the original ("batch" mode). With
foreign keys enforced, dropping `items` deletes every answer, prediction and task that cascades
from it, so enforcement is off for the migration. SQLite ignores the pragma inside a
transaction: it is set, and set back, on the connection outside the migration's transaction.
"""

from alembic import context
from sqlalchemy import Connection, create_engine

from labelloop.store.models import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))


def _enforce_foreign_keys(connection: Connection, on: bool) -> None:
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _enforce_foreign_keys(connection, False)
    try:
        with connection.begin():
            context.configure(
                connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if sqlite:
            _enforce_foreign_keys(connection, True)
