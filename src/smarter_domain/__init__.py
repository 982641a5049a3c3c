"""smarter-domain: the account, user and user-profile layer of the Smarter platform.

``import smarter_domain`` imports nothing else of the library: each public name (``__all__``)
is imported from its module on first use (PEP 562), then kept in this module's globals, so
a later access is a plain attribute lookup. ``smarter_domain.Domain`` loads SQLAlchemy and
the cache (redis, dogpile), ``smarter_domain.apply_manifests`` the manifest stack (pydantic,
langcodes, email-validator); a process pays for what it uses. The library's modules are
reachable as attributes too (``smarter_domain.model``, ``smarter_domain.testing``).

The layers show in the packages: ``model`` (the domain's rules: entities, errors, account
numbers, the manifest schema, the repository interfaces; no I/O), ``adapters`` (SQLAlchemy:
the ORM rows, engines, the SQL repositories), ``cache`` (the cache protocol: keys, records,
leases, the invalidation bus, the tiers, the cached repositories), ``services`` (units of work,
brokers, the account utilities, actors, health, signals) and ``entrypoints`` (the command
line). ``domain.Domain`` is the composition root that wires them; nothing imports it back.
"""

from __future__ import annotations

import logging as _logging
import sys as _sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

    __version__: str  # the installed package's version (``__getattr__`` reads its metadata)

    from . import schema
    from .api import (
        cache_results,
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
    from .cache import CacheStats, TieredCache
    from .domain import Domain, configure, get_domain, set_domain
    from .domain_async import AsyncDomain
    from .model.account_number import generate_account_number, is_account_number
    from .model.changes import Change
    from .model.entities import Account, User, UserProfile
    from .model.errors import (
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
    from .model.manifests import load_manifests
    from .model.platform_account import SMARTER_ACCOUNT_NUMBER, SMARTER_ADMIN_USERNAME
    from .model.urls import account_number_from_url
    from .schema import metadata, tables
    from .services.brokers import AccountBroker, UserBroker, UserProfileBroker, apply_manifests
    from .services.health import ComponentHealth, Health
    from .services.signals import cache_invalidate, receiver
    from .services.unit_of_work import UnitOfWork
    from .services.utils import AccountUtilities
    from .settings import Settings

_EXPORTS = {
    ".model.account_number": ("generate_account_number", "is_account_number"),
    ".api": (
        "cache_results",
        "get_cached_account_for_user",
        "get_cached_admin_user_for_account",
        "get_cached_default_account",
        "get_cached_smarter_admin_user_profile",
        "get_cached_user_for_user_id",
        "get_cached_user_for_username",
        "get_user_profiles_for_account",
        "get_users_for_account",
        "valid_resource_owners_for_user",
    ),
    ".services.brokers": ("AccountBroker", "UserBroker", "UserProfileBroker", "apply_manifests"),
    ".cache": ("CacheStats", "TieredCache"),
    ".model.changes": ("Change",),
    ".domain": ("Domain", "configure", "get_domain", "set_domain"),
    ".domain_async": ("AsyncDomain",),
    ".model.entities": ("Account", "User", "UserProfile"),
    ".model.errors": (
        "AccountNotFound",
        "CacheUnavailable",
        "ConfigurationError",
        "ConflictError",
        "DatabaseError",
        "NotFoundError",
        "NotMigratedError",
        "PermissionDenied",
        "SmarterError",
        "UserNotFound",
        "UserProfileNotFound",
        "ValidationError",
    ),
    ".services.health": ("ComponentHealth", "Health"),
    ".model.manifests": ("load_manifests",),
    ".model.platform_account": ("SMARTER_ACCOUNT_NUMBER", "SMARTER_ADMIN_USERNAME"),
    ".schema": ("metadata", "tables"),
    ".settings": ("Settings",),
    ".services.signals": ("cache_invalidate", "receiver"),
    ".services.unit_of_work": ("UnitOfWork",),
    ".model.urls": ("account_number_from_url",),
    ".services.utils": ("AccountUtilities",),
}
"""The module of each public name (kept in step with the imports above: a test checks)."""
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

_SUBMODULES = frozenset(
    {
        "adapters",
        "aio",
        "api",
        "cache",
        "defaults",
        "domain",
        "domain_async",
        "entrypoints",
        "forking",
        "integrations",
        "migrations",
        "model",
        "resources",
        "schema",
        "services",
        "settings",
        "telemetry",
        "testing",
    }
)
"""The library's modules, imported when reached as an attribute (``smarter_domain.model``).
Listed rather than looked up, so that no other name (a probe such as ``hasattr``, or a data
folder of the wheel) imports anything."""


def __getattr__(name: str) -> Any:
    # __import__ rather than importlib.import_module: the import statement's path, which
    # ``python -X importtime`` reports (import_module's imports go unlisted).
    module = _MODULE_OF.get(name)
    if module is not None:
        value = getattr(__import__(f"{__name__}{module}", fromlist=[name]), name)
    elif name == "__version__":  # from the installed package's metadata (read on first use)
        from importlib.metadata import version

        value = version("smarter-domain")
    elif name in _SUBMODULES:
        __import__(f"{__name__}.{name}")
        value = _sys.modules[f"{__name__}.{name}"]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next access does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


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
    "AsyncDomain",
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
