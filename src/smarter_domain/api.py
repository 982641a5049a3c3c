"""The account utilities as module-level functions on the default domain (``get_domain()``),
with the signatures of Smarter's ``smarter.apps.account.utils``, and ``cache_results``, which
memoizes in the default domain's tiers unless given one.

Importing this module imports neither the domain nor SQLAlchemy: the first call does."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast, overload

if TYPE_CHECKING:
    from .cache.results import AsyncCachedFunction, CachedFunction
    from .domain import Domain
    from .model.entities import Account, User, UserProfile
    from .model.urls import account_number_from_url

__all__ = [
    "account_number_from_url",
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
]


def _first_get_domain() -> Domain:
    """``get_domain()`` on the first call: importing this module imports no SQLAlchemy; the
    first call imports the domain module and keeps its ``get_domain`` for the next calls."""
    global _get_domain
    from .domain import get_domain

    _get_domain = get_domain
    return get_domain()


_get_domain: Callable[[], Domain] = _first_get_domain


def __getattr__(name: str) -> Any:
    """The names this module imported before it imported them lazily (PEP 562):
    ``account_number_from_url`` (from ``urls``) and ``get_domain`` (from ``domain``)."""
    module = {"account_number_from_url": ".model.urls", "get_domain": ".domain"}.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = getattr(__import__(f"{__package__}{module}", fromlist=[name]), name)
    return value


def get_cached_account_for_user(user: User | None, *, invalidate: bool = False) -> Account | None:
    return _get_domain().utils.get_cached_account_for_user(user, invalidate=invalidate)


def get_cached_admin_user_for_account(account: Account | None, *, invalidate: bool = False) -> User:
    return _get_domain().utils.get_cached_admin_user_for_account(account, invalidate=invalidate)


def get_cached_default_account(*, invalidate: bool = False) -> Account:
    return _get_domain().utils.get_cached_default_account(invalidate=invalidate)


def get_cached_smarter_admin_user_profile(*, invalidate: bool = False) -> UserProfile:
    return _get_domain().utils.get_cached_smarter_admin_user_profile(invalidate=invalidate)


def get_cached_user_for_user_id(user_id: int | None, *, invalidate: bool = False) -> User | None:
    return _get_domain().utils.get_cached_user_for_user_id(user_id, invalidate=invalidate)


def get_cached_user_for_username(username: str | None, *, invalidate: bool = False) -> User:
    return _get_domain().utils.get_cached_user_for_username(username, invalidate=invalidate)


def get_user_profiles_for_account(
    account: Account | None, *, invalidate: bool = False
) -> list[UserProfile] | None:
    return _get_domain().utils.get_user_profiles_for_account(account, invalidate=invalidate)


def get_users_for_account(account: Account | None, *, invalidate: bool = False) -> list[User]:
    return _get_domain().utils.get_users_for_account(account, invalidate=invalidate)


def valid_resource_owners_for_user(
    user_profile: UserProfile | None, *, invalidate: bool = False
) -> list[UserProfile]:
    return _get_domain().utils.valid_resource_owners_for_user(user_profile, invalidate=invalidate)


P = ParamSpec("P")
R = TypeVar("R")


class CacheResultsDecorator(Protocol):
    """What ``cache_results(...)`` returns: a ``CachedFunction`` for a function, an
    ``AsyncCachedFunction`` (awaited, with ``await f.invalidate(...)``) for an ``async def``."""

    @overload
    def __call__(  # type: ignore[overload-overlap]  # an async def matches the first
        self, function: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncCachedFunction[P, R]: ...

    @overload
    def __call__(self, function: Callable[P, R]) -> CachedFunction[P, R]: ...


def cache_results(
    timeout: float | None = None,
    cache_key: str | None = None,
    *,
    domain: Any = None,
    namespace: str | None = None,
) -> CacheResultsDecorator:
    """Memoize a function in the default domain's cache tiers (or ``domain=``'s).

    ``timeout`` (seconds) defaults to the domain's ``cache_ttl``. ``None`` results are
    cached, exceptions are not. A result the cache format cannot hold raises TypeError, and
    so does an argument it cannot key (naming it).

    An ``async def`` is memoized in the default ``AsyncDomain`` (``aio.get_domain()``) or
    ``domain=`` (an ``AsyncDomain``): ``await f(...)``, ``await f.invalidate(...)``; both
    kinds share the keys and entries of one cache.

    A closure's captured values are part of its key, read once when it is decorated and
    encoded like arguments, so two closures made by one factory with different values never
    share an entry, while the same values share it in every process. A captured value it
    cannot key (or a variable still unassigned when decorated, other than the function's own
    name) raises TypeError at decoration time; ``namespace="..."`` then names the closure's
    entries instead of its captured values (closures given the same namespace share entries).
    """
    import inspect

    from .cache.results import AsyncCachedFunction, CachedFunction, check_options

    check_options(timeout, cache_key, namespace)

    def decorate(function: Callable[..., Any]) -> Any:
        if inspect.iscoroutinefunction(function):
            if domain is not None:
                return AsyncCachedFunction(function, timeout, cache_key, lambda: domain, namespace)
            return AsyncCachedFunction(function, timeout, cache_key, _async_default, namespace)
        domain_of = (lambda: domain) if domain is not None else (lambda: _get_domain())
        return CachedFunction(function, timeout, cache_key, domain_of, namespace)

    return cast(CacheResultsDecorator, decorate)


def _async_default() -> Any:
    from .aio import get_domain

    return get_domain()
