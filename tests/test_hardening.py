"""Attacks and misuse found in review: each is a regression test."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import redis
from dogpile.cache import make_region
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

import smarter_domain as sd
from smarter_domain import AccountBroker, Domain, UserBroker, UserProfileBroker, cache_results
from smarter_domain.cache import codec
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

from .builders import user_manifest


@pytest.fixture
def two_tenants(domain: Domain) -> tuple[sd.UserProfile, sd.Account, sd.UserProfile]:
    domain.bootstrap()
    a, b = AccountFactory(name="a"), AccountFactory(name="b")
    alice = UserProfileFactory(account=a, user=UserFactory(username="alice", is_staff=True))
    bob = UserProfileFactory(account=b, user=UserFactory(username="bob", is_staff=True))
    return alice, b, bob


def test_staff_cannot_reach_another_accounts_user_through_enrolment(
    domain: Domain, two_tenants: tuple[sd.UserProfile, sd.Account, sd.UserProfile]
) -> None:
    alice, _, bob = two_tenants
    enrol = {
        "apiVersion": "smarter.sh/v1",
        "kind": "UserProfile",
        "metadata": {"name": "grab"},
        "spec": {"username": "bob", "accountNumber": alice.account.account_number},
    }
    with pytest.raises(sd.PermissionDenied):
        domain.apply(enrol, actor=alice)
    # Even if a superuser enrolled bob in A, bob still belongs to B: alice may not change him.
    admin = sd.get_cached_smarter_admin_user_profile()
    domain.apply(enrol, actor=admin)
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest("bob", isActive=False), actor=alice)
    with pytest.raises(sd.PermissionDenied):
        UserBroker(domain, actor=alice, user=bob.user).delete()
    assert domain.users.get(bob.user.id) == bob.user


def test_a_forged_actor_grants_nothing(
    domain: Domain, two_tenants: tuple[sd.UserProfile, sd.Account, sd.UserProfile]
) -> None:
    alice, b, _ = two_tenants
    admin = sd.get_cached_smarter_admin_user_profile()
    member = UserProfileFactory(account=alice.account)
    as_admin = dataclasses.replace(member, user=admin.user)
    with pytest.raises(sd.PermissionDenied):
        AccountBroker(
            domain,
            actor=as_admin,
            manifest={
                "apiVersion": "smarter.sh/v1",
                "kind": "Account",
                "metadata": {"name": "evil"},
            },
        ).apply()
    in_b = dataclasses.replace(alice, account=b)  # alice claiming to be staff of B
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest("mole", b.account_number), actor=in_b)
    assert domain.users.get_by_username("mole") is None
    mole = domain.apply(user_manifest("mole"), actor=in_b)  # lands in A, her real account
    assert isinstance(mole, sd.User)
    assert domain.profiles.get_for(mole.id, alice.account.id) is not None


def test_an_inactive_actor_cannot_even_read(
    domain: Domain, two_tenants: tuple[sd.UserProfile, sd.Account, sd.UserProfile]
) -> None:
    alice = two_tenants[0]
    domain.users.update(alice.user.id, is_active=False)
    with pytest.raises(sd.PermissionDenied):
        UserBroker.of(domain, alice).get()


def test_the_admin_name_of_an_account_cannot_be_squatted(
    domain: Domain, two_tenants: tuple[sd.UserProfile, sd.Account, sd.UserProfile]
) -> None:
    alice, b, _ = two_tenants
    squat = f"{b.account_number}-admin"
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest(squat), actor=alice)
    # A user of that name outside the account (made by a superuser) is never adopted.
    empty = AccountFactory(name="empty")  # no staff: its admin would be created
    outsider = domain.users.add(username=f"{empty.account_number}-admin")
    with pytest.raises(sd.ConflictError):
        sd.get_cached_admin_user_for_account(empty)
    assert domain.profiles.get_for(outsider.id, empty.id) is None


def test_a_broker_target_of_the_wrong_type_is_refused(domain: Domain) -> None:
    admin = domain.bootstrap()
    with pytest.raises(TypeError):
        UserBroker(domain, actor=admin, user=admin)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        UserProfileBroker(domain, actor=admin, profile=admin.user)  # type: ignore[arg-type]


def test_invalidate_true_finds_a_profile_cached_as_missing(domain: Domain) -> None:
    admin_user = domain.users.add(username="admin", is_staff=True, is_superuser=True)
    platform = domain.accounts.add(name="smarter", account_number=sd.SMARTER_ACCOUNT_NUMBER)
    with pytest.raises(sd.ConfigurationError):
        sd.get_cached_smarter_admin_user_profile()  # caches "no profile"
    with domain.engine.begin() as connection:  # created behind the cache's back
        from smarter_domain.adapters.orm import UserProfileRow

        connection.execute(
            UserProfileRow.__table__.insert().values(
                user_id=admin_user.id,
                account_id=platform.id,
                name="admin",
                description="",
                is_test=False,
                created_at=platform.created_at,
                updated_at=platform.created_at,
                version=1,
            )
        )
    assert sd.get_cached_smarter_admin_user_profile(invalidate=True).user == admin_user


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///x?mode=memory"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(sd.ConfigurationError):
        Domain(url)


def test_an_engine_with_one_shared_connection_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}", poolclass=StaticPool)
    with pytest.raises(sd.ConfigurationError):
        Domain(engine=engine)
    engine.dispose()


def test_a_bad_redis_url_is_a_configuration_error(smarter_database_url: str) -> None:
    with pytest.raises(sd.ConfigurationError):
        Domain(smarter_database_url, "redis://127.0.0.1:notaport/0")


@pytest.mark.smarter_backends("sqlite")
def test_an_injected_redis_region_never_unpickles(
    smarter_database_url: str, smarter_redis_url: str, tmp_path: Path
) -> None:
    region = make_region(name="app.redis").configure(
        "dogpile.cache.redis", expiration_time=60, arguments={"url": smarter_redis_url}
    )
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    with Domain(smarter_database_url, redis_region=region, consistency="available") as domain:
        user = UserFactory(domain=domain)
        client = redis.Redis.from_url(smarter_redis_url)
        client.set(
            domain.cache.keys.user(user.id), b'{"ct": 1.0, "v": 2}|' + pickle.dumps(Exploit())
        )
        assert domain.users.get(user.id) == user
        client.close()
    assert not marker.exists()


@pytest.mark.smarter_backends("sqlite")
def test_an_injected_redis_region_survives_an_outage(smarter_database_url: str) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from smarter_domain.testing.servers import free_port

    region = make_region(name="app.redis.down").configure(
        "dogpile.cache.redis",
        expiration_time=60,
        arguments={
            "url": f"redis://127.0.0.1:{free_port()}/0",
            "connection_kwargs": {"socket_connect_timeout": 0.2, "retry": Retry(NoBackoff(), 0)},
        },
    )
    with Domain(smarter_database_url, redis_region=region, consistency="available") as domain:
        user = UserFactory(domain=domain)
        assert domain.users.get(user.id) == user


def test_a_region_of_another_kind_is_refused(smarter_database_url: str) -> None:
    region = make_region().configure("dogpile.cache.memory")
    with pytest.raises(sd.ConfigurationError):
        Domain(smarter_database_url, redis_region=region)


@pytest.mark.parametrize(
    "tree",
    [b"\x81\xa7decimal\xa3abc", b"\x81\xa4uuid\x05", b"\x91" * 5000 + b"\xc0"],
    ids=["bad-decimal", "uuid-int", "deep-nesting"],
)
def test_hostile_payloads_are_misses(tree: bytes) -> None:
    from dogpile.cache.api import CantDeserializeException

    with pytest.raises(CantDeserializeException):
        codec.loads(codec.MAGIC + tree)


@cache_results()
def doubled(x: int) -> int:
    return 2 * x


@pytest.mark.smarter_backends("sqlite")
def test_cache_results_recomputes_over_a_foreign_entry(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    key = doubled.key(21)
    redis_client.set(key, b'{"ct": 9999999999.0, "v": 2}|' + codec.dumps(12345))
    assert doubled(21) == 42
