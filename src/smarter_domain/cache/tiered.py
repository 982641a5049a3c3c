"""Two dogpile regions used as one cache: memory first, then Redis, then the loader, filling
the tiers on the way back. dogpile's per-key lock makes concurrent misses in a process load
once; the Redis region's distributed lock does the same across processes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dogpile.cache import CacheRegion
from dogpile.cache.api import NO_VALUE

from ..changes import Change
from .keys import CacheKeys
from .stats import CacheStats

log = logging.getLogger(__name__)


class TieredCache:
    def __init__(
        self,
        memory: CacheRegion,
        redis: CacheRegion | None = None,
        *,
        keys: CacheKeys | None = None,
        stats: CacheStats | None = None,
    ) -> None:
        self.memory = memory
        self.redis = redis
        self.keys = keys or CacheKeys()
        self.stats = stats or CacheStats()

    def get_or_load(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None = None
    ) -> Any:
        value = self.memory.get(key, expiration_time=expiration_time)
        if value is not NO_VALUE:
            self.stats.add("memory_hits")
            return value
        self.stats.add("memory_misses")
        return self.memory.get_or_create(
            key, lambda: self._second_tier(key, loader, expiration_time), expiration_time
        )

    def _second_tier(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None
    ) -> Any:
        if self.redis is None:
            self.stats.add("loads")
            return loader()
        loaded = False

        def load() -> Any:
            nonlocal loaded
            loaded = True
            self.stats.add("loads")
            return loader()

        value = self.redis.get_or_create(key, load, expiration_time)
        self.stats.add("redis_misses" if loaded else "redis_hits")
        return value

    def get_many_or_load(
        self, keys: Sequence[str], loader: Callable[[list[str]], Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Each key once: memory, then one MGET, then one call of ``loader(missing_keys)``;
        a key the loader leaves out is cached as None."""
        found: dict[str, Any] = {}
        missing: list[str] = []
        in_memory = self.memory.get_multi(keys)  # type: ignore[no-untyped-call]
        for key, value in zip(keys, in_memory, strict=True):
            if value is NO_VALUE:
                missing.append(key)
            else:
                found[key] = value
        self.stats.add("memory_hits", len(found))
        if not missing:
            return found
        self.stats.add("memory_misses", len(missing))
        if self.redis is not None:
            from_redis: dict[str, Any] = {}
            still_missing: list[str] = []
            in_redis = self.redis.get_multi(missing)  # type: ignore[no-untyped-call]
            for key, value in zip(missing, in_redis, strict=True):
                if value is NO_VALUE:
                    still_missing.append(key)
                else:
                    from_redis[key] = value
            self.stats.add("redis_hits", len(from_redis))
            if from_redis:
                self.memory.set_multi(from_redis)
                found.update(from_redis)
            missing = still_missing
            if not missing:
                return found
            self.stats.add("redis_misses", len(missing))
        self.stats.add("loads")
        loaded = loader(missing)
        fresh = {key: loaded.get(key) for key in missing}
        self.set_many(fresh)
        found.update(fresh)
        return found

    def set_many(self, mapping: Mapping[str, Any]) -> None:
        if not mapping:
            return
        self.memory.set_multi(mapping)
        if self.redis is not None:
            self.redis.set_multi(mapping)

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` from every tier (deletes Redis could not take are replayed later)."""
        keys = list(keys)
        if not keys:
            return
        self.stats.add("invalidations", len(keys))
        self.memory.delete_multi(keys)
        if self.redis is not None:
            self.redis.delete_multi(keys)

    def invalidate_changes(self, changes: Sequence[Change]) -> None:
        """The unit of work's after-commit hook."""
        keys: set[str] = set()
        for change in changes:
            keys |= self.keys.for_change(change)
        self.invalidate(sorted(keys))

    def clear_memory(self) -> None:
        self.memory.invalidate(hard=True)  # type: ignore[no-untyped-call]
