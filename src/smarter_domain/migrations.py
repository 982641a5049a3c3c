"""Running the Alembic migrations that own the schema, beside the application's own Alembic.

The library records its schema revision in a version table of its own
(``smarter_domain_alembic_version`` unless told otherwise), never in the ``alembic_version``
table an application's Alembic uses: the two histories then live in one database in either
order, and neither sees the other's revision as one it "can't locate".

Databases migrated by the first release hold the library's revision (``0001`` or ``0002``) in
``alembic_version``. Every migration first moves that row to the library's table (as
``smarter_domain_0001`` / ``smarter_domain_0002``), in the same transaction as the migration
itself, under a lock that serialises every process migrating the database at once
(PostgreSQL: a transaction-level advisory lock; SQLite: the database's write lock).

An application can instead run these migrations from its own Alembic environment, as one more
branch (``docs/alembic.md``); the library's revisions are then in the application's version
table, and :func:`upgrade` leaves them to it.

Alembic is imported only when migrations run: it is the heaviest import of the package and
most processes (web workers, the CLI's read commands) never migrate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, String, column, delete, inspect, select, table, text

from .model.errors import ConfigurationError, DatabaseError
from .resources import resource_directory

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

DEFAULT_VERSION_TABLE = "smarter_domain_alembic_version"
"""Where the library records its schema revision unless told otherwise."""

BRANCH_LABEL = "smarter_domain"
"""The branch label of the library's history, for ``alembic upgrade smarter_domain@head`` in
an application's environment that runs these migrations."""

SHARED_VERSION_TABLE = "alembic_version"
"""Alembic's default version table: the application's, and the first release's."""

LEGACY_REVISIONS = {"0001": "smarter_domain_0001", "0002": "smarter_domain_0002"}
"""The first release's revision ids, as it wrote them in ``alembic_version``, and their ids
now. ``upgrade``/``downgrade`` still accept the old ids as arguments."""

TABLE_NAMES = ("smarter_account", "smarter_user", "smarter_user_profile")
"""The library's tables: public and stable names (see ``smarter_domain.schema``)."""

_VERSION_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,58}")
"""Lowercase, unquoted-safe, and short enough for PostgreSQL's 63-character identifiers once
Alembic appends ``_pkc`` to name the table's primary key."""

_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"smarter_domain.migrate").digest()[:8], "big", signed=True
)
"""The PostgreSQL advisory lock every migrating process of this library takes (one key per
database, whatever the version table: two version tables would still create the same tables)."""


def migrations_directory() -> Path:
    """The Alembic script directory (``env.py`` and ``versions/``)."""
    return resource_directory("migrations")


def versions_directory() -> Path:
    """The library's revision files, for an application's ``version_locations``."""
    return migrations_directory() / "versions"


def check_version_table(name: str) -> str:
    """``name`` if it can be the library's version table, else ``ConfigurationError``.

    ``alembic_version`` is refused: it is the application's (Alembic's default), and sharing
    it is the very conflict the library's own table exists to avoid. The library's own tables
    are refused too: Alembic would write its rows into them."""
    if not isinstance(name, str) or not _VERSION_TABLE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"invalid migrations version table {name!r}: use 1 to 59 lowercase letters, "
            "digits and underscores, not starting with a digit"
        )
    if name == SHARED_VERSION_TABLE or name in TABLE_NAMES:
        raise ConfigurationError(
            f"the migrations version table cannot be {name!r}: it belongs to the application's "
            f"Alembic or to the library's data (the default is {DEFAULT_VERSION_TABLE!r})"
        )
    return name


def alembic_config(version_table: str = DEFAULT_VERSION_TABLE) -> Config:
    """An Alembic ``Config`` for the library's migrations, recording them in
    ``version_table`` (read by ``migrations/env.py``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.attributes["version_table"] = check_version_table(version_table)
    return config


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def _revision_argument(revision: str) -> str:
    """The first release's ids (``0001``, ``0002``) mean the same revisions now."""
    return LEGACY_REVISIONS.get(revision, revision)


def head() -> str:
    """The newest revision of the library's schema."""
    script = _script()
    newest = script.get_current_head()
    assert newest is not None, "the library ships at least one revision"
    return newest


# -- reading version tables ---------------------------------------------------------------


def _versions(connection: Connection, name: str) -> list[str]:
    """The revisions recorded in version table ``name`` (none if it does not exist)."""
    if not inspect(connection).has_table(name):
        return []
    query = select(column("version_num", String)).select_from(table(name))
    return list(connection.scalars(query))


def _legacy_row(connection: Connection, shared: list[str]) -> str | None:
    """The first release's row in ``alembic_version``, if one of the rows is it.

    An id alone proves nothing (an application may number its revisions ``0001`` too): the
    row is the library's only if the schema is exactly what that revision built: the three
    tables, and the ``tags`` column from ``0002`` present exactly when the row says ``0002``."""
    candidates = [row for row in shared if row in LEGACY_REVISIONS]
    if len(candidates) != 1:
        return None
    inspector = inspect(connection)
    if not set(TABLE_NAMES) <= set(inspector.get_table_names()):
        return None
    has_tags = "tags" in {c["name"] for c in inspector.get_columns("smarter_account")}
    row = candidates[0]
    return row if has_tags == (row == "0002") else None


def _recorded(connection: Connection, version_table: str) -> tuple[str | None, str]:
    """The library's schema revision and the table that records it: its own table; else the
    first release's row in ``alembic_version`` (not yet moved); else a revision of the library
    in ``alembic_version`` written by an application that runs these migrations itself."""
    own = _versions(connection, version_table)
    if own:
        return own[0], version_table
    shared = _versions(connection, SHARED_VERSION_TABLE)
    legacy = _legacy_row(connection, shared)
    if legacy is not None:
        return LEGACY_REVISIONS[legacy], SHARED_VERSION_TABLE
    known = set(LEGACY_REVISIONS.values()) | {s.revision for s in _script().walk_revisions()}
    for row in shared:
        if row in known:
            return row, SHARED_VERSION_TABLE
    return None, version_table


# -- the migration transaction -------------------------------------------------------------


@contextmanager
def _locked_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that no other migrating process runs beside.

    PostgreSQL: READ COMMITTED, so that each statement after the advisory lock sees what the
    process that held it committed (a REPEATABLE READ engine would keep the snapshot taken
    before the lock was granted). SQLite: ``BEGIN IMMEDIATE`` takes the write lock up front
    and makes the DDL transactional (pysqlite would otherwise run DDL outside any transaction,
    a half-migrated schema on failure); the connection is put in driver autocommit so that
    our BEGIN is the only one."""
    with engine.connect() as connection:
        dialect = connection.dialect.name
        if dialect == "sqlite":
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                dbapi = connection.connection.dbapi_connection
                if getattr(dbapi, "in_transaction", True):
                    connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
            return
        if dialect == "postgresql":
            connection.execution_options(isolation_level="READ COMMITTED")
        with connection.begin():
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            yield connection


def _move_legacy_row(connection: Connection, version_table: str) -> None:
    """Move the first release's row from ``alembic_version`` to ``version_table``.

    Only when the library's own table records nothing yet (once it does, every row of
    ``alembic_version`` is the application's), and only the library's row: the application's
    rows stay. ``alembic_version`` itself stays even when it is left empty: to Alembic an
    empty version table and a missing one both mean "no revision", so dropping it would gain
    nothing, while the table may be the application's (its Alembic, grants or health checks
    may use it) and dropping it would take a lock the application's migrations could
    deadlock on."""
    if _versions(connection, version_table):
        return
    legacy = _legacy_row(connection, _versions(connection, SHARED_VERSION_TABLE))
    if legacy is None:
        return
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": version_table})
    context.stamp(_script(), LEGACY_REVISIONS[legacy])
    shared = table(SHARED_VERSION_TABLE, column("version_num"))
    connection.execute(delete(shared).where(shared.c.version_num == legacy))


@contextmanager
def migration_connection(
    engine: Engine, version_table: str = DEFAULT_VERSION_TABLE
) -> Iterator[Connection]:
    """A connection in the locked migration transaction, the first release's row already
    moved to ``version_table``: what ``migrations/env.py`` runs the migrations on when Alembic
    is run from the command line (``alembic -c alembic.ini upgrade head``)."""
    check_version_table(version_table)
    with _locked_transaction(engine) as connection:
        _move_legacy_row(connection, version_table)
        yield connection


def _run(engine: Engine, direction: str, revision: str, version_table: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    from .adapters.repositories import translated_errors

    config = alembic_config(version_table)
    target = _revision_argument(revision)
    with translated_errors(), migration_connection(engine, version_table) as connection:
        recorded, where = _recorded(connection, version_table)
        script = _script()
        known = {s.revision for s in script.walk_revisions()}
        if recorded is not None and recorded not in known:
            raise DatabaseError(
                f"the database's smarter-domain schema is at revision {recorded!r}, which this "
                "version of smarter-domain does not know: was it migrated by a newer release?"
            )
        if recorded is None and set(TABLE_NAMES) & set(inspect(connection).get_table_names()):
            # Most likely the application's Alembic runs these migrations and records the
            # library's revision only through a revision of its own that depends on it.
            raise ConfigurationError(
                f"smarter-domain's tables exist but {version_table!r} records no revision for "
                "them: if the application's Alembic runs smarter-domain's migrations, migrate "
                "with its `alembic upgrade heads`; if they were made some other way, record "
                "their revision first (docs/alembic.md)"
            )
        if where != version_table:
            # Only the application's own Alembic writes the library's revisions into its
            # version table (docs/alembic.md): the application migrates them, not us.
            try:
                wanted = script.as_revision_number(target)
            except CommandError:
                wanted = None
            if wanted == recorded:
                return
            raise ConfigurationError(
                f"the application's Alembic runs smarter-domain's migrations in this database "
                f"({where!r} holds {recorded!r}): migrate it with the application's "
                f"`alembic upgrade heads`, not domain.migrate()"
            )
        config.attributes["connection"] = connection
        try:
            getattr(command, direction)(config, target)
        except CommandError as exc:
            raise ConfigurationError(f"cannot {direction} to {revision!r}: {exc}") from exc


def upgrade(
    engine: Engine, revision: str = "head", *, version_table: str = DEFAULT_VERSION_TABLE
) -> None:
    """Bring the library's schema up to ``revision``, recording it in ``version_table``.

    Safe to run from several processes at once, and a no-op at ``revision``. Raises
    ``ConfigurationError`` for a bad table name or revision, or when the application's own
    Alembic runs these migrations; ``DatabaseError`` when the database fails or is at a
    revision this release does not know."""
    _run(engine, "upgrade", revision, version_table)


def downgrade(engine: Engine, revision: str, *, version_table: str = DEFAULT_VERSION_TABLE) -> None:
    """Take the library's schema down to ``revision`` (``"base"``: drop its tables)."""
    _run(engine, "downgrade", revision, version_table)


def current(engine: Engine, *, version_table: str = DEFAULT_VERSION_TABLE) -> str | None:
    """The library's schema revision in this database (``None`` before the first migration),
    wherever it is recorded: its own table, the first release's row not yet moved out of
    ``alembic_version``, or an application that runs the library's migrations itself."""
    check_version_table(version_table)
    from .adapters.repositories import translated_errors

    with translated_errors(), engine.connect() as connection:
        return _recorded(connection, version_table)[0]
