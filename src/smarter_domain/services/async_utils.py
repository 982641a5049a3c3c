"""The account utilities as coroutines (``adomain.utils``, ``smarter_domain.aio``): the same
names, call forms and semantics as ``AccountUtilities``, whose logic each one runs in a
greenlet (``concurrency.spawn``)."""

from __future__ import annotations

from ..cache.concurrency import spawn
from ..model.entities import Account, User, UserProfile
from ..model.urls import account_number_from_url
from .utils import AccountUtilities


class AsyncAccountUtilities:
    def __init__(self, sync: AccountUtilities) -> None:
        self.sync = sync

    account_number_from_url = staticmethod(account_number_from_url)  # no I/O: not a coroutine

    async def get_cached_account_for_user(
        self, user: User | None, *, invalidate: bool = False
    ) -> Account | None:
        return await spawn(self.sync.get_cached_account_for_user, user, invalidate=invalidate)

    async def get_cached_admin_user_for_account(
        self, account: Account | None, *, invalidate: bool = False
    ) -> User:
        return await spawn(
            self.sync.get_cached_admin_user_for_account, account, invalidate=invalidate
        )

    async def get_cached_default_account(self, *, invalidate: bool = False) -> Account:
        return await spawn(self.sync.get_cached_default_account, invalidate=invalidate)

    async def get_cached_smarter_admin_user_profile(
        self, *, invalidate: bool = False
    ) -> UserProfile:
        return await spawn(self.sync.get_cached_smarter_admin_user_profile, invalidate=invalidate)

    async def get_cached_user_for_user_id(
        self, user_id: int | None, *, invalidate: bool = False
    ) -> User | None:
        return await spawn(self.sync.get_cached_user_for_user_id, user_id, invalidate=invalidate)

    async def get_cached_user_for_username(
        self, username: str | None, *, invalidate: bool = False
    ) -> User:
        return await spawn(self.sync.get_cached_user_for_username, username, invalidate=invalidate)

    async def get_user_profiles_for_account(
        self, account: Account | None, *, invalidate: bool = False
    ) -> list[UserProfile] | None:
        return await spawn(self.sync.get_user_profiles_for_account, account, invalidate=invalidate)

    async def get_users_for_account(
        self, account: Account | None, *, invalidate: bool = False
    ) -> list[User]:
        return await spawn(self.sync.get_users_for_account, account, invalidate=invalidate)

    async def valid_resource_owners_for_user(
        self, user_profile: UserProfile | None, *, invalidate: bool = False
    ) -> list[UserProfile]:
        return await spawn(
            self.sync.valid_resource_owners_for_user, user_profile, invalidate=invalidate
        )
