"""One repository interface per aggregate. SQL, cached and test implementations all fit these.

Single lookups return ``None`` when nothing matches (lists ``[]``, ``get_many`` ``{}``), also
for what no row can hold: an id that is not an int or lies outside the id columns' range, text
with a NUL character or a lone surrogate. The account utilities decide whether a miss is an
error. Writes take keyword fields checked at run time as well as by the type checker, and raise
``ValidationError`` / ``ConflictError`` / ``NotFoundError``; a database that fails raises
``DatabaseError`` (``NotMigratedError`` when its schema is missing or older).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, TypedDict

from typing_extensions import Unpack

from .entities import Account, User, UserProfile

Tags = Sequence[str]
"""Smarter's ``metadata.tags``: strings, in order (entities hold them as a tuple)."""
Annotations = Mapping[str, str] | Sequence[tuple[str, str]]
"""Smarter's ``metadata.annotations``: a mapping or ``(key, value)`` pairs, keys unique;
entities hold them as a tuple of pairs, in order."""


class AccountFields(TypedDict, total=False):
    description: str
    company_name: str
    is_default_account: bool
    is_active: bool
    phone_number: str
    address1: str
    address2: str
    city: str
    state: str
    postal_code: str
    country: str
    language: str
    timezone: str
    currency: str
    tags: Tags
    annotations: Annotations


class AccountChanges(AccountFields, total=False):
    name: str


class UserFields(TypedDict, total=False):
    email: str
    first_name: str
    last_name: str
    is_staff: bool
    is_superuser: bool
    is_active: bool
    last_login: datetime | None
    tags: Tags
    annotations: Annotations


class UserProfileFields(TypedDict, total=False):
    name: str
    description: str
    is_test: bool
    tags: Tags
    annotations: Annotations


class AccountRepository(Protocol):
    def get(self, account_id: int) -> Account | None: ...
    def get_many(self, account_ids: Sequence[int]) -> dict[int, Account]: ...
    def get_by_number(self, account_number: str) -> Account | None: ...
    def get_default(self) -> Account | None: ...
    def list_all(self) -> list[Account]: ...
    def add(
        self, *, name: str, account_number: str | None = None, **fields: Unpack[AccountFields]
    ) -> Account: ...
    def update(self, account_id: int, **changes: Unpack[AccountChanges]) -> Account: ...
    def delete(self, account_id: int) -> None: ...


class UserRepository(Protocol):
    def get(self, user_id: int) -> User | None: ...
    def get_many(self, user_ids: Sequence[int]) -> dict[int, User]: ...
    def get_by_username(self, username: str) -> User | None: ...
    def list_for_account(self, account_id: int) -> list[User]: ...
    def list_all(self) -> list[User]: ...
    def add(self, *, username: str, **fields: Unpack[UserFields]) -> User: ...
    def update(self, user_id: int, **changes: Unpack[UserFields]) -> User: ...
    def delete(self, user_id: int) -> None: ...


class UserProfileRepository(Protocol):
    def get(self, profile_id: int) -> UserProfile | None: ...
    def get_many(self, profile_ids: Sequence[int]) -> dict[int, UserProfile]: ...
    def get_for(self, user_id: int, account_id: int) -> UserProfile | None: ...
    def list_for_account(self, account_id: int) -> list[UserProfile]: ...
    def list_for_user(self, user_id: int) -> list[UserProfile]: ...
    def list_all(self) -> list[UserProfile]: ...
    def add(
        self, *, user_id: int, account_id: int, **fields: Unpack[UserProfileFields]
    ) -> UserProfile: ...
    def update(self, profile_id: int, **changes: Unpack[UserProfileFields]) -> UserProfile: ...
    def delete(self, profile_id: int) -> None: ...
