"""Every uniqueness rule is enforced by the database itself, and surfaces as ConflictError."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

import smarter_domain as sd
from smarter_domain import Domain
from smarter_domain.adapters.orm import AccountRow, UserProfileRow, UserRow
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory


def test_unique_account_number(domain: Domain) -> None:
    AccountFactory(account_number="1234-5678-9012")
    with pytest.raises(sd.ConflictError) as info:
        AccountFactory(account_number="1234-5678-9012")
    assert info.value.errors == {"account_number": "is already taken"}
    assert isinstance(info.value.__cause__, IntegrityError)
    assert len(domain.accounts.list_all()) == 1


def test_unique_username(domain: Domain) -> None:
    UserFactory(username="jdoe")
    with pytest.raises(sd.ConflictError) as info:
        UserFactory(username="jdoe")
    assert info.value.errors == {"username": "is already taken"}


def test_one_profile_per_user_and_account(domain: Domain) -> None:
    profile = UserProfileFactory()
    with pytest.raises(sd.ConflictError) as info:
        UserProfileFactory(user=profile.user, account=profile.account)
    assert "profile" in info.value.errors
    assert domain.profiles.list_for_user(profile.user.id) == [profile]


def test_at_most_one_default_account(domain: Domain) -> None:
    first = AccountFactory(is_default_account=True)
    with pytest.raises(sd.ConflictError) as info:
        AccountFactory(is_default_account=True)
    assert "is_default_account" in info.value.errors
    other = AccountFactory()
    with pytest.raises(sd.ConflictError):
        domain.accounts.update(other.id, is_default_account=True)
    # Moving the flag in one transaction is allowed.
    with domain.unit_of_work() as uow:
        uow.accounts.update(first.id, is_default_account=False)
        uow.accounts.update(other.id, is_default_account=True)
        uow.commit()
    assert domain.accounts.get_default() == domain.accounts.get(other.id)
    # Many non-default accounts are fine: the index only covers the default one.
    AccountFactory(is_default_account=False)


@pytest.mark.parametrize(
    "rows",
    [
        lambda: [
            AccountRow(account_number="1111-1111-1111", name="a"),
            AccountRow(account_number="1111-1111-1111", name="b"),
        ],
        lambda: [UserRow(username="x"), UserRow(username="x")],
        lambda: [
            AccountRow(account_number="1111-1111-1111", name="a", is_default_account=True),
            AccountRow(account_number="2222-2222-2222", name="b", is_default_account=True),
        ],
        lambda: [UserProfileRow(user_id=12345, account_id=67890)],
    ],
    ids=["account_number", "username", "default_account", "foreign_keys"],
)
def test_the_database_enforces_constraints_without_python_checks(domain: Domain, rows) -> None:  # type: ignore[no-untyped-def]
    with domain.session_factory() as session:
        session.add_all(rows())
        with pytest.raises(IntegrityError):
            session.commit()


def test_concurrent_update_is_a_conflict_not_a_silent_overwrite(domain: Domain) -> None:
    account = AccountFactory()
    with domain.unit_of_work() as late, domain.unit_of_work() as early:
        held = late.session.get(AccountRow, account.id)  # read version 1 and keep it
        assert held is not None
        early.accounts.update(account.id, city="Boston")
        early.commit()  # version 2 is committed
        with pytest.raises(sd.ConflictError) as info:
            late.accounts.update(account.id, city="Chicago")
        assert "version" in info.value.errors
    current = domain.accounts.get(account.id)
    assert current is not None
    assert (current.city, current.version) == ("Boston", 2)
