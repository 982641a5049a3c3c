"""The memory tier's stampede guard and its one-look hit path for secondary lookups."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from smarter_domain import Domain
from smarter_domain.cache.singleflight import SingleFlight
from smarter_domain.testing import UserFactory

pytestmark = pytest.mark.smarter_backends("sqlite")

WAITERS = 8


def crowd(flights: SingleFlight, load: Any, arrived: list[int]) -> list[Any]:
    """The leader's load starts first; WAITERS more callers then pile onto the same key."""
    results: list[Any] = []
    lock = threading.Lock()

    def call() -> None:
        with lock:
            arrived.append(1)
        try:
            value = flights.run("k", 0, load)
        except RuntimeError as exc:
            value = exc
        with lock:
            results.append(value)

    threads = [threading.Thread(target=call) for _ in range(WAITERS + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(flights) == 0
    return results


def leader_waits_for_the_crowd(arrived: list[int]) -> None:
    deadline = time.monotonic() + 5
    while len(arrived) < WAITERS + 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # let the last arrivals reach the flight's lock


def test_concurrent_misses_share_one_shareable_load() -> None:
    flights, arrived, loads = SingleFlight(), [], []

    def load() -> tuple[str, bool]:
        loads.append(1)
        leader_waits_for_the_crowd(arrived)
        return "value", True

    assert crowd(flights, load, arrived) == ["value"] * (WAITERS + 1)
    assert len(loads) == 1


def test_a_value_that_may_not_be_shared_is_loaded_again_by_each_waiter() -> None:
    # The leader's value was refused by the cache (an invalidation touched the key while it
    # loaded): it may predate a write that finished before the waiters arrived.
    flights, arrived, loads = SingleFlight(), [], []

    def load() -> tuple[int, bool]:
        loads.append(1)
        if len(loads) == 1:
            leader_waits_for_the_crowd(arrived)
            return 1, False
        return 2, True

    results = crowd(flights, load, arrived)
    assert results.count(1) == 1  # only the leader sees its own, possibly old, value
    assert results.count(2) == WAITERS
    assert 2 <= len(loads) <= WAITERS + 1


def test_a_failed_load_fails_its_caller_and_lets_the_waiters_try() -> None:
    flights, arrived, loads = SingleFlight(), [], []

    def load() -> tuple[str, bool]:
        loads.append(1)
        if len(loads) == 1:
            leader_waits_for_the_crowd(arrived)
            raise RuntimeError("database down")
        return "recovered", True

    results = crowd(flights, load, arrived)
    assert [r for r in results if isinstance(r, RuntimeError)] != []
    assert results.count("recovered") == WAITERS


def test_a_lookup_by_username_is_one_memory_hit(domain: Domain) -> None:
    user = UserFactory(username="hot")
    assert domain.users.get_by_username("hot") == user
    domain.cache.stats.reset()
    assert domain.users.get_by_username("hot") == user
    stats = domain.cache.stats.snapshot()
    assert (stats["memory_hits"], stats["memory_misses"], stats["loads"]) == (1, 0, 0)
    assert domain.users.get_by_username("nobody") is None
    domain.cache.stats.reset()
    assert domain.users.get_by_username("nobody") is None  # the cached None, in one look
    assert domain.cache.stats.snapshot()["memory_hits"] == 1


def test_the_one_look_hit_path_honours_the_ttl(smarter_database_url: str) -> None:
    with Domain(smarter_database_url, cache_ttl=1) as domain:
        user = UserFactory(username="brief", domain=domain)
        assert domain.users.get_by_username("brief") == user
        time.sleep(1.05)
        domain.cache.stats.reset()
        assert domain.users.get_by_username("brief") == user
        assert domain.cache.stats.snapshot()["loads"] == 2  # the id and the entity, again


def test_the_one_look_hit_path_sees_an_evicted_entity_entry(domain: Domain) -> None:
    user = UserFactory(username="evicted")
    assert domain.users.get_by_username("evicted") == user
    domain.cache.drop_local([domain.cache.keys.user(user.id)])
    domain.cache.stats.reset()
    assert domain.users.get_by_username("evicted") == user
    assert domain.cache.stats.snapshot()["loads"] == 1  # the entity only: the id was cached


def test_a_waiter_that_arrived_after_an_invalidation_does_not_take_the_leaders_value() -> None:
    flights, results = SingleFlight(), []
    started, release = threading.Event(), threading.Event()

    def leader_load() -> tuple[str, bool]:
        started.set()
        release.wait(5)
        return "old", True  # cached: nothing touched the key before the leader's check

    leader = threading.Thread(target=lambda: results.append(flights.run("k", 0, leader_load)))
    leader.start()
    assert started.wait(5)
    # An invalidation bumped the key's generation (0 -> 1), then this caller arrived.
    waiter = threading.Thread(
        target=lambda: results.append(flights.run("k", 1, lambda: ("new", True)))
    )
    waiter.start()
    time.sleep(0.05)
    release.set()
    leader.join(5)
    waiter.join(5)
    assert sorted(results) == ["new", "old"]


def test_an_invalidation_between_the_check_and_the_store_is_not_lost(domain: Domain) -> None:
    from dogpile.cache.api import NO_VALUE

    user = UserFactory(domain=domain)
    cache = domain.cache
    key = cache.keys.user(user.id)
    unchanged = cache.stripes.unchanged
    landed: list[str] = []

    def invalidated_just_before(k: str, snapshot: Any) -> bool:
        if k == key and not landed:  # an invalidation's bump lands at the fill's check (its
            landed.append(k)  # delete waits for the store's lock, which the fill holds)
            cache.stripes.bump([k])
        return unchanged(k, snapshot)

    cache.stripes.unchanged = invalidated_just_before  # type: ignore[method-assign]
    try:
        assert domain.users.get(user.id) == user
    finally:
        del cache.stripes.unchanged
    assert landed == [key]
    assert cache.peek(key) is NO_VALUE
    assert cache.memory.get(key) is NO_VALUE


def test_a_waiter_gives_back_what_it_holds_before_it_waits() -> None:
    """A thread that holds the key's lease (taken by its own lookup) and finds another
    thread's flight gives the lease back first: that thread may be waiting for it."""
    flights = SingleFlight()
    started, finish = threading.Event(), threading.Event()
    given_back: list[str] = []

    def slow() -> tuple[Any, bool]:
        started.set()
        assert finish.wait(5)
        return "value", True

    leader = threading.Thread(target=lambda: flights.run("k", 0, slow))
    leader.start()
    assert started.wait(5)
    results: list[Any] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            flights.run("k", 0, lambda: ("own", True), on_wait=lambda: given_back.append("k"))
        )
    )
    waiter.start()
    time.sleep(0.05)
    assert given_back == ["k"]  # before the leader landed
    finish.set()
    leader.join(5)
    waiter.join(5)
    assert results == ["value"]
    assert flights.run("k", 0, lambda: ("alone", True), on_wait=given_back.clear) == "alone"
    assert given_back == ["k"]  # nobody to wait for: not called
