"""The Alembic migrations own the schema: they build it from nothing, agree with the ORM
mappings, and go back down cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from smarter_domain import Domain
from smarter_domain.migrations import downgrade, migrations_directory
from smarter_domain.orm import Base

TABLES = {"smarter_account", "smarter_user", "smarter_user_profile"}


def test_migrate_builds_the_schema_from_nothing(smarter_empty_database_url: str) -> None:
    with Domain(smarter_empty_database_url) as domain:
        assert not TABLES & set(inspect(domain.engine).get_table_names())
        domain.migrate()
        assert set(inspect(domain.engine).get_table_names()) >= TABLES
        domain.migrate()  # a second run is a no-op
        domain.bootstrap()


def test_migrations_and_models_agree(smarter_empty_database_url: str) -> None:
    with Domain(smarter_empty_database_url) as domain:
        domain.migrate()
        with domain.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_partial_default_index_exists(smarter_empty_database_url: str) -> None:
    with Domain(smarter_empty_database_url) as domain:
        domain.migrate()
        indexes = {i["name"]: i for i in inspect(domain.engine).get_indexes("smarter_account")}
    assert indexes["uq_smarter_account_one_default"]["unique"]


def test_downgrade_to_base_removes_everything(smarter_empty_database_url: str) -> None:
    with Domain(smarter_empty_database_url) as domain:
        domain.migrate()
        downgrade(domain.engine, "base")
        assert not TABLES & set(inspect(domain.engine).get_table_names())


def test_alembic_command_line_uses_the_library_url(tmp_path: Path) -> None:
    root = migrations_directory().parent
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"), "upgrade", "head"],
        check=True,
        cwd=tmp_path,
        env={"SMARTER_DATABASE_URL": url, "PATH": ""},
        capture_output=True,
    )
    with Domain(url) as domain:
        assert set(inspect(domain.engine).get_table_names()) >= TABLES
