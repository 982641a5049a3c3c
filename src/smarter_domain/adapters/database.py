"""Engines: created once per Domain, tuned per backend."""

from __future__ import annotations

import select
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.orm import Session, SessionTransaction

from ..model.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


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
        cursor.execute("PRAGMA foreign_keys")
        row = cursor.fetchone()  # (execute's result is no cursor on the asyncio adapters)
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
        # aiosqlite's connection, under SQLAlchemy's adapter, tells the same (and begins the
        # same way: its legacy transaction mode is sqlite3's).
        driver = getattr(driver, "driver_connection", driver)
        if driver is not None and not getattr(driver, "in_transaction", True):
            connection.exec_driver_sql("BEGIN")
    return session.begin_nested()


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """On checkout from a domain-made PostgreSQL engine (psycopg), in place of
    ``pool_pre_ping``: a pooled connection the server closed (restarted, killed, a session
    terminated, an idle-killing proxy) has something to read (the server's termination notice,
    or end-of-file), so one non-blocking poll of its socket finds it without a ping's round
    trip. SQLAlchemy then drops it and checks out another (``DisconnectionError`` raised by a
    checkout handler). An idle pooled connection never has anything else to read: a readable
    one is replaced, whatever it holds. (A network path that died silently is found by
    neither this nor a ping, which would wait for TCP to give up: see the timeouts in
    "Configuration".)"""
    try:
        broken = dbapi_connection.closed or dbapi_connection.broken
        fd = dbapi_connection.pgconn.socket
    except Exception as exc:  # psycopg raises once the connection is closed
        raise DisconnectionError("connection closed") from exc
    if broken or _readable(fd):
        raise DisconnectionError("the server closed this pooled connection")


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))  # POLLHUP and POLLERR are always reported
    return bool(select.select([fd], [], [fd], 0)[0])  # Windows, whose sockets select takes


def autocommit_reads(engine: Engine) -> bool:
    """Whether standalone reads (a cache miss's query, outside any unit of work) run without
    a transaction: on PostgreSQL at its default isolation, READ COMMITTED, where a statement
    in a transaction sees what one in autocommit sees (what was committed before it began),
    so nothing changes but the ``BEGIN`` and ``ROLLBACK`` round trips no longer sent (a third
    of a cold miss). Not under another isolation the application asked for, and not on
    SQLite, whose driver begins no transaction for a read anyway."""
    if engine.dialect.name != "postgresql":
        return False
    level = engine.get_execution_options().get("isolation_level") or getattr(
        engine.dialect,
        "_on_connect_isolation_level",
        None,  # create_engine(isolation_level=)
    )
    return level in (None, "READ COMMITTED")


def _asyncpg_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """``_closed_by_server`` for asyncpg: the event loop has already read what the server
    sent on an idle connection (its termination notice, or end-of-file), so asyncpg knows it
    is closed (``is_closed``, no round trip)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is None or driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


_ASYNC_DRIVERS = {"sqlite": ("pysqlite", "aiosqlite"), "postgresql": ("psycopg", "asyncpg")}
"""The blocking driver this package ships and the asyncio one, per backend."""


def normalize_async_url(database_url: str) -> URL:
    """``normalize_url`` for the async front door: ``sqlite://`` and ``postgresql://`` (and
    the blocking drivers named explicitly) use aiosqlite and asyncpg; another asyncio driver
    named explicitly (``postgresql+psycopg_async``) is kept."""
    url = normalize_url(database_url)
    drivers = _ASYNC_DRIVERS.get(url.get_backend_name())
    if drivers is not None and url.get_driver_name() in (drivers[0], "psycopg2", ""):
        url = url.set(drivername=f"{url.get_backend_name()}+{drivers[1]}")
    if url.get_driver_name() == "asyncpg" and "sslmode" in url.query:
        # libpq's name for it; asyncpg takes the same values as ``ssl``
        query = dict(url.query)
        query["ssl"] = query.pop("sslmode")
        url = url.set(query=query)
    return url


def _check_sqlite_file(url: URL) -> None:
    if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
        raise ConfigurationError(
            "in-memory SQLite is not supported: every session must see only committed "
            "data, and one shared connection cannot; use a file (sqlite:///app.db)"
        )


def _tuned(url: URL, options: dict[str, Any], make: Any) -> Any:
    """An engine of ``url`` made by ``make`` (``create_engine`` or
    ``create_async_engine``), with this package's settings per backend; its hooks go on the
    blocking engine (an async engine's ``sync_engine``), where SQLAlchemy runs them."""
    try:
        return _made(url, options, make)
    except ModuleNotFoundError as exc:  # the driver's extra is not installed
        module = str(exc.name).partition(".")[0]
        extra = {"psycopg": "postgres", "asyncpg": "asyncio", "aiosqlite": "asyncio"}.get(module)
        hint = f"pip install 'smarter-domain[{extra}]'" if extra else f"install {module}"
        raise ConfigurationError(
            f"the {url.drivername} driver is not installed ({exc.name}): {hint}"
        ) from exc


def _made(url: URL, options: dict[str, Any], make: Any) -> Any:
    backend = url.get_backend_name()
    if backend == "sqlite":
        _check_sqlite_file(url)
        options.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = make(url, **options)
        event.listen(getattr(engine, "sync_engine", engine), "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        hook = {"psycopg": _closed_by_server, "asyncpg": _asyncpg_closed}.get(url.get_driver_name())
        checked = hook is not None and "pool_pre_ping" not in options
        options.setdefault("pool_pre_ping", not checked)
        engine = make(url, **options)
        if checked and hook is not None:
            event.listen(getattr(engine, "sync_engine", engine), "checkout", hook)
        return engine
    raise ConfigurationError(f"unsupported database {backend!r}: use sqlite or postgresql")


def create_domain_engine(database_url: str, **options: Any) -> Engine:
    engine: Engine = _tuned(normalize_url(database_url), options, create_engine)
    return engine


def create_async_domain_engine(database_url: str, **options: Any) -> AsyncEngine:
    """The async front door's engine: aiosqlite or asyncpg (``normalize_async_url``), tuned
    as ``create_domain_engine`` tunes the blocking one."""
    url = normalize_async_url(database_url)
    driver = {"asyncpg": "asyncpg", "aiosqlite": "aiosqlite"}.get(url.get_driver_name())
    for module in ("greenlet", driver):
        try:
            if module is not None:
                __import__(module)
        except ImportError:
            raise ConfigurationError(
                f"the async front door needs {module}: pip install 'smarter-domain[asyncio]'"
            ) from None
    from sqlalchemy.ext.asyncio import create_async_engine

    engine: AsyncEngine = _tuned(url, options, create_async_engine)
    return engine
