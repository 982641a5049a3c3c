"""The fields a repository's writes take, as keyword arguments checked at run time as well as
by the type checker (the sync and async repository interfaces share them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypedDict

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
