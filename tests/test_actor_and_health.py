"""``domain.actor()`` (the logged-in user as the profile a broker acts for), ``domain.health()``
(readiness probes) and the package's ``NullHandler``."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from smarter_domain import (
    SMARTER_ACCOUNT_NUMBER,
    Domain,
    PermissionDenied,
    UserNotFound,
    ValidationError,
)
from smarter_domain.cache import RedisOptions
from smarter_domain.services.actors import find_actor
from smarter_domain.services.actors_async import find_actor as find_actor_async
from smarter_domain.testing import RedisServer
from smarter_domain.testing.servers import free_port

pytestmark = pytest.mark.smarter_backends("sqlite", "postgresql")


def _member(domain: Domain) -> tuple[Any, Any]:
    admin = domain.bootstrap()
    account = domain.apply(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "Account",
            "metadata": {"name": "acme", "accountNumber": "1234-5678-9012"},
        },
        actor=admin,
    )
    user = domain.apply(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "User",
            "metadata": {"name": "jdoe", "username": "jdoe"},
            "spec": {"accountNumber": "1234-5678-9012", "config": {"firstName": "J"}},
        },
        actor=admin,
    )
    return account, user


def test_the_actor_is_the_profile_in_the_account_named(domain: Domain) -> None:
    account, user = _member(domain)
    profile = domain.actor("jdoe", "1234-5678-9012")
    assert (profile.user, profile.account) == (user, account)
    assert domain.actor("jdoe") == profile  # their only account
    admin = domain.actor("admin")
    assert admin.account.account_number == SMARTER_ACCOUNT_NUMBER
    assert admin.user.is_superuser
    # A broker acts for it.
    described = domain.apply(
        {
            "apiVersion": "smarter.sh/v1",
            "kind": "User",
            "metadata": {"name": "jdoe", "username": "jdoe"},
            "spec": {"accountNumber": "1234-5678-9012", "config": {"firstName": "Again"}},
        },
        actor=domain.actor("admin"),
    )
    assert described.first_name == "Again"


def test_the_actor_prefers_the_platform_account(domain: Domain) -> None:
    _member(domain)
    admin = domain.actor("admin")
    platform_admin_user = admin.user
    acme = domain.accounts.get_by_number("1234-5678-9012")
    assert acme is not None
    domain.profiles.add(user_id=platform_admin_user.id, account_id=acme.id)
    assert domain.actor("admin").account.account_number == SMARTER_ACCOUNT_NUMBER
    assert domain.actor("admin", "1234-5678-9012").account == acme


def test_actor_errors_are_typed(domain: Domain) -> None:
    _, user = _member(domain)
    with pytest.raises(UserNotFound):
        domain.actor("nobody")
    with pytest.raises(PermissionDenied) as missing:
        domain.actor("jdoe", "9999-9999-9999")  # no such account
    with pytest.raises(PermissionDenied) as elsewhere:
        domain.actor("jdoe", SMARTER_ACCOUNT_NUMBER)  # an account they are not in
    # The two cannot be told apart but by the number asked about.
    assert str(missing.value).replace("9999-9999-9999", "N") == str(elsewhere.value).replace(
        SMARTER_ACCOUNT_NUMBER, "N"
    )
    loner = domain.users.add(username="loner")
    with pytest.raises(PermissionDenied, match="belongs to no account"):
        domain.actor(loner.username)
    domain.users.update(user.id, is_active=False)
    with pytest.raises(PermissionDenied, match="inactive"):
        domain.actor("jdoe", "1234-5678-9012")
    for bad in (None, 42, b"jdoe"):
        with pytest.raises(ValidationError):
            domain.actor(bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        domain.actor("admin", 1234)  # type: ignore[arg-type]
    for odd in ("", "\x00", "a" * 10_000, "admin\ud800", "1234-5678-9012-admin"):
        with pytest.raises(UserNotFound):
            domain.actor(odd)


def test_health_of_a_working_domain(domain: Domain, smarter_stack_redis_url: str | None) -> None:
    health = domain.health()
    assert health.ok and health.status == "ok"
    assert health.database.ok and health.database.latency_ms is not None
    if smarter_stack_redis_url is None:
        assert health.redis is None and health.listener is None
    else:
        assert health.redis is not None and health.redis.ok
        assert health.listener is not None and health.listener.ok
    report = health.as_dict()
    assert json.loads(json.dumps(report))["status"] == "ok"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server
    server.close()


@pytest.mark.smarter_backends("sqlite")
def test_health_with_redis_gone_or_paused_is_degraded_and_bounded(
    smarter_database_url: str, own_redis: RedisServer
) -> None:
    options = RedisOptions(socket_timeout=5, connect_timeout=5)  # slower than the probe
    domain = Domain(smarter_database_url, own_redis.url, redis_options=options)
    try:
        deadline = time.monotonic() + 10
        while not domain.health().ok:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        own_redis.pause()
        try:
            started = time.monotonic()
            health = domain.health(timeout=0.5)
            assert time.monotonic() - started < 1.5
            assert health.status == "degraded"
            assert health.redis is not None and not health.redis.ok
            assert "no answer" in health.redis.detail
            assert health.database.ok
        finally:
            own_redis.resume()
        own_redis.stop()
        health = domain.health(timeout=1)
        assert health.status == "degraded"
        assert health.redis is not None and "ConnectionError" in health.redis.detail
        assert own_redis.url not in json.dumps(health.as_dict())
    finally:
        domain.close()


@pytest.mark.smarter_backends("sqlite")
def test_health_with_a_database_that_never_answers_is_down_and_bounded() -> None:
    """A PostgreSQL address that accepts connections and never says a word: the probe
    reports it down within its timeout instead of hanging with it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        domain = Domain(f"postgresql://nobody:secret@127.0.0.1:{port}/nothing")
        try:
            started = time.monotonic()
            health = domain.health(timeout=0.5)
            assert time.monotonic() - started < 1.5
            assert health.status == "down" and not health.ok
            assert "no answer" in health.database.detail
        finally:
            domain.close()
    domain = Domain(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing")
    try:
        health = domain.health(timeout=5)
        assert health.status == "down"
        assert "OperationalError" in health.database.detail
        assert "secret" not in json.dumps(health.as_dict())
    finally:
        domain.close()


def test_the_package_logs_nothing_to_stderr_by_itself() -> None:
    """No handler configured by the application: the library's warnings go nowhere (a
    ``NullHandler``), while an application's own logger still reaches Python's last resort."""
    code = (
        "import logging, smarter_domain\n"
        "logging.getLogger('smarter_domain.cache.redis').warning('library warning')\n"
        "logging.getLogger('app').warning('app warning')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "library warning" not in result.stderr
    assert "app warning" in result.stderr


class _Awaitable:
    """A repository's methods as coroutines (the async twin's interface) over a sync one."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)  # a real suspension point, as I/O would be
            return method(*args, **kwargs)

        return call


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception as exc:
        return type(exc), str(exc)


def test_the_async_twin_of_find_actor_answers_as_the_sync_one(domain: Domain) -> None:
    """``services.actors`` is generated from ``services.actors_async``: one rule, two doors."""
    _, user = _member(domain)
    domain.users.add(username="loner")
    repositories = (domain.users, domain.profiles, domain.accounts)
    awaitable = tuple(_Awaitable(r) for r in repositories)
    cases: list[tuple[Any, ...]] = [
        ("jdoe", "1234-5678-9012"),
        ("jdoe", None),
        ("admin", None),
        ("admin", "1234-5678-9012"),
        ("nobody", None),
        ("jdoe", "9999-9999-9999"),
        ("jdoe", SMARTER_ACCOUNT_NUMBER),
        ("loner", None),
        (None, None),
        ("admin", 1234),
        ("admin\ud800", None),
    ]
    seen = set()
    for username, number in cases:
        expected = _outcome(find_actor, *repositories, username, number)
        got = _outcome(lambda *a: asyncio.run(find_actor_async(*a)), *awaitable, username, number)
        assert got == expected, (username, number)
        seen.add(expected[0] if isinstance(expected, tuple) else "profile")
    assert seen == {"profile", UserNotFound, PermissionDenied, ValidationError}
    domain.users.update(user.id, is_active=False)
    inactive = _outcome(lambda *a: asyncio.run(find_actor_async(*a)), *awaitable, "jdoe", None)
    assert inactive[0] is PermissionDenied and "inactive" in inactive[1]
