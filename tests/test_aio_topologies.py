"""The async front door on a real Redis Cluster and behind Redis Sentinel: the asyncio client
of each topology, with the sync domain on the same servers seeing its writes and the reverse,
lists (multi-gets split by slot), and the Redis-tier hit served natively."""

from __future__ import annotations

import asyncio

import pytest

from smarter_domain import Domain
from smarter_domain.aio import AsyncDomain
from smarter_domain.testing import RedisClusterServers, RedisSentinelServers

from .aio_helpers import FAST_FAIL, at_once, on_a_loop

pytestmark = [pytest.mark.smarter_backends("sqlite"), pytest.mark.topology]


async def _both_ways(database_url: str, redis_url: str) -> None:
    with Domain(database_url, redis_url, redis_options=FAST_FAIL) as sync:
        async with AsyncDomain(database_url, redis_url, redis_options=FAST_FAIL) as adomain:
            admin = await adomain.bootstrap()
            users = []
            async with adomain.unit_of_work() as uow:
                for n in range(40):  # keys on every master
                    user = await uow.users.add(username=f"member{n}")
                    await uow.profiles.add(user_id=user.id, account_id=admin.account.id)
                    users.append(user)
                await uow.commit()
            listed = await adomain.users.list_for_account(admin.account.id)
            assert {u.id for u in listed} == {admin.user.id} | {u.id for u in users}
            adomain.cache.clear_memory()
            assert await adomain.users.list_for_account(admin.account.id) == listed  # from Redis
            before = adomain.cache.stats.snapshot()["redis_hits"]
            adomain.cache.clear_memory()
            assert await adomain.users.get(users[0].id) == users[0]
            assert adomain.cache.stats.snapshot()["redis_hits"] == before + 1
            assert at_once(adomain.users.get(users[0].id)) == users[0]
            for round_ in range(3):
                target = users[round_]
                assert sync.users.get(target.id) is not None
                assert await adomain.users.get(target.id) is not None
                email = f"s{round_}@example.com"
                await asyncio.to_thread(sync.users.update, target.id, email=email)
                assert (await adomain.users.get(target.id)).email == email  # type: ignore[union-attr]
                email = f"a{round_}@example.com"
                await adomain.users.update(target.id, email=email)
                assert sync.users.get(target.id).email == email  # type: ignore[union-attr]
            health = await adomain.health()
            assert health.ok, health.as_dict()


@on_a_loop
async def test_on_a_cluster(
    smarter_database_url: str, smarter_redis_cluster: RedisClusterServers
) -> None:
    smarter_redis_cluster.flushall()
    await _both_ways(smarter_database_url, smarter_redis_cluster.url)


@on_a_loop
async def test_behind_sentinel(
    smarter_database_url: str, smarter_redis_sentinel: RedisSentinelServers
) -> None:
    await _both_ways(smarter_database_url, smarter_redis_sentinel.url)
