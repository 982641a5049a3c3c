from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from sqlalchemy import event

from smarter_domain import Domain, set_domain
from smarter_domain.cache import RedisOptions


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
            self.statements.append(statement)


@pytest.fixture
def count_queries(domain: Domain) -> Any:
    """``with count_queries() as counter: ...`` counts SELECT/INSERT/UPDATE/DELETE statements."""

    @contextmanager
    def counting() -> Iterator[QueryCounter]:
        counter = QueryCounter()
        event.listen(domain.engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            event.remove(domain.engine, "before_cursor_execute", counter)

    return counting


FAST_FAIL = RedisOptions(
    socket_timeout=0.2, connect_timeout=0.2, retry_after=0.3, lock_timeout=2, lock_sleep=0.01
)


@pytest.fixture
def redis_domain(smarter_database_url: str, smarter_redis_url: str) -> Iterator[Domain]:
    """A Domain with both tiers on the session's real Redis, failing fast when it is gone."""
    instance = Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL)
    previous = set_domain(instance)
    try:
        yield instance
    finally:
        set_domain(previous)
        instance.close()


@pytest.fixture
def redis_client(smarter_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(smarter_redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def either_tier(request: pytest.FixtureRequest) -> Domain:
    """The default domain: memory tier only, or both tiers on the session's real Redis."""
    return request.getfixturevalue("domain" if request.param == "memory" else "redis_domain")


@contextmanager
def reading_meanwhile(read: Callable[[], Any]) -> Iterator[tuple[list[Any], list[BaseException]]]:
    """Call ``read()`` in a background thread every 5 ms while the block runs (a fault is
    injected there); yields what it returned and what it raised, complete once the block
    has ended."""
    seen: list[Any] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            try:
                seen.append(read())
            except BaseException as exc:
                errors.append(exc)
            time.sleep(0.005)

    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        yield seen, errors
    finally:
        stop.set()
        reader.join(10)
