"""An attacker (or another application) who can write to Redis or publish on its channels.

Every key a running domain has written is found with SCAN and overwritten with hostile values
of every kind; reads must stay right, never raise, never open the circuit breaker, and no
invalidation may be lost. Forged channel messages must not make listeners touch other keys.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import smarter_domain as sd
from smarter_domain import Domain, cache_results
from smarter_domain.cache import codec, scripts
from smarter_domain.cache.keys import CacheKeys
from smarter_domain.cache.scripts import LOCK_SUFFIX, ack_keys, hold_key, lease_key
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

from .conftest import FAST_FAIL

pytestmark = pytest.mark.smarter_backends("postgresql")

SMALL = dataclasses.replace(FAST_FAIL, max_value_bytes=4096)
NAMESPACE = "smarter:v1"


class _Exploit:
    """Unpickling this would create a file: the proof that something unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def _hostile_bytes(kind: str, marker: Path) -> bytes:
    header = b'{"ct": %f, "v": 2}|' % time.time()
    return {
        "pickle": pickle.dumps(_Exploit(str(marker))),
        "garbage": b"\xff\xfe\x00garbage\x80" + os.urandom(32),
        "oversized": b"x" * 8192,  # over SMALL.max_value_bytes
        "header-not-json": b'{"ct": 1e5e, "v": 2}|' + codec.dumps(1),
        "header-wrong-version": b'{"ct": 1.0, "v": 99}|' + codec.dumps(1),
        "header-garbage-payload": header + b"\x93\x01\x02",
        "header-infinite-time": b'{"ct": 1e999, "v": 2}|' + codec.dumps(1),
        "wrong-type-payload": header + codec.dumps({"not": ["an", "entity"]}),
        "empty": b"",
        "record-garbage": codec.RECORD + b"U" + os.urandom(40),
        "record-wrong-kind": codec.RECORD + b"A" + codec.record(1, time.time())[4:],
        "record-unknown-kind": codec.RECORD + b"Z" + codec.record(1, time.time())[4:],
        "record-of-a-pickle": codec.RECORD + b"B" + pickle.dumps(_Exploit(str(marker))),
    }[kind]


BYTE_KINDS = [
    "pickle",
    "garbage",
    "oversized",
    "header-not-json",
    "header-wrong-version",
    "header-garbage-payload",
    "header-infinite-time",
    "wrong-type-payload",
    "empty",
    "record-garbage",
    "record-wrong-kind",
    "record-unknown-kind",
    "record-of-a-pickle",
]
EARLIER_FORMAT = [
    "header-not-json",
    "header-wrong-version",
    "header-infinite-time",
    "wrong-type-payload",
]
"""Entries in the first release's format (dogpile's JSON header, then ``codec.MAGIC``): quiet
misses, replaced by the next fill."""
REDIS_TYPES = ["hash", "list", "set", "zset"]


def plant(client: redis.Redis, key: str, kind: str, marker: Path) -> None:
    client.delete(key)
    if kind == "hash":
        client.hset(key, "field", "value")
    elif kind == "list":
        client.rpush(key, "a", "b")
    elif kind == "set":
        client.sadd(key, "a", "b")
    elif kind == "zset":
        client.zadd(key, {"a": 1.0})
    else:
        client.set(key, _hostile_bytes(kind, marker))


@dataclasses.dataclass
class World:
    acme: sd.Account
    alice: sd.UserProfile
    bob: sd.User
    admin: sd.UserProfile


def _square(x: int) -> list[int]:
    return [x, x * x]


def read_everything(domain: Domain, world: World, square: Callable[[int], Any]) -> list[Any]:
    """Every read path of the cached repositories, the utilities and cache_results."""
    u = domain.utils
    alice = world.alice
    return [
        domain.users.get(alice.user.id),
        domain.users.get(world.bob.id),
        domain.users.get_by_username("alice"),
        domain.users.get_by_username("nobody"),
        domain.users.get_many([alice.user.id, world.bob.id]),
        domain.users.list_for_account(world.acme.id),
        domain.accounts.get(world.acme.id),
        domain.accounts.get_by_number(world.acme.account_number),
        domain.accounts.get_default(),
        domain.accounts.list_all(),
        domain.profiles.get(alice.id),
        domain.profiles.get_for(alice.user.id, world.acme.id),
        domain.profiles.list_for_account(world.acme.id),
        domain.profiles.list_for_user(alice.user.id),
        u.get_cached_user_for_username("alice"),
        u.get_cached_user_for_user_id(world.bob.id),
        u.get_users_for_account(world.acme),
        u.get_user_profiles_for_account(world.acme),
        u.get_cached_account_for_user(alice.user),
        u.get_cached_default_account(),
        u.get_cached_smarter_admin_user_profile(),
        u.valid_resource_owners_for_user(alice),
        square(3),
    ]


@pytest.fixture
def two_processes(
    smarter_database_url: str, smarter_redis_url: str
) -> Iterator[tuple[Domain, Domain]]:
    """Two domains on one database and one Redis: two processes, each with its own memory."""
    a = Domain(smarter_database_url, smarter_redis_url, redis_options=SMALL)
    b = Domain(smarter_database_url, smarter_redis_url, redis_options=SMALL)
    previous = sd.set_domain(a)
    try:
        yield a, b
    finally:
        sd.set_domain(previous)
        a.close()
        b.close()


@pytest.fixture
def world(two_processes: tuple[Domain, Domain]) -> World:
    a, _ = two_processes
    admin = a.bootstrap()
    acme = AccountFactory(name="acme")
    alice = UserProfileFactory(account=acme, user=UserFactory(username="alice", is_staff=True))
    bob = UserFactory(username="bob")
    return World(acme=acme, alice=alice, bob=bob, admin=admin)


def _namespace_keys(client: redis.Redis) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=f"{NAMESPACE}:*", count=1000))


def _fresh_connections(domain: Domain) -> None:
    """As a new process would: new connections (the restart watch runs on each) and an empty
    memory tier."""
    assert domain.cache.guard is not None
    domain.cache.guard.client.connection_pool.disconnect()
    domain.cache.clear_memory()


@pytest.mark.parametrize("kind", BYTE_KINDS + REDIS_TYPES)
def test_hostile_values_under_every_key_are_misses_and_lose_no_invalidation(
    two_processes: tuple[Domain, Domain],
    world: World,
    redis_client: redis.Redis,
    tmp_path: Path,
    kind: str,
) -> None:
    a, b = two_processes
    square = cache_results(domain=a)(_square)
    expected = read_everything(a, world, square)
    read_everything(b, world, cache_results(domain=b)(_square))

    keys = _namespace_keys(redis_client)
    marker = f"{NAMESPACE}:server"
    entries = [k for k in keys if "#gen{" not in k and k != marker]
    assert any("#gen{" in k for k in keys) and marker in keys
    assert len(entries) > 15
    exploit = tmp_path / "unpickled"
    # The restart marker last: a new connection that finds it wrong flushes the namespace,
    # which would sweep away everything else planted before it was read.
    owned = [k for k in keys if k != marker] + [k + LOCK_SUFFIX for k in entries]
    owned += [lease_key(k) for k in entries]
    for key in owned + [hold_key(k) for k in entries]:
        plant(redis_client, key, kind, exploit)

    for domain in (a, b):
        domain.cache.clear_memory()
        domain.cache.stats.reset()
    assert read_everything(a, world, square) == expected
    assert read_everything(b, world, cache_results(domain=b)(_square)) == expected
    errors = a.cache.stats.snapshot()["decode_errors"]
    assert errors > 0 or kind in REDIS_TYPES + EARLIER_FORMAT
    # The tier healed: what the reads refilled is ours again, and is served from Redis.
    healed = redis_client.get(f"{NAMESPACE}:user:{world.bob.id}")
    assert isinstance(healed, bytes) and healed.startswith(codec.RECORD + b"U")
    a.cache.clear_memory()
    a.cache.stats.reset()
    assert a.users.get(world.bob.id) == world.bob
    assert a.cache.stats.snapshot()["redis_hits"] == 1
    plant(redis_client, marker, kind, exploit)
    for domain in (a, b):
        _fresh_connections(domain)

    # A write in one process is seen by the next read in the other: no invalidation was lost
    # to the planted values (the restart marker and the generation tokens included).
    b.users.update(world.alice.user.id, email="alice@new.example")
    assert a.users.get(world.alice.user.id).email == "alice@new.example"  # type: ignore[union-attr]
    assert a.utils.get_cached_user_for_username("alice").email == "alice@new.example"
    a.accounts.update(world.acme.id, city="Hostile City")
    assert b.accounts.get(world.acme.id).city == "Hostile City"  # type: ignore[union-attr]
    assert b.utils.get_users_for_account(world.acme)[0].email == "alice@new.example"

    for domain in (a, b):
        guard = domain.cache.guard
        assert guard is not None
        assert not guard.breaker.is_down, kind
        assert guard.pending_deletes == 0
        assert domain.cache.stats.snapshot()["redis_errors"] == 0, kind
    assert sum(d.cache.stats.snapshot()["server_changes"] for d in (a, b)) >= 1
    assert not exploit.exists()


def test_a_hostile_value_is_logged_once_per_key(
    redis_domain: Domain, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    user = UserFactory()
    key = f"{NAMESPACE}:user:{user.id}"
    for _ in range(3):
        redis_domain.cache.clear_memory()
        plant(redis_client, key, "hash", Path("/nonexistent"))
        with caplog.at_level("WARNING", logger="smarter_domain"):
            assert redis_domain.users.get(user.id) == user
    assert caplog.text.count(key) == 1
    assert redis_domain.cache.stats.snapshot()["decode_errors"] >= 3


def test_an_entry_over_the_default_size_limit_is_a_miss(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    key = f"{NAMESPACE}:user:{user.id}"
    redis_domain.users.get(user.id)
    redis_domain.cache.clear_memory()
    redis_client.set(key, b'{"ct": %f, "v": 2}|' % time.time() + b"\x00" * (16 * 1024 * 1024 + 1))
    redis_domain.cache.stats.reset()
    assert redis_domain.users.get(user.id) == user
    assert redis_domain.cache.stats.snapshot()["decode_errors"] >= 1
    assert redis_domain.cache.stats.snapshot()["redis_errors"] == 0


@pytest.mark.parametrize("kind", ["pickle", "garbage", "oversized", "hash", "list"])
def test_a_hostile_restart_marker_costs_one_flush_not_an_error(
    two_processes: tuple[Domain, Domain],
    world: World,
    redis_client: redis.Redis,
    tmp_path: Path,
    kind: str,
) -> None:
    """The marker is read inside redis-py's connect callback: an error there failed whatever
    call opened the connection (a read raised, a write's invalidation was lost)."""
    a, b = two_processes
    assert b.users.get(world.bob.id) == world.bob  # b's memory holds bob
    plant(redis_client, f"{NAMESPACE}:server", kind, tmp_path / "unpickled")
    _fresh_connections(a)
    a.users.update(world.bob.id, first_name="Robert")  # its invalidation opens a connection
    assert b.users.get(world.bob.id).first_name == "Robert"  # type: ignore[union-attr]
    assert a.users.get(world.bob.id).first_name == "Robert"  # type: ignore[union-attr]
    assert a.cache.stats.snapshot()["redis_errors"] == 0
    assert a.cache.stats.snapshot()["server_changes"] >= 1
    assert redis_client.type(f"{NAMESPACE}:server") == b"string"
    assert not (tmp_path / "unpickled").exists()


@pytest.mark.parametrize("lock_key", ["{key}" + LOCK_SUFFIX, "_lock{key}"])
@pytest.mark.parametrize("kind", ["garbage", "hash"])
def test_a_planted_lock_is_not_waited_on(
    redis_domain: Domain, redis_client: redis.Redis, lock_key: str, kind: str
) -> None:
    """A value without expiry under the lock key (ours are strings that expire within
    lock_timeout) made every miss of that key wait lock_blocking_timeout."""
    user = UserFactory()
    key = f"{NAMESPACE}:user:{user.id}"
    plant(redis_client, lock_key.format(key=key), kind, Path("/nonexistent"))
    redis_domain.cache.clear_memory()
    started = time.monotonic()
    assert redis_domain.users.get(user.id) == user
    assert time.monotonic() - started < FAST_FAIL.lock_timeout / 2
    assert redis_domain.cache.stats.snapshot()["redis_errors"] == 0


def test_a_lock_taken_in_one_thread_is_released_from_another(redis_domain: Domain) -> None:
    """dogpile's async_creation_runner releases the mutex in its own thread."""
    guard = redis_domain.cache.guard
    assert guard is not None
    key = f"{NAMESPACE}:user:424242"
    mutex = guard.get_mutex(key)
    assert mutex is not None and mutex.acquire()
    releaser = threading.Thread(target=mutex.release)
    releaser.start()
    releaser.join()
    other = guard.get_mutex(key)
    assert other is not None
    assert other.acquire(False), "the lock is still held after its release"
    other.release()


def _listener_alive(domain: Domain) -> bool:
    listener = domain.cache.listener
    return listener is not None and listener.healthy


def _wait_for_listener(domain: Domain) -> None:
    """Until the listener has handled what was published before (its next pongs prove it)."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if _listener_alive(domain):
            break
    time.sleep(0.3)  # every message published before a ping is handled before its pong


def test_a_forged_message_cannot_touch_keys_outside_the_namespace(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    redis_client.set("other-app:session", "secret")
    redis_client.rpush("other-app:queue", "job")
    channel = f"{NAMESPACE}:invalidations"
    for ack in (
        "other-app:session",
        "other-app:queue",
        f"{NAMESPACE}:user:1",
        f"{NAMESPACE}:ack:x",
    ):
        message = {"o": "forger", "t": time.time(), "k": [f"{NAMESPACE}:user:1"], "a": ack}
        redis_client.publish(channel, json.dumps(message))
    _wait_for_listener(redis_domain)
    assert redis_client.ttl("other-app:session") == -1
    assert redis_client.get("other-app:session") == b"secret"
    assert redis_client.lrange("other-app:queue", 0, -1) == [b"job"]
    assert redis_client.ttl("other-app:queue") == -1
    assert not redis_client.exists(f"{NAMESPACE}:user:1")
    assert redis_client.keys(f"{NAMESPACE}:ack:*") == []


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"k": "smarter:v1:user:1"}',
        b'{"k": {"smarter:v1:user:1": 1}}',
        b'{"k": [1, 2, null]}',
        b'{"k": [], "a": ["list"]}',
        b'{"k": [], "o": 5, "t": "now"}',
        b'{"k": [], "t": 1e999}',
        b"[1, 2, 3]",
        b"\xff\xfe",
        json.dumps({"k": ["x" * 100] * 200_000}).encode(),  # about 20 MB
        b'{"k": [], "o": "x", "a": "", "t": 1' + b"0" * 400 + b"}",  # too large for a float
        b'{"k": [], "o": "x", "a": "", "t": -1' + b"0" * 400 + b"}",
    ],
    ids=lambda p: repr(p[:24]),
)
def test_garbage_on_the_channel_neither_kills_nor_confuses_the_listener(
    redis_domain: Domain, redis_client: redis.Redis, payload: bytes
) -> None:
    user = UserFactory()
    assert redis_domain.users.get(user.id) == user
    before = redis_domain.cache.stats.snapshot()["listener_gaps"]
    redis_client.publish(f"{NAMESPACE}:invalidations", payload)
    _wait_for_listener(redis_domain)
    assert _listener_alive(redis_domain)
    assert redis_domain.cache.stats.snapshot()["listener_gaps"] == before
    # ... and the memory tier is still trusted.
    redis_domain.cache.stats.reset()
    assert redis_domain.users.get(user.id) == user
    assert redis_domain.cache.stats.snapshot()["memory_hits"] == 1


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_no_lookup_text_makes_a_key_of_the_librarys_own_suffixes(text: str) -> None:
    """A lookup of ``alice#lock`` must not be keyed as the lock of ``alice``'s entry, nor any
    text as a generation token."""
    keys = CacheKeys()
    for key in (
        keys.user_by_username(text),
        keys.account_by_number(text),
        keys.function("module.f", text),
    ):
        assert not key.endswith(LOCK_SUFFIX)
        assert "#gen{" not in key
    assert keys.user_by_username(text + LOCK_SUFFIX) != keys.user_by_username(text) + LOCK_SUFFIX


def test_a_replayed_acknowledgement_does_not_stand_in_for_another_process(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    guard = redis_domain.cache.guard
    assert guard is not None
    # Its connection first: a new one that finds no restart marker flushes the namespace.
    guard._wait_for_acks(redis_domain.cache.keys.new_ack(), 0.01)
    ack = redis_domain.cache.keys.new_ack()
    keys = list(ack_keys(ack))
    expect = redis_client.register_script(scripts.EXPECT)
    acknowledge = redis_client.register_script(scripts.ACK)
    assert expect(keys=keys, args=[2]) == 0
    acknowledge(keys=keys, args=["one-process"])
    acknowledge(keys=keys, args=["one-process"])  # the same process, a replayed message
    assert not guard._wait_for_acks(ack, 0.2)
    acknowledge(keys=keys, args=["another-process"])
    assert guard._wait_for_acks(ack, 0.2)


@pytest.mark.parametrize("kind", ["hash", "list", "garbage"])
def test_junk_under_the_acknowledgement_keys_is_a_timeout_not_an_error(
    redis_domain: Domain, redis_client: redis.Redis, tmp_path: Path, kind: str
) -> None:
    """A forger who reads an acknowledgement key off the channel and plants junk under it
    costs the writer its wait, never a script error in a listener or a lost invalidation."""
    ack = redis_domain.cache.keys.new_ack()
    for key in ack_keys(ack):
        plant(redis_client, key, kind, tmp_path / "unpickled")
    acknowledge = redis_client.register_script(scripts.ACK)
    expect = redis_client.register_script(scripts.EXPECT)
    acknowledge(keys=list(ack_keys(ack)), args=["a-process"])
    expect(keys=list(ack_keys(ack)), args=[1])
    guard = redis_domain.cache.guard
    assert guard is not None
    guard._wait_for_acks(ack, 0.1)  # whatever it says, it returns
    assert guard.breaker.is_down is False


def test_connections_meeting_a_new_server_at_once_flush_it_once(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    """A second flush would delete the generation tokens of loads that began after the
    first, refusing their fills (each process then loads again: a stampede)."""
    guard = redis_domain.cache.guard
    assert guard is not None
    redis_client.flushall()  # a new server: no marker
    guard.client.connection_pool.disconnect()
    redis_domain.cache.stats.reset()
    barrier = threading.Barrier(8)

    def connect() -> None:
        barrier.wait()
        guard.client.ping()

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redis_domain.cache.stats.snapshot()["server_changes"] == 1
    assert redis_client.exists(f"{NAMESPACE}:server")
    assert not redis_client.exists(f"{NAMESPACE}:server{LOCK_SUFFIX}")
