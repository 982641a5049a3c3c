"""The FastAPI integration and the Litestar plugin, over HTTP with each framework's test client,
on the example applications (examples/fastapi_app, examples/litestar_app): the lifespan opens
and closes the AsyncDomain, cached reads, writes as the request's user in the account its host
names, each error with its status and problem-details body, and the readiness probe."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import smarter_domain as sd
from smarter_domain import aio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLATFORM_HOST = f"http://api.{sd.SMARTER_ACCOUNT_NUMBER}.example.com"
TOKENS = "t-admin=admin,t-jdoe=jdoe,t-ghost=ghost"
ADMIN = {"Authorization": "Bearer t-admin"}
JDOE = {"Authorization": "Bearer t-jdoe"}

pytestmark = pytest.mark.smarter_backends("sqlite", "postgresql")


def example(framework: str) -> ModuleType:
    """The example application's module (both are ``app.py``: loaded under their own names)."""
    path = EXAMPLES / f"{framework}_app" / "app.py"
    spec = importlib.util.spec_from_file_location(f"{framework}_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the frameworks resolve annotations in it
    spec.loader.exec_module(module)
    return module


def test_client(framework: str, app: Any) -> Any:
    if framework == "fastapi":
        from fastapi.testclient import TestClient

        return TestClient(app, base_url=PLATFORM_HOST)
    from litestar.testing import TestClient as LitestarClient

    return LitestarClient(app=app, base_url=PLATFORM_HOST)


test_client.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(params=["fastapi", "litestar"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(smarter_database_url: str, smarter_stack_redis_url: str | None) -> dict[str, Any]:
    with sd.Domain(smarter_database_url, smarter_stack_redis_url) as domain:
        domain.bootstrap()
    return {
        "SMARTER_DATABASE_URL": smarter_database_url,
        "SMARTER_REDIS_URL": smarter_stack_redis_url,
        "DEMO_TOKENS": TOKENS,
    }


@pytest.fixture
def client(framework: str, settings: dict[str, Any]) -> Iterator[Any]:
    previous = aio.set_domain(None)
    try:
        with test_client(framework, example(framework).create_app(settings)) as http:
            yield http
        assert aio.current_default() is None  # uninstalled and closed with the lifespan
    finally:
        aio.set_domain(previous)


def test_a_cached_read_and_a_missing_one(client: Any) -> None:
    assert client.get("/users/admin").status_code == 401  # members only
    for _ in range(3):  # cold, then cached
        found = client.get("/users/admin", headers=ADMIN)
        assert found.status_code == 200 and found.json()["username"] == "admin"
    missing = client.get("/users/nobody", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["title"] == "UserNotFound" and missing.json()["status"] == 404


def test_the_actor_comes_from_the_authenticated_user_and_the_host(client: Any) -> None:
    me = client.get("/me", headers=ADMIN)
    assert me.status_code == 200
    assert me.json() == {"username": "admin", "account": sd.SMARTER_ACCOUNT_NUMBER}
    for headers in ({}, {"Authorization": "Bearer t-ghost"}):  # none, or unknown: one 401
        refused = client.get("/me", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="smarter"'
        assert refused.json()["title"] == "Unauthenticated"
    other_account = client.get("/me", headers=ADMIN, params={}, follow_redirects=False)
    assert other_account.status_code == 200


def test_writes_go_through_the_brokers_and_map_their_errors_to_http(client: Any) -> None:
    manifest = """
apiVersion: smarter.sh/v1
kind: Account
metadata: {name: acme, accountNumber: 1234-5678-9012}
spec: {config: {country: XX}}
"""
    invalid = client.post("/manifests", content=manifest, headers=ADMIN)
    assert invalid.status_code == 422
    assert "country" in " ".join(invalid.json()["errors"])
    valid = manifest.replace("XX", "US")
    created = client.post("/manifests", content=valid, headers=ADMIN)
    assert created.status_code == 201 and created.json()["account_number"] == "1234-5678-9012"
    assert client.post("/users", json={"username": "jdoe"}, headers=ADMIN).status_code == 201
    assert client.get("/users/jdoe", headers=ADMIN).json()["username"] == "jdoe"
    for bad in ({"username": 7}, {"name": "x"}):
        refused = client.post("/users", json=bad, headers=ADMIN)
        assert refused.status_code == 422 and refused.json()["errors"] == {"username": "required"}
    denied = client.post("/manifests", content=valid, headers=JDOE)  # not a superuser
    assert denied.status_code == 403 and denied.json()["title"] == "PermissionDenied"
    assert client.post("/users", json={"username": "x"}, headers=JDOE).status_code == 403


def test_the_readiness_probe(client: Any) -> None:
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json()["ok"] is True
    assert ready.json()["database"] == {"ok": True}  # no detail unless asked for


def test_a_conflict_is_409_and_a_server_error_says_only_its_kind(
    framework: str, smarter_database_url: str
) -> None:
    """A uniqueness rule the database enforced: 409 with the rule; a database that fails:
    503 naming no host."""
    app = _app_with_routes(framework, {"SMARTER_DATABASE_URL": smarter_database_url})
    with test_client(framework, app) as http:
        assert http.post("/raw-users/taken").status_code in (200, 201)
        again = http.post("/raw-users/taken")
        assert again.status_code == 409 and again.json()["title"] == "ConflictError"
        assert again.json()["errors"] == {"username": "is already taken"}
        failed = http.get("/failing")
        assert failed.status_code == 503
        assert failed.json() == {"type": "about:blank", "title": "DatabaseError", "status": 503}


def _app_with_routes(framework: str, settings: dict[str, Any]) -> Any:
    """An app with the integration and two routes of its own (each framework's way)."""
    if framework == "fastapi":
        from fastapi import Depends, FastAPI

        from smarter_domain.integrations.fastapi import SmarterDomain

        smarter = SmarterDomain(settings=settings)
        app = FastAPI()
        smarter.init_app(app)

        @app.post("/raw-users/{username}")
        async def add(username: str, adomain: Any = Depends(smarter.domain)) -> Any:  # noqa: B008
            return {"id": (await adomain.users.add(username=username)).id}

        @app.get("/failing")
        async def failing() -> Any:
            raise sd.DatabaseError("the PostgreSQL database failed: host 10.0.0.5 refused")

        return app
    from litestar import Litestar, get, post

    from smarter_domain.integrations.litestar import SmarterDomainPlugin

    @post("/raw-users/{username:str}")
    async def add_user(username: str, adomain: aio.AsyncDomain) -> Any:
        return {"id": (await adomain.users.add(username=username)).id}

    @get("/failing")
    async def failing_route() -> Any:
        raise sd.DatabaseError("the PostgreSQL database failed: host 10.0.0.5 refused")

    return Litestar(
        route_handlers=[add_user, failing_route], plugins=[SmarterDomainPlugin(settings=settings)]
    )


@pytest.mark.smarter_backends("sqlite")
def test_readiness_while_redis_is_unreachable_and_while_the_database_is(
    framework: str, smarter_database_url: str
) -> None:
    """Degraded (no Redis: reads come from the database) stays in rotation; down does not."""
    module = example(framework)
    degraded = {
        "SMARTER_DATABASE_URL": smarter_database_url,
        "SMARTER_REDIS_URL": "redis://127.0.0.1:1/0",  # a closed port, on loopback
    }
    app = module.create_app(degraded)
    _details(app, framework)
    with test_client(framework, app) as http:
        probe = http.get("/healthz/ready")
        assert probe.status_code == 200 and probe.json()["status"] == "degraded"
        assert probe.json()["redis"]["ok"] is False and probe.json()["redis"]["detail"]
    down = {
        "SMARTER_DATABASE_URL": "postgresql://u:secret@127.0.0.1:1/x",
        "SMARTER_REDIS_URL": None,
    }
    with test_client(framework, module.create_app(down)) as http:
        probe = http.get("/healthz/ready")
        assert probe.status_code == 503 and probe.json()["status"] == "down"
        assert "secret" not in probe.text and "127.0.0.1" not in probe.text


def _details(app: Any, framework: str) -> None:
    """Turn the probe's details on in an example app (its integration object)."""
    if framework == "fastapi":
        for route in app.routes:
            if getattr(route, "name", "") == "smarter_domain_ready":
                route.endpoint.__self__.health_details = True
        return
    for plugin in app.plugins:
        if hasattr(plugin, "health_details"):
            plugin.health_details = True


def test_an_application_may_bring_its_own_domain(framework: str, settings: dict[str, Any]) -> None:
    import asyncio

    own = aio.AsyncDomain(settings["SMARTER_DATABASE_URL"], settings["SMARTER_REDIS_URL"])
    with test_client(framework, example(framework).create_app(settings, domain=own)) as http:
        assert http.get("/users/admin", headers=ADMIN).json()["username"] == "admin"
    assert not own._closed  # not the integration's to close
    asyncio.run(own.aclose())


def test_the_user_is_read_from_the_scope_never_from_a_display_name() -> None:
    from starlette.authentication import BaseUser, SimpleUser, UnauthenticatedUser

    from smarter_domain.integrations.asgi import scope_user

    class Chosen(BaseUser):
        """A user model whose display name its user picks (and no username)."""

        @property
        def is_authenticated(self) -> bool:
            return True

        @property
        def display_name(self) -> str:
            return "admin"

        @property
        def identity(self) -> str:
            return "u-42"

    class Partial(BaseUser):  # leaves every property unimplemented
        pass

    assert scope_user({"user": SimpleUser("jdoe")}) == "jdoe"
    assert scope_user({"user": "jdoe"}) == "jdoe"
    assert scope_user({"user": Chosen()}) == "u-42"  # its identity, not "admin"
    assert scope_user({"user": UnauthenticatedUser()}) is None
    assert scope_user({"user": Partial()}) is None
    assert scope_user({"user": ""}) is None
    assert scope_user({}) is None
