"""A FastAPI application on smarter-domain (``pip install smarter-domain[fastapi]``).

    smarter-domain migrate && smarter-domain bootstrap
    SMARTER_DATABASE_URL=sqlite:///smarter_domain.db DEMO_TOKENS=secret=admin \\
        uvicorn app:app

Reads go through the cache (memory, then Redis, then the database, all awaited on the loop),
writes through the brokers as the request's user (whom the app's authentication middleware
names; here, a toy bearer-token backend), errors come back with their HTTP status and a
problem-details body, and ``/healthz/ready`` is the readiness probe. The test suite drives it
with FastAPI's test client (tests/test_integration_asgi.py), and ``nox -s bench`` measures its
requests per second with and without the cache.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from smarter_domain import UserNotFound, ValidationError
from smarter_domain.aio import AsyncDomain
from smarter_domain.integrations.fastapi import ActorDep, DomainDep, SmarterDomain


class DemoTokens(AuthenticationBackend):
    """``Authorization: Bearer <token>``, tokens from ``DEMO_TOKENS`` (``token=username,...``).
    Stands in for the app's real authentication: the library only reads who it says."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        username = self.tokens.get(token) if scheme.lower() == "bearer" else None
        return (AuthCredentials(["authenticated"]), SimpleUser(username)) if username else None


def _tokens(text: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in text.split(",") if "=" in item)
    return {token: username for token, _, username in pairs}


def create_app(
    settings: dict[str, Any] | None = None, domain: AsyncDomain | None = None
) -> FastAPI:
    app = FastAPI(title="smarter-domain example")
    SmarterDomain(app, settings=None if domain else settings, domain=domain)
    tokens = _tokens((settings or {}).get("DEMO_TOKENS") or os.environ.get("DEMO_TOKENS", ""))
    app.add_middleware(AuthenticationMiddleware, backend=DemoTokens(tokens))

    @app.get("/users/{username}")
    async def user(username: str, domain: DomainDep, actor: ActorDep) -> dict[str, str]:
        """A cached read (members only: 401 otherwise; 404 for no such user)."""
        found = await domain.users.get_by_username(username)
        if found is None:
            raise UserNotFound(f"no user {username!r}")
        return {"username": found.username, "name": f"{found.first_name} {found.last_name}"}

    @app.get("/me")
    async def me(actor: ActorDep) -> dict[str, str]:
        return {"username": actor.user.username, "account": actor.account.account_number}

    @app.post("/manifests", status_code=201)
    async def apply(request: Request, domain: DomainDep, actor: ActorDep) -> Any:
        """Create or update what a manifest (YAML or JSON, the request's body) describes,
        with the permissions of the actor."""
        return await domain.apply((await request.body()).decode(), actor=actor)

    @app.post("/users", status_code=201)
    async def add_user(
        body: Annotated[dict[str, Any], Body()], domain: DomainDep, actor: ActorDep
    ) -> Any:
        """A member of the actor's account (``{"username": ...}``), through the user broker."""
        if not isinstance(body.get("username"), str):
            raise ValidationError("a JSON object with a username", {"username": "required"})
        manifest = {
            "apiVersion": "smarter.sh/v1",
            "kind": "User",
            "metadata": {"name": body["username"], "username": body["username"]},
            "spec": {"accountNumber": actor.account.account_number},
        }
        return await domain.apply(manifest, actor=actor)

    return app


app = create_app()
