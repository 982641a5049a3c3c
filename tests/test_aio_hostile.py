"""Hostile values under every key the library owns, read through the async front door (its
native Redis-tier lookup and its greenlet paths): misses, never unpickled, never an error, and
no invalidation lost between the sync and the async door. Also the restart watch on the
asyncio client's own connections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from smarter_domain import Domain, cache_results
from smarter_domain.aio import AsyncDomain
from smarter_domain.cache import RedisOptions
from smarter_domain.cache.scripts import LOCK_SUFFIX, hold_key, lease_key
from smarter_domain.testing import RedisServer

from .aio_helpers import on_a_loop
from .test_hostile_redis import (
    BYTE_KINDS,
    NAMESPACE,
    REDIS_TYPES,
    SMALL,
    World,
    _namespace_keys,
    _square,
    plant,
    read_everything,
)

pytestmark = pytest.mark.smarter_backends("sqlite")


async def read_everything_async(domain: AsyncDomain, world: World, square: Any) -> list[Any]:
    """``read_everything`` through the async door, in the same order."""
    u = domain.utils
    alice = world.alice
    return [
        await domain.users.get(alice.user.id),
        await domain.users.get(world.bob.id),
        await domain.users.get_by_username("alice"),
        await domain.users.get_by_username("nobody"),
        await domain.users.get_many([alice.user.id, world.bob.id]),
        await domain.users.list_for_account(world.acme.id),
        await domain.accounts.get(world.acme.id),
        await domain.accounts.get_by_number(world.acme.account_number),
        await domain.accounts.get_default(),
        await domain.accounts.list_all(),
        await domain.profiles.get(alice.id),
        await domain.profiles.get_for(alice.user.id, world.acme.id),
        await domain.profiles.list_for_account(world.acme.id),
        await domain.profiles.list_for_user(alice.user.id),
        await u.get_cached_user_for_username("alice"),
        await u.get_cached_user_for_user_id(world.bob.id),
        await u.get_users_for_account(world.acme),
        await u.get_user_profiles_for_account(world.acme),
        await u.get_cached_account_for_user(alice.user),
        await u.get_cached_default_account(),
        await u.get_cached_smarter_admin_user_profile(),
        await u.valid_resource_owners_for_user(alice),
        await square(3),
    ]


async def _square_async(x: int) -> list[int]:
    return _square(x)


_square_async.__qualname__ = _square.__qualname__  # the same entry as the sync function's
_square_async.__module__ = _square.__module__


@pytest.mark.parametrize("kind", BYTE_KINDS + REDIS_TYPES)
@on_a_loop
async def test_hostile_values_read_through_the_async_door(
    smarter_database_url: str,
    smarter_redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    kind: str,
) -> None:
    with Domain(smarter_database_url, smarter_redis_url, redis_options=SMALL) as sync:
        async with AsyncDomain(
            smarter_database_url, smarter_redis_url, redis_options=SMALL
        ) as adomain:
            from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

            admin = sync.bootstrap()
            acme = AccountFactory(domain=sync, name="acme")
            alice = UserProfileFactory(
                domain=sync,
                account=acme,
                user=UserFactory(domain=sync, username="alice", is_staff=True),
            )
            bob = UserFactory(domain=sync, username="bob")
            world = World(acme=acme, alice=alice, bob=bob, admin=admin)
            square = cache_results(domain=adomain)(_square_async)
            expected = read_everything(sync, world, cache_results(domain=sync)(_square))
            assert await read_everything_async(adomain, world, square) == expected

            keys = _namespace_keys(redis_client)
            marker = f"{NAMESPACE}:server"
            entries = [k for k in keys if "#gen{" not in k and k != marker]
            assert len(entries) > 15
            exploit = tmp_path / "unpickled"
            owned = [k for k in keys if k != marker] + [k + LOCK_SUFFIX for k in entries]
            owned += [lease_key(k) for k in entries] + [hold_key(k) for k in entries]
            for key in owned:
                plant(redis_client, key, kind, exploit)
            adomain.cache.clear_memory()
            assert await read_everything_async(adomain, world, square) == expected
            assert await read_everything_async(adomain, world, square) == expected
            assert not exploit.exists()
            # The planted values lose no invalidation, either way.
            sync.users.get(bob.id)
            await adomain.users.update(bob.id, email="bob@example.com")
            assert sync.users.get(bob.id).email == "bob@example.com"  # type: ignore[union-attr]
            sync.users.update(bob.id, email="bob2@example.com")
            assert (await adomain.users.get(bob.id)).email == "bob2@example.com"  # type: ignore[union-attr]
            assert not exploit.exists()


@on_a_loop
async def test_the_async_client_connections_run_the_restart_watch(
    smarter_database_url: str,
) -> None:
    """A server whose marker names another run (a restart with a persisted dataset): the
    first asyncio connection flushes the namespace before it serves anything."""
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        try:
            client.set(f"{NAMESPACE}:server", b"another run id")
            client.set(f"{NAMESPACE}:user:1", b"a stale entry")
            options = RedisOptions(socket_timeout=1, connect_timeout=1, listen=False)
            async with AsyncDomain(smarter_database_url, server.url, redis_options=options) as a:
                assert a.cache.stats.snapshot()["server_changes"] == 0
                await a.users.get(1)
                assert a.cache.stats.snapshot()["server_changes"] == 1
                assert client.get(f"{NAMESPACE}:user:1") != b"a stale entry"
                assert client.get(f"{NAMESPACE}:server") != b"another run id"
        finally:
            client.close()
            server.close()
