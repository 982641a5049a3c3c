"""The async front door of a ``TieredCache``: the same cache (one memory tier, one set of
stripes, flights and guard, one listener), entered from coroutines.

- A memory-tier hit is the sync hit itself (``peek``): no await, no I/O.
- A Redis-tier hit is one awaited script call on the asyncio client
  (``ResilientRedisProxy.lookup_async``), then the sync logic's ``looked_up``, which only
  keeps the value in memory (no I/O, so no greenlet).
- Anything else (a miss, its lease and fill, an outage, a replay, a foreign entry, a list,
  an invalidation) is the sync logic run in a greenlet (``concurrency.spawn``), its I/O
  awaited on the loop.

So every rule of the coherence protocol has one copy, in ``tiered`` and ``resilience``; this
module only decides which calls need a greenlet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dogpile.cache.api import NO_VALUE

from .concurrency import finish, spawn
from .tiered import TieredCache


class AsyncTieredCache:
    def __init__(self, cache: TieredCache) -> None:
        self.cache = cache
        self.peek = cache.peek
        self.peek_through = cache.peek_through

    async def get_or_load(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None = None
    ) -> Any:
        """``TieredCache.get_or_load``; ``loader`` is a sync callable, run in the greenlet
        (it may ``await_only``)."""
        if expiration_time is None:
            value = self.cache.peek(key)
            if value is not NO_VALUE:
                return value
        return await self.load_missed(key, loader, expiration_time)

    async def load_missed(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None = None
    ) -> Any:
        """``get_or_load`` for a key ``peek`` just missed: Redis looked up natively when the
        sync logic would look it up first too (the memory tier is ours and usable, no load
        of the key is in flight here), else the whole miss in a greenlet."""
        cache = self.cache
        guard = cache.guard
        if (
            guard is None
            or guard.async_client is None
            or expiration_time is not None
            or not cache.memory_usable()
            or not cache.owns_memory_store
            or cache.flights.busy(key)
        ):
            return await spawn(cache.get_or_load_missed, key, loader, expiration_time)
        cache.stats.add("memory_misses")
        local = cache.stripes.snapshot(key)
        found = await guard.lookup_async(key)
        if found is NO_VALUE:  # not answered natively: the sync lookup, in a greenlet
            return await spawn(lambda: cache.looked_up(key, loader, local, guard.lookup(key)))
        if cache.is_hit(found):  # only kept in memory: nothing to await
            return cache.looked_up(key, loader, local, found)
        return await spawn(cache.looked_up, key, loader, local, found)

    async def values_or_load(
        self,
        slices: Iterable[Sequence[str]],
        count: int,
        loader: Callable[[list[str]], Mapping[str, Any]],
    ) -> list[Any]:
        return await spawn(self.cache.values_or_load, slices, count, loader)

    async def invalidate(self, keys: Iterable[str]) -> None:
        await finish(self.cache.invalidate, list(keys))
