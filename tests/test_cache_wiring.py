"""Dependency injection: cached repositories wrap any implementation; regions are injectable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dogpile.cache import make_region

from smarter_domain import Domain, User
from smarter_domain.cache import CachedUserRepository, TieredCache, memory_region
from smarter_domain.testing import UserFactory

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class InMemoryUsers:
    """A repository that is not SQL at all: the cached wrapper only needs the interface."""

    def __init__(self) -> None:
        self.rows = {1: User(id=1, username="ada", date_joined=NOW)}
        self.reads = 0

    def get(self, user_id: int) -> User | None:
        self.reads += 1
        return self.rows.get(user_id)

    def get_many(self, user_ids: Sequence[int]) -> dict[int, User]:
        self.reads += 1
        return {i: self.rows[i] for i in user_ids if i in self.rows}

    def get_by_username(self, username: str) -> User | None:
        self.reads += 1
        return next((u for u in self.rows.values() if u.username == username), None)

    def list_for_account(self, account_id: int) -> list[User]:
        self.reads += 1
        return list(self.rows.values())

    def add(self, *, username: str, **fields: Any) -> User:
        raise NotImplementedError

    def update(self, user_id: int, **changes: Any) -> User:
        raise NotImplementedError

    def delete(self, user_id: int) -> None:
        raise NotImplementedError


def test_the_cached_repository_wraps_any_implementation() -> None:
    inner = InMemoryUsers()
    users = CachedUserRepository(inner, TieredCache(memory_region(60)))
    for _ in range(3):
        assert users.get_by_username("ada") == inner.rows[1]
        assert users.get(1) == inner.rows[1]
        assert users.list_for_account(7) == [inner.rows[1]]
        assert users.get(2) is None
    assert inner.reads == 4  # by username, the entity, the list, and the miss for id 2


def test_an_application_injects_its_own_regions(smarter_database_url: str) -> None:
    region = make_region(name="app.users").configure("dogpile.cache.memory", expiration_time=5)
    with Domain(smarter_database_url, memory_region=region) as domain:
        user = UserFactory(domain=domain)
        domain.users.get(user.id)
        assert region.get(domain.cache.keys.user(user.id)) == user
        assert domain.cache.stats.snapshot()["loads"] == 1


def test_namespaces_keep_domains_apart(smarter_database_url: str, smarter_redis_url: str) -> None:
    with (
        Domain(smarter_database_url, smarter_redis_url, cache_namespace="app-a") as a,
        Domain(smarter_database_url, smarter_redis_url, cache_namespace="app-b") as b,
    ):
        user = UserFactory(domain=a)
        assert a.users.get(user.id) == user
        assert b.users.get(user.id) == user
        assert a.cache.keys.user(user.id) != b.cache.keys.user(user.id)
        assert b.cache.stats.snapshot()["redis_hits"] == 0
