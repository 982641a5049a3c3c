"""The ten account utilities (CONTRACT section 3) on both stacks: SQLite + memory tier and
PostgreSQL + Redis. Each row of the table: found, miss, bad input; every documented call form;
upstream defects 1, 6 and 7; and a query count for each cached function."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import smarter_domain as sd
from smarter_domain import Domain
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory


@pytest.fixture
def platform(domain: Domain) -> sd.UserProfile:
    return domain.bootstrap()


def assert_cached(count_queries: Any, call: Callable[[], Any]) -> Any:
    """The first call may query; the same call again is served without a database query."""
    first = call()
    with count_queries() as counter:
        again = call()
    assert counter.count == 0, counter.statements
    assert again == first
    return first


def assert_reloads(count_queries: Any, call: Callable[[], Any]) -> None:
    with count_queries() as counter:
        call()
    assert counter.count >= 1


# account_number_from_url ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hr.3141-5926-5359.alpha.api.example.com/", "3141-5926-5359"),
        ("HTTPS://hr.3141-5926-5359.alpha.api.example.com", "3141-5926-5359"),
        ("http://3141-5926-5359.example.com:8000/chat?x=1", "3141-5926-5359"),
        ("https://api.1234-5678-9012.example.com./", "1234-5678-9012"),
        ("https://API.1234-5678-9012.EXAMPLE.COM/", "1234-5678-9012"),
        ("https://example.com/3141-5926-5359/", None),  # the path does not count
        ("https://example.com/?account=3141-5926-5359", None),  # nor the query
        ("https://example.com/#3141-5926-5359", None),  # nor the fragment
        ("https://3141-5926-5359@example.com/", None),  # nor the user info
        ("https://x3141-5926-5359.example.com/", None),  # a whole label only
        ("https://3141-5926-53591.example.com/", None),
        ("https://3141-5926-535.example.com/", None),
        ("hr.3141-5926-5359.example.com", None),  # not a URL: no host
        ("https://example.com/", None),
        ("", None),
        ("https://[::1", None),  # malformed
        ("http://example.com:notaport/", None),
        (None, None),
        (3141, None),
        (b"https://hr.3141-5926-5359.example.com/", None),
    ],
)
def test_account_number_from_url(url: Any, expected: str | None) -> None:
    assert sd.account_number_from_url(url) == expected
    assert sd.account_number_from_url(url=url) == expected


def test_account_number_from_url_positional_call(domain: Domain) -> None:
    """Upstream defect 1: the URL passed positionally returned None."""
    url = "https://hr.3141-5926-5359.alpha.api.example.com/"
    assert sd.account_number_from_url(url) == "3141-5926-5359"
    assert domain.utils.account_number_from_url(url) == "3141-5926-5359"


# get_cached_account_for_user -------------------------------------------------------------


def test_account_for_user_prefers_the_default_account(
    domain: Domain, platform: sd.UserProfile, count_queries: Any
) -> None:
    user = UserFactory()
    UserProfileFactory(user=user)  # an older profile elsewhere
    UserProfileFactory(user=user, account=platform.account)
    found = assert_cached(count_queries, lambda: sd.get_cached_account_for_user(user))
    assert found == platform.account


def test_account_for_user_else_the_oldest_profile(domain: Domain, count_queries: Any) -> None:
    user = UserFactory()
    oldest = UserProfileFactory(user=user)
    UserProfileFactory(user=user)
    found = assert_cached(count_queries, lambda: sd.get_cached_account_for_user(user))
    assert found == oldest.account
    assert sd.get_cached_account_for_user(user=user, invalidate=True) == oldest.account


@pytest.mark.parametrize("user", [None, "jdoe", 42])
def test_account_for_user_miss_and_bad_input(
    domain: Domain, caplog: pytest.LogCaptureFixture, user: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="smarter_domain"):
        assert sd.get_cached_account_for_user(user) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_account_for_user_without_profile(domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    user = UserFactory()
    with caplog.at_level(logging.WARNING, logger="smarter_domain"):
        assert sd.get_cached_account_for_user(user) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]


# get_cached_admin_user_for_account -------------------------------------------------------


def test_admin_is_the_oldest_staff_member(domain: Domain, count_queries: Any) -> None:
    account = AccountFactory()
    UserProfileFactory(account=account)
    first_staff = UserProfileFactory(account=account, user=UserFactory(is_staff=True)).user
    UserProfileFactory(account=account, user=UserFactory(is_superuser=True))
    found = assert_cached(count_queries, lambda: sd.get_cached_admin_user_for_account(account))
    assert found == first_staff
    assert sd.get_cached_admin_user_for_account(invalidate=True, account=account) == first_staff


def test_a_superuser_member_counts_as_admin(domain: Domain) -> None:
    account = AccountFactory()
    boss = UserProfileFactory(account=account, user=UserFactory(is_superuser=True)).user
    assert sd.get_cached_admin_user_for_account(account) == boss


def test_admin_is_created_staff_but_not_superuser(domain: Domain, count_queries: Any) -> None:
    """Upstream defect 6."""
    account = AccountFactory()
    UserProfileFactory(account=account)  # a member, not staff
    admin = sd.get_cached_admin_user_for_account(account)
    assert admin.username == f"{account.account_number}-admin"
    assert admin.is_staff
    assert not admin.is_superuser
    assert domain.profiles.get_for(admin.id, account.id) is not None
    again = assert_cached(count_queries, lambda: sd.get_cached_admin_user_for_account(account))
    assert again == admin
    assert len(domain.users.list_for_account(account.id)) == 2


def test_admin_for_missing_or_unknown_account(domain: Domain) -> None:
    with pytest.raises(sd.AccountNotFound):
        sd.get_cached_admin_user_for_account(None)
    account = AccountFactory()
    domain.accounts.delete(account.id)
    with pytest.raises(sd.Account.DoesNotExist):
        sd.get_cached_admin_user_for_account(account)
    assert domain.users.get_by_username(f"{account.account_number}-admin") is None


def test_two_processes_racing_create_one_admin(
    smarter_database_url: str, smarter_stack_redis_url: str | None, domain: Domain
) -> None:
    account = AccountFactory()
    script = (
        "import sys, time, smarter_domain as sd\n"
        "d = sd.Domain(sys.argv[1], sys.argv[2] or None)\n"
        "account = d.accounts.get(int(sys.argv[3]))\n"
        "time.sleep(max(0, float(sys.argv[4]) - time.time()))\n"
        "print(d.utils.get_cached_admin_user_for_account(account).id)\n"
        "d.close()\n"
    )
    import time

    start = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                smarter_database_url,
                smarter_stack_redis_url or "",
                str(account.id),
                start,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert results[0][0] == results[1][0]
    members = domain.users.list_for_account(account.id)
    assert [u.username for u in members] == [f"{account.account_number}-admin"]


# get_cached_default_account ----------------------------------------------------------------


def test_default_account(domain: Domain, platform: sd.UserProfile, count_queries: Any) -> None:
    found = assert_cached(count_queries, sd.get_cached_default_account)
    assert found == platform.account
    assert_reloads(count_queries, lambda: sd.get_cached_default_account(invalidate=True))


def test_default_account_missing(domain: Domain) -> None:
    with pytest.raises(sd.ConfigurationError):
        sd.get_cached_default_account()


# get_cached_smarter_admin_user_profile ---------------------------------------------------


def test_smarter_admin_profile(
    domain: Domain, platform: sd.UserProfile, count_queries: Any
) -> None:
    found = assert_cached(count_queries, sd.get_cached_smarter_admin_user_profile)
    assert found == platform
    assert found.user.username == "admin"
    assert found.account.account_number == sd.SMARTER_ACCOUNT_NUMBER
    assert_reloads(count_queries, lambda: sd.get_cached_smarter_admin_user_profile(invalidate=True))


def test_smarter_admin_profile_not_bootstrapped(domain: Domain) -> None:
    with pytest.raises(sd.ConfigurationError):
        sd.get_cached_smarter_admin_user_profile()


# get_cached_user_for_user_id ---------------------------------------------------------------


def test_user_for_user_id(domain: Domain, count_queries: Any) -> None:
    user = UserFactory()
    assert assert_cached(count_queries, lambda: sd.get_cached_user_for_user_id(user.id)) == user
    assert sd.get_cached_user_for_user_id(user_id=user.id) == user
    assert sd.get_cached_user_for_user_id(user.id, invalidate=True) == user
    assert_reloads(count_queries, lambda: sd.get_cached_user_for_user_id(user.id, invalidate=True))


@pytest.mark.parametrize("user_id", [123456, None, "1", 1.0, True])
def test_user_for_user_id_miss_and_bad_input(
    domain: Domain, caplog: pytest.LogCaptureFixture, user_id: Any
) -> None:
    UserFactory()
    with caplog.at_level(logging.ERROR, logger="smarter_domain"):
        assert sd.get_cached_user_for_user_id(user_id) is None
    assert [r.levelname for r in caplog.records] == ["ERROR"]


# get_cached_user_for_username --------------------------------------------------------------


def test_user_for_username(domain: Domain, count_queries: Any) -> None:
    user = UserFactory(username="johndoe")
    found = assert_cached(count_queries, lambda: sd.get_cached_user_for_username("johndoe"))
    assert found == user
    assert sd.get_cached_user_for_username("johndoe", invalidate=True) == user
    assert sd.get_cached_user_for_username(username="johndoe") == user
    assert_reloads(
        count_queries, lambda: sd.get_cached_user_for_username("johndoe", invalidate=True)
    )


@pytest.mark.parametrize("username", ["nobody", "", None, 7, "x" * 1000])
def test_user_for_username_miss_and_bad_input(
    domain: Domain, caplog: pytest.LogCaptureFixture, username: Any
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="smarter_domain"),
        pytest.raises(sd.User.DoesNotExist),
    ):
        sd.get_cached_user_for_username(username)
    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_deleting_a_user_invalidates_its_cached_entries(domain: Domain) -> None:
    """Upstream defect 7."""
    profile = UserProfileFactory(user=UserFactory(username="leaver"))
    user = profile.user
    assert sd.get_cached_user_for_username("leaver") == user
    assert sd.get_cached_user_for_user_id(user.id) == user
    assert sd.get_users_for_account(profile.account) == [user]
    assert sd.get_cached_account_for_user(user) == profile.account
    domain.users.delete(user.id)
    with pytest.raises(sd.UserNotFound):
        sd.get_cached_user_for_username("leaver")
    assert sd.get_cached_user_for_user_id(user.id) is None
    assert sd.get_users_for_account(profile.account) == []
    assert sd.get_user_profiles_for_account(profile.account) is None
    assert sd.get_cached_account_for_user(user) is None


# get_user_profiles_for_account / get_users_for_account -------------------------------------


def test_profiles_and_users_of_an_account(domain: Domain, count_queries: Any) -> None:
    account = AccountFactory()
    users = UserFactory.create_batch(3)
    profiles = [UserProfileFactory(user=u, account=account) for u in reversed(users)]
    UserProfileFactory()  # another account's member
    found = assert_cached(count_queries, lambda: sd.get_user_profiles_for_account(account))
    assert found == profiles
    assert assert_cached(count_queries, lambda: sd.get_users_for_account(account)) == users
    assert sd.get_users_for_account(account=account, invalidate=True) == users
    assert sd.get_user_profiles_for_account(account=account, invalidate=True) == profiles


def test_account_without_members(domain: Domain) -> None:
    account = AccountFactory()
    assert sd.get_user_profiles_for_account(account) is None
    assert sd.get_users_for_account(account) == []


@pytest.mark.parametrize("account", [None, 1, "1234-5678-9012"])
def test_member_lists_need_an_account(domain: Domain, account: Any) -> None:
    with pytest.raises(sd.ValidationError):
        sd.get_user_profiles_for_account(account)
    with pytest.raises(sd.ValidationError):
        sd.get_users_for_account(account)


def test_new_members_show_up(domain: Domain) -> None:
    account = AccountFactory()
    assert sd.get_users_for_account(account) == []
    profile = UserProfileFactory(account=account)
    assert sd.get_users_for_account(account) == [profile.user]
    assert sd.get_user_profiles_for_account(account) == [profile]


# valid_resource_owners_for_user ------------------------------------------------------------


def test_resource_owners_are_the_profiles_of_the_same_account(
    domain: Domain, count_queries: Any
) -> None:
    account = AccountFactory()
    profiles = [UserProfileFactory(account=account) for _ in range(3)]
    UserProfileFactory()
    found = assert_cached(count_queries, lambda: sd.valid_resource_owners_for_user(profiles[1]))
    assert found == profiles
    assert sd.valid_resource_owners_for_user(user_profile=profiles[0], invalidate=True) == profiles


def test_resource_owners_of_none_is_the_platform_admin(
    domain: Domain, platform: sd.UserProfile
) -> None:
    assert sd.valid_resource_owners_for_user(None) == [platform]


def test_resource_owners_bad_input(domain: Domain) -> None:
    with pytest.raises(sd.ValidationError):
        sd.valid_resource_owners_for_user("someone")  # type: ignore[arg-type]


# invalidate=True really goes back to the database ------------------------------------------


def test_invalidate_true_sees_a_change_made_behind_the_cache(domain: Domain) -> None:
    user = UserFactory(first_name="Before")
    assert sd.get_cached_user_for_username(user.username).first_name == "Before"
    from sqlalchemy import update

    from smarter_domain.adapters.orm import UserRow

    with domain.engine.begin() as connection:  # a write the library does not know about
        connection.execute(update(UserRow).where(UserRow.id == user.id).values(first_name="After"))
    assert sd.get_cached_user_for_username(user.username).first_name == "Before"
    fresh = sd.get_cached_user_for_username(user.username, invalidate=True)
    assert fresh.first_name == "After"
    assert sd.get_cached_user_for_username(user.username).first_name == "After"


def test_methods_on_domain_utils_match_the_module_functions(domain: Domain) -> None:
    names = [
        "account_number_from_url",
        "get_cached_account_for_user",
        "get_cached_admin_user_for_account",
        "get_cached_default_account",
        "get_cached_smarter_admin_user_profile",
        "get_cached_user_for_user_id",
        "get_cached_user_for_username",
        "get_user_profiles_for_account",
        "get_users_for_account",
        "valid_resource_owners_for_user",
    ]
    for name in names:
        assert callable(getattr(domain.utils, name))
        assert name in sd.__all__
