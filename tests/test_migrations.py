"""The Alembic migrations own the schema: they build it from nothing, agree with the ORM
mappings, and go back down cleanly, on SQLite and PostgreSQL. The library records its
revision in a version table of its own, moves the first release's row out of the shared
``alembic_version`` (and nothing else), in one transaction, from many processes at once."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from smarter_domain import Domain
from smarter_domain.adapters.database import create_domain_engine
from smarter_domain.adapters.orm import Base
from smarter_domain.migrations import (
    DEFAULT_VERSION_TABLE,
    LEGACY_REVISIONS,
    current,
    downgrade,
    head,
    migrations_directory,
    upgrade,
)
from smarter_domain.model.errors import ConfigurationError, DatabaseError

TABLES = {"smarter_account", "smarter_user", "smarter_user_profile"}
HEAD = "smarter_domain_0002"


@pytest.fixture
def engine(smarter_empty_database_url: str) -> Iterator[Engine]:
    engine = create_domain_engine(smarter_empty_database_url)
    yield engine
    engine.dispose()


def versions(engine: Engine, version_table: str) -> list[str] | None:
    """The rows of a version table (``None`` if it does not exist)."""
    if not inspect(engine).has_table(version_table):
        return None
    with engine.connect() as connection:
        return sorted(connection.scalars(text(f"SELECT version_num FROM {version_table}")))


def make_first_release_database(engine: Engine, revision: str, *others: str) -> None:
    """The schema at ``revision`` as the first release left it: its revision (``0001`` or
    ``0002``) in the shared ``alembic_version``, created with Alembic's own DDL, beside the
    application's ``others`` if any; no library version table."""
    upgrade(engine, LEGACY_REVISIONS[revision])
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {DEFAULT_VERSION_TABLE}"))
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        for row in (revision, *others):
            connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": row})


def has_tags(engine: Engine) -> bool:
    return "tags" in {c["name"] for c in inspect(engine).get_columns("smarter_account")}


# -- the schema ----------------------------------------------------------------------------


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
            opts = {"compare_type": True, "version_table": DEFAULT_VERSION_TABLE}
            context = MigrationContext.configure(connection, opts=opts)
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
        assert current(domain.engine) is None


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
        assert versions(domain.engine, DEFAULT_VERSION_TABLE) == [HEAD]
        assert versions(domain.engine, "alembic_version") is None


def test_alembic_command_line_moves_the_first_release_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = create_domain_engine(url)
    make_first_release_database(engine, "0001")
    root = migrations_directory().parent
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"), "upgrade", "head"],
        check=True,
        cwd=tmp_path,
        env={"SMARTER_DATABASE_URL": url, "PATH": ""},
        capture_output=True,
    )
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]
    assert versions(engine, "alembic_version") == []
    assert has_tags(engine)
    engine.dispose()


# -- the library's own version table -------------------------------------------------------


def test_the_revision_is_kept_in_the_library_table_not_alembic_version(engine: Engine) -> None:
    assert current(engine) is None
    upgrade(engine)
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD] == [head()]
    assert versions(engine, "alembic_version") is None
    assert current(engine) == HEAD


def test_the_version_table_is_configurable(engine: Engine) -> None:
    upgrade(engine, "smarter_domain_0001", version_table="platform_schema_versions")
    assert versions(engine, "platform_schema_versions") == ["smarter_domain_0001"]
    assert versions(engine, DEFAULT_VERSION_TABLE) is None
    assert current(engine, version_table="platform_schema_versions") == "smarter_domain_0001"
    upgrade(engine, version_table="platform_schema_versions")
    assert versions(engine, "platform_schema_versions") == [HEAD]
    downgrade(engine, "base", version_table="platform_schema_versions")
    assert not TABLES & set(inspect(engine).get_table_names())


@pytest.mark.parametrize(
    "name",
    ["alembic_version", "smarter_user", "", "Versions", "1versions", "a-b", "x" * 60, "a b"],
)
@pytest.mark.smarter_backends("sqlite")
def test_a_bad_version_table_is_a_configuration_error(engine: Engine, name: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: upgrade(engine, version_table=name),
        lambda: downgrade(engine, "base", version_table=name),
        lambda: current(engine, version_table=name),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError, match="version table"):
            call()
    assert not inspect(engine).get_table_names()


def test_the_first_release_revision_ids_are_still_accepted(engine: Engine) -> None:
    upgrade(engine, "0001")
    assert current(engine) == "smarter_domain_0001" and not has_tags(engine)
    upgrade(engine, "0002")
    assert current(engine) == HEAD and has_tags(engine)
    downgrade(engine, "0001")
    assert current(engine) == "smarter_domain_0001" and not has_tags(engine)


def test_a_bad_revision_is_a_configuration_error(engine: Engine) -> None:
    with pytest.raises(ConfigurationError, match="nonexistent") as caught:
        upgrade(engine, "nonexistent")
    assert caught.value.__cause__ is not None
    assert versions(engine, DEFAULT_VERSION_TABLE) in (None, [])


def test_a_revision_from_a_newer_release_is_a_database_error(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(f"UPDATE {DEFAULT_VERSION_TABLE} SET version_num = 'smarter_domain_9999'")
        )
    with pytest.raises(DatabaseError, match="smarter_domain_9999"):
        upgrade(engine)


# -- moving the first release's row out of alembic_version ---------------------------------


@pytest.mark.parametrize("revision", ["0001", "0002"])
def test_the_first_release_row_is_moved_to_the_library_table(engine: Engine, revision: str) -> None:
    make_first_release_database(engine, revision)
    assert current(engine) == LEGACY_REVISIONS[revision]  # read before the move, too
    upgrade(engine)
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]
    # Emptied, not dropped: to Alembic an empty version table means "no revision", as a
    # missing one does, and the table may be the application's.
    assert versions(engine, "alembic_version") == []
    assert has_tags(engine)
    upgrade(engine)
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]


def test_the_move_is_recorded_under_the_configured_table(engine: Engine) -> None:
    make_first_release_database(engine, "0002")
    upgrade(engine, version_table="platform_schema_versions")
    assert versions(engine, "platform_schema_versions") == [HEAD]
    assert versions(engine, DEFAULT_VERSION_TABLE) is None
    assert versions(engine, "alembic_version") == []


def test_only_the_library_row_leaves_alembic_version(engine: Engine) -> None:
    make_first_release_database(engine, "0002", "1a2b3c4d5e6f")
    upgrade(engine)
    assert versions(engine, "alembic_version") == ["1a2b3c4d5e6f"]
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]


def test_an_application_revision_named_like_the_first_release_is_left_alone(
    engine: Engine,
) -> None:
    # The application numbers its own revisions 0001, 0002...: without the library's schema
    # at that revision the row is not the library's.
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        connection.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
    upgrade(engine)
    assert versions(engine, "alembic_version") == ["0001"]
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]
    # Once the library's table records its revision, no row of alembic_version is the
    # library's any more, even one that looks like it.
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    upgrade(engine)
    assert versions(engine, "alembic_version") == ["0002"]


def test_a_failing_migration_leaves_the_database_and_alembic_version_as_they_were(
    engine: Engine,
) -> None:
    make_first_release_database(engine, "0001")
    # 0002 will fail on its last table: the column it adds is already there.
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE smarter_user_profile ADD COLUMN annotations TEXT"))
    with pytest.raises(DatabaseError):
        upgrade(engine)
    # Nothing half-done, on SQLite too: not the move, not 0002's first columns.
    assert versions(engine, "alembic_version") == ["0001"]
    assert not versions(engine, DEFAULT_VERSION_TABLE)
    assert not has_tags(engine)


def test_a_failing_first_migration_creates_nothing(engine: Engine) -> None:
    # 0001's last statement will fail: its index name is taken.
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE other (x INTEGER)"))
        connection.execute(text("CREATE INDEX ix_smarter_user_profile_user_id ON other (x)"))
    with pytest.raises(DatabaseError):
        upgrade(engine)
    assert set(inspect(engine).get_table_names()) == {"other"}


def test_tables_with_no_recorded_revision_are_a_configuration_error(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE smarter_user (id INTEGER PRIMARY KEY)"))
    with pytest.raises(ConfigurationError, match="records no revision"):
        upgrade(engine)
    assert set(inspect(engine).get_table_names()) == {"smarter_user"}


# -- several processes at once -------------------------------------------------------------


def migrate_at_once(url: str, count: int = 4) -> list[BaseException]:
    """``count`` threads, each with its own engine (so its own connection, as processes
    have), migrating the database at the same moment; returns their errors."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def migrate() -> None:
        engine = create_domain_engine(url)
        try:
            with engine.connect():  # connected before the race starts
                pass
            barrier.wait()
            upgrade(engine)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_many_processes_migrate_an_empty_database_at_once(
    engine: Engine, smarter_empty_database_url: str
) -> None:
    assert migrate_at_once(smarter_empty_database_url) == []
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]
    assert set(inspect(engine).get_table_names()) >= TABLES


def test_many_processes_move_the_first_release_row_at_once(
    engine: Engine, smarter_empty_database_url: str
) -> None:
    make_first_release_database(engine, "0001", "1a2b3c4d5e6f")
    assert migrate_at_once(smarter_empty_database_url) == []
    assert versions(engine, DEFAULT_VERSION_TABLE) == [HEAD]
    assert versions(engine, "alembic_version") == ["1a2b3c4d5e6f"]
    assert has_tags(engine)
