"""The real-server fixtures themselves: loopback only, restartable."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import create_engine, text

from smarter_domain.testing import PostgresServer, RedisServer


def test_redis_server_is_real_and_restartable(
    smarter_redis_server: RedisServer, smarter_redis_url: str
) -> None:
    assert smarter_redis_url.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(smarter_redis_url, socket_timeout=1)
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert client.info("server")["redis_version"]
    smarter_redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    smarter_redis_server.start()
    assert client.ping()
    client.close()


def test_postgres_server_is_real(smarter_postgres_server: PostgresServer) -> None:
    url = smarter_postgres_server.create_database("server_check")
    assert "@127.0.0.1:" in url
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("select version()")).scalar_one().startswith("PostgreSQL")
        assert connection.execute(text("select inet_server_addr()::text")).scalar_one() in (
            "127.0.0.1/32",
            "127.0.0.1",
        )
    engine.dispose()
