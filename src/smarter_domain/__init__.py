"""smarter-domain: the account, user and user-profile layer of the Smarter platform."""

import importlib as _importlib
import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import schema
from .account_number import generate_account_number, is_account_number
from .api import (
    account_number_from_url,
    get_cached_account_for_user,
    get_cached_admin_user_for_account,
    get_cached_default_account,
    get_cached_smarter_admin_user_profile,
    get_cached_user_for_user_id,
    get_cached_user_for_username,
    get_user_profiles_for_account,
    get_users_for_account,
    valid_resource_owners_for_user,
)
from .cache import CacheStats, TieredCache, cache_results
from .changes import Change
from .domain import Domain, configure, get_domain, set_domain
from .entities import Account, User, UserProfile
from .errors import (
    AccountNotFound,
    CacheUnavailable,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    NotFoundError,
    NotMigratedError,
    PermissionDenied,
    SmarterError,
    UserNotFound,
    UserProfileNotFound,
    ValidationError,
)
from .health import ComponentHealth, Health
from .platform_account import SMARTER_ACCOUNT_NUMBER, SMARTER_ADMIN_USERNAME
from .schema import metadata, tables
from .settings import Settings
from .signals import cache_invalidate, receiver
from .unit_of_work import UnitOfWork
from .utils import AccountUtilities

if _TYPE_CHECKING:
    from .brokers import AccountBroker, UserBroker, UserProfileBroker, apply_manifests
    from .manifests import load_manifests

_LAZY = {
    "AccountBroker": ".brokers",
    "UserBroker": ".brokers",
    "UserProfileBroker": ".brokers",
    "apply_manifests": ".brokers",
    "load_manifests": ".manifests",
}
"""Imported on first use: the manifest models need pydantic, langcodes and email-validator,
which a process that only reads never pays for."""


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


# A library's warnings are the application's to route: without this, Python's last-resort
# handler would print them on the stderr of applications that configure no logging.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "SMARTER_ACCOUNT_NUMBER",
    "SMARTER_ADMIN_USERNAME",
    "Account",
    "AccountBroker",
    "AccountNotFound",
    "AccountUtilities",
    "CacheStats",
    "CacheUnavailable",
    "Change",
    "ComponentHealth",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "Domain",
    "Health",
    "NotFoundError",
    "NotMigratedError",
    "PermissionDenied",
    "Settings",
    "SmarterError",
    "TieredCache",
    "UnitOfWork",
    "User",
    "UserBroker",
    "UserNotFound",
    "UserProfile",
    "UserProfileBroker",
    "UserProfileNotFound",
    "ValidationError",
    "account_number_from_url",
    "apply_manifests",
    "cache_invalidate",
    "cache_results",
    "configure",
    "generate_account_number",
    "get_cached_account_for_user",
    "get_cached_admin_user_for_account",
    "get_cached_default_account",
    "get_cached_smarter_admin_user_profile",
    "get_cached_user_for_user_id",
    "get_cached_user_for_username",
    "get_domain",
    "get_user_profiles_for_account",
    "get_users_for_account",
    "is_account_number",
    "load_manifests",
    "metadata",
    "receiver",
    "schema",
    "set_domain",
    "tables",
    "valid_resource_owners_for_user",
]
