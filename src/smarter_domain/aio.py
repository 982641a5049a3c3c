"""The async front door: ``AsyncDomain``, the process default (``configure`` /
``get_domain``) and the account utilities as coroutines, with the names, call forms and
semantics of ``smarter_domain``'s::

    from smarter_domain import aio

    adomain = aio.configure("postgresql://...", "redis://...")
    user = await aio.get_cached_user_for_username("jdoe", invalidate=True)
    async with adomain.unit_of_work() as uow:
        ...
        await uow.commit()

``cache_results`` memoizes an ``async def`` in the default AsyncDomain (``await
f.invalidate(...)``). Importing this module imports neither SQLAlchemy nor Redis: the first
call does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .api import cache_results
from .defaults import ProcessDefault

if TYPE_CHECKING:
    from .domain_async import AsyncDomain
    from .model.entities import Account, User, UserProfile
    from .model.urls import account_number_from_url
    from .services.async_brokers import AsyncAccountBroker as AccountBroker
    from .services.async_brokers import AsyncUserBroker as UserBroker
    from .services.async_brokers import AsyncUserProfileBroker as UserProfileBroker
    from .settings import DEFAULT_CACHE_TTL
else:
    DEFAULT_CACHE_TTL = 600

__all__ = [
    "AccountBroker",
    "AsyncDomain",
    "UserBroker",
    "UserProfileBroker",
    "account_number_from_url",
    "aclose_default",
    "cache_results",
    "configure",
    "current_default",
    "get_cached_account_for_user",
    "get_cached_admin_user_for_account",
    "get_cached_default_account",
    "get_cached_smarter_admin_user_profile",
    "get_cached_user_for_user_id",
    "get_cached_user_for_username",
    "get_domain",
    "get_user_profiles_for_account",
    "get_users_for_account",
    "set_domain",
    "valid_resource_owners_for_user",
]

_defaults: ProcessDefault[AsyncDomain] = ProcessDefault(lambda: _domain_class().from_env())
_closing: set[asyncio.Task[None]] = set()  # closes of replaced defaults, kept referenced


def _domain_class() -> type[AsyncDomain]:
    from .domain_async import AsyncDomain

    return AsyncDomain


def __getattr__(name: str) -> Any:
    """``AsyncDomain`` and ``account_number_from_url``, imported on first use (PEP 562)."""
    module = {
        "AsyncDomain": ".domain_async",
        "account_number_from_url": ".model.urls",
        "AccountBroker": ".services.async_brokers",
        "UserBroker": ".services.async_brokers",
        "UserProfileBroker": ".services.async_brokers",
    }.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = __import__(f"{__package__}{module}", fromlist=[name])
    value = globals()[name] = getattr(found, f"Async{name}" if "Broker" in name else name)
    return value


def configure(
    database_url: str | None = None,
    redis_url: str | None = None,
    cache_ttl: int = DEFAULT_CACHE_TTL,
    **options: Any,
) -> AsyncDomain:
    """Build an AsyncDomain (no I/O yet) and make it the process default; a default built
    earlier by ``configure``/``get_domain`` is closed (on the running loop, or at once when
    none runs)."""
    domain = _domain_class()(database_url, redis_url, cache_ttl, **options)
    replaced = _defaults.install(domain)
    if replaced is None:
        return domain
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(replaced.aclose())
        return domain
    task = loop.create_task(replaced.aclose())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return domain


def get_domain() -> AsyncDomain:
    """The process default, built from ``SMARTER_*`` environment variables on first use."""
    return _defaults.get()


def current_default() -> AsyncDomain | None:
    """The process default if one is installed (``get_domain`` would build one)."""
    return _defaults.current()


def set_domain(domain: AsyncDomain | None) -> AsyncDomain | None:
    """Install an application-owned AsyncDomain (or none) as the default; returns the
    previous one, left open: the caller owns both."""
    return _defaults.set(domain)


async def aclose_default() -> None:
    """Uninstall the default, and close it if ``configure``/``get_domain`` built it (at
    shutdown)."""
    owned = _defaults.clear()
    if owned is not None:
        await owned.aclose()


async def get_cached_account_for_user(
    user: User | None, *, invalidate: bool = False
) -> Account | None:
    return await get_domain().utils.get_cached_account_for_user(user, invalidate=invalidate)


async def get_cached_admin_user_for_account(
    account: Account | None, *, invalidate: bool = False
) -> User:
    return await get_domain().utils.get_cached_admin_user_for_account(
        account, invalidate=invalidate
    )


async def get_cached_default_account(*, invalidate: bool = False) -> Account:
    return await get_domain().utils.get_cached_default_account(invalidate=invalidate)


async def get_cached_smarter_admin_user_profile(*, invalidate: bool = False) -> UserProfile:
    return await get_domain().utils.get_cached_smarter_admin_user_profile(invalidate=invalidate)


async def get_cached_user_for_user_id(
    user_id: int | None, *, invalidate: bool = False
) -> User | None:
    return await get_domain().utils.get_cached_user_for_user_id(user_id, invalidate=invalidate)


async def get_cached_user_for_username(username: str | None, *, invalidate: bool = False) -> User:
    return await get_domain().utils.get_cached_user_for_username(username, invalidate=invalidate)


async def get_user_profiles_for_account(
    account: Account | None, *, invalidate: bool = False
) -> list[UserProfile] | None:
    return await get_domain().utils.get_user_profiles_for_account(account, invalidate=invalidate)


async def get_users_for_account(account: Account | None, *, invalidate: bool = False) -> list[User]:
    return await get_domain().utils.get_users_for_account(account, invalidate=invalidate)


async def valid_resource_owners_for_user(
    user_profile: UserProfile | None, *, invalidate: bool = False
) -> list[UserProfile]:
    return await get_domain().utils.valid_resource_owners_for_user(
        user_profile, invalidate=invalidate
    )
