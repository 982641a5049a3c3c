"""The short stress run: 4 processes, about 20 s, one Redis restart; zero stale reads and
zero errors. (``nox -s stress`` runs the long one.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smarter_domain.testing import PostgresServer, RedisServer

from .harness import run


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own: this test kills it."""
    with RedisServer() as server:
        yield server
    server.close()


@pytest.mark.timeout(180)
def test_short_stress_run(smarter_postgres_server: PostgresServer, own_redis: RedisServer) -> None:
    url = smarter_postgres_server.create_database("stress_short")
    report = run(url, own_redis, seconds=20, workers=4, redis_restarts=1)
    print("\n".join(report.lines()))
    assert report.reads > 1000
    assert report.writes > 50
    assert report.errors == 0, report.examples
    assert report.stale_reads == 0, report.examples
    assert report.redis_restarts == 1
