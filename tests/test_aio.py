"""The async front door (``AsyncDomain``, ``smarter_domain.aio``) on SQLite (aiosqlite) and
PostgreSQL (asyncpg), with and without the session's real Redis: the same answers as the sync
``Domain``, one cache shared by both, and the loop never blocked."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import smarter_domain as sd
from smarter_domain import Domain, aio, cache_invalidate, cache_results
from smarter_domain.adapters.database import normalize_async_url
from smarter_domain.aio import AsyncDomain
from smarter_domain.cache.concurrency import pause
from smarter_domain.model.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    SmarterError,
    UserNotFound,
    ValidationError,
)

from .aio_helpers import FAST_FAIL, at_once, on_a_loop
from .builders import user_manifest


@pytest.fixture(params=["memory", "redis"])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """No Redis (the memory tier alone), or the session's real Redis, flushed."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("smarter_redis_url")
    return url


@pytest.fixture
def sync_domain(smarter_database_url: str, redis_url: str | None) -> Iterator[Domain]:
    with Domain(smarter_database_url, redis_url, redis_options=FAST_FAIL) as domain:
        yield domain


def _domain(database_url: str, redis_url: str | None, **options: Any) -> AsyncDomain:
    return AsyncDomain(database_url, redis_url, redis_options=FAST_FAIL, **options)


@on_a_loop
async def test_reads_and_writes_give_what_the_sync_domain_gives(
    smarter_database_url: str, redis_url: str | None, sync_domain: Domain
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        admin = await adomain.bootstrap()
        async with adomain.unit_of_work() as uow:
            account = await uow.accounts.add(name="Acme", account_number="1234-5678-9012")
            user = await uow.users.add(username="jdoe", email="jdoe@example.com")
            profile = await uow.profiles.add(user_id=user.id, account_id=account.id, name="j")
            changes = await uow.commit()
        assert [c.action for c in changes] == ["create"] * 3
        for _ in range(2):  # cold, then from the tiers
            assert await adomain.users.get(user.id) == sync_domain.users.get(user.id) == user
            assert await adomain.users.get_by_username("jdoe") == user
            assert await adomain.accounts.get_by_number("1234-5678-9012") == account
            assert await adomain.accounts.get(account.id) == account
            assert await adomain.accounts.get_default() == sync_domain.accounts.get_default()
            assert await adomain.profiles.get(profile.id) == profile
            assert await adomain.profiles.get_for(user.id, account.id) == profile
            assert await adomain.profiles.list_for_user(user.id) == [profile]
            assert await adomain.profiles.list_for_account(account.id) == [profile]
            assert await adomain.users.list_for_account(account.id) == [user]
            assert await adomain.users.get_many([user.id, admin.user.id, 10**30]) == {
                user.id: user,
                admin.user.id: admin.user,
            }
            assert await adomain.accounts.get_many([account.id]) == {account.id: account}
            assert await adomain.profiles.get_many([profile.id]) == {profile.id: profile}
            assert sorted(a.id for a in await adomain.accounts.list_all()) == sorted(
                a.id for a in sync_domain.accounts.list_all()
            )
            assert len(await adomain.users.list_all()) == 2
            assert len(await adomain.profiles.list_all()) == 2
        # What no row can hold finds nothing, as in the sync repositories.
        assert await adomain.users.get(-(2**70)) is None
        assert await adomain.users.get_by_username("nul\x00") is None
        assert await adomain.profiles.get_for(0, 10**40) is None
        # Writes outside a unit of work commit on their own and invalidate.
        updated = await adomain.users.update(user.id, email="new@example.com")
        assert updated.email == "new@example.com"
        assert (await adomain.users.get(user.id)).email == "new@example.com"  # type: ignore[union-attr]
        if redis_url is not None:  # (without Redis, each domain's memory tier is its own)
            assert sync_domain.users.get(user.id).email == "new@example.com"  # type: ignore[union-attr]
        await adomain.profiles.delete(profile.id)
        assert await adomain.profiles.get(profile.id) is None
        assert await adomain.profiles.list_for_user(user.id) == []
        await adomain.users.delete(user.id)
        assert await adomain.users.get_by_username("jdoe") is None
        await adomain.accounts.update(account.id, name="Acme 2")
        assert (await adomain.accounts.get(account.id)).name == "Acme 2"  # type: ignore[union-attr]
        await adomain.accounts.delete(account.id)
        assert await adomain.accounts.get_by_number("1234-5678-9012") is None


@on_a_loop
async def test_a_memory_tier_hit_awaits_nothing(
    smarter_database_url: str, redis_url: str | None
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        admin = await adomain.bootstrap()
        user, account = admin.user, admin.account
        # Warm every view once, then each hit completes without a single suspension.
        await adomain.users.get(user.id)
        await adomain.users.get_by_username(user.username)
        await adomain.accounts.get_by_number(account.account_number)
        await adomain.accounts.get_default()
        await adomain.profiles.get(admin.id)
        await adomain.profiles.get_for(user.id, account.id)
        assert at_once(adomain.users.get(user.id)) == user
        assert at_once(adomain.users.get_by_username(user.username)) == user
        assert at_once(adomain.accounts.get_by_number(account.account_number)) == account
        assert at_once(adomain.accounts.get(account.id)) == account
        assert at_once(adomain.accounts.get_default()) == account
        assert at_once(adomain.profiles.get(admin.id)) == admin
        assert at_once(adomain.profiles.get_for(user.id, account.id)) == admin
        assert at_once(adomain.actor(user.username, account.account_number)) == admin
        assert at_once(adomain.users.get(2**70)) is None  # no row can hold it: no I/O either

    async def suspends() -> None:
        await asyncio.sleep(0)

    with pytest.raises(AssertionError, match="awaited something"):  # the check can fail
        at_once(suspends())


@on_a_loop
async def test_a_redis_tier_hit_is_served_natively_and_kept_in_memory(
    smarter_database_url: str, smarter_redis_url: str
) -> None:
    async with _domain(smarter_database_url, smarter_redis_url) as adomain:
        admin = await adomain.bootstrap()
        await adomain.users.get(admin.user.id)  # in Redis now
        adomain.cache.clear_memory()
        stats = adomain.cache.stats
        before = stats.snapshot()
        assert await adomain.users.get(admin.user.id) == admin.user
        after = stats.snapshot()
        assert after["redis_hits"] - before["redis_hits"] == 1
        assert after["loads"] == before["loads"]
        assert at_once(adomain.users.get(admin.user.id)) == admin.user  # kept in memory


@on_a_loop
async def test_sync_and_async_domains_invalidate_each_other(
    smarter_database_url: str, smarter_redis_url: str
) -> None:
    """Two processes' worth of domains on one Redis: a write through either door is seen at
    once by the other's memory tier (the same keys, records, channel and listener)."""
    with Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL) as sync:
        async with _domain(smarter_database_url, smarter_redis_url) as adomain:
            admin = await adomain.bootstrap()
            user_id = admin.user.id
            for round_ in range(5):
                # Both memory tiers warm.
                assert sync.users.get(user_id) is not None
                assert await adomain.users.get(user_id) is not None
                email = f"sync{round_}@example.com"
                await asyncio.to_thread(sync.users.update, user_id, email=email)
                assert (await adomain.users.get(user_id)).email == email  # type: ignore[union-attr]
                assert (await adomain.users.get_by_username("admin")).email == email  # type: ignore[union-attr]
                email = f"async{round_}@example.com"
                await adomain.users.update(user_id, email=email)
                assert sync.users.get(user_id).email == email  # type: ignore[union-attr]
                assert sync.users.get_by_username("admin").email == email  # type: ignore[union-attr]


@on_a_loop
async def test_joining_the_application_async_session(
    smarter_database_url: str, redis_url: str | None
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        await adomain.bootstrap()
        heard: list[tuple[str, ...]] = []
        adomain.on_commit(lambda changes: heard.append(tuple(c.action for c in changes)))
        async with AsyncSession(adomain.engine, expire_on_commit=False) as session:
            async with adomain.unit_of_work(session=session) as uow:
                await uow.users.add(username="rolled")
                await uow.commit()  # the savepoint only
            assert heard == []
            await session.rollback()
        assert heard == []
        assert await adomain.users.get_by_username("rolled") is None
        async with AsyncSession(adomain.engine, expire_on_commit=False) as session:
            await adomain.users.get_by_username("kept")  # cached as missing
            async with adomain.unit_of_work(session=session) as uow:
                await uow.users.add(username="kept")
                await uow.commit()
            # The application's own statement in the same transaction.
            count = await session.scalar(text("SELECT count(*) FROM smarter_user"))
            assert count == 2
            await session.commit()
        assert heard == [("create",)]
        kept = await adomain.users.get_by_username("kept")  # the miss was invalidated
        assert kept is not None and kept.username == "kept"
        with pytest.raises(ConfigurationError, match="AsyncSession"):
            adomain.unit_of_work(session=adomain.sync.session_factory())  # type: ignore[arg-type]


@on_a_loop
async def test_a_failed_block_rolls_back_and_errors_are_typed(
    smarter_database_url: str, redis_url: str | None
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        await adomain.bootstrap()

        async def failing_block() -> None:
            async with adomain.unit_of_work() as uow:
                await uow.users.add(username="ghost")
                raise RuntimeError("the block failed")

        with pytest.raises(RuntimeError):
            await failing_block()
        assert await adomain.users.get_by_username("ghost") is None
        with pytest.raises(ConflictError) as conflict:
            await adomain.users.add(username="admin")
        assert conflict.value.errors == {"username": "is already taken"}
        assert conflict.value.__cause__ is not None
        with pytest.raises(ValidationError):
            await adomain.users.add(username="bad name with spaces")
        with pytest.raises(NotFoundError):
            await adomain.users.update(10**6, email="x@example.com")


@on_a_loop
async def test_brokers_apply_and_signal_async_and_sync_receivers(
    smarter_database_url: str, redis_url: str | None
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        admin = await adomain.bootstrap()
        awaited: list[str] = []
        called: list[str] = []

        async def async_receiver(sender: Any, **payload: Any) -> None:
            await asyncio.sleep(0)
            awaited.append(payload["action"])

        def sync_receiver(sender: Any, **payload: Any) -> None:
            called.append(payload["action"])

        cache_invalidate.connect(async_receiver)
        cache_invalidate.connect(sync_receiver)
        try:
            manifest = {
                "apiVersion": "smarter.sh/v1",
                "kind": "User",
                "metadata": {"name": "manifested"},
                "spec": {"config": {"email": "m@example.com"}},
            }
            user = await adomain.apply(manifest, actor=admin)
            assert isinstance(user, sd.User) and user.username == "manifested"
            assert (await adomain.users.get_by_username("manifested")) == user
            assert awaited and called and awaited == called
            applied = await adomain.apply_all([manifest], actor=admin)
            assert [e.id for e in applied] == [user.id]
        finally:
            cache_invalidate.disconnect(async_receiver)
            cache_invalidate.disconnect(sync_receiver)


@on_a_loop
async def test_the_utilities_have_the_sync_names_forms_and_outcomes(
    smarter_database_url: str, redis_url: str | None, sync_domain: Domain
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        admin = await adomain.bootstrap()
        user, account = admin.user, admin.account
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("get_cached_account_for_user", (user,)),
            ("get_cached_account_for_user", (None,)),
            ("get_cached_admin_user_for_account", (account,)),
            ("get_cached_default_account", ()),
            ("get_cached_smarter_admin_user_profile", ()),
            ("get_cached_user_for_user_id", (user.id,)),
            ("get_cached_user_for_user_id", ("1",)),
            ("get_cached_user_for_username", ("admin",)),
            ("get_cached_user_for_username", ("nobody",)),
            ("get_cached_user_for_username", (None,)),
            ("get_user_profiles_for_account", (account,)),
            ("get_users_for_account", (account,)),
            ("get_users_for_account", ("not an account",)),
            ("valid_resource_owners_for_user", (admin,)),
        ]
        for name, args in calls:
            for invalidate in (False, True):

                def outcome(call: Any) -> Any:
                    try:
                        return ("value", call())
                    except SmarterError as exc:
                        return ("error", type(exc))

                method = getattr(sync_domain.utils, name)
                expected = outcome(functools.partial(method, *args, invalidate=invalidate))
                try:
                    got: Any = (
                        "value",
                        await getattr(adomain.utils, name)(*args, invalidate=invalidate),
                    )
                except SmarterError as exc:
                    got = ("error", type(exc))
                assert got == expected, (name, args, invalidate)
        assert adomain.utils.account_number_from_url("https://3141-5926-5359.api.example.com")


@on_a_loop
async def test_cache_results_on_an_async_function(
    smarter_database_url: str, redis_url: str | None
) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        calls: list[int] = []

        @cache_results(domain=adomain)
        async def double(x: int) -> list[int]:
            await asyncio.sleep(0)
            calls.append(x)
            return [x, x]

        assert await double(2) == [2, 2]
        assert await double(x=2) == [2, 2]
        assert calls == [2]
        first, second = await double(3), await double(3)
        assert first == second and first is not second  # each caller its own copy
        await double.invalidate(2)
        assert await double(2) == [2, 2]
        assert calls == [2, 3, 2]

        # Concurrent misses of one key in one process load once (one flight on the loop).
        slow: list[int] = []

        @cache_results(domain=adomain)
        async def slowly(x: int) -> int:
            slow.append(x)
            await asyncio.sleep(0.05)
            return x

        assert await asyncio.gather(*(slowly(7) for _ in range(20))) == [7] * 20
        assert slow == [7]

        @cache_results(domain=adomain.sync)
        async def wrong_domain() -> int:
            return 1

        with pytest.raises(ConfigurationError, match="AsyncDomain"):
            await wrong_domain()


@on_a_loop
async def test_the_actor_and_health(smarter_database_url: str, redis_url: str | None) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        admin = await adomain.bootstrap()
        assert await adomain.actor("admin") == admin
        with pytest.raises(UserNotFound):
            await adomain.actor("nobody")
        with pytest.raises(PermissionDenied):
            await adomain.actor("admin", "0000-0000-0000")
        with pytest.raises(ValidationError):
            await adomain.actor(3)  # type: ignore[arg-type]
        health = await adomain.health()
        assert health.ok, health.as_dict()
        assert (health.redis is None) == (redis_url is None)


def test_urls_and_arguments() -> None:
    assert normalize_async_url("postgresql://u@h/d").drivername == "postgresql+asyncpg"
    assert normalize_async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert dict(normalize_async_url("postgresql://h/d?sslmode=require").query) == {"ssl": "require"}
    with pytest.raises(ConfigurationError, match="in-memory"):
        AsyncDomain("sqlite://")
    with pytest.raises(ConfigurationError, match="AsyncEngine"):
        AsyncDomain(engine=create_engine("sqlite://"))  # type: ignore[arg-type]


@on_a_loop
async def test_an_application_engine_is_left_open(smarter_database_url: str) -> None:
    engine = create_async_engine(normalize_async_url(smarter_database_url))
    try:
        async with AsyncDomain(engine=engine) as adomain:
            assert await adomain.bootstrap()
        async with engine.connect() as connection:  # still usable
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


@on_a_loop
async def test_the_module_functions_use_the_default(smarter_database_url: str) -> None:
    adomain = aio.configure(smarter_database_url)
    try:
        assert aio.get_domain() is adomain
        admin = await adomain.bootstrap()
        assert await aio.get_cached_user_for_username("admin") == admin.user
        assert await aio.get_cached_user_for_user_id(admin.user.id, invalidate=True) == admin.user
        assert await aio.get_cached_default_account() == admin.account
        assert await aio.get_cached_smarter_admin_user_profile() == admin
        assert await aio.get_users_for_account(admin.account) == [admin.user]
        assert await aio.get_user_profiles_for_account(admin.account) == [admin]
        assert await aio.valid_resource_owners_for_user(admin) == [admin]
        assert await aio.get_cached_account_for_user(admin.user) == admin.account
        assert await aio.get_cached_admin_user_for_account(admin.account) == admin.user
        assert aio.account_number_from_url("https://3141-5926-5359.example.com") == (
            "3141-5926-5359"
        )

        @aio.cache_results()
        async def answer() -> int:
            return 42

        assert await answer() == 42
        replaced = aio.configure(smarter_database_url)  # the first is closed on this loop
        assert aio.get_domain() is replaced
        await asyncio.sleep(0.1)
        assert adomain._closed
    finally:
        await aio.aclose_default()
        assert aio.set_domain(None) is None


@pytest.mark.smarter_backends("postgresql")
def test_the_loop_keeps_running_while_redis_is_paused_and_postgresql_is_slow(
    smarter_database_url: str, smarter_redis_server: Any, smarter_redis_url: str
) -> None:
    """A reader whose Redis hangs (SIGSTOP) and whose query waits on a table lock, and a
    writer whose prepare cannot reach Redis: both wait on the loop, and a task ticking every
    5 ms is never held back (a blocking call on the loop thread would stop it for the
    socket timeout, then for the lock)."""
    sync = Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL)
    admin = sync.bootstrap()
    sync.close()
    locked = threading.Event()
    release = threading.Event()

    def hold_the_table_lock() -> None:
        engine = sd.Domain(smarter_database_url).engine
        with engine.begin() as connection:
            connection.execute(text("LOCK TABLE smarter_user IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(10)
        engine.dispose()

    async def scenario() -> tuple[float, float, list[BaseException | Any]]:
        async with _domain(smarter_database_url, smarter_redis_url) as adomain:
            await adomain.users.get(admin.user.id)  # connections open, scripts loaded
            adomain.cache.clear_memory()
            gaps: list[float] = []
            stop = asyncio.Event()

            async def tick() -> None:
                last = time.monotonic()
                while not stop.is_set():
                    await asyncio.sleep(0.005)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            ticker = asyncio.create_task(tick())
            await asyncio.sleep(0.05)
            holder = threading.Thread(target=hold_the_table_lock)
            holder.start()
            await asyncio.to_thread(locked.wait, 10)
            smarter_redis_server.pause()
            started = time.monotonic()
            try:
                loop = asyncio.get_running_loop()
                loop.call_later(0.6, release.set)  # the lock is held 0.6 s
                outcomes = await asyncio.gather(
                    adomain.users.get(admin.user.id),
                    adomain.users.update(admin.user.id, email="x@example.com"),
                    return_exceptions=True,
                )
            finally:
                smarter_redis_server.resume()
                release.set()
            took = time.monotonic() - started
            await asyncio.to_thread(holder.join, 10)
            stop.set()
            await ticker
            return took, max(gaps), outcomes

    took, worst_gap, outcomes = asyncio.run(scenario())
    read, write = outcomes
    assert isinstance(read, sd.User) and read.id == admin.user.id, outcomes
    assert isinstance(write, sd.CacheUnavailable), outcomes  # strict: Redis was not told first
    assert took >= 0.5, took  # it did wait: on the lock (and the socket timeout)
    assert worst_gap < 0.1, f"the loop was blocked for {worst_gap * 1000:.0f} ms"


@on_a_loop
async def test_async_brokers(smarter_database_url: str, redis_url: str | None) -> None:
    async with _domain(smarter_database_url, redis_url) as adomain:
        admin = await adomain.bootstrap()
        heard: list[str] = []

        async def receiver(sender: Any, **payload: Any) -> None:
            heard.append(payload["action"])

        cache_invalidate.connect(receiver)
        try:
            manifest = (
                "apiVersion: smarter.sh/v1\nkind: Account\n"
                "metadata: {name: acme, accountNumber: 1234-5678-9012}\n"
                "spec: {config: {country: US}}\n"
            )
            broker = aio.AccountBroker(adomain, actor=admin, manifest=manifest)
            account = await broker.apply()
            assert account.account_number == "1234-5678-9012"
            assert await adomain.accounts.get_by_number("1234-5678-9012") == account
            listing = aio.AccountBroker(adomain, actor=admin)
            assert [a.id for a in await listing.get("acme")] == [account.id]
            target = aio.AccountBroker(adomain, actor=admin, account=account)
            described = await target.describe()
            assert described["metadata"]["accountNumber"] == "1234-5678-9012"
            await target.invalidate_cache()
            user = await aio.UserBroker(
                adomain,
                actor=admin,
                manifest=user_manifest("jdoe", "1234-5678-9012", isStaff=False),
            ).apply()
            jdoe = await adomain.actor("jdoe", "1234-5678-9012")
            with pytest.raises(PermissionDenied):  # not a superuser: nothing written
                await aio.AccountBroker(adomain, actor=jdoe, manifest=manifest).apply()
            profile = await adomain.profiles.get_for(user.id, account.id)
            assert profile is not None
            await aio.UserProfileBroker(adomain, actor=admin, profile=profile).delete()
            assert await adomain.profiles.get_for(user.id, account.id) is None
            with pytest.raises(ValidationError):
                aio.AccountBroker(adomain, actor=admin, manifest="kind: Nonsense")
            # Joined to the application's AsyncSession: signalled after its commit only.
            before = list(heard)
            async with AsyncSession(adomain.engine) as session:
                joined = aio.UserBroker(
                    adomain, actor=admin, manifest=user_manifest("joined"), session=session
                )
                await joined.apply()
                assert heard == before
                await session.commit()
            assert heard == [*before, "apply"]
            assert await adomain.users.get_by_username("joined") is not None
            assert heard[:4] == ["apply", "invalidate", "apply", "delete"]
        finally:
            cache_invalidate.disconnect(receiver)


@on_a_loop
async def test_a_cancelled_lookup_gives_its_lease_back(
    smarter_database_url: str, smarter_redis_url: str
) -> None:
    """A task cancelled while its lookup is in flight may have taken the key's lease: it is
    given back, so another process does not wait for a fill that will never come."""
    options = dataclasses.replace(FAST_FAIL, lock_timeout=10)  # a lease waited out: 10 s
    async with AsyncDomain(smarter_database_url, smarter_redis_url, redis_options=options) as a:
        admin = await a.bootstrap()
        a.cache.clear_memory()
        await a.cache.guard.async_client.fast(  # type: ignore[union-attr]
            "DEL", a.cache.keys.user(admin.user.id)
        )
        fast = a.cache.guard.async_client.fast  # type: ignore[union-attr]
        real = fast.script
        looked = asyncio.Event()

        async def slow_script(*args: Any) -> Any:
            found = await real(*args)  # the lease is taken here
            looked.set()
            await asyncio.sleep(5)
            return found

        fast.script = slow_script
        reader = asyncio.create_task(a.users.get(admin.user.id))
        await asyncio.wait_for(looked.wait(), 5)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        fast.script = real
        await asyncio.sleep(0.2)  # the give-back, in the background
        with Domain(smarter_database_url, smarter_redis_url, redis_options=options) as other:
            started = time.monotonic()
            assert other.users.get(admin.user.id) == admin.user
            assert time.monotonic() - started < 2  # not the 10 s of a lease waited out


@on_a_loop
async def test_a_cancelled_commit_still_releases_and_signals(
    smarter_database_url: str, smarter_redis_url: str, redis_client: Any
) -> None:
    """The caller is cancelled while its commit's cache release is on its way: the commit,
    the release of its hold-offs and the signals still run to their end, then the caller
    gets the cancellation."""
    async with _domain(smarter_database_url, smarter_redis_url) as adomain:
        await adomain.bootstrap()
        heard: list[str] = []
        adomain.on_commit(lambda changes: heard.extend(c.action for c in changes))
        guard = adomain.cache.guard
        assert guard is not None
        release = guard.release
        releasing = threading.Event()

        def slow_release(*args: Any, **kwargs: Any) -> None:
            releasing.set()
            pause(0.3)
            release(*args, **kwargs)

        guard.release = slow_release  # type: ignore[method-assign]

        async def write() -> None:
            async with adomain.unit_of_work() as uow:
                await uow.users.add(username="committed")
                await uow.commit()

        writer = asyncio.create_task(write())
        await asyncio.to_thread(releasing.wait, 5)
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
        guard.release = release  # type: ignore[method-assign]
        assert heard == ["create"]  # published after the release, despite the cancellation
        holds = [k for k in redis_client.scan_iter(match="*") if b"hold" in k]
        assert holds == []
        user = await adomain.users.get_by_username("committed")
        assert user is not None
