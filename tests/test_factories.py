from __future__ import annotations

import pytest

from smarter_domain import Account, Domain, User, UserProfile
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory


def test_factories_create_through_the_repositories(domain: Domain) -> None:
    profile = UserProfileFactory(is_test=True)
    assert isinstance(profile, UserProfile)
    assert isinstance(profile.user, User) and isinstance(profile.account, Account)
    assert domain.profiles.get(profile.id) == profile
    assert profile.name == f"{profile.user.username}-{profile.account.name}"
    assert profile.is_test


def test_factories_make_distinct_valid_entities(domain: Domain) -> None:
    users = UserFactory.create_batch(5)
    assert len({u.username for u in users}) == 5
    assert all(u.email == f"{u.username}@example.com" for u in users)
    accounts = AccountFactory.create_batch(3)
    assert len({a.account_number for a in accounts}) == 3


def test_factories_accept_an_explicit_domain(smarter_database_url: str) -> None:
    with Domain(smarter_database_url) as other:
        account = AccountFactory(domain=other, name="elsewhere")
        assert other.accounts.get(account.id) == account


def test_build_is_refused() -> None:
    with pytest.raises(TypeError, match="only creates"):
        UserFactory.build()
