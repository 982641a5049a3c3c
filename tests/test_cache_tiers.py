"""The two tiers against a real Redis: order, fill, counts, typed payloads, invalidation."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from smarter_domain import Account, Domain, User
from smarter_domain.cache import codec
from smarter_domain.cache.repositories import SLICE
from smarter_domain.cache.tiered import TieredCache
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

from .round_trips import commands_sent, exchanges_on

pytestmark = pytest.mark.smarter_backends("sqlite")  # the database is not the subject here


def counts(domain: Domain) -> dict[str, int]:
    return {k: v for k, v in domain.cache.stats.snapshot().items() if v and k != "invalidations"}


def test_memory_then_redis_then_database(redis_domain: Domain, redis_client: redis.Redis) -> None:
    user = UserFactory()
    redis_domain.cache.stats.reset()

    assert redis_domain.users.get(user.id) == user
    assert counts(redis_domain) == {"memory_misses": 1, "redis_misses": 1, "loads": 1}
    raw = redis_client.get(redis_domain.cache.keys.user(user.id))
    assert raw is not None
    assert raw.startswith(codec.RECORD + b"U")  # a record holding a User: nothing pickled
    assert codec.read_record(raw)[1] == user

    redis_domain.cache.clear_memory()
    assert redis_domain.users.get(user.id) == user
    assert counts(redis_domain) == {
        "memory_misses": 2,
        "redis_misses": 1,
        "redis_hits": 1,
        "loads": 1,
    }

    assert redis_domain.users.get(user.id) == user
    assert counts(redis_domain)["memory_hits"] == 1
    assert counts(redis_domain)["loads"] == 1


def test_memory_tier_alone_without_redis(domain: Domain) -> None:
    assert domain.cache.redis is None
    user = UserFactory()
    domain.cache.stats.reset()
    for _ in range(3):
        assert domain.users.get(user.id) == user
    assert counts(domain) == {"memory_misses": 1, "loads": 1, "memory_hits": 2}


def test_the_memory_tier_is_bounded(smarter_database_url: str) -> None:
    with Domain(smarter_database_url, memory_cache_size=3) as domain:
        users = UserFactory.create_batch(5, domain=domain)
        for user in users:
            domain.users.get(user.id)
        assert len(domain.cache.memory.actual_backend._cache) <= 3
        domain.cache.stats.reset()
        domain.users.get(users[-1].id)  # the most recent entries survived
        assert counts(domain) == {"memory_hits": 1}


def test_secondary_lookups_hydrate_from_the_entity_entry(redis_domain: Domain) -> None:
    user = UserFactory(username="jdoe")
    assert redis_domain.users.get_by_username("jdoe") == user
    redis_domain.cache.invalidate([redis_domain.cache.keys.user(user.id)])
    redis_domain.cache.stats.reset()
    assert redis_domain.users.get_by_username("jdoe") == user
    # username -> id is still cached; only the entity was reloaded.
    assert counts(redis_domain)["memory_hits"] == 1
    assert counts(redis_domain)["loads"] == 1
    updated = redis_domain.users.update(user.id, email="new@example.com")
    assert redis_domain.users.get_by_username("jdoe") == updated


def test_profiles_show_changes_of_their_user_and_account(redis_domain: Domain) -> None:
    profile = UserProfileFactory()
    assert redis_domain.profiles.get(profile.id) == profile
    user = redis_domain.users.update(profile.user.id, first_name="Renamed")
    account = redis_domain.accounts.update(profile.account.id, city="Elsewhere")
    fresh = redis_domain.profiles.get(profile.id)
    assert fresh is not None
    assert (fresh.user, fresh.account) == (user, account)
    assert redis_domain.profiles.list_for_account(account.id) == [fresh]
    assert redis_domain.profiles.get_for(user.id, account.id) == fresh


def test_negative_entries_are_invalidated_by_the_create(redis_domain: Domain) -> None:
    assert redis_domain.users.get_by_username("later") is None
    assert redis_domain.users.get_by_username("later") is None  # cached None
    user = UserFactory(username="later")
    assert redis_domain.users.get_by_username("later") == user


def test_lists_read_their_entities_in_one_round_trip(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    account = AccountFactory()
    users = UserFactory.create_batch(20)
    for user in users:
        UserProfileFactory(user=user, account=account)
    assert redis_domain.users.list_for_account(account.id) == users
    redis_domain.cache.clear_memory()
    found: list[User] = []
    sent = commands_sent(
        redis_client, lambda: found.extend(redis_domain.users.list_for_account(account.id))
    )
    assert found == users
    assert sent == {"evalsha": 1, "mget": 1}  # the ids (a lookup), then every member


def test_a_long_list_reads_its_members_in_slices_pipelined_in_one_round_trip(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    """One MGET per ``SLICE`` members, each sent as soon as its keys are built, and every
    reply read after the last send: the ids, then the members, two round trips."""
    account = AccountFactory()
    users = UserFactory.create_batch(SLICE * 2 + 8)
    for user in users:
        UserProfileFactory(user=user, account=account)
    assert redis_domain.users.list_for_account(account.id) == users
    redis_domain.cache.clear_memory()
    guard = redis_domain.cache.guard
    assert guard is not None
    found: list[User] = []
    exchanges: list[str] = []
    sent = commands_sent(
        redis_client,
        lambda: exchanges.extend(
            exchanges_on(
                guard.wire,
                lambda: found.extend(redis_domain.users.list_for_account(account.id)),
            )
        ),
    )
    assert found == users
    assert sent == {"evalsha": 1, "mget": 3}
    assert exchanges == ["EVALSHA", "pipeline"]
    assert redis_domain.cache.stats.snapshot()["redis_hits"] >= len(users)


def test_an_error_of_the_memory_tier_mid_list_is_not_a_redis_outage(
    redis_domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory tier is looked at a slice at a time while the MGETs go out: an error there
    reaches the caller as it is, and Redis is not marked down."""
    account = AccountFactory()
    users = UserFactory.create_batch(SLICE + 4)
    for user in users:
        UserProfileFactory(user=user, account=account)
    assert redis_domain.users.list_for_account(account.id) == users
    redis_domain.cache.clear_memory()
    looked = TieredCache._memory_many
    calls: list[int] = []

    def failing_on_the_second_slice(self: TieredCache, keys: Sequence[str]) -> Any:
        calls.append(len(keys))
        if len(calls) == 2:
            raise RuntimeError("the memory tier failed")
        return looked(self, keys)

    monkeypatch.setattr(TieredCache, "_memory_many", failing_on_the_second_slice)
    with pytest.raises(RuntimeError, match="the memory tier failed"):
        redis_domain.users.list_for_account(account.id)
    guard = redis_domain.cache.guard
    assert guard is not None and not guard.breaker.is_down
    assert redis_domain.cache.stats.snapshot()["redis_errors"] == 0
    monkeypatch.undo()
    assert redis_domain.users.list_for_account(account.id) == users


def test_an_id_listed_twice_is_served_twice(redis_domain: Domain) -> None:
    """As the wrapped repository would list it (the SQL one never does)."""
    first, second = UserFactory(), UserFactory()
    listed = redis_domain.users._entries.listed(
        [first.id, second.id, first.id, 0], redis_domain.users.inner.get_many
    )
    assert listed == [first, second, first]


def test_writes_invalidate_after_commit_only(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    key = redis_domain.cache.keys.user(user.id)
    assert redis_domain.users.get(user.id) == user
    with redis_domain.unit_of_work() as uow:
        updated = uow.users.update(user.id, last_name="Committed")
        # Not committed yet: every reader still sees the committed row, from the cache.
        assert redis_domain.users.get(user.id) == user
        assert redis_client.exists(key)
        uow.commit()
    assert redis_domain.users.get(user.id) == updated


def test_a_rolled_back_write_invalidates_and_caches_nothing(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    assert redis_domain.users.get(user.id) == user
    before = redis_domain.cache.stats.snapshot()["invalidations"]
    with redis_domain.unit_of_work() as uow:
        uow.users.update(user.id, last_name="Never")
        uow.users.add(username="ghost")
        assert redis_domain.users.get_by_username("ghost") is None  # uncommitted: invisible
    assert redis_domain.cache.stats.snapshot()["invalidations"] == before
    assert redis_domain.users.get(user.id) == user
    assert redis_domain.users.get_by_username("ghost") is None
    strings = [k for k in redis_client.keys("*") if redis_client.type(k) == b"string"]
    assert all(b"ghost" not in (redis_client.get(k) or b"") for k in strings)


def test_deleting_a_user_invalidates_every_view_of_it(redis_domain: Domain) -> None:
    profile = UserProfileFactory()
    user, account = profile.user, profile.account
    assert redis_domain.users.get_by_username(user.username) == user
    assert redis_domain.users.list_for_account(account.id) == [user]
    assert redis_domain.profiles.list_for_user(user.id) == [profile]
    redis_domain.users.delete(user.id)
    assert redis_domain.users.get(user.id) is None
    assert redis_domain.users.get_by_username(user.username) is None
    assert redis_domain.users.list_for_account(account.id) == []
    assert redis_domain.profiles.list_for_user(user.id) == []
    assert redis_domain.profiles.get(profile.id) is None


class Exploit:
    """Unpickling this would create a file: the proof that a payload was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("with_dogpile_header", [False, True])
def test_a_pickled_payload_in_redis_is_ignored(
    redis_domain: Domain,
    redis_client: redis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    with_dogpile_header: bool,
) -> None:
    user = UserFactory()
    marker = tmp_path / "executed"
    payload = pickle.dumps(Exploit(marker))
    if with_dogpile_header:
        payload = b'{"ct": 1.0, "v": 2}|' + payload
    redis_client.set(redis_domain.cache.keys.user(user.id), payload)
    with caplog.at_level(logging.WARNING, logger="smarter_domain"):
        assert redis_domain.users.get(user.id) == user
    assert not marker.exists()
    assert redis_domain.cache.stats.snapshot()["decode_errors"] >= 1
    assert "ignored" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        b'{"ct": 1.0, "v": 2}|' + codec.MAGIC + b"\xc1\xc1",  # invalid msgpack
        b'{"ct": 1.0, "v": 2}|' + codec.MAGIC + b"\x81\xa4Evil\x80",  # unknown tag
        b'{"ct": 1.0, "v": 2}|SD\x00old format',
        b'{"ct": "x"}|' + codec.MAGIC,
    ],
)
def test_foreign_or_corrupt_entries_are_misses(
    redis_domain: Domain, redis_client: redis.Redis, payload: bytes
) -> None:
    user = UserFactory()
    redis_client.set(redis_domain.cache.keys.user(user.id), payload)
    assert redis_domain.users.get(user.id) == user


def test_a_well_formed_entry_of_the_wrong_type_is_not_served(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    user = UserFactory()
    account = AccountFactory()
    key = redis_domain.cache.keys.user(user.id)
    redis_client.set(key, b'{"ct": 9999999999.0, "v": 2}|' + codec.dumps(account))
    found = redis_domain.users.get(user.id)
    assert isinstance(found, User)
    assert found == user


def test_codec_round_trips_the_types_it_knows() -> None:
    import datetime as dt
    import uuid
    from decimal import Decimal

    now = dt.datetime.now(dt.UTC)
    account = Account(
        id=1, account_number="1234-5678-9012", name="a", created_at=now, updated_at=now
    )
    value = {
        "entity": account,
        "none": None,
        "list": [1, "two", 3.0, True],
        "tuple": (1, 2),
        "set": {1, 2},
        "frozen": frozenset({"x"}),
        "when": now,
        "day": now.date(),
        "money": Decimal("1.10"),
        "id": uuid.uuid4(),
        "raw": b"\x00\x01",
        5: "int key",
    }
    assert codec.loads(codec.dumps(value)) == value
    with pytest.raises(TypeError, match="cannot serialize"):
        codec.dumps(object())


def test_no_module_of_the_package_imports_pickle() -> None:
    import ast

    import smarter_domain

    root = Path(smarter_domain.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in {"pickle", "cPickle", "dill"} for n in names), path
