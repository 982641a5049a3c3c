"""The notes service: a plain WSGI application (any framework does the same).

- One engine and one ``Domain`` per process, built once (``make_app``); the Domain shares
  the application's engine.
- ``POST /notes`` (header ``X-User``) writes the application's row (a note) and the library's
  (the author's ``last_login``) in one transaction: ``domain.unit_of_work(session=...)``
  joins the request's session, and the caches are invalidated after the application commits,
  never when it rolls back.
- ``GET /users/<name>`` is a cached read; ``GET /healthz`` a readiness probe.

Run it: ``NOTES_DATABASE_URL=sqlite:///notes.db python -m notes.web migrate`` then
``python -m notes.web serve`` (127.0.0.1:8000).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

import smarter_domain as sd

from .models import Note

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
HERE = Path(__file__).resolve().parents[1]
STATUS = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    422: "422 Unprocessable Entity",
    503: "503 Service Unavailable",
}
MAX_BODY = 500


def alembic_config(database_url: str) -> Config:
    config = Config(str(HERE / "alembic.ini"))
    os.environ["NOTES_DATABASE_URL"] = database_url
    return config


def migrate(database_url: str) -> None:
    """The library's tables first (the notes table points at smarter_user), then ours."""
    with sd.Domain(database_url) as domain:
        domain.migrate()
    command.upgrade(alembic_config(database_url), "head")


class NotesApp:
    def __init__(self, database_url: str, redis_url: str | None = None) -> None:
        self.engine = create_engine(database_url)
        self.domain = sd.Domain(engine=self.engine, redis_url=redis_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.domain.close()
        self.engine.dispose()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body = self.route(environ)
        except (sd.UserNotFound, sd.NotFoundError) as exc:
            status, body = 404, {"error": str(exc)}
        except sd.PermissionDenied as exc:
            status, body = 403, {"error": str(exc)}
        except sd.ValidationError as exc:
            status, body = 422, {"error": str(exc)}
        except (sd.CacheUnavailable, sd.DatabaseError) as exc:
            status, body = 503, {"error": str(exc)}
        payload = json.dumps(body).encode()
        start_response(
            STATUS[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def route(self, environ: dict[str, Any]) -> tuple[int, Any]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "GET" and path == "/healthz":
            health = self.domain.health()
            return (503 if health.status == "down" else 200), health.as_dict()
        if method == "GET" and path.startswith("/users/"):
            user = self.domain.users.get_by_username(path.removeprefix("/users/"))
            if user is None:
                return 404, {"error": "no such user"}
            last = user.last_login.isoformat() if user.last_login else None
            return 200, {"username": user.username, "last_login": last}
        if method == "GET" and path == "/notes":
            with self.sessions() as session:
                notes = session.scalars(select(Note).order_by(Note.id)).all()
                return 200, [{"id": n.id, "user_id": n.user_id, "body": n.body} for n in notes]
        if method == "POST" and path == "/notes":
            return self.post_note(environ)
        return 404, {"error": "no such page"}

    def post_note(self, environ: dict[str, Any]) -> tuple[int, Any]:
        actor = self.domain.actor(environ.get("HTTP_X_USER", ""))  # 404 / 403
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")["body"]
        except (ValueError, KeyError, TypeError):
            return 400, {"error": 'expected {"body": ...}'}
        with self.sessions() as session:
            # The library's row, in the request's transaction: its savepoint is released
            # here, and nothing is durable (or invalidated) until session.commit().
            with self.domain.unit_of_work(session=session) as uow:
                uow.users.update(actor.user.id, last_login=datetime.now(UTC))
                uow.commit()
            if not isinstance(body, str) or not 0 < len(body) <= MAX_BODY:
                # An application rule that fails after the library's write: the rollback
                # takes both back, and no cache is touched.
                session.rollback()
                return 422, {"error": f"a note has 1 to {MAX_BODY} characters"}
            note = Note(user_id=actor.user.id, body=body)
            session.add(note)
            session.commit()
            return 201, {"id": note.id}


def main(argv: list[str]) -> int:
    url = os.environ.get("NOTES_DATABASE_URL", "sqlite:///notes.db")
    if argv[:1] == ["migrate"]:
        migrate(url)
        return 0
    if argv[:1] == ["serve"]:
        from wsgiref.simple_server import make_server

        app = NotesApp(url, os.environ.get("NOTES_REDIS_URL"))
        with make_server("127.0.0.1", 8000, app) as server:
            server.serve_forever()
        return 0
    print("usage: python -m notes.web migrate|serve", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
