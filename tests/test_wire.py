"""The wire: commands on kept connections, with what redis-py's pool guarantees kept."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from smarter_domain import Domain
from smarter_domain.cache import wire as wire_module
from smarter_domain.cache.wire import KEEP, Wire
from smarter_domain.testing import RedisServer


@pytest.fixture
def client(smarter_redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client as the domain makes them: no retries, a short socket timeout."""
    made = redis.Redis.from_url(
        smarter_redis_server.url, socket_timeout=0.25, retry=Retry(NoBackoff(), 0)
    )
    yield made
    made.close()
    made.connection_pool.disconnect()


def test_the_domains_client_goes_direct_others_through_redis_py(
    client: redis.Redis, smarter_redis_server: RedisServer, redis_domain: Domain
) -> None:
    assert Wire(client).direct
    assert redis_domain.cache.guard is not None and redis_domain.cache.guard.wire.direct
    retrying = redis.Redis.from_url(smarter_redis_server.url)  # redis-py's default retries
    single = redis.Redis.from_url(
        smarter_redis_server.url, retry=Retry(NoBackoff(), 0), single_connection_client=True
    )
    for other in (retrying, single):
        through = Wire(other)
        assert not through.direct
        assert through("ECHO", "x") == b"x"
        other.close()


def test_a_timed_out_command_leaves_no_stray_reply(client: redis.Redis) -> None:
    wire = Wire(client)
    assert wire("ECHO", "warm") == b"warm"
    with pytest.raises(redis.TimeoutError):
        wire("BLPOP", "wire:nothing", "0.6")  # answers nil after 0.6 s: past the timeout
    for n in range(5):  # each reply is its own command's, never the late nil
        assert wire("ECHO", f"after {n}") == f"after {n}".encode()


def test_an_error_reply_keeps_the_connection(client: redis.Redis) -> None:
    wire = Wire(client)
    client.set("wire:string", "x")
    with pytest.raises(redis.ResponseError):
        wire("LPUSH", "wire:string", "y")  # WRONGTYPE
    assert wire("GET", "wire:string") == b"x"
    assert len(wire._idle) == 1


def test_a_connection_the_server_closed_is_replaced_without_an_error(client: redis.Redis) -> None:
    wire = Wire(client)
    wire("CLIENT", "SETNAME", "kept-by-the-wire")
    assert wire("CLIENT", "GETNAME") == b"kept-by-the-wire"
    assert client.client_kill_filter(_type="normal", skipme=True) >= 1  # kills the kept one
    assert wire("ECHO", "still here") == b"still here"


def test_a_connection_the_pool_no_longer_owns_is_replaced(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Sentinel pool owns only connections to the current master: one kept from before a
    failover is not reused."""
    wire = Wire(client)
    first = wire("CLIENT", "ID")
    assert wire("CLIENT", "ID") == first
    monkeypatch.setattr(client.connection_pool, "owns_connection", lambda connection: False)
    assert wire("CLIENT", "ID") != first


def test_an_argument_redis_cannot_take_is_a_data_error(client: redis.Redis) -> None:
    wire = Wire(client)
    assert wire("ECHO", "first") == b"first"
    with pytest.raises(redis.DataError):
        wire("ECHO", None)
    assert wire("ECHO", "after") == b"after"


def test_a_pipeline_sends_each_command_as_it_is_built_then_reads_every_reply(
    client: redis.Redis, smarter_redis_server: RedisServer
) -> None:
    """Each command goes out when the iterable yields it (the server has run the first
    before the second is built), and the replies come back in order, after the last send."""
    wire = Wire(client)
    other = redis.Redis.from_url(smarter_redis_server.url)
    seen_by_the_server: list[bytes | None] = []

    def commands() -> Iterator[tuple[str, ...]]:
        for n in range(3):
            yield ("SET", f"wire:pipelined:{n}", f"v{n}")
            seen_by_the_server.append(other.get(f"wire:pipelined:{n}"))
        yield ("MGET", *(f"wire:pipelined:{n}" for n in range(3)))

    assert wire.pipeline(commands()) == [b"OK", b"OK", b"OK", [b"v0", b"v1", b"v2"]]  # raw replies
    assert seen_by_the_server == [b"v0", b"v1", b"v2"]
    assert wire.pipeline([]) == []
    assert len(wire._idle) == 1
    other.close()


def test_a_health_check_never_runs_between_the_commands_of_a_pipeline(
    smarter_redis_server: RedisServer,
) -> None:
    """A ping due part way through a pipeline would read the reply of the command before
    it: the check runs once, before the first send."""
    checked = redis.Redis.from_url(
        smarter_redis_server.url,
        socket_timeout=0.25,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0.05,
    )
    wire = Wire(checked)
    assert wire.direct

    def commands() -> Iterator[tuple[str, ...]]:
        for n in range(3):
            yield ("ECHO", f"e{n}")
            time.sleep(0.1)  # the next health check is due before the next send

    for _ in range(2):
        assert wire.pipeline(commands()) == [b"e0", b"e1", b"e2"]
    checked.close()


def test_a_failed_pipeline_leaves_no_reply_behind(client: redis.Redis) -> None:
    """An error reply, an argument Redis cannot take or a timeout part way through a
    pipeline: the connection is dropped (replies of the commands sent may be unread), and
    the next command reads its own reply."""
    wire = Wire(client)
    client.set("wire:string", "x")
    with pytest.raises(redis.ResponseError):
        wire.pipeline([("LPUSH", "wire:string", "y"), ("ECHO", "stray")])
    assert wire("ECHO", "after an error reply") == b"after an error reply"
    with pytest.raises(redis.DataError):
        wire.pipeline([("ECHO", "stray"), ("ECHO", None)])
    assert wire("ECHO", "after a bad argument") == b"after a bad argument"
    with pytest.raises(redis.TimeoutError):
        wire.pipeline([("ECHO", "stray"), ("BLPOP", "wire:nothing", "0.6"), ("ECHO", "x")])
    for n in range(3):
        assert wire.pipeline([("ECHO", f"after {n}"), ("ECHO", "!")]) == [
            f"after {n}".encode(),
            b"!",
        ]


def test_a_pipeline_through_redis_py_for_clients_it_does_not_serve(
    smarter_redis_server: RedisServer,
) -> None:
    retrying = redis.Redis.from_url(smarter_redis_server.url)
    through = Wire(retrying)
    assert not through.direct
    assert through.pipeline(("ECHO", w) for w in ("a", "b")) == [b"a", b"b"]
    retrying.close()


@pytest.mark.parametrize("check", [False, True])
def test_an_unchecked_wire_skips_the_check_while_in_steady_use(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, check: bool
) -> None:
    """The check is a system call; within ``REUSE_UNCHECKED`` of its last use, a connection
    of a ``Wire(check=False)`` goes straight to the send (a server that closed it meanwhile
    costs one error); a checked one is checked every time."""
    wire = Wire(client, check=check)
    wire("ECHO", "first")
    connection = wire._idle[-1][0]
    checked: list[bool] = []
    real = connection.can_read

    def can_read(*args: Any) -> bool:
        checked.append(True)
        return bool(real(*args))

    monkeypatch.setattr(connection, "can_read", can_read)
    wire("ECHO", "second")
    assert checked == ([True] if check else [])
    monkeypatch.setattr(wire_module, "REUSE_UNCHECKED", 0.0)
    wire("ECHO", "third")
    assert checked == ([True, True] if check else [True])


def test_it_keeps_a_few_connections_and_gives_back_the_rest(client: redis.Redis) -> None:
    wire = Wire(client)
    pool = client.connection_pool
    barrier = threading.Barrier(KEEP * 2)
    errors: list[BaseException] = []

    def call(n: int) -> None:
        try:
            barrier.wait(5)
            # BLPOP with a short timeout keeps every caller inside a command at once
            assert wire("BLPOP", f"wire:empty:{n}", "0.05") is None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(KEEP * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(wire._idle) == KEEP
    assert len(pool._in_use_connections) == KEEP  # type: ignore[attr-defined]
    assert len(pool._available_connections) == KEEP  # type: ignore[attr-defined]
    wire.close()
    assert wire._idle == []
    assert len(pool._in_use_connections) == 0  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_reads_the_parents_replies(client: redis.Redis) -> None:
    """Parent and child share the kept sockets after a fork: the child must open its own, or
    each would read replies meant for the other."""
    wire = Wire(client)
    assert wire("ECHO", "before the fork") == b"before the fork"
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            ok = all(wire("ECHO", f"child {n}") == f"child {n}".encode() for n in range(300))
            code = 0 if ok else 2
        finally:
            os._exit(code)
    try:
        for n in range(300):
            assert wire("ECHO", f"parent {n}") == f"parent {n}".encode()
    finally:
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
