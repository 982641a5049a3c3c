"""Alembic environment: the same database URL and metadata as the library, and the library's
own version table (``smarter_domain_alembic_version`` unless ``version_table`` is set in the
``Config``'s attributes or main options), never the application's ``alembic_version``.

``smarter_domain.migrations`` hands in a connection already inside its locked migration
transaction; from the command line (``alembic -c alembic.ini upgrade head``) this file opens
the same transaction itself.

An application that runs the library's migrations from its own Alembic environment does not
use this file: it loads only ``versions/`` (``docs/alembic.md``).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from smarter_domain.adapters.database import create_domain_engine
from smarter_domain.migrations import (
    DEFAULT_VERSION_TABLE,
    check_version_table,
    migration_connection,
)
from smarter_domain.adapters.orm import Base
from smarter_domain.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
version_table = check_version_table(
    config.attributes.get("version_table")
    or config.get_main_option("version_table")
    or DEFAULT_VERSION_TABLE
)


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url,
        target_metadata=target_metadata,
        version_table=version_table,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    engine = create_domain_engine(url)
    try:
        with migration_connection(engine, version_table) as connection:
            run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
