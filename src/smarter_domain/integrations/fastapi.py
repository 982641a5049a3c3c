"""The library in a FastAPI application (``pip install smarter-domain[fastapi]``).

    from smarter_domain.integrations.fastapi import ActorDep, DomainDep, SmarterDomain

    app = FastAPI()
    SmarterDomain(app)                    # SMARTER_* from the environment (or settings=, domain=)

    @app.get("/users/{username}")
    async def user(username: str, domain: DomainDep, actor: ActorDep):
        return await domain.users.get_by_username(username)

``init_app`` wraps the app's lifespan: the ``AsyncDomain`` is opened at start-up (built from
``settings`` over the environment's ``SMARTER_*``, unless one was given) and closed at
shutdown, and is the process default (``smarter_domain.aio``) meanwhile if none is. It answers
every ``SmarterError`` with its HTTP status and a problem-details body (``integrations.http``:
404, 422 with the field list, 403, 409, 401 with ``WWW-Authenticate``), and serves a readiness
probe from ``await domain.health()`` at ``health_path`` (``/healthz/ready``; None: no probe;
``health_details``: the body says what failed).

``DomainDep`` (``Depends(current_domain)``) is the app's ``AsyncDomain``; ``ActorDep``
(``Depends(current_actor)``) is the profile the request's user acts as, in the account named
by the request's host; the user is the one the app's authentication middleware put in the
scope (``integrations.asgi.scope_user``), or what ``user_of(request)`` returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ..domain_async import AsyncDomain
from ..model.entities import UserProfile
from ..model.errors import ConfigurationError, SmarterError
from .asgi import DEFAULT_CHALLENGE, DEFAULT_HEALTH_PATH, DomainLifespan, scope_user
from .http import PROBLEM_JSON, acting_profile_async, problem_response, readiness

if TYPE_CHECKING:
    from collections.abc import Mapping

STATE = "smarter_domain"
"""Where ``init_app`` keeps the integration in ``app.state``."""


def request_user(request: Request) -> str | None:
    """The user the app's authentication middleware put in the request's scope."""
    return scope_user(request.scope)


class SmarterDomain:
    def __init__(
        self,
        app: FastAPI | None = None,
        *,
        domain: AsyncDomain | None = None,
        settings: Mapping[str, Any] | None = None,
        user_of: Callable[[Request], str | None] = request_user,
        health_path: str | None = DEFAULT_HEALTH_PATH,
        health_details: bool = False,
        auth_challenge: str = DEFAULT_CHALLENGE,
    ) -> None:
        self._life = DomainLifespan(domain, settings)
        self.user_of = user_of
        self.health_path = health_path
        self.health_details = health_details
        self.auth_challenge = auth_challenge
        if app is not None:
            self.init_app(app)

    def init_app(self, app: FastAPI) -> None:
        """The lifespan (around the app's own), the error handler, the readiness probe."""
        setattr(app.state, STATE, self)
        inner = app.router.lifespan_context
        app.router.lifespan_context = self._around(inner)
        app.add_exception_handler(SmarterError, self._error_response)  # type: ignore[arg-type]
        if self.health_path:
            app.add_api_route(
                self.health_path,
                self._ready,
                methods=["GET"],
                include_in_schema=False,
                name="smarter_domain_ready",
            )

    def _around(
        self, inner: Callable[[Any], AbstractAsyncContextManager[Any]]
    ) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
        @asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self.lifespan(app), inner(app) as state:
                yield state

        return lifespan

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Open the domain, and close it at the end (``FastAPI(lifespan=smarter.lifespan)``
        for an app that does not call ``init_app``: ``DomainDep`` and ``ActorDep`` then find
        this integration in ``app.state`` too; errors are not mapped to HTTP)."""
        if app is not None:
            setattr(app.state, STATE, self)
        async with self._life.running():
            yield

    async def domain(self) -> AsyncDomain:
        """A dependency: the app's ``AsyncDomain``."""
        return self._life.current()

    async def actor(self, request: Request) -> UserProfile:
        """A dependency: the profile the request's user acts as (401 when there is none)."""
        return await acting_profile_async(
            self._life.current(), self.user_of(request), str(request.url)
        )

    async def _ready(self) -> Response:
        status, body = readiness(await self._life.current().health(), self.health_details)
        return JSONResponse(body, status_code=status)

    async def _error_response(self, request: Request, error: SmarterError) -> Response:
        status, body, headers = problem_response(error, self.auth_challenge)
        return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _integration(request: Request) -> SmarterDomain:
    found = getattr(request.app.state, STATE, None)
    if not isinstance(found, SmarterDomain):
        raise ConfigurationError("this app has no SmarterDomain: call SmarterDomain(app)")
    return found


async def current_domain(request: Request) -> AsyncDomain:
    """A dependency: the ``AsyncDomain`` of the request's app."""
    return await _integration(request).domain()


async def current_actor(request: Request) -> UserProfile:
    """A dependency: the profile the request's user acts as (401 when there is none)."""
    return await _integration(request).actor(request)


DomainDep = Annotated[AsyncDomain, Depends(current_domain)]
ActorDep = Annotated[UserProfile, Depends(current_actor)]
