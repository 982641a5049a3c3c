"""Repository interfaces and their SQLAlchemy implementations."""

from .interfaces import (
    AccountChanges,
    AccountFields,
    AccountRepository,
    UserFields,
    UserProfileFields,
    UserProfileRepository,
    UserRepository,
)
from .sql import SqlAccountRepository, SqlUserProfileRepository, SqlUserRepository

__all__ = [
    "AccountChanges",
    "AccountFields",
    "AccountRepository",
    "SqlAccountRepository",
    "SqlUserProfileRepository",
    "SqlUserRepository",
    "UserFields",
    "UserProfileFields",
    "UserProfileRepository",
    "UserRepository",
]
