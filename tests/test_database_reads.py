"""What a standalone read sends PostgreSQL: one round trip, no transaction, no ping.

Counted on the wire with libpq's protocol trace (``PQtrace``, through psycopg's ``pgconn``):
every message the client sends is a line ``F <length> <type> ...``; a round trip ends with a
``Sync`` (extended protocol) or is one ``Query`` (simple protocol)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from smarter_domain import Domain
from smarter_domain.adapters.database import _closed_by_server, autocommit_reads

pytestmark = pytest.mark.smarter_backends("postgresql")


@contextmanager
def traced(engine: Engine) -> Iterator[list[str]]:
    """The frontend messages (``type text``) sent on ``engine``'s connections meanwhile:
    the list yielded is filled when the block ends."""
    messages: list[str] = []
    with tempfile.TemporaryFile("w+") as log:

        def start(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            dbapi_connection.pgconn.trace(log.fileno())

        def stop(dbapi_connection: Any, _record: Any) -> None:
            if dbapi_connection is not None and not dbapi_connection.closed:
                dbapi_connection.pgconn.untrace()

        event.listen(engine, "checkout", start)
        event.listen(engine, "checkin", stop)
        try:
            yield messages
        finally:
            event.remove(engine, "checkout", start)
            event.remove(engine, "checkin", stop)
            log.flush()
            log.seek(0)
            fields = [line.split("\t") for line in log.read().splitlines()]
            messages += [" ".join(f[3:]).strip() for f in fields if len(f) > 3 and f[1] == "F"]


def round_trips(messages: list[str]) -> int:
    return sum(1 for m in messages if m == "Sync" or m.startswith("Query"))


def test_a_standalone_read_is_one_round_trip_without_a_transaction(domain: Domain) -> None:
    user = domain.users.add(username="wire")
    for _ in range(8):  # past psycopg's prepare threshold: the statement is prepared
        assert domain.users.inner.get(user.id) == user
    with traced(domain.engine) as messages:
        assert domain.users.inner.get(user.id) == user
    assert round_trips(messages) == 1, messages
    assert not [m for m in messages if "BEGIN" in m or "ROLLBACK" in m or "SELECT 1" in m]


def test_a_unit_of_work_still_runs_in_one_transaction(domain: Domain) -> None:
    user = domain.users.add(username="in-a-transaction")
    with traced(domain.engine) as messages, domain.unit_of_work() as uow:
        assert uow.users.get(user.id) == user
        uow.users.update(user.id, first_name="Changed")
        uow.commit()
    assert any("BEGIN" in m for m in messages), messages
    assert any("COMMIT" in m for m in messages), messages


def test_a_pooled_connection_the_server_closed_is_replaced_without_a_ping(
    domain: Domain, smarter_database_url: str
) -> None:
    """The server ends the pooled connection's session (as a restart, a crash or an
    idle-killing proxy would): the next read gets a new connection, found without a ping."""
    user = domain.users.add(username="survivor")
    with domain.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    assert domain.engine.pool.checkedin() == 1
    killer = create_engine(smarter_database_url)
    with killer.begin() as connection:
        # With a timeout it returns once the backend has exited (and closed its socket):
        # without one it only signals it, and the next checkout could come first.
        assert connection.execute(
            text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
        ).scalar()
    killer.dispose()
    with traced(domain.engine) as messages:
        assert domain.users.inner.get(user.id) == user
    assert not [m for m in messages if "SELECT 1" in m]
    with domain.engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != pid


@pytest.mark.parametrize("how", ["create_engine", "execution_options"])
def test_an_isolation_level_the_application_chose_keeps_reads_in_transactions(
    smarter_database_url: str, how: str
) -> None:
    if how == "create_engine":
        engine = create_engine(smarter_database_url, isolation_level="REPEATABLE READ")
    else:
        engine = create_engine(smarter_database_url).execution_options(
            isolation_level="REPEATABLE READ"
        )
    assert not autocommit_reads(engine)
    assert_reads_in_a_transaction(engine)


def test_an_applications_engine_keeps_its_reads_in_transactions(smarter_database_url: str) -> None:
    """Its listeners may set each transaction up (``SET LOCAL``), which autocommit skips."""
    assert_reads_in_a_transaction(create_engine(smarter_database_url))


def assert_reads_in_a_transaction(engine: Engine) -> None:
    """A Domain on ``engine`` (disposed after) reads in a transaction (its ``BEGIN`` sent)."""
    with Domain(engine=engine) as domain:
        user = domain.users.add(username="in-a-transaction")
        with traced(domain.engine) as messages:
            assert domain.users.inner.get(user.id) == user
        assert any("BEGIN" in m for m in messages)
    engine.dispose()


def test_autocommit_reads_are_for_postgresql_at_its_default_isolation(
    smarter_database_url: str, tmp_path: Any
) -> None:
    assert autocommit_reads(create_engine(smarter_database_url))
    assert autocommit_reads(create_engine(smarter_database_url, isolation_level="READ COMMITTED"))
    assert not autocommit_reads(create_engine(f"sqlite:///{tmp_path}/x.db"))


def test_pool_pre_ping_asked_for_is_kept(smarter_database_url: str) -> None:
    with (
        Domain(smarter_database_url, engine_options={"pool_pre_ping": True}) as pinging,
        Domain(smarter_database_url) as polling,
    ):
        assert pinging.engine.pool._pre_ping  # type: ignore[attr-defined]
        assert not event.contains(pinging.engine, "checkout", _closed_by_server)
        assert not polling.engine.pool._pre_ping  # type: ignore[attr-defined]
        assert event.contains(polling.engine, "checkout", _closed_by_server)
        user = pinging.users.add(username="pinged")
        assert pinging.users.inner.get(user.id) == user
