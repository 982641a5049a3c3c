"""The memory tier's store: bounded, an approximate LRU in two generations of plain dicts."""

from __future__ import annotations

import threading
import time

import pytest
from dogpile.cache.api import NO_VALUE, CachedValue
from sqlalchemy import text

from smarter_domain.cache.regions import memory_region
from smarter_domain.cache.store import MemoryStore, Stamp, stamped


def entry(value: object) -> CachedValue:
    return stamped(CachedValue(value, {"ct": time.time(), "v": 2}))


def test_never_holds_maxsize_entries_or_more() -> None:
    store = MemoryStore(10)
    for n in range(1000):
        store[f"k{n}"] = entry(n)
        assert len(store) < 10
    assert store["k999"][0] == 999


def test_what_is_read_survives_and_what_is_not_is_dropped() -> None:
    store = MemoryStore(10)
    store["hot"] = entry("hot")
    for n in range(40):
        store[f"cold{n}"] = entry(n)
        assert store.lookup("hot") is not None  # read between every fill
    assert "cold0" not in store
    assert store.get("hot")[0] == "hot"


def test_a_deleted_entry_is_not_brought_back_by_a_concurrent_read() -> None:
    store = MemoryStore(4)
    store["a"] = entry(1)
    store["b"] = entry(2)  # "a" and "b" now in the old generation
    assert "a" in store.old
    found = store.old["a"]
    del store["a"]  # an invalidation between a reader's look and its promotion
    store.promote("a", found)
    assert "a" not in store
    with pytest.raises(KeyError):
        del store["a"]


def test_entries_carry_a_stamp_dogpile_reads_as_its_metadata() -> None:
    region = memory_region(60, maxsize=100)
    region.set("k", [1, 2])
    cached = region.actual_backend._cache.lookup("k")
    assert type(cached[1]) is Stamp
    assert cached[1]["ct"] == float(cached[1]) and cached[1]["v"] >= 1
    assert region.get("k") == [1, 2]
    region.delete("k")
    assert region.get("k") is NO_VALUE


def test_concurrent_fills_reads_and_deletes_keep_it_bounded_and_consistent() -> None:
    store = MemoryStore(64)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for n in range(3000):
                key = f"k{(n * 7 + offset) % 200}"
                store[key] = entry(n)
                store.get(key)
                if n % 5 == 0:
                    store.pop(key, None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(store) < 64
    for key in store.young:  # the young entry of a key is the one read, the newest
        assert store.get(key) is store.young[key]


def test_a_linked_lookup_entry_is_served_only_while_its_entity_entry_is_the_same(
    smarter_database_url: str,
) -> None:
    """A lookup by username shares the user entry's tuple (one object for both); a reload of
    the user alone (its key invalidated by itself) ends the link: the next lookup by username
    does not serve the old tuple's entity."""
    import smarter_domain as sd
    from smarter_domain.testing import UserFactory

    with sd.Domain(smarter_database_url) as domain:
        user = UserFactory(domain=domain, username="linked")
        assert domain.users.get_by_username("linked") == user
        store = domain.cache.memory.actual_backend._cache
        by_name = domain.cache.keys.user_by_username("linked")
        by_id = domain.cache.keys.user(user.id)
        assert store.lookup(by_name) is store.lookup(by_id)  # linked
        with domain.engine.begin() as connection:  # behind the cache's back, then only
            connection.execute(  # the entity's key is invalidated
                text("UPDATE smarter_user SET email = 'new@example.com' WHERE id = :id"),
                {"id": user.id},
            )
        domain.cache.invalidate([by_id])
        found = domain.users.get_by_username("linked")
        assert found is not None and found.email == "new@example.com"
        assert domain.cache.stats.snapshot()["decode_errors"] == 0
