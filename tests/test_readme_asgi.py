"""The documentation's FastAPI snippet (docs/application.md) runs as written, over HTTP with
FastAPI's test client."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.authentication import SimpleUser

import smarter_domain as sd
from smarter_domain import aio

PAGE = Path(__file__).resolve().parents[1] / "docs" / "application.md"


def snippet(name: str) -> str:
    found = re.search(
        rf"<!-- snippet: {name} -->\n```python\n(.*?)```",
        PAGE.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    assert found is not None, f"no {name} snippet in {PAGE.name}"
    return found.group(1)


class Authenticated:
    """Stands in for the application's authentication middleware: the scope's user."""

    def __init__(self, app: Any, username: str) -> None:
        self.app = app
        self.username = username

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["user"] = SimpleUser(self.username)
        await self.app(scope, receive, send)


@pytest.mark.smarter_backends("sqlite", "postgresql")
def test_the_fastapi_snippet(
    smarter_database_url: str,
    smarter_stack_redis_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with sd.Domain(smarter_database_url, smarter_stack_redis_url) as domain:
        domain.bootstrap()
    monkeypatch.setenv("SMARTER_DATABASE_URL", smarter_database_url)
    if smarter_stack_redis_url:
        monkeypatch.setenv("SMARTER_REDIS_URL", smarter_stack_redis_url)
    else:
        monkeypatch.delenv("SMARTER_REDIS_URL", raising=False)
    namespace: dict[str, Any] = {"__name__": "readme_fastapi"}
    exec(compile(snippet("fastapi"), str(PAGE), "exec"), namespace)
    app = namespace["app"]
    app.add_middleware(Authenticated, username="admin")
    previous = aio.set_domain(None)
    try:
        with TestClient(app, base_url=f"http://{sd.SMARTER_ACCOUNT_NUMBER}.example.com") as http:
            for _ in range(2):
                answer = http.get("/users/admin")
                assert answer.status_code == 200
                assert answer.json() == {"username": "admin", "seen_by": "admin"}
            missing = http.get("/users/nobody")
            assert missing.status_code == 404 and missing.json()["title"] == "UserNotFound"
            assert http.get("/healthz/ready").json()["ok"] is True
    finally:
        aio.set_domain(previous)
