"""Cached repositories: wrap any implementation of a repository interface.

Each entity is cached once, under its id. Lookups by username, account number, default flag
and membership lists cache ids and hydrate from the entity entries, so invalidating an entity
fixes every view of it; lists read their entities with one multi-get (MGETs of a few
hundred keys each, pipelined in one round trip). Writes go to the wrapped
repository; the domain invalidates what they made stale after their transaction commits.
An id that is not an int the database can hold finds nothing and never reaches a key
(``"1"`` would be keyed like ``1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Any, Generic, TypeVar

from dogpile.cache.api import NO_VALUE
from typing_extensions import Unpack

from ..model.entities import ID_MAX, ID_MIN, Account, User, UserProfile, is_valid_id
from ..model.fields import AccountChanges, AccountFields, UserFields, UserProfileFields
from ..model.repositories import AccountRepository, UserProfileRepository, UserRepository
from .records import ProfileRecord
from .tiered import TieredCache

E = TypeVar("E", Account, User, ProfileRecord)
K = TypeVar("K")


class _EntityCache(Generic[E]):
    """Entries of one entity type: ``key(id) -> entity | None``, loaded by ``load(id)``."""

    def __init__(
        self,
        cache: TieredCache,
        kind: type[E],
        key: Callable[[int], str],
        load: Callable[[int], E | None],
    ) -> None:
        self.cache = cache
        self.kind: type[E] = kind
        self.key = key
        self.prefix = key(0)[:-1]  # key(i) is the prefix and the id: built inline for lists
        if key(-12) != f"{self.prefix}-12":
            raise ValueError("an entity key must be a prefix followed by the id")
        self.load: Callable[[int], E | None] = load

    def _checked(self, key: str, value: Any, entity_id: int | None = None) -> Any:
        """``value`` if it may be served under ``key`` (None, or an entity of this kind, whose
        id is ``entity_id`` if given); else it is counted, dropped everywhere, and
        ``_WRONG_TYPE`` returned (the caller loads)."""
        if value is None:
            return value
        if not isinstance(value, self.kind):
            problem = f"holds a {type(value).__name__}, not a {self.kind.__name__}"
        elif entity_id is not None and value.id != entity_id:
            problem = f"holds the entity of id {value.id!r}"
        else:
            return value
        self.cache.foreign(key, problem)
        self.cache.invalidate([key])
        return _WRONG_TYPE

    def get(self, entity_id: int) -> E | None:
        if not is_valid_id(entity_id):
            return None
        key = self.key(entity_id)
        value = self.cache.peek(key)  # the hit path: no closure is built
        load = self.load
        if value is NO_VALUE:
            value = self.cache.load_missed(key, lambda: load(entity_id))
            if value is not None and type(value) is self.kind and value.id == entity_id:
                return value  # checked as it enters the memory tier, not on each hit
        elif value is None or type(value) is self.kind:
            return value
        return self.served(key, value, entity_id)

    def fits(self, value: Any, entity_id: int) -> bool:
        """Whether a value the tiers gave for ``entity_id`` may be served as it is."""
        return value is None or (type(value) is self.kind and value.id == entity_id)

    def served(self, key: str, value: Any, entity_id: int) -> E | None:
        """What ``get`` serves for a value that does not fit: checked (a foreign value is
        dropped everywhere, then loaded)."""
        value = self._checked(key, value, entity_id)
        return self.load(entity_id) if value is _WRONG_TYPE else value

    def cached(self, entity_id: int) -> Any:
        """What the memory tier holds for ``entity_id`` (the entity or None), or NO_VALUE:
        ``get``'s hit path alone, for the async front door (no I/O)."""
        if not is_valid_id(entity_id):
            return None
        value = self.cache.peek(self.key(entity_id))
        return value if value is None or type(value) is self.kind else NO_VALUE

    def get_many(
        self, ids: Sequence[int], load: Callable[[list[int]], Mapping[int, E]]
    ) -> dict[int, E]:
        """The entities of ``ids`` found (each once, in the order of ``ids``); ``load`` reads
        the ones no tier has."""
        if ids and _INT.issuperset(map(type, ids)):
            valid = _in_range(ids)  # every one an int (checked in C)
        else:
            valid = _in_range([i for i in ids if type(i) is int])
        values, complete = self._values(valid, load)
        if complete:
            return dict(zip(valid, values, strict=True))
        return {i: v for i, v in zip(valid, values, strict=True) if v is not None}

    def listed(self, ids: list[int], load: Callable[[list[int]], Mapping[int, E]]) -> list[E]:
        """The entities of a cached list of ids (``ids_of``), in its order, without those
        deleted meanwhile (an id listed twice, twice)."""
        valid = _in_range(ids)
        values, complete = self._values(valid, load)
        if len(valid) == len(ids):
            return values if complete else [v for v in values if v is not None]
        found = dict(zip(valid, values, strict=True))
        return [v for v in map(found.get, ids) if v is not None]

    def _values(
        self, ids: list[int], load: Callable[[list[int]], Mapping[int, E]]
    ) -> tuple[list[Any], bool]:
        """The entity (or None) of each of ``ids`` (valid, each once), in their order, and
        whether all were found. The keys are built a slice at a time, as the cache reads
        them (``TieredCache.values_or_load``: Redis works on the first slice while the next
        is built). The common case is passes of C over the list: keys built in a
        comprehension, the values' types and ids compared with one ``set`` and one ``==``."""
        key_of, prefix = self.key, self.prefix
        start = len(prefix)
        slices = (
            [f"{prefix}{i}" for i in ids[first : first + SLICE]]  # key(i) of each, inline
            for first in range(0, len(ids), SLICE)
        )

        def loader(missing: list[str]) -> dict[str, E]:
            loaded = load([int(key[start:]) for key in missing])  # each key is prefix + id
            return {key_of(i): entity for i, entity in loaded.items()}

        values = self.cache.values_or_load(slices, len(ids), loader)
        kind = self.kind
        if _of_type(kind, values) and list(map(_id_of, values)) == ids:  # the common case
            return values, True
        checked: list[Any] = []
        for entity_id, value in zip(ids, values, strict=True):
            if value is not None and (type(value) is not kind or value.id != entity_id):
                value = self._checked(key_of(entity_id), value, entity_id)
                if value is _WRONG_TYPE:
                    value = load([entity_id]).get(entity_id)
            checked.append(value)
        return checked, False

    def id_of(self, key: str, load: Callable[[K], E | None], argument: K) -> int | None:
        """A secondary lookup caches only the id that ``load(argument)`` leads to. (The
        entity it read is not cached on the side: every fill goes through a guarded path.)"""
        value = self.cache.peek(key)  # the hit path: no closure is built
        if value is None or type(value) is int:
            return value
        if type(value) is self.kind:  # linked to its entity's entry (TieredCache.link)
            return int(value.id)

        def load_id() -> int | None:
            entity = load(argument)
            return None if entity is None else entity.id

        value = self.cache.get_or_load(key, load_id)
        if type(value) is self.kind:
            return int(value.id)
        return value if value is None or type(value) is int else self._bad_id(key, load_id)

    def lookup(
        self, key_of: Callable[[K], str], load: Callable[[K], E | None]
    ) -> Callable[[K], E | None]:
        """A secondary lookup (by username, account number, ...) as one function: its key,
        then one look at the memory tier for the id and the entity both (the hit path, kept
        to a single frame), else ``id_of`` then ``get``, and the key's memory entry linked to
        the entity's (``TieredCache.link``)."""
        peek_through, entity_key, kind = self.cache.peek_through, self.key, self.kind
        link = self.cache.link

        def lookup(argument: K) -> E | None:
            key = key_of(argument)
            value = peek_through(key, entity_key)
            if value is None or type(value) is kind:
                return value
            found = self.id_of(key, load, argument)
            if found is None:
                return None
            entity = self.get(found)
            if entity is not None:
                link(key, entity_key(found), found)
            return entity

        return lookup

    def cached_lookup(self, key_of: Callable[[K], str]) -> Callable[[K], Any]:
        """``lookup``'s hit path alone (the entity or None from the memory tier, else
        NO_VALUE), for the async front door."""
        peek_through, entity_key, kind = self.cache.peek_through, self.key, self.kind

        def cached(argument: K) -> Any:
            value = peek_through(key_of(argument), entity_key)
            return value if value is None or type(value) is kind else NO_VALUE

        return cached

    def ids_of(self, key: str, load: Callable[[], Sequence[E]]) -> list[int]:
        def load_ids() -> list[int]:
            return [e.id for e in load()]

        value = self.cache.get_or_load(key, load_ids)
        if type(value) is list and _INT.issuperset(map(type, value)):
            return value
        self.cache.foreign(key, "is not a list of ids")
        self.cache.invalidate([key])
        return load_ids()

    def _bad_id(self, key: str, load_id: Callable[[], int | None]) -> int | None:
        self.cache.foreign(key, "is not an id")
        self.cache.invalidate([key])
        return load_id()


_WRONG_TYPE = object()

SLICE = 256
"""Keys per MGET of a multi-get: the first goes out while the next slice's keys are built."""
_INT = frozenset((int,))
_id_of = attrgetter("id")


def _of_type(kind: type[Any], values: Iterable[Any]) -> bool:
    """Whether every one of ``values`` is exactly of type ``kind`` (one pass of C)."""
    return {kind}.issuperset(map(type, values))


def _in_range(ids: list[int] | Sequence[int]) -> list[int]:
    """``ids`` (ints) that a database can hold, each once, in their order (in C when all
    are)."""
    if ids and min(ids) >= ID_MIN and max(ids) <= ID_MAX:
        valid = list(ids)
    else:
        valid = [i for i in ids if ID_MIN <= i <= ID_MAX]
    if len(set(valid)) != len(valid):
        valid = list(dict.fromkeys(valid))
    return valid


class CachedAccountRepository:
    """The ``cached*`` methods are the memory tier's answer alone (NO_VALUE when it has
    none), for the async front door's hit path; the others are the repository interface."""

    get_by_number: Callable[[str], Account | None]

    def __init__(self, inner: AccountRepository, cache: TieredCache) -> None:
        self.inner = inner
        self.keys = cache.keys
        self._entries = _EntityCache(
            cache, Account, cache.keys.account, lambda i: self.inner.get(i)
        )
        self.get_by_number = self._entries.lookup(
            cache.keys.account_by_number, lambda number: self.inner.get_by_number(number)
        )
        self._default = self._entries.lookup(
            lambda _: cache.keys.default_account(), lambda _: self.inner.get_default()
        )
        self.cached_by_number = self._entries.cached_lookup(cache.keys.account_by_number)
        self._cached_default = self._entries.cached_lookup(lambda _: cache.keys.default_account())

    def cached(self, account_id: int) -> Any:
        return self._entries.cached(account_id)

    def cached_default(self) -> Any:
        return self._cached_default(None)

    def get(self, account_id: int) -> Account | None:
        return self._entries.get(account_id)

    def get_many(self, account_ids: Sequence[int]) -> dict[int, Account]:
        return self._entries.get_many(account_ids, self.inner.get_many)

    def get_default(self) -> Account | None:
        return self._default(None)

    def list_all(self) -> list[Account]:
        ids = self._entries.ids_of(self.keys.all_accounts(), self.inner.list_all)
        return self._entries.listed(ids, self.inner.get_many)

    def add(
        self, *, name: str, account_number: str | None = None, **fields: Unpack[AccountFields]
    ) -> Account:
        return self.inner.add(name=name, account_number=account_number, **fields)

    def update(self, account_id: int, **changes: Unpack[AccountChanges]) -> Account:
        return self.inner.update(account_id, **changes)

    def delete(self, account_id: int) -> None:
        self.inner.delete(account_id)


class CachedUserRepository:
    """The ``cached*`` methods are the memory tier's answer alone (see
    ``CachedAccountRepository``)."""

    get_by_username: Callable[[str], User | None]

    def __init__(self, inner: UserRepository, cache: TieredCache) -> None:
        self.inner = inner
        self.keys = cache.keys
        self._entries = _EntityCache(cache, User, cache.keys.user, lambda i: self.inner.get(i))
        self.get_by_username = self._entries.lookup(
            cache.keys.user_by_username, lambda username: self.inner.get_by_username(username)
        )
        self.cached_by_username = self._entries.cached_lookup(cache.keys.user_by_username)

    def cached(self, user_id: int) -> Any:
        return self._entries.cached(user_id)

    def get(self, user_id: int) -> User | None:
        return self._entries.get(user_id)

    def get_many(self, user_ids: Sequence[int]) -> dict[int, User]:
        return self._entries.get_many(user_ids, self.inner.get_many)

    def list_for_account(self, account_id: int) -> list[User]:
        if not is_valid_id(account_id):
            return []
        key = self.keys.users_of_account(account_id)
        ids = self._entries.ids_of(key, lambda: self.inner.list_for_account(account_id))
        if not self._entries.cache.lists_cached(len(ids)):
            return self.inner.list_for_account(account_id)  # it would evict itself
        return self._entries.listed(ids, self.inner.get_many)

    def list_all(self) -> list[User]:
        """Every user: an administrative listing, read from the wrapped repository."""
        return self.inner.list_all()

    def add(self, *, username: str, **fields: Unpack[UserFields]) -> User:
        return self.inner.add(username=username, **fields)

    def update(self, user_id: int, **changes: Unpack[UserFields]) -> User:
        return self.inner.update(user_id, **changes)

    def delete(self, user_id: int) -> None:
        self.inner.delete(user_id)


class CachedUserProfileRepository:
    """Profiles are cached as ``ProfileRecord``s and hydrated from the user and account
    entries of the cached repositories given."""

    def __init__(
        self,
        inner: UserProfileRepository,
        cache: TieredCache,
        users: CachedUserRepository,
        accounts: CachedAccountRepository,
    ) -> None:
        self.inner = inner
        self.keys = cache.keys
        self.users = users
        self.accounts = accounts
        self._entries = _EntityCache(
            cache, ProfileRecord, cache.keys.profile, lambda i: self._record(self.inner.get(i))
        )

    @staticmethod
    def _record(profile: UserProfile | None) -> ProfileRecord | None:
        return None if profile is None else ProfileRecord.of(profile)

    @staticmethod
    def _records(profiles: Sequence[UserProfile]) -> list[ProfileRecord]:
        return [ProfileRecord.of(p) for p in profiles]

    def _hydrate(self, records: Sequence[ProfileRecord]) -> list[UserProfile]:
        users = self.users.get_many(sorted({r.user_id for r in records}))
        accounts = self.accounts.get_many(sorted({r.account_id for r in records}))
        return [
            r.hydrate(users[r.user_id], accounts[r.account_id])
            for r in records
            if r.user_id in users and r.account_id in accounts
        ]

    def get(self, profile_id: int) -> UserProfile | None:
        record = self._entries.get(profile_id)
        if record is None:
            return None
        user, account = self.users.get(record.user_id), self.accounts.get(record.account_id)
        return self._hydrated(record, user, account)

    @staticmethod
    def _hydrated(
        record: ProfileRecord, user: User | None, account: Account | None
    ) -> UserProfile | None:
        """A profile whose user or account is gone (deleted meanwhile) is no profile."""
        return None if user is None or account is None else record.hydrate(user, account)

    def cached(self, profile_id: int) -> Any:
        """The memory tier's answer alone (see ``CachedAccountRepository``): the record, its
        user and its account all there, or NO_VALUE."""
        record = self._entries.cached(profile_id)
        if record is None or record is NO_VALUE:
            return record
        user, account = self.users.cached(record.user_id), self.accounts.cached(record.account_id)
        if user is NO_VALUE or account is NO_VALUE:
            return NO_VALUE
        return self._hydrated(record, user, account)

    def cached_for(self, user_id: int, account_id: int) -> Any:
        """``get_for``'s answer from the memory tier alone, or NO_VALUE."""
        if not (is_valid_id(user_id) and is_valid_id(account_id)):
            return None
        found = self._entries.cache.peek(self.keys.profile_for(user_id, account_id))
        if found is None:
            return None
        return self.cached(found) if type(found) is int else NO_VALUE

    def _load_records(self, ids: list[int]) -> dict[int, ProfileRecord]:
        return {r.id: r for r in self._records(list(self.inner.get_many(ids).values()))}

    def get_many(self, profile_ids: Sequence[int]) -> dict[int, UserProfile]:
        records = self._entries.get_many(profile_ids, self._load_records)
        return {p.id: p for p in self._hydrate(list(records.values()))}

    def _list(self, key: str, load: Callable[[], list[UserProfile]]) -> list[UserProfile]:
        ids = self._entries.ids_of(key, lambda: self._records(load()))
        if not self._entries.cache.lists_cached(len(ids)):
            return load()  # it would evict itself from the memory tier: the SQL is faster
        return self._hydrate(self._entries.listed(ids, self._load_records))

    def get_for(self, user_id: int, account_id: int) -> UserProfile | None:
        if not (is_valid_id(user_id) and is_valid_id(account_id)):
            return None
        key = self.keys.profile_for(user_id, account_id)
        found = self._entries.id_of(
            key, lambda ids: self._record(self.inner.get_for(*ids)), (user_id, account_id)
        )
        return None if found is None else self.get(found)

    def list_for_account(self, account_id: int) -> list[UserProfile]:
        if not is_valid_id(account_id):
            return []
        key = self.keys.profiles_of_account(account_id)
        return self._list(key, lambda: self.inner.list_for_account(account_id))

    def list_for_user(self, user_id: int) -> list[UserProfile]:
        if not is_valid_id(user_id):
            return []
        key = self.keys.profiles_of_user(user_id)
        return self._list(key, lambda: self.inner.list_for_user(user_id))

    def list_all(self) -> list[UserProfile]:
        """Every profile: an administrative listing, read from the wrapped repository."""
        return self.inner.list_all()

    def add(
        self, *, user_id: int, account_id: int, **fields: Unpack[UserProfileFields]
    ) -> UserProfile:
        return self.inner.add(user_id=user_id, account_id=account_id, **fields)

    def update(self, profile_id: int, **changes: Unpack[UserProfileFields]) -> UserProfile:
        return self.inner.update(profile_id, **changes)

    def delete(self, profile_id: int) -> None:
        self.inner.delete(profile_id)
