"""Structured logs: every record the library logs carries machine-readable fields (``extra=``:
an ``event`` name, and the key kind, tier, durations... where they apply), never a key's
personal data in those fields."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
import redis

import smarter_domain as sd
from smarter_domain import Domain
from smarter_domain.cache import RedisOptions

PACKAGE = Path(sd.__file__).parent
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _log_calls() -> list[tuple[str, int, ast.Call]]:
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver = ast.unparse(node.func.value)
            is_log = node.func.attr in LEVELS and receiver in ("log", "self._log", "logger")
            if is_log or node.func.attr == "_warn_once":
                calls.append((str(path.relative_to(PACKAGE)), node.lineno, node))
    return calls


def test_every_log_call_names_its_event() -> None:
    calls = _log_calls()
    assert len(calls) > 30  # the check looks at something
    missing = []
    for where, line, call in calls:
        extra = next((k.value for k in call.keywords if k.arg == "extra"), None)
        if where == "cache/protocol.py":  # WarnOnce passes its callers' extra on
            continue
        keys = (
            {k.value for k in extra.keys if isinstance(k, ast.Constant)}
            if isinstance(extra, ast.Dict)
            else set()
        )
        if "event" not in keys:
            missing.append(f"{where}:{line}")
    assert not missing, missing


def _records(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


@pytest.mark.smarter_backends("sqlite")
def test_a_foreign_value_and_an_outage_log_their_fields(
    smarter_database_url: str,
    smarter_redis_url: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="smarter_domain")
    with Domain(smarter_database_url, smarter_redis_url) as domain:
        admin = domain.bootstrap()
        key = domain.cache.keys.user_by_username("admin")
        redis_client.set(key, b"\xffnot a record of ours")
        domain.cache.clear_memory()
        assert domain.users.get_by_username("admin") == admin.user
    [foreign] = _records(caplog, "foreign_value")
    assert foreign.key_kind == "username" and foreign.tier == "redis"  # type: ignore[attr-defined]
    fields = {k: v for k, v in vars(foreign).items() if k not in STANDARD}
    assert "admin" not in json.dumps(fields)  # the kind of key, never its personal data

    options = RedisOptions(socket_timeout=0.2, connect_timeout=0.2, listen=False)
    with Domain(smarter_database_url, "redis://127.0.0.1:1/0", redis_options=options) as down:
        assert down.users.get_by_username("admin") == admin.user
    [outage] = _records(caplog, "redis_unavailable")
    assert outage.tier == "redis" and outage.error == "ConnectionError"  # type: ignore[attr-defined]
    assert outage.retry_after_s == options.retry_after  # type: ignore[attr-defined]


def test_the_fields_render_as_json() -> None:
    """What a JSON formatter (python-json-logger, structlog's stdlib integration) emits: the
    record's own fields beside the message."""
    record = logging.makeLogRecord(
        {"msg": "Redis is back after %.1fs", "args": (1.5,), "event": "redis_back", "down_s": 1.5}
    )
    fields = {k: v for k, v in vars(record).items() if k not in STANDARD}
    line = json.dumps({"message": record.getMessage(), **fields})
    assert json.loads(line) == {
        "message": "Redis is back after 1.5s",
        "event": "redis_back",
        "down_s": 1.5,
    }
