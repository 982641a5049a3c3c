"""The async front door against the sync one, in the same run and the same event loop.

Each async call is awaited in a batch inside one running loop and timed call by call, as a
coroutine of an application would await it; the sync call is timed in the same coroutine,
in alternating batches (``run.paired``'s method). Targets (issue 16): a memory-tier hit at
most 2x the sync one, a Redis-tier hit and a cold miss at most 1.2x.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from run import BATCHES, Bench, Timing, _batch, _summary

import smarter_domain as sd

Before = Callable[[], Any] | None


async def _abatch(call: Callable[[], Awaitable[Any]], per_batch: int, before: Before) -> float:
    """Mean ns per awaited call over one batch (``before`` runs untimed before each)."""
    total = 0
    for _ in range(per_batch):
        if before:
            before()
        start = time.perf_counter_ns()
        await call()
        total += time.perf_counter_ns() - start
    return total / per_batch


async def apaired(
    ours: Callable[[], Awaitable[Any]],
    baseline: Callable[[], Any],
    per_batch: int,
    before_ours: Before = None,
    before_baseline: Before = None,
    rounds: int = BATCHES,
) -> tuple[Timing, Timing, float]:
    """``run.paired`` for an awaited call against a sync one: alternating batches after a
    warm-up, the ratio (ours / baseline) the median of the rounds' ratios."""
    await _abatch(ours, min(per_batch, 200), before_ours)
    _batch(baseline, min(per_batch, 200), before_baseline)
    ours_means, base_means = [], []
    for _ in range(rounds):
        ours_means.append(await _abatch(ours, per_batch, before_ours))
        base_means.append(_batch(baseline, per_batch, before_baseline))
    ratios = [o / b for o, b in zip(ours_means, base_means, strict=True)]
    return _summary(ours_means), _summary(base_means), statistics.median(ratios)


async def _rows(bench: Bench, sqlite_url: str, postgres_url: str, redis_url: str) -> None:
    with sd.Domain(sqlite_url) as sync:
        async with sd.AsyncDomain(sqlite_url) as adomain:
            user = await adomain.users.get_by_username("member7")
            assert user is not None and sync.users.get(user.id) == user
            sync.users.get_by_username("member7")
            ours, base, ratio = await apaired(
                lambda: adomain.users.get(user.id), lambda: sync.users.get(user.id), 20_000
            )
            bench.ratio(
                "async memory-tier hit by id",
                ours,
                base,
                "the sync memory-tier hit by id",
                "<= 2x",
                ratio <= 2,
                ratio,
            )
            ours, base, ratio = await apaired(
                lambda: adomain.users.get_by_username("member7"),
                lambda: sync.users.get_by_username("member7"),
                20_000,
            )
            bench.ratio(
                "async memory-tier hit by username",
                ours,
                base,
                "the sync memory-tier hit by username",
                "<= 2x",
                ratio <= 2,
                ratio,
            )
    with sd.Domain(postgres_url, redis_url) as sync:
        async with sd.AsyncDomain(postgres_url, redis_url) as adomain:
            admin = await adomain.users.get_by_username("admin")
            assert admin is not None
            key = sync.cache.keys.user(admin.id)
            ours, base, ratio = await apaired(
                lambda: adomain.users.get(admin.id),
                lambda: sync.users.get(admin.id),
                500,
                before_ours=adomain.cache.clear_memory,
                before_baseline=sync.cache.clear_memory,
                rounds=25,
            )
            bench.ratio(
                "async Redis-tier hit by id (memory tier cold)",
                ours,
                base,
                "the sync Redis-tier hit",
                "<= 1.2x",
                ratio <= 1.2,
                ratio,
            )
            client = sync.cache.guard.client  # type: ignore[union-attr]

            def forget(domain: Any) -> Callable[[], None]:
                def drop() -> None:
                    client.delete(key)
                    domain.cache.drop_local([key])

                return drop

            ours, base, ratio = await apaired(
                lambda: adomain.users.get(admin.id),
                lambda: sync.users.get(admin.id),
                100,
                before_ours=forget(adomain),
                before_baseline=forget(sync),
                rounds=25,
            )
            bench.ratio(
                "async cold miss by id (PostgreSQL + Redis)",
                ours,
                base,
                "the sync cold miss (psycopg; asyncpg on the async side)",
                "<= 1.2x",
                ratio <= 1.2,
                ratio,
            )


def async_rows(bench: Bench, sqlite_url: str, postgres_url: str, redis_url: str) -> None:
    asyncio.run(_rows(bench, sqlite_url, postgres_url, redis_url))
