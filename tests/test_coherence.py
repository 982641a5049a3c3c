"""Coherence (CONTRACT section 7, defect 8): memory tiers of several processes, the
cache-aside race, and outages. Two Domains in one test are two independent processes as far
as the cache is concerned: each has its own memory tier, listener and origin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smarter_domain import Domain, User
from smarter_domain.testing import AccountFactory, RedisServer, UserFactory, UserProfileFactory

from .conftest import FAST_FAIL


@pytest.fixture
def other(smarter_database_url: str, smarter_redis_url: str) -> Iterator[Domain]:
    """A second process's Domain on the same database and Redis."""
    with Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL) as domain:
        yield domain


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_write_in_one_process_drops_the_others_memory_copies(
    redis_domain: Domain, other: Domain
) -> None:
    user = UserFactory(first_name="Old")
    assert other.users.get_by_username(user.username) == user
    assert other.users.get(user.id) == user
    other.cache.stats.reset()
    assert other.users.get(user.id) == user
    assert other.cache.stats.snapshot()["memory_hits"] == 1
    updated = redis_domain.users.update(user.id, first_name="New")
    # No sleep: the write returned after every listener acknowledged the invalidation.
    assert other.users.get(user.id) == updated
    assert other.users.get_by_username(user.username) == updated
    assert redis_domain.cache.stats.snapshot()["ack_timeouts"] == 0
    assert other.cache.listener.latencies_ms


def test_every_kind_of_invalidation_reaches_other_processes(
    redis_domain: Domain, other: Domain
) -> None:
    from smarter_domain import cache_results

    user = UserFactory()
    key = other.cache.keys.user(user.id)
    for drop in (
        lambda: redis_domain.cache.invalidate([key]),
        lambda: redis_domain.utils.get_cached_user_for_user_id(user.id, invalidate=True),
        lambda: redis_domain.users.update(user.id, last_name="x"),
    ):
        other.users.get(user.id)
        assert other.cache.memory.get(key) is not None
        drop()
        wait_until(lambda: other.cache.memory.get(key) is None or _is_no_value(other, key))

    @cache_results(domain=other)
    def square(x: int) -> int:
        return x * x

    square(3)
    fn_key = square.key(3)
    assert not _is_no_value(other, fn_key)
    square.invalidate(3)
    assert _is_no_value(other, fn_key)


def _is_no_value(domain: Domain, key: str) -> bool:
    from dogpile.cache.api import NO_VALUE

    return domain.cache.memory.get(key) is NO_VALUE


class PausedLoader:
    """Wraps a repository method: reads the database, then waits before returning (so
    before the cache fill) until released."""

    def __init__(self, target: Any, name: str) -> None:
        self.original = getattr(target, name)
        self.read_done = threading.Event()
        self.release = threading.Event()
        setattr(target, name, self)
        self.target, self.name = target, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        value = self.original(*args, **kwargs)
        if not self.release.is_set():
            self.read_done.set()
            self.release.wait(10)
        return value

    def restore(self) -> None:
        setattr(self.target, self.name, self.original)


@pytest.mark.parametrize("stack", ["memory", "redis"])
def test_a_loader_paused_across_a_commit_does_not_cache_the_old_row(
    request: pytest.FixtureRequest, stack: str
) -> None:
    domain: Domain = request.getfixturevalue("domain" if stack == "memory" else "redis_domain")
    user = UserFactory(first_name="Old")
    paused = PausedLoader(domain.users.inner, "get")
    result: list[User | None] = []
    reader = threading.Thread(target=lambda: result.append(domain.users.get(user.id)))
    try:
        reader.start()
        assert paused.read_done.wait(10)  # the reader holds the old row, not yet cached
        updated = domain.users.update(user.id, first_name="New")  # commit + invalidation
        paused.release.set()
        reader.join(10)
    finally:
        paused.restore()
    assert result == [user]  # the reader began before the write: the old row is its answer
    assert domain.users.get(user.id) == updated  # ...but it was not cached, in any tier
    domain.cache.clear_memory()
    assert domain.users.get(user.id) == updated
    if stack == "redis":
        assert domain.cache.stats.snapshot()["fills_refused"] >= 1


def test_a_paused_list_loader_does_not_cache_the_old_membership(redis_domain: Domain) -> None:
    account = AccountFactory()
    first = UserProfileFactory(account=account)
    paused = PausedLoader(redis_domain.users.inner, "list_for_account")
    result: list[list[User]] = []
    reader = threading.Thread(
        target=lambda: result.append(redis_domain.users.list_for_account(account.id))
    )
    try:
        reader.start()
        assert paused.read_done.wait(10)
        second = UserProfileFactory(account=account)
        paused.release.set()
        reader.join(10)
    finally:
        paused.restore()
    assert result == [[first.user]]
    assert redis_domain.users.list_for_account(account.id) == [first.user, second.user]


def test_a_fill_after_a_redis_restart_is_refused(
    redis_domain: Domain, smarter_redis_server: RedisServer
) -> None:
    user = UserFactory(first_name="Old")
    paused = PausedLoader(redis_domain.users.inner, "get")
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(redis_domain.users.get(user.id)))
    try:
        reader.start()
        assert paused.read_done.wait(10)
        smarter_redis_server.stop()
        smarter_redis_server.start()  # empty: every generation is gone
        time.sleep(0.4)
        paused.release.set()
        reader.join(10)
    finally:
        paused.restore()
    assert result == [user]
    key = redis_domain.cache.keys.user(user.id)
    import redis as redis_py

    client = redis_py.Redis.from_url(smarter_redis_server.url)
    assert client.get(key) is None  # the old epoch's fill was refused
    client.close()


def test_the_memory_tier_is_bypassed_while_the_listener_is_down(
    redis_domain: Domain, smarter_redis_server: RedisServer
) -> None:
    user = UserFactory()
    redis_domain.users.get(user.id)
    assert redis_domain.cache.listener.healthy
    smarter_redis_server.pause()
    try:
        wait_until(lambda: not redis_domain.cache.listener.healthy)
        before = redis_domain.cache.stats.snapshot()["memory_bypassed"]
        assert redis_domain.users.get(user.id) == user  # from the database, no error
        assert redis_domain.cache.stats.snapshot()["memory_bypassed"] > before
    finally:
        smarter_redis_server.resume()
    # Its pongs come back after any message published meanwhile: the tier is trusted again.
    wait_until(lambda: redis_domain.cache.listener.healthy)
    redis_domain.users.get(user.id)
    hits = redis_domain.cache.stats.snapshot()["memory_hits"]
    assert redis_domain.users.get(user.id) == user
    assert redis_domain.cache.stats.snapshot()["memory_hits"] == hits + 1


def test_invalidations_during_an_outage_reach_the_other_process(
    redis_domain: Domain, other: Domain, smarter_redis_server: RedisServer
) -> None:
    redis_domain.consistency = "available"  # writes go on during the outage: the replay path
    user = UserFactory(first_name="Before")
    assert other.users.get(user.id) == user  # cached in other's memory and in Redis
    smarter_redis_server.pause()
    try:
        updated = redis_domain.users.update(user.id, first_name="During")  # no error
    finally:
        smarter_redis_server.resume()
    # Recovery: the writer's listener delivers the held-back invalidation by itself.
    assert redis_domain.cache.guard is not None
    wait_until(lambda: redis_domain.cache.guard.pending_deletes == 0)
    assert other.users.get(user.id) == updated
    other.cache.clear_memory()
    assert other.users.get(user.id) == updated  # and Redis does not hold the old row


def test_a_redis_restarted_from_an_older_snapshot_is_flushed(smarter_database_url: str) -> None:
    """The snapshot predates an invalidation: the entry it brings back must not be served."""
    import redis as redis_py

    with (
        RedisServer() as server,
        Domain(smarter_database_url, server.url, redis_options=FAST_FAIL) as domain,
    ):
        user = UserFactory(domain=domain, first_name="v1")
        key = domain.cache.keys.user(user.id)
        assert domain.users.get(user.id) == user
        client = redis_py.Redis.from_url(server.url)
        client.save()  # dump.rdb holds v1
        v2 = domain.users.update(user.id, first_name="v2")
        server.kill()
        server.start()  # loads dump.rdb: v1 is back
        assert client.exists(key)
        client.close()
        time.sleep(0.5)  # past the circuit breaker's retry_after
        domain.cache.clear_memory()
        assert domain.users.get(user.id) == v2
        assert domain.cache.stats.snapshot()["server_changes"] >= 1
    server.close()
