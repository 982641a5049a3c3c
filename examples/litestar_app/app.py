"""A Litestar application on smarter-domain (``pip install smarter-domain[litestar]``).

    smarter-domain migrate && smarter-domain bootstrap
    SMARTER_DATABASE_URL=sqlite:///smarter_domain.db DEMO_TOKENS=secret=admin \\
        uvicorn app:app

The same application as examples/fastapi_app, with the plugin: cached reads, writes through
the brokers as the request's user (a toy bearer-token authentication stands in for the app's
own), errors with their HTTP status and a problem-details body, and ``/healthz/ready``. The
test suite drives it with Litestar's test client (tests/test_integration_asgi.py).
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware

from smarter_domain import UserNotFound, UserProfile, ValidationError
from smarter_domain.aio import AsyncDomain
from smarter_domain.integrations.litestar import SmarterDomainPlugin


class DemoTokens(AbstractAuthenticationMiddleware):
    """``Authorization: Bearer <token>``, tokens from ``DEMO_TOKENS`` (``token=username,...``).
    Stands in for the app's real authentication: the library only reads who it says."""

    tokens: dict[str, str] = {}  # noqa: RUF012 (set by create_app)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        scheme, _, token = connection.headers.get("authorization", "").partition(" ")
        username = self.tokens.get(token) if scheme.lower() == "bearer" else None
        return AuthenticationResult(user=username, auth=token if username else None)


@get("/users/{username:str}")
async def user(username: str, adomain: AsyncDomain, actor: UserProfile) -> dict[str, str]:
    """A cached read (members only: 401 otherwise; 404 for no such user)."""
    found = await adomain.users.get_by_username(username)
    if found is None:
        raise UserNotFound(f"no user {username!r}")
    return {"username": found.username, "name": f"{found.first_name} {found.last_name}"}


@get("/me")
async def me(actor: UserProfile) -> dict[str, str]:
    return {"username": actor.user.username, "account": actor.account.account_number}


@post("/manifests")
async def apply(request: Request[Any, Any, Any], adomain: AsyncDomain, actor: UserProfile) -> Any:
    """Create or update what a manifest (YAML or JSON, the request's body) describes, with
    the permissions of the actor."""
    return await adomain.apply((await request.body()).decode(), actor=actor)


@post("/users")
async def add_user(data: Any, adomain: AsyncDomain, actor: UserProfile) -> Any:
    """A member of the actor's account (``{"username": ...}``), through the user broker."""
    if not isinstance(data, dict) or not isinstance(data.get("username"), str):
        raise ValidationError("a JSON object with a username", {"username": "required"})
    manifest = {
        "apiVersion": "smarter.sh/v1",
        "kind": "User",
        "metadata": {"name": data["username"], "username": data["username"]},
        "spec": {"accountNumber": actor.account.account_number},
    }
    return await adomain.apply(manifest, actor=actor)


def create_app(
    settings: dict[str, Any] | None = None, domain: AsyncDomain | None = None
) -> Litestar:
    tokens = (settings or {}).get("DEMO_TOKENS") or os.environ.get("DEMO_TOKENS", "")
    pairs = (item.partition("=") for item in tokens.split(",") if "=" in item)
    authentication = type("Tokens", (DemoTokens,), {"tokens": {t: u for t, _, u in pairs}})
    plugin = SmarterDomainPlugin(settings=None if domain else settings, domain=domain)
    return Litestar(
        route_handlers=[user, me, apply, add_user],
        plugins=[plugin],
        middleware=[DefineMiddleware(authentication)],
    )


app = create_app()
