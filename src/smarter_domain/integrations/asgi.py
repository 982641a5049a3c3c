"""What the asyncio frameworks' integrations (FastAPI, Litestar) share: the user an ASGI
request is authenticated as, and the lifespan of the application's ``AsyncDomain``.

The user is the one the application's authentication middleware put in the ASGI scope
(``scope["user"]``: Starlette's ``AuthenticationMiddleware`` and Litestar's authentication
middleware both do): its ``username`` (Starlette's ``SimpleUser``, most user models), else
its ``identity`` (Starlette's ``BaseUser``), else the value itself when it is a string; never
its ``display_name``, which users often set themselves, nor a header a client can send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..model.errors import ConfigurationError
from .http import settings_from

if TYPE_CHECKING:
    from ..domain_async import AsyncDomain

DEFAULT_HEALTH_PATH = "/healthz/ready"
DEFAULT_CHALLENGE = 'Bearer realm="smarter"'


def scope_user(scope: Mapping[str, Any]) -> str | None:
    """The name of the user the ASGI scope is authenticated as, or None: its ``username``,
    else its ``identity`` (Starlette's ``BaseUser``), never its ``display_name`` (which users
    often choose themselves)."""
    user = scope.get("user")
    if user is None:
        return None
    if isinstance(user, str):
        return user or None
    try:
        if getattr(user, "is_authenticated", True) is not True:
            return None
        for attribute in ("username", "identity"):
            name = getattr(user, attribute, None)
            if isinstance(name, str) and name:
                return name
    except NotImplementedError:  # a BaseUser that leaves a property unimplemented
        return None
    return None


class DomainLifespan:
    """The application's AsyncDomain over its lifespan: the one it was given (left open: the
    caller owns it), or one built at start-up from ``settings`` (``SMARTER_*`` keys over the
    environment's) and closed at shutdown. While it runs it is the process default
    (``smarter_domain.aio``) unless another one already is."""

    def __init__(
        self, domain: AsyncDomain | None = None, settings: Mapping[str, Any] | None = None
    ) -> None:
        if domain is not None and settings:
            raise ConfigurationError("pass either domain= or settings=, not both")
        self._given = domain
        self._settings = dict(settings or {})
        self.domain: AsyncDomain | None = domain
        self._installed = False
        self._running = 0  # starts not yet stopped (one lifespan wrapped in another: once)

    async def start(self) -> AsyncDomain:
        from .. import aio

        self._running += 1
        if self._running > 1 and self.domain is not None:
            return self.domain
        domain = self._given
        if domain is None:
            try:  # in a thread: a Redis Cluster client reads its slot map as it is made
                domain = self.domain = await asyncio.to_thread(_build, self._settings)
            except BaseException:
                self._running -= 1
                raise
        await domain.listening()
        if aio.current_default() is None:
            aio.set_domain(domain)
            self._installed = True
        return domain

    async def stop(self) -> None:
        from .. import aio

        self._running = max(0, self._running - 1)
        domain = self.domain
        if domain is None or self._running:
            return
        if self._installed and aio.current_default() is domain:
            aio.set_domain(None)
        self._installed = False
        if self._given is None:
            self.domain = None
            await domain.aclose()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[AsyncDomain]:
        """``start`` on entry, ``stop`` on exit: the framework's lifespan."""
        domain = await self.start()
        try:
            yield domain
        finally:
            await self.stop()

    def current(self) -> AsyncDomain:
        """The running domain (a request before start-up is a configuration error)."""
        domain = self.domain
        if domain is None:
            raise ConfigurationError(
                "smarter-domain is not started: the application's lifespan has not run "
                "(run the app under its lifespan, or pass domain=)"
            )
        return domain


def _build(settings: Mapping[str, Any]) -> AsyncDomain:
    from ..domain_async import AsyncDomain

    found = settings_from(settings)
    return AsyncDomain(found.database_url, found.redis_url, cache_ttl=found.cache_ttl)
