"""The application's Alembic environment. The library's tables are left to the library:
``autogenerate_filters`` keeps ``alembic revision --autogenerate`` and ``alembic check`` from
proposing to drop them (or its version table)."""

from __future__ import annotations

import os

from alembic import context
from notes.models import metadata
from sqlalchemy import create_engine

from smarter_domain.schema import autogenerate_filters


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = create_engine(os.environ["NOTES_DATABASE_URL"])
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


def _run_on(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        **autogenerate_filters(),
    )
    with context.begin_transaction():
        context.run_migrations()


run()
