"""The account utilities of Smarter (``smarter.apps.account.utils``), on the cached
repositories. ``domain.utils`` has them as methods; ``smarter_domain`` exports module-level
functions that use the default domain. The subject comes first; ``invalidate`` is keyword-only
and drops the entries the lookup reads, in every tier, before reading again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ..model.entities import Account, User, UserProfile
from ..model.errors import (
    AccountNotFound,
    ConfigurationError,
    ConflictError,
    UserNotFound,
    ValidationError,
)
from ..model.platform_account import SMARTER_ACCOUNT_NUMBER, SMARTER_ADMIN_USERNAME
from ..model.urls import account_number_from_url

if TYPE_CHECKING:
    from .ports import Wiring

log = logging.getLogger(__name__)

T = TypeVar("T")


def _entities(value: Any) -> Iterable[Account | User | UserProfile]:
    if isinstance(value, (Account, User, UserProfile)):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _entities(item)


class AccountUtilities:
    def __init__(self, domain: Wiring) -> None:
        self.domain = domain
        self.keys = domain.cache.keys

    account_number_from_url = staticmethod(account_number_from_url)

    def _read(self, compute: Callable[[], T], index_keys: Iterable[str], invalidate: bool) -> T:
        """``compute()``; with ``invalidate``, first drop the index entries it reads and the
        entity entries it returns, so everything comes fresh from the database."""
        if not invalidate:
            return compute()
        cache = self.domain.cache
        cache.invalidate(index_keys)
        stale: set[str] = set()
        for entity in _entities(compute()):
            stale |= self.keys.for_entity(entity)
            if isinstance(entity, UserProfile):
                stale |= self.keys.for_entity(entity.user) | self.keys.for_entity(entity.account)
        cache.invalidate(sorted(stale))
        return compute()

    def get_cached_account_for_user(
        self, user: User | None, *, invalidate: bool = False
    ) -> Account | None:
        """The account of the user's profile in the default account, else of the user's
        oldest profile; None (with a warning) for a user with no profile."""
        if not isinstance(user, User):
            log.warning(
                "get_cached_account_for_user: %r is not a user",
                user,
                extra={"event": "invalid_argument", "function": "get_cached_account_for_user"},
            )
            return None

        def compute() -> Account | None:
            profiles = self.domain.profiles.list_for_user(user.id)
            if not profiles:
                return None
            default = self.domain.accounts.get_default()
            for profile in profiles:
                if default is not None and profile.account.id == default.id:
                    return profile.account
            return profiles[0].account

        keys = [self.keys.profiles_of_user(user.id), self.keys.default_account()]
        account = self._read(compute, keys, invalidate)
        if account is None:
            log.warning(
                "user %s belongs to no account",
                user.username,
                extra={"event": "user_without_account", "user_id": user.id},
            )
        return account

    def get_cached_admin_user_for_account(
        self, account: Account | None, *, invalidate: bool = False
    ) -> User:
        """The account's oldest staff (or superuser) member. An account without one gets
        ``<account_number>-admin``: staff, never superuser, with a profile in the account."""
        if not isinstance(account, Account):
            raise AccountNotFound(f"no account given ({account!r})")
        current = self.domain.accounts.get(account.id)
        if current is None:
            raise AccountNotFound(f"account {account.account_number} does not exist")

        def compute() -> User | None:
            members = self.domain.users.list_for_account(current.id)
            return next((u for u in members if u.is_staff or u.is_superuser), None)

        admin = self._read(compute, [self.keys.users_of_account(current.id)], invalidate)
        return admin if admin is not None else self._create_admin(current)

    def _create_admin(self, account: Account) -> User:
        username = f"{account.account_number}-admin"
        try:
            with self.domain.unit_of_work() as uow:
                user = uow.users.get_by_username(username)
                if user is None:
                    user = uow.users.add(username=username, is_staff=True, is_superuser=False)
                    uow.profiles.add(user_id=user.id, account_id=account.id, name=username)
                elif uow.profiles.get_for(user.id, account.id) is None:
                    # Never adopt a user someone else created under the reserved name.
                    raise ConflictError(
                        "the admin name is taken by a user outside the account",
                        {"username": username},
                    )
                elif not user.is_staff:
                    user = uow.users.update(user.id, is_staff=True)
                uow.commit()
        except ConflictError:
            # Another process created it between our read and our write: use theirs, if it
            # is this account's.
            found = self.domain.users.inner.get_by_username(username)
            if found is None or self.domain.profiles.inner.get_for(found.id, account.id) is None:
                raise
            user = found
        log.info(
            "created admin %s for account %s",
            username,
            account.account_number,
            extra={"event": "admin_created", "account_id": account.id, "user_id": user.id},
        )
        return user

    def get_cached_default_account(self, *, invalidate: bool = False) -> Account:
        account = self._read(
            self.domain.accounts.get_default, [self.keys.default_account()], invalidate
        )
        if account is None:
            raise ConfigurationError("there is no default account: run domain.bootstrap()")
        return account

    def get_cached_smarter_admin_user_profile(self, *, invalidate: bool = False) -> UserProfile:
        def compute() -> UserProfile | None:
            account = self.domain.accounts.get_by_number(SMARTER_ACCOUNT_NUMBER)
            user = self.domain.users.get_by_username(SMARTER_ADMIN_USERNAME)
            if account is None or user is None:
                return None
            if invalidate:
                self.domain.cache.invalidate([self.keys.profile_for(user.id, account.id)])
            return self.domain.profiles.get_for(user.id, account.id)

        keys = [
            self.keys.account_by_number(SMARTER_ACCOUNT_NUMBER),
            self.keys.user_by_username(SMARTER_ADMIN_USERNAME),
        ]
        profile = self._read(compute, keys, invalidate)
        if profile is None:
            raise ConfigurationError("the platform admin does not exist: run domain.bootstrap()")
        return profile

    def get_cached_user_for_user_id(
        self, user_id: int | None, *, invalidate: bool = False
    ) -> User | None:
        if type(user_id) is not int:
            log.error(
                "get_cached_user_for_user_id: invalid user id %r",
                user_id,
                extra={"event": "invalid_argument", "function": "get_cached_user_for_user_id"},
            )
            return None
        if invalidate:
            user = self._read(
                lambda: self.domain.users.get(user_id), [self.keys.user(user_id)], invalidate
            )
        else:  # the hot path: no closure, no key list
            user = self.domain.users.get(user_id)
        if user is None:
            log.error(
                "no user with id %s", user_id, extra={"event": "user_not_found", "user_id": user_id}
            )
        return user

    def get_cached_user_for_username(
        self, username: str | None, *, invalidate: bool = False
    ) -> User:
        if type(username) is not str:
            log.error(
                "get_cached_user_for_username: invalid username %r",
                username,
                extra={"event": "invalid_argument", "function": "get_cached_user_for_username"},
            )
            raise UserNotFound(f"invalid username {username!r}")
        if invalidate:
            user = self._read(
                lambda: self.domain.users.get_by_username(username),
                [self.keys.user_by_username(username)],
                invalidate,
            )
        else:  # the hot path: no closure, no key list
            user = self.domain.users.get_by_username(username)
        if user is None:
            log.error("no user with username %r", username, extra={"event": "user_not_found"})
            raise UserNotFound(f"no user with username {username!r}")
        return user

    def get_user_profiles_for_account(
        self, account: Account | None, *, invalidate: bool = False
    ) -> list[UserProfile] | None:
        account = _require_account(account)
        profiles = self._read(
            lambda: self.domain.profiles.list_for_account(account.id),
            [self.keys.profiles_of_account(account.id)],
            invalidate,
        )
        return profiles or None

    def get_users_for_account(
        self, account: Account | None, *, invalidate: bool = False
    ) -> list[User]:
        account = _require_account(account)
        return self._read(
            lambda: self.domain.users.list_for_account(account.id),
            [self.keys.users_of_account(account.id)],
            invalidate,
        )

    def valid_resource_owners_for_user(
        self, user_profile: UserProfile | None, *, invalidate: bool = False
    ) -> list[UserProfile]:
        """Every profile of the profile's account; None means the platform admin."""
        if user_profile is None:
            return [self.get_cached_smarter_admin_user_profile(invalidate=invalidate)]
        if not isinstance(user_profile, UserProfile):
            raise ValidationError(
                "invalid user profile",
                {"user_profile": f"expected a UserProfile, got {user_profile!r}"},
            )
        account_id = user_profile.account.id
        return self._read(
            lambda: self.domain.profiles.list_for_account(account_id),
            [self.keys.profiles_of_account(account_id)],
            invalidate,
        )


def _require_account(account: object) -> Account:
    if not isinstance(account, Account):
        raise ValidationError(
            "an account is required", {"account": f"expected an Account, got {account!r}"}
        )
    return account
