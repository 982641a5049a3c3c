"""The AsyncDomain: the composition root of the async front door, for asyncio applications
(FastAPI, Litestar, Starlette, aiohttp, arq workers).

It wires a ``Domain`` (its cache, repositories, units of work, brokers and utilities: one
copy of every rule) on the sync face of an ``AsyncEngine`` (``engine.sync_engine``, driven by
aiosqlite or asyncpg) and gives it a ``redis.asyncio`` client beside its blocking one; then it
exposes coroutines that run that logic in greenlets (``cache.concurrency``), as SQLAlchemy's
``AsyncSession`` runs the ``Session``. A memory-tier hit awaits nothing; a Redis-tier hit by
id is one awaited script call; everything else awaits native asyncio I/O. Keys, records,
generation tokens, leases, the channel and the listener are the sync domain's: sync and async
processes share one cache and invalidate each other's memory tiers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from dogpile.cache import CacheRegion

from . import forking, migrations
from .adapters.database import create_async_domain_engine
from .cache.async_repositories import (
    AsyncCachedAccountRepository,
    AsyncCachedUserProfileRepository,
    AsyncCachedUserRepository,
)
from .cache.async_tiered import AsyncTieredCache
from .cache.concurrency import finish
from .cache.keys import DEFAULT_NAMESPACE
from .cache.options import RedisOptions
from .domain import Consistency, Domain
from .model.changes import Change
from .model.entities import Entity, UserProfile
from .model.errors import ConfigurationError
from .services.actors_async import find_actor
from .services.async_unit_of_work import AsyncUnitOfWork, sync_session_of
from .services.async_utils import AsyncAccountUtilities
from .services.health import Health, check_health_async
from .settings import DEFAULT_CACHE_TTL, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from .cache.async_redis import AwaitingRedis
    from .services.brokers import ManifestSource


class AsyncDomain:
    """``AsyncDomain(database_url=..., redis_url=None, cache_ttl=600)``: the arguments of
    ``Domain``, with ``engine=`` an ``AsyncEngine`` the application owns (left open on
    ``aclose()``). ``sqlite://`` and ``postgresql://`` URLs use aiosqlite and asyncpg.

    ``async with AsyncDomain(...) as adomain:`` (or ``await adomain.aclose()``) closes what
    it opened. Build it anywhere; its first I/O happens on the loop that calls it (its Redis
    client is per event loop, made on first use there)."""

    def __init__(
        self,
        database_url: str | None = None,
        redis_url: str | None = None,
        cache_ttl: int = DEFAULT_CACHE_TTL,
        *,
        engine: AsyncEngine | None = None,
        engine_options: dict[str, Any] | None = None,
        memory_region: CacheRegion | None = None,
        redis_region: CacheRegion | None = None,
        memory_cache_size: int = 10_000,
        cache_namespace: str = DEFAULT_NAMESPACE,
        redis_options: RedisOptions | None = None,
        consistency: Consistency = "strict",
        migrations_table: str = migrations.DEFAULT_VERSION_TABLE,
    ) -> None:
        if redis_region is not None:
            raise ConfigurationError(
                "AsyncDomain opens its own asyncio Redis client: pass redis_url= (and "
                "redis_options=), not redis_region="
            )
        if engine is not None and not hasattr(engine, "sync_engine"):
            raise ConfigurationError(
                f"engine= takes an AsyncEngine here, not {type(engine).__name__}: use Domain "
                "for a blocking engine"
            )
        self._owns_engine = engine is None
        if engine is None:
            url = database_url or Settings().database_url
            engine = create_async_domain_engine(url, **(engine_options or {}))
        self.engine: AsyncEngine = engine
        try:
            self.sync = Domain(
                database_url,
                redis_url,
                cache_ttl,
                engine=engine.sync_engine,
                memory_region=memory_region,
                memory_cache_size=memory_cache_size,
                cache_namespace=cache_namespace,
                redis_options=redis_options,
                consistency=consistency,
                migrations_table=migrations_table,
                _reads_in_autocommit=self._owns_engine,
                # Built on the loop, maybe: the listener subscribes in its thread, and the
                # memory tier is bypassed until it has (nothing waits for it here).
                _subscribe_wait=0.0,
                _front_door="async",
            )
        except BaseException:
            if self._owns_engine:
                engine.sync_engine.dispose()  # nothing was checked out yet: no I/O to await
            raise
        self.cache = self.sync.cache
        self._redis: AwaitingRedis | None = None
        guard, target = self.cache.guard, self.sync.redis_target
        if guard is not None and target is not None:
            from .cache.async_redis import attach_async_client  # (the Domain has redis-py)

            self._redis = attach_async_client(guard, target, self.sync.redis_options)
        front = self.acache = AsyncTieredCache(self.cache)
        self.accounts = AsyncCachedAccountRepository(self.sync.accounts, front)
        self.users = AsyncCachedUserRepository(self.sync.users, front)
        self.profiles = AsyncCachedUserProfileRepository(self.sync.profiles)
        self.utils = AsyncAccountUtilities(self.sync.utils)
        self.settings = self.sync.settings
        self.consistency = self.sync.consistency
        self._closed = False
        forking.track(self)  # (its sync domain makes the cache the child's own)

    def _after_fork_in_child(self) -> None:
        """In a forked child (``forking``): the pooled connections are the parent's (for
        aiosqlite, their threads do not even exist here): forgotten, never closed. The Redis
        clients renew themselves (they compare the process id)."""
        if not self._closed and self._owns_engine:
            self.engine.sync_engine.dispose(close=False)

    @classmethod
    def from_env(cls) -> AsyncDomain:
        settings = Settings.from_env()
        return cls(settings.database_url, settings.redis_url, settings.cache_ttl)

    def unit_of_work(self, session: AsyncSession | None = None) -> AsyncUnitOfWork:
        """``async with adomain.unit_of_work() as uow``; with ``session=`` (the application's
        ``AsyncSession``), inside the application's transaction, as the sync
        ``Domain.unit_of_work`` joins a ``Session``."""
        return AsyncUnitOfWork(self.sync.unit_of_work(sync_session_of(session)))

    async def actor(self, username: str, account_number: str | None = None) -> UserProfile:
        """``Domain.actor``: the profile ``username`` acts as (``actors.find_actor``)."""
        return await find_actor(self.users, self.profiles, self.accounts, username, account_number)

    async def health(self, timeout: float = 2.0) -> Health:
        """``Domain.health``, awaited natively: never raises, never takes much longer than
        ``timeout``."""
        return await check_health_async(self.engine, self.cache, timeout)

    def on_commit(self, hook: Callable[[Sequence[Change]], Awaitable[None] | None]) -> None:
        """Call ``hook(changes)`` (awaited if it is async) after every unit of work of this
        domain commits."""
        self.sync.on_commit(cast(Callable[[Sequence[Change]], None], hook))

    async def migrate(self, revision: str = "head") -> None:
        """``Domain.migrate`` through the asyncio driver."""
        await finish(self.sync.migrate, revision)

    async def bootstrap(self) -> UserProfile:
        """``Domain.bootstrap``: the platform account, its superuser and profile."""
        return await finish(self.sync.bootstrap)

    async def apply(
        self, manifest: ManifestSource, *, actor: UserProfile, session: AsyncSession | None = None
    ) -> Entity:
        """``Domain.apply``: one manifest, with the broker of its kind (``session=``: inside
        the application's ``AsyncSession``)."""
        return await finish(
            self.sync.apply, manifest, actor=actor, session=sync_session_of(session)
        )

    async def apply_all(
        self,
        manifests: ManifestSource | Sequence[ManifestSource],
        *,
        actor: UserProfile,
        session: AsyncSession | None = None,
    ) -> list[Entity]:
        """``Domain.apply_all``: every document in order, in one transaction."""
        return await finish(
            self.sync.apply_all, manifests, actor=actor, session=sync_session_of(session)
        )

    async def aclose(self) -> None:
        """Close what this domain opened: the listener, the Redis clients (after replaying
        the invalidations an outage held back, if Redis is back) and the engine it made."""
        if self._closed:
            return
        self._closed = True
        try:
            # In a thread: the listener's thread is joined, and the replay of held-back
            # invalidations and the blocking client's close use blocking sockets.
            await asyncio.to_thread(self.sync.close)
        finally:
            try:
                if self._redis is not None:
                    await self._redis.aclose()
            finally:
                if self._owns_engine:
                    await self.engine.dispose()

    async def close(self) -> None:
        """``aclose()`` (the contract's name)."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        """Wait (2 s at most, off the loop) until the invalidation listener has subscribed:
        until then the memory tier is bypassed (``Domain`` waits as it is built)."""
        await self.listening()
        return self

    async def listening(self, timeout: float = 2.0) -> bool:
        """Whether the invalidation listener is subscribed (waiting ``timeout`` seconds at
        most, in a thread); True without one (no Redis)."""
        listener = self.cache.listener
        if listener is None or listener.healthy:
            return True
        return bool(await asyncio.to_thread(listener.wait_subscribed, timeout))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"AsyncDomain(database_url={url!r}, redis_url={self.settings.redis_url!r})"
