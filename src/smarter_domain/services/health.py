"""What a readiness probe asks: can this process reach its database and Redis, and is it
hearing other processes' invalidations?

``check_health`` never raises and never takes longer than its timeout, whatever the state of
the servers: each check runs in a short-lived daemon thread that is abandoned (and reported
as timed out) if a server hangs, since a probe that hangs is worse than one that says "down".
Messages name the failure's type and text, never a URL or password.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine, text

from ..cache.tiered import TieredCache

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

Status = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class ComponentHealth:
    ok: bool
    detail: str
    latency_ms: float | None = None


@dataclass(frozen=True)
class Health:
    """``status``: ``ok``; ``degraded`` when Redis or the invalidation listener is not (reads
    are served from the database, and with strict consistency writes are refused until Redis
    is back); ``down`` when the database cannot be reached. ``redis`` and ``listener`` are
    None when no Redis is configured."""

    database: ComponentHealth
    redis: ComponentHealth | None
    listener: ComponentHealth | None
    pending_invalidations: int

    @property
    def status(self) -> Status:
        if not self.database.ok:
            return "down"
        others = [c for c in (self.redis, self.listener) if c is not None]
        return "ok" if all(c.ok for c in others) else "degraded"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for a health endpoint."""
        found = asdict(self)
        found["status"] = self.status
        return found


def _timed(check: Callable[[], None], timeout: float) -> ComponentHealth:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            check()
        except BaseException as exc:  # reported, never raised
            outcome.append(exc)
        else:
            outcome.append(None)

    started = time.perf_counter()
    worker = threading.Thread(target=run, name="smarter-domain-health", daemon=True)
    worker.start()
    worker.join(timeout)
    elapsed = round((time.perf_counter() - started) * 1000, 3)
    if not outcome:
        return ComponentHealth(False, f"no answer within {timeout:g} s", elapsed)
    failure = outcome[0]
    if failure is not None:
        message = " ".join(str(failure).split())[:200]
        return ComponentHealth(False, f"{type(failure).__name__}: {message}", elapsed)
    return ComponentHealth(True, "ok", elapsed)


def check_health(engine: Engine, cache: TieredCache, timeout: float = 2.0) -> Health:
    def database() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    guard = cache.guard
    redis: ComponentHealth | None = None
    if guard is not None:
        redis = _timed(lambda: guard.client.ping(), timeout)
    return _assembled(cache, _timed(database, timeout), redis)


async def _timed_async(check: Callable[[], Awaitable[Any]], timeout: float) -> ComponentHealth:
    """``_timed`` on the event loop: the check is awaited, and cancelled past ``timeout``."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        return ComponentHealth(False, f"no answer within {timeout:g} s", elapsed)
    except Exception as failure:  # reported, never raised
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        message = " ".join(str(failure).split())[:200]
        return ComponentHealth(False, f"{type(failure).__name__}: {message}", elapsed)
    return ComponentHealth(True, "ok", round((time.perf_counter() - started) * 1000, 3))


async def check_health_async(
    engine: AsyncEngine, cache: TieredCache, timeout: float = 2.0
) -> Health:
    """``check_health`` for the async front door: each check awaited natively (the loop
    keeps serving), cancelled past ``timeout``."""

    async def database() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    guard = cache.guard
    redis: ComponentHealth | None = None
    if guard is not None and guard.async_client is not None:
        client = guard.async_client
        redis = await _timed_async(lambda: client.current().ping(), timeout)
    return _assembled(cache, await _timed_async(database, timeout), redis)


def _assembled(
    cache: TieredCache, database: ComponentHealth, redis: ComponentHealth | None
) -> Health:
    """The report: what the probes found, the breaker's and the listener's state."""
    guard = cache.guard
    if redis is not None and guard is not None and redis.ok and guard.breaker.is_down:
        redis = ComponentHealth(False, "circuit breaker open", redis.latency_ms)
    listener: ComponentHealth | None = None
    if cache.listener is not None:
        healthy = bool(cache.listener.healthy)
        listener = ComponentHealth(healthy, "subscribed" if healthy else "not subscribed")
    return Health(
        database=database,
        redis=redis,
        listener=listener,
        pending_invalidations=guard.pending_deletes if guard is not None else 0,
    )
