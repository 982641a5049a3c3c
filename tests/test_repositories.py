"""Every repository method, on SQLite and on PostgreSQL (the domain fixture is parametrized)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import smarter_domain as sd
from smarter_domain import Domain
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory


def test_account_add_and_get(domain: Domain) -> None:
    account = domain.accounts.add(name="acme", company_name="Acme Corp", country="US")
    assert account.id > 0
    assert sd.is_account_number(account.account_number)
    assert account.created_at.tzinfo is not None
    assert account.version == 1
    assert domain.accounts.get(account.id) == account
    assert domain.accounts.get_by_number(account.account_number) == account
    assert domain.accounts.get(10_000) is None
    assert domain.accounts.get_by_number("0000-0000-0001") is None


def test_account_add_with_given_number(domain: Domain) -> None:
    account = domain.accounts.add(name="acme", account_number="1234-5678-9012")
    assert account.account_number == "1234-5678-9012"


def test_account_add_rejects_bad_input_without_writing(domain: Domain) -> None:
    with pytest.raises(sd.ValidationError) as info:
        domain.accounts.add(name="acme", account_number="12-34")
    assert "account_number" in info.value.errors
    with pytest.raises(sd.ValidationError) as info:
        domain.accounts.add(name="  ")
    assert "name" in info.value.errors
    with pytest.raises(sd.ValidationError) as info:
        domain.accounts.add(name="acme", country="USA", is_active="yes", bogus=1)  # type: ignore[arg-type,call-arg]
    assert set(info.value.errors) == {"country", "is_active", "bogus"}
    assert domain.accounts.list_all() == []


def test_account_update_bumps_version_and_updated_at(domain: Domain) -> None:
    account = AccountFactory()
    updated = domain.accounts.update(account.id, city="Boston", is_active=False)
    assert (updated.city, updated.is_active) == ("Boston", False)
    assert updated.version == account.version + 1
    assert updated.updated_at >= account.updated_at
    assert updated.created_at == account.created_at
    assert domain.accounts.get(account.id) == updated


def test_account_number_and_username_are_immutable(domain: Domain) -> None:
    account = AccountFactory()
    user = UserFactory()
    with pytest.raises(sd.ValidationError) as info:
        domain.accounts.update(account.id, account_number="1111-2222-3333")  # type: ignore[call-arg]
    assert info.value.errors == {"account_number": "cannot be changed once set"}
    with pytest.raises(sd.ValidationError):
        domain.users.update(user.id, username="renamed")  # type: ignore[call-arg]
    assert domain.accounts.get(account.id) == account
    assert domain.users.get(user.id) == user


def test_update_and_delete_of_missing_rows_raise_not_found(domain: Domain) -> None:
    with pytest.raises(sd.AccountNotFound):
        domain.accounts.update(999, city="x")
    with pytest.raises(sd.UserNotFound):
        domain.users.delete(999)
    with pytest.raises(sd.UserProfile.DoesNotExist):
        domain.profiles.update(999, name="x")


def test_default_account(domain: Domain) -> None:
    assert domain.accounts.get_default() is None
    AccountFactory()
    default = AccountFactory(is_default_account=True)
    assert domain.accounts.get_default() == default


def test_list_all_and_get_many(domain: Domain) -> None:
    accounts = [AccountFactory() for _ in range(3)]
    assert domain.accounts.list_all() == accounts
    found = domain.accounts.get_many([accounts[2].id, accounts[0].id, 12345])
    assert found == {accounts[0].id: accounts[0], accounts[2].id: accounts[2]}
    assert domain.accounts.get_many([]) == {}


def test_user_add_get_update_delete(domain: Domain) -> None:
    user = domain.users.add(username="jdoe", email="jdoe@example.com", first_name="John")
    assert user.is_active and not user.is_staff and not user.is_superuser
    assert domain.users.get(user.id) == user
    assert domain.users.get_by_username("jdoe") == user
    assert domain.users.get_by_username("JDOE") is None
    login = datetime.now(UTC) - timedelta(minutes=5)
    updated = domain.users.update(user.id, last_login=login, is_staff=True)
    assert updated.last_login == login
    assert updated.is_staff
    assert domain.users.get_many([user.id]) == {user.id: updated}
    domain.users.delete(user.id)
    assert domain.users.get(user.id) is None


@pytest.mark.parametrize("username", ["", "has space", "x" * 151, "semi;colon", "tab\t"])
def test_user_add_rejects_bad_usernames(domain: Domain, username: str) -> None:
    with pytest.raises(sd.ValidationError) as info:
        domain.users.add(username=username)
    assert "username" in info.value.errors


def test_user_rejects_naive_datetimes(domain: Domain) -> None:
    user = UserFactory()
    with pytest.raises(sd.ValidationError) as info:
        domain.users.update(user.id, last_login=datetime(2026, 1, 1))
    assert "last_login" in info.value.errors


def test_users_and_profiles_of_an_account(domain: Domain) -> None:
    acme, other = AccountFactory(), AccountFactory()
    users = [UserFactory() for _ in range(3)]
    profiles = [UserProfileFactory(user=u, account=acme) for u in reversed(users)]
    UserProfileFactory(user=users[0], account=other)
    assert domain.users.list_for_account(acme.id) == users  # ordered by user id
    assert domain.profiles.list_for_account(acme.id) == profiles  # ordered by profile id
    assert domain.users.list_for_account(9999) == []
    assert [p.account for p in domain.profiles.list_for_user(users[0].id)] == [acme, other]


def test_profile_add_get_update_delete(domain: Domain) -> None:
    user, account = UserFactory(), AccountFactory()
    profile = domain.profiles.add(user_id=user.id, account_id=account.id, name="p", is_test=True)
    assert profile.user == user
    assert profile.account == account
    assert profile.user.username == user.username
    assert domain.profiles.get(profile.id) == profile
    assert domain.profiles.get_for(user.id, account.id) == profile
    assert domain.profiles.get_for(user.id, account.id + 1) is None
    assert domain.profiles.get_many([profile.id]) == {profile.id: profile}
    updated = domain.profiles.update(profile.id, description="the profile")
    assert updated.description == "the profile"
    assert updated.version == 2
    domain.profiles.delete(profile.id)
    assert domain.profiles.get(profile.id) is None
    assert domain.users.get(user.id) == user
    assert domain.accounts.get(account.id) == account


def test_profile_add_for_missing_user_or_account(domain: Domain) -> None:
    user, account = UserFactory(), AccountFactory()
    with pytest.raises(sd.UserNotFound):
        domain.profiles.add(user_id=user.id + 100, account_id=account.id)
    with pytest.raises(sd.AccountNotFound):
        domain.profiles.add(user_id=user.id, account_id=account.id + 100)
    assert domain.profiles.list_for_user(user.id) == []


def test_a_user_may_belong_to_several_accounts(domain: Domain) -> None:
    user = UserFactory()
    first = UserProfileFactory(user=user)
    second = UserProfileFactory(user=user)
    assert first.account != second.account
    assert domain.profiles.list_for_user(user.id) == [first, second]


def test_deleting_a_user_or_account_cascades_to_profiles(domain: Domain) -> None:
    profile = UserProfileFactory()
    kept = UserProfileFactory(account=profile.account)
    domain.users.delete(profile.user.id)
    assert domain.profiles.get(profile.id) is None
    assert domain.profiles.get(kept.id) == kept
    domain.accounts.delete(profile.account.id)
    assert domain.profiles.get(kept.id) is None
    assert domain.users.get(kept.user.id) == kept.user


def test_reads_are_single_queries(domain: Domain, count_queries) -> None:  # type: ignore[no-untyped-def]
    """The SQL repositories themselves (under the cache): one statement per read."""
    account_repo, user_repo, profile_repo = (
        domain.accounts.inner,
        domain.users.inner,
        domain.profiles.inner,
    )
    account = AccountFactory()
    users = [UserFactory() for _ in range(5)]
    profiles = [UserProfileFactory(user=u, account=account) for u in users]
    reads = [
        lambda: account_repo.get(account.id),
        lambda: account_repo.get_by_number(account.account_number),
        lambda: account_repo.get_default(),
        lambda: account_repo.list_all(),
        lambda: account_repo.get_many([account.id]),
        lambda: user_repo.get(users[0].id),
        lambda: user_repo.get_by_username(users[0].username),
        lambda: user_repo.list_for_account(account.id),
        lambda: user_repo.get_many([u.id for u in users]),
        lambda: profile_repo.get(profiles[0].id),
        lambda: profile_repo.get_for(users[0].id, account.id),
        lambda: profile_repo.list_for_account(account.id),
        lambda: profile_repo.list_for_user(users[0].id),
        lambda: profile_repo.get_many([p.id for p in profiles]),
    ]
    for read in reads:
        with count_queries() as counter:
            read()
        assert counter.count == 1, counter.statements
