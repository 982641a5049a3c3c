"""smarter-domain: the account, user and user-profile layer of the Smarter platform."""

from .account_number import SMARTER_ACCOUNT_NUMBER, generate_account_number, is_account_number
from .cache import CacheStats, TieredCache, cache_results
from .changes import Change
from .domain import SMARTER_ADMIN_USERNAME, Domain, configure, get_domain, set_domain
from .entities import Account, User, UserProfile
from .errors import (
    AccountNotFound,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    SmarterError,
    UserNotFound,
    UserProfileNotFound,
    ValidationError,
)
from .settings import Settings
from .unit_of_work import UnitOfWork

__all__ = [
    "SMARTER_ACCOUNT_NUMBER",
    "SMARTER_ADMIN_USERNAME",
    "Account",
    "AccountNotFound",
    "CacheStats",
    "Change",
    "ConfigurationError",
    "ConflictError",
    "Domain",
    "NotFoundError",
    "PermissionDenied",
    "Settings",
    "SmarterError",
    "TieredCache",
    "UnitOfWork",
    "User",
    "UserNotFound",
    "UserProfile",
    "UserProfileNotFound",
    "ValidationError",
    "cache_results",
    "configure",
    "generate_account_number",
    "get_domain",
    "is_account_number",
    "set_domain",
]
