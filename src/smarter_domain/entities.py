"""Domain entities: small immutable values, safe to share between threads and from a cache.

They are never ORM instances: a cached value cannot lazy-load, expire or be flushed by
accident. ``version`` starts at 1 and grows by one on every committed update, so two copies
of an entity can be ordered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from .errors import AccountNotFound, UserNotFound, UserProfileNotFound


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    DoesNotExist: ClassVar[type[AccountNotFound]] = AccountNotFound

    id: int
    account_number: str
    name: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    company_name: str = ""
    is_default_account: bool = False
    is_active: bool = True
    phone_number: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    language: str = ""
    timezone: str = ""
    currency: str = ""
    version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    DoesNotExist: ClassVar[type[UserNotFound]] = UserNotFound

    id: int
    username: str
    date_joined: datetime
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    is_staff: bool = False
    is_superuser: bool = False
    is_active: bool = True
    last_login: datetime | None = None
    version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class UserProfile:
    """A user's membership in one account."""

    DoesNotExist: ClassVar[type[UserProfileNotFound]] = UserProfileNotFound

    id: int
    user: User
    account: Account
    created_at: datetime
    updated_at: datetime
    name: str = ""
    description: str = ""
    is_test: bool = False
    version: int = 1

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def account_id(self) -> int:
        return self.account.id


Entity = Account | User | UserProfile
