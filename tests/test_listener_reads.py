"""How the invalidation listener reads its subscription: straight from the socket (one system
call per wake-up), or through redis-py where that cannot be done."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from smarter_domain.cache import bus
from smarter_domain.cache.bus import READ_EVERY, _PolledMessages, _SocketMessages
from smarter_domain.testing import RedisServer


@pytest.fixture
def subscribed(smarter_redis_server: RedisServer) -> Iterator[Any]:
    client = redis.Redis.from_url(smarter_redis_server.url, protocol=2)
    pubsub = client.pubsub()
    pubsub.subscribe("listener-reads")
    yield pubsub
    pubsub.close()
    client.close()


def next_of(messages: Any, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = messages.next()
        if message is not None and message["type"] == kind:
            return message  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind}")


@pytest.mark.parametrize("hiredis", [True, False])
def test_messages_pongs_and_quiet_ticks(
    subscribed: Any,
    smarter_redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    hiredis: bool,
) -> None:
    if not hiredis:
        monkeypatch.setattr(bus, "HIREDIS_AVAILABLE", False)
    messages = _SocketMessages.open(subscribed)
    assert isinstance(messages, _SocketMessages if hiredis else _PolledMessages)
    assert next_of(messages, "subscribe")["data"] == 1
    publisher = redis.Redis.from_url(smarter_redis_server.url)
    payloads = [b"x" * size for size in (0, 1, 100, 70_000, 300_000)]  # some span many reads
    for payload in payloads:
        assert publisher.publish("listener-reads", payload) == 1
    assert [next_of(messages, "message")["data"] for _ in payloads] == payloads
    subscribed.ping()
    assert next_of(messages, "pong")["data"] == b""
    started = time.monotonic()
    assert messages.next() is None  # nothing to read: back after one tick, not later
    assert time.monotonic() - started < READ_EVERY + 0.5
    publisher.close()


def test_the_server_closing_the_subscription_is_an_error(
    subscribed: Any, smarter_redis_server: RedisServer
) -> None:
    messages = _SocketMessages.open(subscribed)
    next_of(messages, "subscribe")
    killer = redis.Redis.from_url(smarter_redis_server.url)
    assert killer.client_kill_filter(_type="pubsub") >= 1
    killer.close()

    def read_until_it_fails() -> None:
        for _ in range(100):
            messages.next()

    with pytest.raises((redis.ConnectionError, OSError)):
        read_until_it_fails()


def test_a_subscription_in_resp3_is_read_through_redis_py(
    smarter_redis_server: RedisServer,
) -> None:
    """A URL's ``?protocol=3`` wins over the listener's RESP2: its messages are then pushes,
    read by redis-py."""
    client = redis.Redis.from_url(f"{smarter_redis_server.url}?protocol=3")
    pubsub = client.pubsub()
    pubsub.subscribe("listener-reads-3")
    try:
        messages = _SocketMessages.open(pubsub)
        assert isinstance(messages, _PolledMessages)
        next_of(messages, "subscribe")
        publisher = redis.Redis.from_url(smarter_redis_server.url)
        publisher.publish("listener-reads-3", b"pushed")
        assert next_of(messages, "message")["data"] == b"pushed"
        publisher.close()
    finally:
        pubsub.close()
        client.close()


def test_a_platform_refusing_the_socket_options_is_read_through_redis_py(
    subscribed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Any, sock: Any) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(_SocketMessages, "__init__", refuse)
    messages = _SocketMessages.open(subscribed)
    assert isinstance(messages, _PolledMessages)
    assert next_of(messages, "subscribe")["data"] == 1
