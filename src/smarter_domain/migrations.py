"""Running the Alembic migrations that own the schema.

Alembic is imported only when migrations run: it is the heaviest import of the package and
most processes (web workers, the CLI's read commands) never migrate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from .resources import resource_directory

if TYPE_CHECKING:
    from alembic.config import Config


def migrations_directory() -> Path:
    return resource_directory("migrations")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    return config


def _run(engine: Engine, direction: str, revision: str) -> None:
    from alembic import command

    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, "downgrade", revision)
