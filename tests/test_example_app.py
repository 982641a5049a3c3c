"""The example application (examples/notes_app), end to end on both stacks: its own
Alembic history beside the library's, ``alembic check`` clean, its model's foreign key to
``smarter_user``, one transaction for its row and the library's, cached reads that only see
what was committed (a second app instance stands for another process), the actor and the
health check."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

import smarter_domain as sd

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notes_app"

pytestmark = pytest.mark.smarter_backends("sqlite", "postgresql")


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delenv("NOTES_DATABASE_URL", raising=False)
    import notes.web

    return notes.web


def call(app: Any, method: str, path: str, body: Any = None, user: str | None = None) -> Any:
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
    }
    if user is not None:
        environ["HTTP_X_USER"] = user
    seen: list[str] = []
    payload = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return int(seen[0].split()[0]), json.loads(payload)


def versions(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: [row[0] for row in connection.execute(text(f"SELECT * FROM {table}"))]
                for table in ("alembic_version", "smarter_domain_alembic_version")
            }
    finally:
        engine.dispose()


def test_two_histories_side_by_side_and_alembic_check_is_clean(
    web: ModuleType, smarter_empty_database_url: str
) -> None:
    url = smarter_empty_database_url
    web.migrate(url)
    assert versions(url) == {
        "alembic_version": ["notes_0001"],
        "smarter_domain_alembic_version": [sd.migrations.head()],
    }
    config = web.alembic_config(url)
    command.check(config)  # no diff: the library's tables are the library's
    # Again, in the other order: each history is left alone by the other.
    command.upgrade(config, "head")
    with sd.Domain(url) as domain:
        domain.migrate()
    assert versions(url)["alembic_version"] == ["notes_0001"]
    engine = create_engine(url)
    try:
        foreign = inspect(engine).get_foreign_keys("notes_note")
    finally:
        engine.dispose()
    assert [(f["referred_table"], f["referred_columns"]) for f in foreign] == [
        ("smarter_user", ["id"])
    ]


@pytest.fixture
def apps(
    web: ModuleType, smarter_empty_database_url: str, smarter_stack_redis_url: str | None
) -> Iterator[tuple[Any, Any]]:
    web.migrate(smarter_empty_database_url)
    app = web.NotesApp(smarter_empty_database_url, smarter_stack_redis_url)
    # Another process of the same service (on the SQLite stack, with no shared tier, the
    # same instance stands in).
    peer = (
        web.NotesApp(smarter_empty_database_url, smarter_stack_redis_url)
        if smarter_stack_redis_url
        else app
    )
    try:
        yield app, peer
    finally:
        app.close()
        if peer is not app:
            peer.close()


def test_the_service_end_to_end(apps: tuple[Any, Any]) -> None:
    app, peer = apps
    domain = app.domain
    admin = domain.bootstrap()
    domain.apply(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "Account",
            "metadata": {"name": "acme", "accountNumber": "1234-5678-9012"},
        },
        actor=admin,
    )
    domain.apply(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "User",
            "metadata": {"name": "jdoe", "username": "jdoe"},
            "spec": {"accountNumber": "1234-5678-9012", "config": {"firstName": "J"}},
        },
        actor=admin,
    )
    assert call(peer, "GET", "/users/jdoe") == (200, {"username": "jdoe", "last_login": None})

    status, created = call(app, "POST", "/notes", {"body": "hello"}, user="jdoe")
    assert status == 201
    status, seen = call(peer, "GET", "/users/jdoe")  # the cached read sees the commit
    assert status == 200 and seen["last_login"] is not None
    assert call(peer, "GET", "/notes")[1] == [
        {"id": created["id"], "user_id": domain.actor("jdoe").user.id, "body": "hello"}
    ]

    # An application rule refuses the request after the library's write: both roll back,
    # and no process's cache changes.
    assert call(app, "POST", "/notes", {"body": ""}, user="jdoe")[0] == 422
    assert call(peer, "GET", "/users/jdoe")[1] == seen
    assert call(app, "GET", "/users/jdoe")[1] == seen
    assert len(call(app, "GET", "/notes")[1]) == 1

    assert call(app, "POST", "/notes", {"body": "x"}, user="nobody")[0] == 404
    domain.users.update(domain.actor("jdoe").user.id, is_active=False)
    assert call(app, "POST", "/notes", {"body": "x"}, user="jdoe")[0] == 403
    assert call(app, "POST", "/notes", "not an object", user="admin")[0] == 400

    status, health = call(app, "GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
