"""The Redis tier's read protocol: a lookup that returns the entry or a lease in one round
trip, a guarded fill that gives the lease back, and the compact record format.

Round trips are counted with MONITOR (``round_trips``), never timed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE
from sqlalchemy import event

from smarter_domain import Domain, User
from smarter_domain.cache import codec
from smarter_domain.cache.scripts import hold_key, lease_key
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

from .conftest import FAST_FAIL, QueryCounter
from .round_trips import commands_sent


@pytest.fixture
def other(smarter_database_url: str, smarter_redis_url: str) -> Iterator[Domain]:
    """A second domain on the same database and Redis: another process, as far as the cache
    can tell (its own memory tier, in-process flights and origin)."""
    with Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL) as domain:
        yield domain


def test_a_cold_miss_is_two_round_trips_and_a_redis_hit_one(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    redis_domain.users.get(user.id)  # the scripts are loaded and the connection open
    key = redis_domain.cache.keys.user(user.id)
    redis_client.delete(key)
    redis_domain.cache.clear_memory()
    found: list[Any] = []

    cold = commands_sent(redis_client, lambda: found.append(redis_domain.users.get(user.id)))
    assert found == [user]
    assert cold == {"evalsha": 2}  # the lookup (a miss: token and lease), the fill
    assert codec.read_record(redis_client.get(key) or b"")[1] == user

    redis_domain.cache.clear_memory()
    warm = commands_sent(redis_client, lambda: found.append(redis_domain.users.get(user.id)))
    assert found == [user, user]
    assert warm == {"evalsha": 1}
    assert redis_domain.cache.stats.snapshot()["redis_hits"] == 1

    memory = commands_sent(redis_client, lambda: found.append(redis_domain.users.get(user.id)))
    assert memory == {}
    assert found[-1] == user


def test_a_miss_during_a_write_reads_the_database_and_fills_nothing(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    key = redis_domain.cache.keys.user(user.id)
    redis_domain.users.get(user.id)
    hold = redis_domain.cache.prepare([key])  # a write about to commit holds the key off
    assert hold
    try:
        redis_domain.cache.clear_memory()
        sent = commands_sent(redis_client, lambda: redis_domain.users.get(user.id))
        assert sent == {"evalsha": 1}  # the lookup says "held": no fill is even tried
        assert redis_client.get(key) is None
        assert redis_client.get(lease_key(key)) is None
    finally:
        redis_domain.cache.release([key], hold)


def test_another_process_waits_for_the_lease_holders_fill(
    redis_domain: Domain, other: Domain
) -> None:
    key = f"{redis_domain.cache.keys.namespace}:lease-test"
    started, finish = threading.Event(), threading.Event()
    loads: list[str] = []

    def slow() -> str:
        loads.append("first")
        started.set()
        assert finish.wait(5)
        return "value"

    def second() -> str:
        loads.append("second")
        return "other"

    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(redis_domain.cache.get_or_load(key, slow))
    )
    first.start()
    assert started.wait(5)
    waiter = threading.Thread(target=lambda: results.append(other.cache.get_or_load(key, second)))
    waiter.start()
    time.sleep(0.1)  # the other process found the lease taken and is waiting
    assert waiter.is_alive()
    finish.set()
    first.join(5)
    waiter.join(5)
    assert results == ["value", "value"]
    assert loads == ["first"]  # one database load for both processes


def test_a_failed_load_gives_its_lease_back(redis_domain: Domain, other: Domain) -> None:
    key = f"{redis_domain.cache.keys.namespace}:lease-fails"
    started, finish = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        assert finish.wait(5)
        raise RuntimeError("the database said no")

    errors: list[BaseException] = []

    def first() -> None:
        try:
            redis_domain.cache.get_or_load(key, failing)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(5)
    results: list[Any] = []
    waiter = threading.Thread(target=lambda: results.append(other.cache.get_or_load(key, str)))
    waiter.start()
    time.sleep(0.05)
    begun = time.monotonic()
    finish.set()
    thread.join(5)
    waiter.join(5)
    assert len(errors) == 1
    assert results == [""]
    # Given back at once: the waiter did not sit out the lease (FAST_FAIL: 2 s).
    assert time.monotonic() - begun < FAST_FAIL.lock_timeout / 2


def test_a_dead_loaders_lease_expires_and_the_next_miss_loads(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    key = f"{redis_domain.cache.keys.namespace}:lease-orphan"
    redis_client.set(lease_key(key), "a-loader-that-died", px=300)
    assert redis_domain.cache.get_or_load(key, lambda: "loaded") == "loaded"
    assert redis_client.get(lease_key(key)) is None  # the new holder gave it back


def test_an_entry_of_the_earlier_format_is_a_quiet_miss(
    redis_domain: Domain, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    user = UserFactory()
    key = redis_domain.cache.keys.user(user.id)
    earlier = b'{"ct": %f, "v": 2}|' % time.time() + codec.dumps(user)
    redis_client.set(key, earlier)
    redis_domain.cache.clear_memory()
    with caplog.at_level(logging.WARNING, logger="smarter_domain"):
        assert redis_domain.users.get(user.id) == user
    stats = redis_domain.cache.stats.snapshot()
    assert stats["decode_errors"] == 0 and stats["loads"] == 1
    assert "ignored" not in caplog.text
    assert (redis_client.get(key) or b"").startswith(codec.RECORD)  # replaced by the fill


def test_the_compact_backend_is_a_dogpile_plugin_sharing_the_domains_entries(
    redis_domain: Domain, smarter_redis_url: str, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    redis_domain.users.get(user.id)
    region = make_region().configure(
        "smarter_domain.redis", expiration_time=600, arguments={"url": smarter_redis_url}
    )
    key = redis_domain.cache.keys.user(user.id)
    assert region.get(key) == user
    other_key = f"{redis_domain.cache.keys.namespace}:from-a-region"
    region.set(other_key, [1, 2, 3])
    assert (redis_client.get(other_key) or b"").startswith(codec.RECORD + b"L")
    assert redis_domain.cache.get_or_load(other_key, lambda: "not loaded") == [1, 2, 3]
    region.set(other_key, {"a": (1, 2)})
    assert region.get(other_key) == {"a": (1, 2)}


def test_a_list_larger_than_a_quarter_of_the_memory_tier_comes_from_redis(
    smarter_database_url: str, smarter_redis_url: str
) -> None:
    with Domain(
        smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL, memory_cache_size=40
    ) as domain:
        account = AccountFactory(domain=domain)
        users = [UserFactory(domain=domain) for _ in range(12)]  # 12 > 40 // 4
        for user in users:
            UserProfileFactory(domain=domain, user=user, account=account)
        assert domain.users.list_for_account(account.id) == users
        assert domain.users.list_for_account(account.id) == users
        member_keys = [domain.cache.keys.user(u.id) for u in users]
        assert not any(key in domain.cache.memory.backend._cache for key in member_keys)  # type: ignore[attr-defined]
        domain.cache.stats.reset()
        assert domain.users.list_for_account(account.id) == users
        stats = domain.cache.stats.snapshot()
        assert stats["redis_hits"] == 12 and stats["loads"] == 0


def test_without_redis_a_list_too_large_for_memory_is_read_from_the_database(
    smarter_database_url: str,
) -> None:
    with Domain(smarter_database_url, memory_cache_size=40) as domain:
        account = AccountFactory(domain=domain)
        users = [UserFactory(domain=domain) for _ in range(12)]
        for user in users:
            UserProfileFactory(domain=domain, user=user, account=account)
        assert domain.users.list_for_account(account.id) == users
        counter = QueryCounter()
        event.listen(domain.engine, "before_cursor_execute", counter)
        try:
            assert domain.users.list_for_account(account.id) == users
        finally:
            event.remove(domain.engine, "before_cursor_execute", counter)
        # One query, the uncached one: not one per member, nor a list of ids to hydrate.
        assert len(counter.statements) == 1
        profiles = domain.profiles.list_for_account(account.id)
        assert [p.user for p in profiles] == users


def test_a_record_decodes_to_the_entity_it_holds() -> None:
    user = User(id=1, username="x", date_joined=datetime.now(UTC))
    created, value = codec.read_record(codec.record(user, 12.5))
    assert (created, value) == (12.5, user)


def test_a_sub_second_timeout_is_kept_to_the_millisecond(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    key = f"{redis_domain.cache.keys.namespace}:short-lived"
    assert redis_domain.cache.get_or_load(key, lambda: "v", expiration_time=0.3) == "v"
    assert 0 < redis_client.pttl(key) <= 300


def test_a_value_the_format_refuses_gives_its_lease_back(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    key = f"{redis_domain.cache.keys.namespace}:not-cacheable"
    with pytest.raises(TypeError):
        redis_domain.cache.get_or_load(key, object)
    assert redis_client.get(lease_key(key)) is None  # nobody waits for a fill that won't come


def test_an_oversized_record_in_a_list_is_a_miss(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    guard = redis_domain.cache.guard
    assert guard is not None
    guard.max_value_bytes = 4096  # a small limit: 16 MiB would not read within the timeout
    key = f"{redis_domain.cache.keys.namespace}:huge"
    guard.get_many([[key]])  # its connection first (a new one may flush the namespace)
    redis_client.set(key, codec.record(b"x" * 5000, time.time()))
    found, missing = guard.get_many([[key]])
    assert found == [NO_VALUE] and missing == [0]
    assert redis_domain.cache.stats.snapshot()["decode_errors"] == 1


def test_a_planted_hold_that_never_ends_is_not_a_hold(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    key = redis_domain.cache.keys.user(user.id)
    redis_client.zadd(hold_key(key), {"forever": float("inf")})
    redis_domain.cache.clear_memory()
    assert redis_domain.users.get(user.id) == user
    assert (redis_client.get(key) or b"").startswith(codec.RECORD)  # filled: not held
