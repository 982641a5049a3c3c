"""The library in a Litestar application (``pip install smarter-domain[litestar]``).

    app = Litestar(route_handlers=[...], plugins=[SmarterDomainPlugin()])

    @get("/users/{username:str}")
    async def user(username: str, adomain: AsyncDomain, actor: UserProfile) -> ...:
        return await adomain.users.get_by_username(username)

The plugin adds to the app: a lifespan that opens the ``AsyncDomain`` at start-up (built from
``settings`` over the environment's ``SMARTER_*``, unless one was given) and closes it at
shutdown, making it the process default (``smarter_domain.aio``) meanwhile if none is; the
dependencies ``adomain`` (the domain) and ``actor`` (the profile the request's user acts as,
in the account its host names: 401 without one); a handler answering every ``SmarterError``
with its HTTP status and a problem-details body (``integrations.http``); and a readiness probe
from ``await adomain.health()`` at ``health_path``. The user is the one the app's
authentication middleware put in the scope (``request.user``: ``integrations.asgi``), or what
``user_of(request)`` returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

from ..domain_async import AsyncDomain
from ..model.entities import UserProfile
from ..model.errors import SmarterError
from .asgi import DEFAULT_CHALLENGE, DEFAULT_HEALTH_PATH, DomainLifespan, scope_user
from .http import PROBLEM_JSON, acting_profile_async, problem_response, readiness

__all__ = ["AsyncDomain", "SmarterDomainPlugin", "UserProfile", "request_user"]


def request_user(request: Request[Any, Any, Any]) -> str | None:
    """The user the app's authentication middleware put in the request's scope."""
    return scope_user(request.scope)


class SmarterDomainPlugin(InitPluginProtocol):
    def __init__(
        self,
        *,
        domain: AsyncDomain | None = None,
        settings: Mapping[str, Any] | None = None,
        user_of: Callable[[Request[Any, Any, Any]], str | None] = request_user,
        health_path: str | None = DEFAULT_HEALTH_PATH,
        health_details: bool = False,
        auth_challenge: str = DEFAULT_CHALLENGE,
        domain_key: str = "adomain",
        actor_key: str = "actor",
    ) -> None:
        self._life = DomainLifespan(domain, settings)
        self.user_of = user_of
        self.health_path = health_path
        self.health_details = health_details
        self.auth_challenge = auth_challenge
        self.domain_key = domain_key
        self.actor_key = actor_key

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # First: open before the app's own lifespans, close after them (they may use it).
        app_config.lifespan = [self.lifespan, *app_config.lifespan]
        app_config.exception_handlers = {
            **app_config.exception_handlers,
            SmarterError: self._error_response,
        }
        app_config.dependencies = {
            **app_config.dependencies,
            self.domain_key: Provide(self.domain),
            self.actor_key: Provide(self.actor),
        }
        if self.health_path:
            ready = get(
                self.health_path,
                include_in_schema=False,
                name="smarter_domain_ready",
            )(self._ready)
            app_config.route_handlers = [*app_config.route_handlers, ready]
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar | None = None) -> AsyncIterator[None]:
        async with self._life.running():
            yield

    async def domain(self) -> AsyncDomain:
        """The ``adomain`` dependency."""
        return self._life.current()

    async def actor(self, request: Request[Any, Any, Any]) -> UserProfile:
        """The ``actor`` dependency: the profile the request's user acts as."""
        return await acting_profile_async(
            self._life.current(), self.user_of(request), str(request.url)
        )

    async def _ready(self) -> Response[Any]:
        status, body = readiness(await self._life.current().health(), self.health_details)
        return Response(body, status_code=status)

    def _error_response(self, request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        assert isinstance(error, SmarterError)
        status, body, headers = problem_response(error, self.auth_challenge)
        return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)
