"""The account utilities as module-level functions on the default domain (``get_domain()``),
with the signatures of Smarter's ``smarter.apps.account.utils``."""

from __future__ import annotations

from .domain import get_domain
from .entities import Account, User, UserProfile
from .urls import account_number_from_url

__all__ = [
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


def get_cached_account_for_user(user: User | None, *, invalidate: bool = False) -> Account | None:
    return get_domain().utils.get_cached_account_for_user(user, invalidate=invalidate)


def get_cached_admin_user_for_account(account: Account | None, *, invalidate: bool = False) -> User:
    return get_domain().utils.get_cached_admin_user_for_account(account, invalidate=invalidate)


def get_cached_default_account(*, invalidate: bool = False) -> Account:
    return get_domain().utils.get_cached_default_account(invalidate=invalidate)


def get_cached_smarter_admin_user_profile(*, invalidate: bool = False) -> UserProfile:
    return get_domain().utils.get_cached_smarter_admin_user_profile(invalidate=invalidate)


def get_cached_user_for_user_id(user_id: int | None, *, invalidate: bool = False) -> User | None:
    return get_domain().utils.get_cached_user_for_user_id(user_id, invalidate=invalidate)


def get_cached_user_for_username(username: str | None, *, invalidate: bool = False) -> User:
    return get_domain().utils.get_cached_user_for_username(username, invalidate=invalidate)


def get_user_profiles_for_account(
    account: Account | None, *, invalidate: bool = False
) -> list[UserProfile] | None:
    return get_domain().utils.get_user_profiles_for_account(account, invalidate=invalidate)


def get_users_for_account(account: Account | None, *, invalidate: bool = False) -> list[User]:
    return get_domain().utils.get_users_for_account(account, invalidate=invalidate)


def valid_resource_owners_for_user(
    user_profile: UserProfile | None, *, invalidate: bool = False
) -> list[UserProfile]:
    return get_domain().utils.valid_resource_owners_for_user(user_profile, invalidate=invalidate)
