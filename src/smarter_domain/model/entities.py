"""Domain entities: small immutable values, safe to share between threads and from a cache.

They are never ORM instances: a cached value cannot lazy-load, expire or be flushed by
accident. ``version`` starts at 1 and grows by one on every committed update, so two copies
of an entity can be ordered. ``tags`` and ``annotations`` are the manifest metadata of Smarter
(tuples, so an entity stays hashable; annotations are ``(key, value)`` pairs in order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from .errors import AccountNotFound, UserNotFound, UserProfileNotFound

ID_MIN, ID_MAX = -(2**31), 2**31 - 1
"""The range of the id columns (``Integer``: PostgreSQL's int4) on every backend: an id outside
it names no row, and is never sent to the database (SQLite overflows on 2**63)."""

USERNAME_PATTERN = re.compile(r"^[\w.@+-]{1,150}$")
"""What a username may be (Django's rule): what a repository stores and a manifest names."""


def is_valid_id(value: object) -> bool:
    """An int (not a bool, not an int subclass) the id columns can hold. Anything else names no
    entity, and must not reach a cache key either: ``"1"`` would be keyed like ``1``."""
    return type(value) is int and ID_MIN <= value <= ID_MAX


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
    tags: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
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
    tags: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
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
    tags: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    version: int = 1

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def account_id(self) -> int:
        return self.account.id


Entity = Account | User | UserProfile
