"""Brokers against hostile actors (issue 12): superusers' memberships, what an actor without
permission can learn, a read-only ``kind``, describe() of a User, and Smarter's
``metadata.tags`` / ``metadata.annotations`` kept and shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import smarter_domain as sd
from smarter_domain import AccountBroker, Domain, UserBroker, UserProfileBroker
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

from .builders import profile_manifest, user_manifest


def snapshot(domain: Domain) -> tuple[Any, ...]:
    inner = (domain.accounts.inner, domain.users.inner, domain.profiles.inner)
    return inner[0].list_all(), inner[1].list_all(), inner[2].list_all()


@pytest.fixture
def admin(domain: Domain) -> sd.UserProfile:
    return domain.bootstrap()


@pytest.fixture
def alice(domain: Domain, admin: sd.UserProfile) -> sd.UserProfile:
    """Staff of account a."""
    return UserProfileFactory(
        account=AccountFactory(name="a"), user=UserFactory(username="alice", is_staff=True)
    )


@pytest.fixture
def bob(domain: Domain, admin: sd.UserProfile) -> sd.UserProfile:
    """A member of account b only."""
    return UserProfileFactory(account=AccountFactory(name="b"), user=UserFactory(username="bob"))


def refusal(call: Callable[[], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises(sd.SmarterError) as info:
        call()
    return type(info.value), str(info.value)


# superusers' memberships -----------------------------------------------------------------


def test_staff_cannot_enrol_a_profileless_superuser(domain: Domain, alice: sd.UserProfile) -> None:
    root = domain.users.add(username="root", is_staff=True, is_superuser=True)
    before = snapshot(domain)
    with pytest.raises(sd.PermissionDenied):
        domain.apply(profile_manifest("root", alice.account.account_number), actor=alice)
    assert snapshot(domain) == before
    assert domain.profiles.inner.list_for_user(root.id) == []


def test_only_a_superuser_changes_or_removes_a_superusers_membership(
    domain: Domain, admin: sd.UserProfile, alice: sd.UserProfile
) -> None:
    number = alice.account.account_number
    root = domain.users.add(username="root", is_staff=True, is_superuser=True)
    membership = domain.apply(profile_manifest("root", number), actor=admin)
    assert isinstance(membership, sd.UserProfile) and membership.user == root
    before = snapshot(domain)
    attempts: list[Callable[[], Any]] = [
        lambda: domain.apply(profile_manifest("root", number, isTest=True), actor=alice),
        lambda: UserProfileBroker(domain, actor=alice, profile=membership).delete(),
        lambda: UserProfileBroker(
            domain, actor=alice, manifest=profile_manifest("root", number)
        ).delete(),
    ]
    for attempt in attempts:
        with pytest.raises(sd.PermissionDenied):
            attempt()
    assert snapshot(domain) == before
    # A superuser may.
    domain.apply(profile_manifest("root", number, isTest=True), actor=admin)
    UserProfileBroker(domain, actor=admin, profile=membership).delete()
    assert domain.profiles.inner.get(membership.id) is None


# what an actor without permission can learn -----------------------------------------------


def test_an_account_number_not_ones_own_is_refused_whether_it_exists_or_not(
    domain: Domain, admin: sd.UserProfile, alice: sd.UserProfile, bob: sd.UserProfile
) -> None:
    number = bob.account.account_number
    calls: list[Callable[[], Any]] = [
        lambda: domain.apply(user_manifest("newbie", number), actor=alice),
        lambda: UserBroker(domain, actor=alice, manifest=user_manifest("bob", number)).delete(),
        lambda: domain.apply(profile_manifest("alice", number), actor=alice),
        lambda: domain.apply(profile_manifest("ghost", number), actor=alice),
        lambda: UserProfileBroker(
            domain, actor=alice, manifest=profile_manifest("bob", number)
        ).delete(),
        lambda: UserProfileBroker(
            domain, actor=alice, manifest=profile_manifest("bob", number)
        ).describe(),
        lambda: AccountBroker(domain, actor=alice, account=bob.account).describe(),
        lambda: AccountBroker(domain, actor=alice, account=bob.account).invalidate_cache(),
    ]
    while_it_exists = [refusal(call) for call in calls]
    assert {kind for kind, _ in while_it_exists} == {sd.PermissionDenied}
    AccountBroker(domain, actor=admin, account=bob.account).delete()
    assert [refusal(call) for call in calls] == while_it_exists


def test_a_user_one_cannot_see_and_a_missing_one_look_the_same(
    domain: Domain, admin: sd.UserProfile, alice: sd.UserProfile, bob: sd.UserProfile
) -> None:
    own = alice.account.account_number
    calls: list[Callable[[], Any]] = [
        lambda: domain.apply(profile_manifest("bob", own), actor=alice),  # enrol
        lambda: UserBroker(domain, actor=alice, manifest=user_manifest("bob")).delete(),
        lambda: UserBroker(domain, actor=alice, manifest=user_manifest("bob")).describe(),
        lambda: UserBroker(domain, actor=alice, user=bob.user).describe(),
        lambda: UserBroker(domain, actor=alice, user=bob.user).invalidate_cache(),
        lambda: UserBroker(domain, actor=alice, user=bob.user).delete(),
        lambda: UserProfileBroker(
            domain, actor=alice, manifest=profile_manifest("bob", own)
        ).delete(),
        lambda: UserProfileBroker(
            domain, actor=alice, manifest=profile_manifest("bob", own)
        ).describe(),
        lambda: UserProfileBroker(domain, actor=alice, profile=bob).describe(),
        lambda: UserProfileBroker(domain, actor=alice, profile=bob).delete(),
    ]
    while_bob_exists = [refusal(call) for call in calls]
    assert {kind for kind, _ in while_bob_exists} == {sd.PermissionDenied}
    UserBroker(domain, actor=admin, user=bob.user).delete()
    assert [refusal(call) for call in calls] == while_bob_exists
    # A superuser, who may see everything, is told what is missing.
    with pytest.raises(sd.UserNotFound):
        UserBroker(domain, actor=admin, user=bob.user).describe()


def test_uniqueness_still_tells_that_a_username_is_taken(
    domain: Domain, alice: sd.UserProfile, bob: sd.UserProfile
) -> None:
    with pytest.raises(sd.PermissionDenied, match="bob"):
        domain.apply(user_manifest("bob", isActive=False), actor=alice)
    assert domain.users.inner.get(bob.user.id) == bob.user


# kind is read-only --------------------------------------------------------------------------


def test_kind_is_read_only_on_instances(domain: Domain, admin: sd.UserProfile) -> None:
    broker = AccountBroker(domain, actor=admin, account=admin.account)
    with pytest.raises(AttributeError):
        broker.kind = "User"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del broker.kind
    assert broker.kind == AccountBroker.kind == "Account"
    assert (UserBroker.kind, UserProfileBroker.kind) == ("User", "UserProfile")


# describe() of a User describes the user ------------------------------------------------------


def test_describe_of_a_user_is_the_user_and_applies_back_unchanged(
    domain: Domain, admin: sd.UserProfile, count_queries: Any
) -> None:
    acme = AccountFactory(name="acme")
    manifest = user_manifest("kim", acme.account_number, firstName="Kim", isStaff=True)
    manifest["metadata"].update(name="kim-at-acme", description="Kim of Acme")
    kim = domain.apply(manifest, actor=admin)
    assert isinstance(kim, sd.User)
    described = UserBroker(domain, actor=admin, user=kim).describe()
    assert described["metadata"]["name"] == "kim"
    assert described["metadata"]["username"] == "kim"
    assert described["spec"]["accountNumber"] == acme.account_number  # kim's, not the actor's
    assert described["spec"]["config"]["firstName"] == "Kim"
    assert described["spec"]["config"]["isStaff"] is True
    before = snapshot(domain)
    with count_queries() as counter:
        domain.apply({k: v for k, v in described.items() if k != "status"}, actor=admin)
    assert not [s for s in counter.statements if not s.lstrip().upper().startswith("SELECT")]
    assert snapshot(domain) == before


# metadata.tags and metadata.annotations -------------------------------------------------------


def _labelled(manifest: dict[str, Any], tag: str) -> dict[str, Any]:
    manifest["metadata"]["tags"] = [tag, "shared"]
    manifest["metadata"]["annotations"] = [{"owner": f"{tag}-team"}, {"cost-center": "42"}]
    return manifest


def test_tags_and_annotations_are_kept_shown_and_apply_back_unchanged(
    domain: Domain, admin: sd.UserProfile, count_queries: Any
) -> None:
    account_manifest = _labelled(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "Account",
            "metadata": {"name": "acme", "accountNumber": "2222-3333-4444"},
        },
        "account",
    )
    documents = [
        account_manifest,
        _labelled(user_manifest("kim", "2222-3333-4444"), "user"),
        _labelled(profile_manifest("kim", "2222-3333-4444"), "profile"),
    ]
    account, user, profile = domain.apply_all(documents, actor=admin)
    expected = {
        "account": account,
        "user": user,
        "profile": profile,
    }
    for tag, entity in expected.items():
        assert entity.tags == (tag, "shared")
        assert entity.annotations == (("owner", f"{tag}-team"), ("cost-center", "42"))
    brokers = [
        AccountBroker(domain, actor=admin, account=account),
        UserBroker(domain, actor=admin, user=user),
        UserProfileBroker(domain, actor=admin, profile=profile),
    ]
    described = [broker.describe() for broker in brokers]
    for tag, manifest in zip(expected, described, strict=True):
        assert manifest["metadata"]["tags"] == [tag, "shared"]
        assert manifest["metadata"]["annotations"] == {"owner": f"{tag}-team", "cost-center": "42"}
        assert list(manifest["metadata"]["annotations"]) == ["owner", "cost-center"]
    before = snapshot(domain)
    with count_queries() as counter:
        domain.apply_all(
            [{k: v for k, v in m.items() if k != "status"} for m in described], actor=admin
        )
    assert not [s for s in counter.statements if not s.lstrip().upper().startswith("SELECT")]
    assert snapshot(domain) == before
    # A changed tag is written, to that entity only.
    documents[1]["metadata"]["tags"] = ["user"]
    domain.apply(documents[1], actor=admin)
    assert domain.users.inner.get(user.id).tags == ("user",)  # type: ignore[union-attr]
    assert domain.accounts.inner.get(account.id) == account
