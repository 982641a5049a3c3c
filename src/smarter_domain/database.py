"""Engines: created once per Domain, tuned per backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, SessionTransaction

from .errors import ConfigurationError


def normalize_url(database_url: str) -> URL:
    """Parse the URL; a bare ``postgresql://`` uses psycopg 3, the driver this package ships."""
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
        raise ConfigurationError(f"invalid database URL: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_FOREIGN_KEYS_CHECKED = "smarter_domain.foreign_keys"
"""Set in a pooled connection's ``info`` once its foreign keys are known to be on."""


def _sqlite_foreign_keys(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """On checkout: make sure the connection enforces foreign keys, once per connection.

    An injected engine's connections (some perhaps opened before the Domain existed) never
    ran our ``connect`` hook, and SQLite ignores the pragma inside a transaction: so it is
    set here, outside any transaction, and read back."""
    if record.info.get(_FOREIGN_KEYS_CHECKED):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        row = cursor.execute("PRAGMA foreign_keys").fetchone()
    finally:
        cursor.close()
    if row is None or row[0] != 1:
        raise ConfigurationError(
            "SQLite foreign keys cannot be enabled on this connection (is it inside a "
            "transaction, or is SQLite built without them?): smarter-domain needs them"
        )
    record.info[_FOREIGN_KEYS_CHECKED] = True


def enforce_integrity(engine: Engine) -> None:
    """Make every connection of ``engine`` enforce foreign keys (SQLite has them off by
    default); a no-op on other backends. Safe to call again on the same engine."""
    if engine.dialect.name != "sqlite":
        return
    if not event.contains(engine, "checkout", _sqlite_foreign_keys):
        event.listen(engine, "checkout", _sqlite_foreign_keys)


def begin_savepoint(session: Session) -> SessionTransaction:
    """``session.begin_nested()``, made safe on SQLite's Python driver.

    pysqlite (in its default, legacy transaction mode) issues no ``BEGIN`` before a
    ``SAVEPOINT``, and SQLite treats the release of a savepoint that is outermost as a
    ``COMMIT``: a unit of work joining an application's session that had run no statement yet
    would commit the application's transaction when it releases its savepoint. So, when the
    driver says no transaction is open, one is begun first. (An engine set up with
    SQLAlchemy's recipe for pysqlite, or Python 3.12's ``autocommit=False``, already has one.)
    """
    connection = session.connection()  # begins the session's transaction
    if connection.dialect.name == "sqlite":
        driver = connection.connection.dbapi_connection
        if driver is not None and not getattr(driver, "in_transaction", True):
            connection.exec_driver_sql("BEGIN")
    return session.begin_nested()


def create_domain_engine(database_url: str, **options: Any) -> Engine:
    url = normalize_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            raise ConfigurationError(
                "in-memory SQLite is not supported: every session must see only committed "
                "data, and one shared connection cannot; use a file (sqlite:///app.db)"
            )
        options.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql":
        options.setdefault("pool_pre_ping", True)
        return create_engine(url, **options)
    raise ConfigurationError(
        f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql"
    )
