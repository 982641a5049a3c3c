"""The Flask extension, over HTTP with Flask's test client, on the example application
(examples/flask_app): cached reads, writes as the request's user in the account its host
names, each error with its status and problem-details body, and the readiness probe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

import smarter_domain as sd
from smarter_domain.domain import current_default
from smarter_domain.integrations.flask import SmarterDomain
from smarter_domain.integrations.http import problem, status_for

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app"
PLATFORM_HOST = f"http://api.{sd.SMARTER_ACCOUNT_NUMBER}.example.com"

pytestmark = pytest.mark.smarter_backends("sqlite", "postgresql")


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import app

    return app


@pytest.fixture
def client(
    example: ModuleType, smarter_database_url: str, smarter_stack_redis_url: str | None
) -> Iterator[Any]:
    config = {"SMARTER_DATABASE_URL": smarter_database_url}
    config["SMARTER_REDIS_URL"] = smarter_stack_redis_url
    application = example.create_app(config)
    example.smarter.domain.bootstrap()
    try:
        yield application.test_client()
    finally:
        example.smarter.close()


def _as(user: str | None) -> dict[str, Any]:
    return {"base_url": PLATFORM_HOST, "environ_base": {"REMOTE_USER": user} if user else {}}


def test_a_cached_read_and_a_missing_one(client: Any) -> None:
    assert client.get("/users/admin").status_code == 401  # members only
    found = client.get("/users/admin", **_as("admin"))
    assert found.status_code == 200 and found.json["username"] == "admin"
    missing = client.get("/users/nobody", **_as("admin"))
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"
    assert missing.json["title"] == "UserNotFound" and missing.json["status"] == 404


def test_the_actor_comes_from_the_authenticated_user_and_the_host(client: Any) -> None:
    me = client.get("/me", **_as("admin"))
    assert me.status_code == 200
    assert me.json == {"username": "admin", "account": sd.SMARTER_ACCOUNT_NUMBER}
    for user in (None, "nobody"):  # no user, or one the library does not know: the same 401
        refused = client.get("/me", **_as(user))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="smarter"'
        assert refused.json["title"] == "Unauthenticated"


def test_writes_go_through_the_brokers_and_map_their_errors_to_http(client: Any) -> None:
    manifest = """
apiVersion: smarter.sh/v1
kind: Account
metadata: {name: acme, accountNumber: 1234-5678-9012}
spec: {config: {country: XX}}
"""
    invalid = client.post("/manifests", data=manifest, **_as("admin"))
    assert invalid.status_code == 422
    assert "country" in " ".join(invalid.json["errors"])
    valid = manifest.replace("XX", "US")
    created = client.post("/manifests", data=valid, **_as("admin"))
    assert created.status_code == 201 and created.json["account_number"] == "1234-5678-9012"
    assert client.post("/users", json={"username": "jdoe"}, **_as("admin")).status_code == 201
    assert client.get("/users/jdoe", **_as("admin")).json["username"] == "jdoe"
    for bad in ([1], {"username": 7}, None):
        refused = client.post("/users", json=bad, **_as("admin"))
        assert refused.status_code == 422 and refused.json["errors"] == {"username": "required"}
    denied = client.post("/manifests", data=valid, **_as("jdoe"))  # not a superuser
    assert denied.status_code == 403 and denied.json["title"] == "PermissionDenied"
    assert client.post("/users", json={"username": "x"}, **_as("jdoe")).status_code == 403


def test_a_conflict_is_409_and_its_body_names_no_value(smarter_database_url: str) -> None:
    """A uniqueness rule the database enforced: 409, with the rule, not the driver's text."""
    application = Flask("conflicts")
    own = sd.Domain(smarter_database_url)
    SmarterDomain(application, domain=own)

    @application.post("/users/<username>")
    def add(username: str) -> Any:
        return {"id": own.users.add(username=username).id}

    http = application.test_client()
    assert http.post("/users/taken").status_code == 200
    again = http.post("/users/taken")
    assert again.status_code == 409 and again.json["title"] == "ConflictError"
    assert again.json["errors"] == {"username": "is already taken"}
    own.close()


def test_server_errors_say_no_more_than_their_kind() -> None:
    body = problem(sd.DatabaseError("the PostgreSQL database failed: host 10.0.0.5 refused"))
    assert body == {"type": "about:blank", "title": "DatabaseError", "status": 503}
    assert status_for(sd.ConfigurationError("x")) == 500
    assert status_for(sd.CacheUnavailable("x")) == 503


def test_the_readiness_probe(client: Any) -> None:
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200 and ready.json["ok"] is True
    assert ready.json["database"] == {"ok": True}  # no detail unless asked for


def test_readiness_while_redis_is_unreachable_and_while_the_database_is(
    example: ModuleType, smarter_database_url: str
) -> None:
    """Degraded (no Redis: reads come from the database) stays in rotation; down does not."""
    closed = "redis://127.0.0.1:1/0"  # a closed port, on loopback
    degraded = Flask("degraded")
    degraded.config.update(
        SMARTER_DATABASE_URL=smarter_database_url,
        SMARTER_REDIS_URL=closed,
        SMARTER_HEALTH_DETAILS=True,
    )
    extension = SmarterDomain(degraded)
    try:
        probe = degraded.test_client().get("/healthz/ready")
        assert probe.status_code == 200 and probe.json["status"] == "degraded"
        assert probe.json["redis"]["ok"] is False and probe.json["redis"]["detail"]
    finally:
        extension.close()
    down = Flask("down")
    down.config.update(
        SMARTER_DATABASE_URL="postgresql://u:secret@127.0.0.1:1/x", SMARTER_REDIS_URL=None
    )
    extension = SmarterDomain(down)
    try:
        probe = down.test_client().get("/healthz/ready")
        assert probe.status_code == 503 and probe.json["status"] == "down"
        assert "secret" not in probe.text and "127.0.0.1" not in probe.text
    finally:
        extension.close()


def test_the_probe_can_be_left_out_and_config_must_be_text(smarter_database_url: str) -> None:
    quiet = Flask("quiet")
    quiet.config.update(SMARTER_DATABASE_URL=smarter_database_url, SMARTER_HEALTH_PATH=None)
    extension = SmarterDomain(quiet)
    assert quiet.test_client().get("/healthz/ready").status_code == 404
    extension.close()
    wrong = Flask("wrong")
    wrong.config.update(SMARTER_DATABASE_URL=["not", "a", "url"])
    with pytest.raises(sd.ConfigurationError, match="SMARTER_DATABASE_URL"):
        SmarterDomain(wrong)


def test_the_extension_domain_is_the_process_default_when_there_is_none(
    smarter_database_url: str,
) -> None:
    previous = sd.set_domain(None)
    try:
        application = Flask("default")
        application.config.update(SMARTER_DATABASE_URL=smarter_database_url)
        extension = SmarterDomain(application)
        assert sd.get_domain() is extension.domain
        extension.close()
        assert current_default() is None
    finally:
        sd.set_domain(previous)


def test_an_application_may_bring_its_own_domain(smarter_database_url: str) -> None:
    own = sd.Domain(smarter_database_url)
    application = Flask("own")
    extension = SmarterDomain(domain=own)
    extension.init_app(application)
    assert extension.domain is own
    extension.close()  # not ours to close
    assert own.users.get_by_username("admin") is None  # still usable
    own.close()
