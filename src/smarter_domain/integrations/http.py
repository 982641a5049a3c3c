"""What a web framework needs from the library, whatever the framework: the HTTP status and
body of each error (problem details, RFC 9457), the readiness answer, and the acting profile
of a request. The framework integrations only translate these into their own types."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..model.errors import (
    CacheUnavailable,
    ConfigurationError,
    ConflictError,
    DatabaseError,
    NotFoundError,
    PermissionDenied,
    SmarterError,
    UserNotFound,
    ValidationError,
)
from ..model.urls import account_number_from_url

if TYPE_CHECKING:
    from ..model.entities import UserProfile
    from ..services.health import Health
    from ..settings import Settings

STATUSES: tuple[tuple[type[SmarterError], int], ...] = (
    (ConflictError, 409),  # before ValidationError, its base
    (ValidationError, 422),
    (NotFoundError, 404),
    (PermissionDenied, 403),
    (CacheUnavailable, 503),
    (DatabaseError, 503),
    (ConfigurationError, 500),
)
"""The HTTP status of each error, the first that matches; any other ``SmarterError`` is 500."""


class Unauthenticated(SmarterError):
    """The request names no user the library knows: 401."""


def status_for(error: SmarterError) -> int:
    if isinstance(error, Unauthenticated):
        return 401
    return next((status for kind, status in STATUSES if isinstance(error, kind)), 500)


def problem(error: SmarterError) -> dict[str, Any]:
    """The response body of ``error``: problem details, with ``errors`` (field: problem) for
    a ``ValidationError``. A server error says no more than its kind: its message may name
    hosts or settings."""
    status = status_for(error)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": type(error).__name__,
        "status": status,
    }
    if status < 500:
        body["detail"] = str(error)
    if isinstance(error, ValidationError):
        body["errors"] = dict(error.errors)
    return body


PROBLEM_JSON = "application/problem+json"


def problem_response(
    error: SmarterError, challenge: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, problem-details body and headers of the response to ``error``: a 401 names
    how to authenticate (``WWW-Authenticate: <challenge>``, RFC 9110) unless ``challenge`` is
    empty."""
    status = status_for(error)
    headers = {"WWW-Authenticate": challenge} if status == 401 and challenge else {}
    return status, problem(error), headers


def readiness(health: Health, details: bool = False) -> tuple[int, dict[str, Any]]:
    """A readiness probe's answer: 503 only when the database cannot be reached (``down``);
    200 when ``ok`` or ``degraded`` (Redis or the listener is not: reads still come from the
    database, so a Redis blip does not take every replica out of rotation; the body says
    ``degraded``). The body has each component's ``ok``; ``details`` adds what failed, which
    may name hosts and users: for probes that are not public."""
    status = 503 if health.status == "down" else 200
    if details:
        return status, {**health.as_dict(), "ok": health.ok}
    body: dict[str, Any] = {"ok": health.ok, "status": health.status}
    for name, component in (
        ("database", health.database),
        ("redis", health.redis),
        ("listener", health.listener),
    ):
        if component is not None:
            body[name] = {"ok": component.ok}
    return status, body


def acting_profile(domain: Any, username: str | None, url: str) -> UserProfile:
    """The profile the request's user acts as: ``domain.actor(username, <the account number
    in the request's host>)``; ``Unauthenticated`` when there is no user or no such user
    (an unknown name and a missing one look the same to the client)."""
    account_number = _account_of_request(username, url)
    try:
        profile: UserProfile = domain.actor(username, account_number)
    except UserNotFound:
        raise Unauthenticated("the request's user is not known") from None
    return profile


async def acting_profile_async(domain: Any, username: str | None, url: str) -> UserProfile:
    """``acting_profile`` for an ``AsyncDomain`` (whose ``actor`` is a coroutine)."""
    account_number = _account_of_request(username, url)
    try:
        profile: UserProfile = await domain.actor(username, account_number)
    except UserNotFound:
        raise Unauthenticated("the request's user is not known") from None
    return profile


def _account_of_request(username: str | None, url: str) -> str | None:
    """The account number in the request's host, once the request names a user."""
    if not username:
        raise Unauthenticated("the request is not authenticated")
    return account_number_from_url(url)


def settings_from(config: Mapping[str, Any], ignore: frozenset[str] = frozenset()) -> Settings:
    """The domain's settings: an application's ``SMARTER_*`` configuration (but the keys in
    ``ignore``, the integration's own) over the environment's; a key set to None unsets the
    environment's."""
    from ..settings import Settings

    merged = dict(os.environ)
    for key, value in config.items():
        if not key.startswith("SMARTER_") or key in ignore:
            continue
        if value is None:
            merged.pop(key, None)
        elif hasattr(value, "render_as_string"):  # a SQLAlchemy URL (str() hides its password)
            merged[key] = value.render_as_string(hide_password=False)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            merged[key] = str(value)
        else:
            raise ConfigurationError(
                f"the setting {key!r} must be a string, got {type(value).__name__}"
            )
    return Settings.from_env(merged)
