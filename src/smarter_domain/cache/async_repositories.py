"""The cached repositories' async front doors (``AsyncAccountRepository`` and its siblings).

Each wraps the sync cached repository of the same domain, so both doors share one cache and
every rule (keys, type and id checks, hydration, lists) has one copy, in ``repositories``:

- what the memory tier answers is served at once (the ``cached*`` methods: no await at all);
- a lookup by id that the memory tier lacks is looked up in Redis natively
  (``AsyncTieredCache.load_missed``);
- everything else runs the sync method in a greenlet (``concurrency.spawn``): its SQL goes
  through SQLAlchemy's asyncio driver, its Redis calls through ``redis.asyncio``; a write
  runs to its end even if the caller is cancelled (``concurrency.finish``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from dogpile.cache.api import NO_VALUE
from typing_extensions import Unpack

from ..model.entities import Account, User, UserProfile, is_valid_id
from ..model.fields import AccountChanges, AccountFields, UserFields, UserProfileFields
from .async_tiered import AsyncTieredCache
from .concurrency import finish, spawn
from .records import ProfileRecord
from .repositories import (
    CachedAccountRepository,
    CachedUserProfileRepository,
    CachedUserRepository,
    _EntityCache,
)

E = TypeVar("E", Account, User, ProfileRecord)


async def _get(entries: _EntityCache[E], cache: AsyncTieredCache, entity_id: int) -> E | None:
    """``_EntityCache.get`` from a coroutine: the memory tier, then Redis natively, then a
    greenlet for a load or a value that does not fit."""
    if not is_valid_id(entity_id):
        return None
    key = entries.key(entity_id)
    value = cache.peek(key)
    if value is NO_VALUE:
        load = entries.load
        value = await cache.load_missed(key, lambda: load(entity_id))
        if entries.fits(value, entity_id):
            return value  # type: ignore[no-any-return]
    elif value is None or type(value) is entries.kind:
        return value
    return await spawn(entries.served, key, value, entity_id)


class AsyncCachedAccountRepository:
    def __init__(self, sync: CachedAccountRepository, cache: AsyncTieredCache) -> None:
        self.sync = sync
        self._entries, self._cache = sync._entries, cache

    async def get(self, account_id: int) -> Account | None:
        return await _get(self._entries, self._cache, account_id)

    async def get_many(self, account_ids: Sequence[int]) -> dict[int, Account]:
        return await spawn(self.sync.get_many, account_ids)

    async def get_by_number(self, account_number: str) -> Account | None:
        found = self.sync.cached_by_number(account_number)
        if found is not NO_VALUE:
            return found  # type: ignore[no-any-return]
        return await spawn(self.sync.get_by_number, account_number)

    async def get_default(self) -> Account | None:
        found = self.sync.cached_default()
        if found is not NO_VALUE:
            return found  # type: ignore[no-any-return]
        return await spawn(self.sync.get_default)

    async def list_all(self) -> list[Account]:
        return await spawn(self.sync.list_all)

    async def add(
        self, *, name: str, account_number: str | None = None, **fields: Unpack[AccountFields]
    ) -> Account:
        return await finish(
            lambda: self.sync.add(name=name, account_number=account_number, **fields)
        )

    async def update(self, account_id: int, **changes: Unpack[AccountChanges]) -> Account:
        return await finish(lambda: self.sync.update(account_id, **changes))

    async def delete(self, account_id: int) -> None:
        await finish(self.sync.delete, account_id)


class AsyncCachedUserRepository:
    def __init__(self, sync: CachedUserRepository, cache: AsyncTieredCache) -> None:
        self.sync = sync
        self._entries, self._cache = sync._entries, cache

    async def get(self, user_id: int) -> User | None:
        return await _get(self._entries, self._cache, user_id)

    async def get_many(self, user_ids: Sequence[int]) -> dict[int, User]:
        return await spawn(self.sync.get_many, user_ids)

    async def get_by_username(self, username: str) -> User | None:
        found = self.sync.cached_by_username(username)
        if found is not NO_VALUE:
            return found  # type: ignore[no-any-return]
        return await spawn(self.sync.get_by_username, username)

    async def list_for_account(self, account_id: int) -> list[User]:
        return await spawn(self.sync.list_for_account, account_id)

    async def list_all(self) -> list[User]:
        return await spawn(self.sync.list_all)

    async def add(self, *, username: str, **fields: Unpack[UserFields]) -> User:
        return await finish(lambda: self.sync.add(username=username, **fields))

    async def update(self, user_id: int, **changes: Unpack[UserFields]) -> User:
        return await finish(lambda: self.sync.update(user_id, **changes))

    async def delete(self, user_id: int) -> None:
        await finish(self.sync.delete, user_id)


class AsyncCachedUserProfileRepository:
    def __init__(self, sync: CachedUserProfileRepository) -> None:
        self.sync = sync

    async def get(self, profile_id: int) -> UserProfile | None:
        found = self.sync.cached(profile_id)
        if found is not NO_VALUE:
            return found  # type: ignore[no-any-return]
        return await spawn(self.sync.get, profile_id)

    async def get_many(self, profile_ids: Sequence[int]) -> dict[int, UserProfile]:
        return await spawn(self.sync.get_many, profile_ids)

    async def get_for(self, user_id: int, account_id: int) -> UserProfile | None:
        found = self.sync.cached_for(user_id, account_id)
        if found is not NO_VALUE:
            return found  # type: ignore[no-any-return]
        return await spawn(self.sync.get_for, user_id, account_id)

    async def list_for_account(self, account_id: int) -> list[UserProfile]:
        return await spawn(self.sync.list_for_account, account_id)

    async def list_for_user(self, user_id: int) -> list[UserProfile]:
        return await spawn(self.sync.list_for_user, user_id)

    async def list_all(self) -> list[UserProfile]:
        return await spawn(self.sync.list_all)

    async def add(
        self, *, user_id: int, account_id: int, **fields: Unpack[UserProfileFields]
    ) -> UserProfile:
        return await finish(lambda: self.sync.add(user_id=user_id, account_id=account_id, **fields))

    async def update(self, profile_id: int, **changes: Unpack[UserProfileFields]) -> UserProfile:
        return await finish(lambda: self.sync.update(profile_id, **changes))

    async def delete(self, profile_id: int) -> None:
        await finish(self.sync.delete, profile_id)
