"""Brokers: apply, delete, get, describe, invalidate_cache; permissions; the signal."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

import smarter_domain as sd
from smarter_domain import AccountBroker, Domain, UserBroker, UserProfileBroker, cache_invalidate
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

from .builders import profile_manifest, user_manifest


def account_manifest(name: str = "acme", **config: Any) -> dict[str, Any]:
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "Account",
        "metadata": {"name": name, "description": f"{name} corp"},
        "spec": {"config": {"companyName": f"{name.title()} Corp", "country": "US", **config}},
    }


@pytest.fixture
def admin(domain: Domain) -> sd.UserProfile:
    return domain.bootstrap()


@pytest.fixture
def tenant(domain: Domain) -> sd.Account:
    return AccountFactory(name="tenant")


@pytest.fixture
def staff(domain: Domain, tenant: sd.Account) -> sd.UserProfile:
    return UserProfileFactory(account=tenant, user=UserFactory(username="boss", is_staff=True))


@pytest.fixture
def member(domain: Domain, tenant: sd.Account) -> sd.UserProfile:
    return UserProfileFactory(account=tenant, user=UserFactory(username="pleb"))


@pytest.fixture
def signals() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def record(sender: Any, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    cache_invalidate.connect(record, weak=False)
    yield received
    cache_invalidate.disconnect(record)


def snapshot(domain: Domain) -> tuple[Any, ...]:
    inner = (domain.accounts.inner, domain.users.inner, domain.profiles.inner)
    return inner[0].list_all(), inner[1].list_all(), inner[2].list_all()


# apply -----------------------------------------------------------------------------------


def test_apply_account_creates_the_account_only(
    domain: Domain, admin: sd.UserProfile, signals: list[dict[str, Any]]
) -> None:
    account = AccountBroker(domain, actor=admin, manifest=account_manifest()).apply()
    assert (account.name, account.company_name, account.country) == ("acme", "Acme Corp", "US")
    assert sd.is_account_number(account.account_number)
    assert domain.users.list_for_account(account.id) == []  # no membership, not even the actor
    assert signals == [
        {
            "sender": AccountBroker,
            "user_profile": admin,
            "instance": account,
            "kind": "Account",
            "action": "apply",
        }
    ]


def test_apply_account_update_and_idempotence(domain: Domain, admin: sd.UserProfile) -> None:
    created = domain.apply(account_manifest(city="Boston"), actor=admin)
    assert isinstance(created, sd.Account)
    again = domain.apply(account_manifest(city="Boston"), actor=admin)
    assert again == created  # nothing changed: no write, same version
    moved = domain.apply(account_manifest(city="Chicago"), actor=admin)
    assert isinstance(moved, sd.Account)
    assert (moved.id, moved.city, moved.version) == (created.id, "Chicago", created.version + 1)
    assert sd.get_cached_default_account() == admin.account


def test_apply_account_by_number(domain: Domain, admin: sd.UserProfile) -> None:
    manifest = account_manifest("numbered")
    manifest["metadata"]["accountNumber"] = "1111-2222-3333"
    account = AccountBroker(domain, actor=admin, manifest=manifest).apply()
    assert account.account_number == "1111-2222-3333"
    manifest["metadata"]["description"] = "changed"
    assert AccountBroker(domain, actor=admin, manifest=manifest).apply().id == account.id


def test_describe_is_a_manifest_that_applies_to_the_same_state(
    domain: Domain, admin: sd.UserProfile
) -> None:
    account = domain.apply(account_manifest(timezone="America/New_York"), actor=admin)
    broker = AccountBroker(domain, actor=admin, account=account)
    described = broker.describe()
    assert described["metadata"]["accountNumber"] == account.account_number
    assert described["spec"]["config"]["timezone"] == "America/New_York"
    manifest = {k: v for k, v in described.items() if k != "status"}
    assert domain.apply(yaml.safe_dump(manifest), actor=admin) == account


def test_apply_user_makes_a_member_of_the_actors_account(
    domain: Domain, staff: sd.UserProfile, tenant: sd.Account
) -> None:
    user = UserBroker(domain, actor=staff, manifest=user_manifest("jdoe", firstName="John")).apply()
    assert (user.username, user.first_name, user.email) == ("jdoe", "John", "jdoe@example.com")
    assert not user.is_superuser
    assert sd.get_users_for_account(tenant) == [staff.user, user]
    updated = UserBroker(
        domain, actor=staff, manifest=user_manifest("jdoe", firstName="Jo")
    ).apply()
    assert (updated.id, updated.first_name) == (user.id, "Jo")
    assert sd.get_cached_user_for_username("jdoe") == updated


def test_apply_user_in_another_account_by_number(
    domain: Domain, admin: sd.UserProfile, tenant: sd.Account
) -> None:
    user = domain.apply(user_manifest("jane", tenant.account_number, isStaff=True), actor=admin)
    assert isinstance(user, sd.User)
    assert user.is_staff
    assert domain.profiles.get_for(user.id, tenant.id) is not None
    assert domain.profiles.get_for(user.id, admin.account.id) is None


def test_apply_profile_create_update(
    domain: Domain, admin: sd.UserProfile, tenant: sd.Account
) -> None:
    user = UserFactory(username="pat")
    profile = UserProfileBroker(
        domain, actor=admin, manifest=profile_manifest("pat", tenant.account_number)
    ).apply()
    assert (profile.user, profile.account, profile.is_test) == (user, tenant, False)
    flipped = UserProfileBroker(
        domain, actor=admin, manifest=profile_manifest("pat", tenant.account_number, isTest=True)
    ).apply()
    assert (flipped.id, flipped.is_test) == (profile.id, True)
    assert sd.get_user_profiles_for_account(tenant) == [flipped]


def test_profile_for_unknown_user_or_account(domain: Domain, admin: sd.UserProfile) -> None:
    with pytest.raises(sd.UserNotFound):
        domain.apply(profile_manifest("ghost", admin.account.account_number), actor=admin)
    UserFactory(username="real")
    with pytest.raises(sd.AccountNotFound):
        domain.apply(profile_manifest("real", "9999-9999-9999"), actor=admin)


def test_apply_all_is_one_transaction_in_order(
    domain: Domain, admin: sd.UserProfile, signals: list[dict[str, Any]]
) -> None:
    account = account_manifest("multi")
    account["metadata"]["accountNumber"] = "2222-3333-4444"
    docs = [
        account,
        user_manifest("multi-user", "2222-3333-4444"),
        profile_manifest("multi-user", "2222-3333-4444", isTest=True),
    ]
    text = "---\n".join(yaml.safe_dump(d) for d in docs)
    entities = domain.apply_all(text, actor=admin)
    assert [type(e) for e in entities] == [sd.Account, sd.User, sd.UserProfile]
    assert [s["kind"] for s in signals] == ["Account", "User", "UserProfile"]


def test_a_failing_document_writes_nothing_and_caches_nothing(
    domain: Domain, admin: sd.UserProfile, signals: list[dict[str, Any]]
) -> None:
    before = snapshot(domain)
    assert sd.get_cached_default_account() == admin.account  # something cached
    invalidations = domain.cache.stats.snapshot()["invalidations"]
    docs = [account_manifest("doomed"), profile_manifest("nobody", "2222-3333-4444")]
    with pytest.raises(sd.UserNotFound):
        domain.apply_all(docs, actor=admin)
    assert snapshot(domain) == before
    assert domain.cache.stats.snapshot()["invalidations"] == invalidations
    assert signals == []


def test_a_bad_manifest_writes_nothing(domain: Domain, admin: sd.UserProfile) -> None:
    before = snapshot(domain)
    with pytest.raises(sd.ValidationError) as info:
        domain.apply(account_manifest(country="XX", currency="EURO"), actor=admin)
    assert set(info.value.errors) == {"spec.config.country", "spec.config.currency"}
    assert snapshot(domain) == before


# delete ----------------------------------------------------------------------------------


def test_delete_account_cascades_to_profiles(
    domain: Domain,
    admin: sd.UserProfile,
    tenant: sd.Account,
    member: sd.UserProfile,
    signals: list[dict[str, Any]],
) -> None:
    assert sd.get_user_profiles_for_account(tenant) == [member]
    AccountBroker(domain, actor=admin, account=tenant).delete()
    assert domain.accounts.get(tenant.id) is None
    assert domain.profiles.get(member.id) is None
    assert domain.users.get(member.user.id) == member.user  # users stay
    assert sd.get_cached_account_for_user(member.user) is None
    assert signals[-1]["action"] == "delete"
    assert signals[-1]["instance"] == tenant


def test_delete_user_cascades_and_invalidates(
    domain: Domain, staff: sd.UserProfile, member: sd.UserProfile, tenant: sd.Account
) -> None:
    assert sd.get_cached_user_for_username("pleb") == member.user
    UserBroker(domain, actor=staff, manifest=user_manifest("pleb")).delete()
    with pytest.raises(sd.UserNotFound):
        sd.get_cached_user_for_username("pleb")
    assert sd.get_users_for_account(tenant) == [staff.user]


def test_delete_profile(domain: Domain, staff: sd.UserProfile, member: sd.UserProfile) -> None:
    UserProfileBroker(domain, actor=staff, profile=member).delete()
    assert domain.profiles.get(member.id) is None
    assert domain.users.get(member.user.id) == member.user


def test_delete_of_something_missing(domain: Domain, admin: sd.UserProfile) -> None:
    manifest = account_manifest("nothing")
    manifest["metadata"]["accountNumber"] = "9999-0000-9999"
    with pytest.raises(sd.AccountNotFound):
        AccountBroker(domain, actor=admin, manifest=manifest).delete()


# permissions -----------------------------------------------------------------------------


def test_only_a_superuser_touches_accounts(
    domain: Domain, staff: sd.UserProfile, tenant: sd.Account
) -> None:
    before = snapshot(domain)
    with pytest.raises(sd.PermissionDenied):
        AccountBroker(domain, actor=staff, manifest=account_manifest("mine")).apply()
    with pytest.raises(sd.PermissionDenied):
        AccountBroker(domain, actor=staff, account=tenant).delete()
    assert snapshot(domain) == before


def test_staff_of_account_a_cannot_touch_account_b(
    domain: Domain, staff: sd.UserProfile, admin: sd.UserProfile
) -> None:
    other = AccountFactory(name="other")
    outsider = UserProfileFactory(account=other)
    before = snapshot(domain)
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest("intruder", other.account_number), actor=staff)
    with pytest.raises(sd.PermissionDenied):
        domain.apply(profile_manifest(staff.user.username, other.account_number), actor=staff)
    with pytest.raises(sd.PermissionDenied):
        UserProfileBroker(domain, actor=staff, profile=outsider).delete()
    # A user of B is not theirs to change, even through their own account.
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest(outsider.user.username), actor=staff)
    assert snapshot(domain) == before


def test_a_member_who_is_not_staff_may_not_write(domain: Domain, member: sd.UserProfile) -> None:
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest("friend"), actor=member)


def test_a_manifest_cannot_make_a_superuser(domain: Domain, staff: sd.UserProfile) -> None:
    with pytest.raises(sd.ValidationError) as info:
        domain.apply(user_manifest("wannabe", isSuperuser=True), actor=staff)
    assert "spec.config.isSuperuser" in info.value.errors
    root = UserProfileFactory(account=staff.account, user=UserFactory(is_superuser=True))
    with pytest.raises(sd.PermissionDenied):  # nor may staff change a superuser
        domain.apply(user_manifest(root.user.username, isActive=False), actor=staff)


def test_the_platform_account_and_admin_cannot_be_deleted(
    domain: Domain, admin: sd.UserProfile
) -> None:
    with pytest.raises(sd.PermissionDenied):
        AccountBroker(domain, actor=admin, account=admin.account).delete()
    with pytest.raises(sd.PermissionDenied):
        UserBroker(domain, actor=admin, user=admin.user).delete()
    with pytest.raises(sd.PermissionDenied):
        UserProfileBroker(domain, actor=admin, profile=admin).delete()
    with pytest.raises(sd.PermissionDenied):
        domain.apply(user_manifest("admin", isStaff=False), actor=admin)
    assert sd.get_cached_smarter_admin_user_profile(invalidate=True) == admin


def test_a_revoked_actor_is_checked_against_the_database(
    domain: Domain, staff: sd.UserProfile
) -> None:
    domain.users.update(staff.user.id, is_staff=False)
    with pytest.raises(sd.PermissionDenied):  # the actor entity still says is_staff=True
        domain.apply(user_manifest("late"), actor=staff)


def test_a_broker_needs_an_actor(domain: Domain) -> None:
    with pytest.raises(sd.PermissionDenied):
        AccountBroker(domain, actor=None, manifest=account_manifest())  # type: ignore[arg-type]


# get, describe, invalidate_cache ---------------------------------------------------------


def test_get_lists_what_the_actor_may_see(
    domain: Domain,
    admin: sd.UserProfile,
    staff: sd.UserProfile,
    member: sd.UserProfile,
    tenant: sd.Account,
) -> None:
    other = AccountFactory(name="other")
    assert AccountBroker(domain, actor=admin, account=tenant).get() == [
        admin.account,
        tenant,
        other,
    ]
    assert AccountBroker(domain, actor=staff, account=tenant).get() == [tenant]
    assert AccountBroker(domain, actor=admin, account=tenant).get("other") == [other]
    assert UserBroker(domain, actor=staff, user=staff.user).get() == [staff.user, member.user]
    assert UserBroker(domain, actor=staff, user=staff.user).get("pleb") == [member.user]
    assert UserProfileBroker(domain, actor=staff, profile=staff).get() == [staff, member]
    with pytest.raises(sd.PermissionDenied):
        AccountBroker(domain, actor=staff, account=other).describe()


def test_invalidate_cache_drops_entries_then_signals(
    domain: Domain,
    admin: sd.UserProfile,
    member: sd.UserProfile,
    signals: list[dict[str, Any]],
) -> None:
    user = member.user
    assert sd.get_cached_user_for_username(user.username) == user
    loads = domain.cache.stats.snapshot()["loads"]
    UserBroker(domain, actor=admin, user=user).invalidate_cache()
    assert signals[-1]["action"] == "invalidate"
    assert sd.get_cached_user_for_username(user.username) == user
    assert domain.cache.stats.snapshot()["loads"] > loads


# the signal ------------------------------------------------------------------------------


def test_the_signal_comes_after_commit_and_invalidation(
    domain: Domain, admin: sd.UserProfile, member: sd.UserProfile
) -> None:
    seen: list[tuple[str, str]] = []

    @sd.receiver(cache_invalidate)
    def check(sender: Any, instance: Any, **kwargs: Any) -> None:
        committed = domain.users.inner.get(instance.id)
        cached = sd.get_cached_user_for_username(instance.username)
        seen.append((committed.first_name if committed else "", cached.first_name))

    try:
        assert sd.get_cached_user_for_username(member.user.username).first_name != "Zed"
        domain.apply(
            user_manifest(member.user.username, member.account.account_number, firstName="Zed"),
            actor=admin,
        )
    finally:
        cache_invalidate.disconnect(check)
    assert seen == [("Zed", "Zed")]


def test_receiver_holds_its_function_strongly(domain: Domain, admin: sd.UserProfile) -> None:
    calls: list[str] = []

    def install() -> None:
        @sd.receiver(cache_invalidate)
        def local_handler(sender: Any, instance: Any, **kwargs: Any) -> None:
            calls.append(kwargs["action"])

    install()
    gc.collect()
    handler = next(
        r
        for r in cache_invalidate.receivers.values()
        if getattr(r, "__name__", "") == "local_handler"
    )
    try:
        domain.apply(account_manifest("strong"), actor=admin)
    finally:
        cache_invalidate.disconnect(handler)
    assert calls == ["apply"]


def test_connect_decorator_works_too(domain: Domain, admin: sd.UserProfile) -> None:
    calls: list[Any] = []

    @cache_invalidate.connect
    def handler(sender: Any, **kwargs: Any) -> None:
        calls.append(sender)

    try:
        domain.apply(account_manifest("connected"), actor=admin)
    finally:
        cache_invalidate.disconnect(handler)
    assert calls == [AccountBroker]


def test_a_raising_receiver_is_logged_and_cannot_fail_the_write(
    domain: Domain,
    admin: sd.UserProfile,
    signals: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    @sd.receiver(cache_invalidate)
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    try:
        with caplog.at_level(logging.ERROR, logger="smarter_domain"):
            account = domain.apply(account_manifest("sturdy"), actor=admin)
    finally:
        cache_invalidate.disconnect(broken)
    assert isinstance(account, sd.Account)
    assert domain.accounts.get(account.id) == account
    assert "receiver" in caplog.text
    assert len(signals) == 1  # the other receiver still ran
