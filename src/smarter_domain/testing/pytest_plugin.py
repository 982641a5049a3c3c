"""pytest fixtures for smarter-domain and the applications that use it.

Loaded automatically (``pytest11`` entry point). ``--smarter-backends=sqlite,postgresql``
runs every test that uses ``domain`` (or ``smarter_database_url``) once per stack:
``sqlite`` is SQLite with the memory tier only, ``postgresql`` is PostgreSQL with the Redis
tier as well. The
PostgreSQL and Redis servers are started once per session, on loopback, only when a test
needs them.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text

from ..adapters.orm import Base
from ..domain import Domain, set_domain
from ..migrations import upgrade

if TYPE_CHECKING:  # (imported by the fixtures that start servers: psycopg, redis-py)
    from .servers import (
        PostgresServer,
        RedisClusterServers,
        RedisSentinelServers,
        RedisServer,
    )

BACKENDS = ("sqlite", "postgresql")
_database_names = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smarter-domain")
    group.addoption(
        "--smarter-backends",
        default="sqlite",
        help="comma-separated backends for the domain fixture: sqlite, postgresql",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "smarter_backends(*names): run this test on these backends only"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "smarter_backend" not in metafunc.fixturenames:
        return
    chosen = [b.strip() for b in metafunc.config.getoption("smarter_backends").split(",")]
    unknown = set(chosen) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"unknown --smarter-backends {sorted(unknown)}")
    marker = metafunc.definition.get_closest_marker("smarter_backends")
    if marker is not None:
        chosen = [b for b in chosen if b in marker.args]
    metafunc.parametrize("smarter_backend", chosen, indirect=True)


@pytest.fixture(scope="session")
def smarter_postgres_server() -> Iterator[PostgresServer]:
    from .servers import PostgresServer

    with PostgresServer() as server:
        yield server
    server.close()


@pytest.fixture(scope="session")
def smarter_redis_server() -> Iterator[RedisServer]:
    from .servers import RedisServer

    with RedisServer() as server:
        yield server
    server.close()


@pytest.fixture(scope="module")
def smarter_redis_cluster() -> Iterator[RedisClusterServers]:
    """A real three-master Redis Cluster on loopback, empty, shared by a module's tests
    (startup takes about two seconds)."""
    from .servers import RedisClusterServers

    with RedisClusterServers() as cluster:
        cluster.flushall()
        yield cluster


@pytest.fixture
def smarter_redis_sentinel() -> Iterator[RedisSentinelServers]:
    """A fresh master, replica and three sentinels on loopback for each test, since tests
    kill the master."""
    from .servers import RedisSentinelServers

    with RedisSentinelServers() as sentinel:
        yield sentinel


@pytest.fixture(scope="session")
def _smarter_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("smarter-template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _smarter_postgres_database(smarter_postgres_server: PostgresServer) -> str:
    url = smarter_postgres_server.create_database("smarter_test")
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def smarter_backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def smarter_database_url(
    smarter_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> str:
    """A migrated, empty database of the test's backend."""
    if smarter_backend == "sqlite":
        template: Path = request.getfixturevalue("_smarter_sqlite_template")
        path = tmp_path / "smarter.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_smarter_postgres_database")
    engine = create_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def smarter_empty_database_url(
    smarter_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> str:
    """A database of the test's backend with no schema at all (for migration tests)."""
    if smarter_backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("smarter_postgres_server")
    return server.create_database(f"smarter_empty_{next(_database_names)}")


@pytest.fixture
def smarter_redis_url(smarter_redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test (restarted if a test stopped it)."""
    import redis

    smarter_redis_server.start()
    client = redis.Redis.from_url(smarter_redis_server.url)
    client.flushall()
    client.close()
    return smarter_redis_server.url


@pytest.fixture
def smarter_stack_redis_url(smarter_backend: str, request: pytest.FixtureRequest) -> str | None:
    """The Redis of the test's stack: none for ``sqlite`` (memory tier only), the session's
    real Redis, flushed, for ``postgresql``."""
    if smarter_backend == "sqlite":
        return None
    url: str = request.getfixturevalue("smarter_redis_url")
    return url


@pytest.fixture
def domain(smarter_database_url: str, smarter_stack_redis_url: str | None) -> Iterator[Domain]:
    """A Domain on a fresh migrated database (and, on the postgresql stack, the session's
    Redis), installed as the process default."""
    instance = Domain(smarter_database_url, smarter_stack_redis_url)
    previous = set_domain(instance)
    try:
        yield instance
    finally:
        set_domain(previous)
        instance.close()
