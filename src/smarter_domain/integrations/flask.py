"""The library in a Flask application (``pip install smarter-domain[flask]``).

    app = Flask(__name__)
    smarter = SmarterDomain(app)          # or SmarterDomain() then smarter.init_app(app)

    @app.get("/me")
    def me():
        profile = smarter.actor()         # 401 without an authenticated user
        return {"username": profile.user.username}

``init_app`` builds a domain for the app from its config (``SMARTER_DATABASE_URL``,
``SMARTER_REDIS_URL``, ``SMARTER_CACHE_TTL``; the environment's ``SMARTER_*`` where the config
has none), unless the extension was given one, and makes it the process default if there is
none yet (so ``smarter_domain.get_cached_*`` and ``cache_results`` use it too). It answers
every ``SmarterError`` with its HTTP status and a problem-details body
(``integrations.http``), and serves a readiness probe from ``domain.health()`` at
``SMARTER_HEALTH_PATH`` (``/healthz/ready``; a false value: no probe; with
``SMARTER_HEALTH_DETAILS`` the body says what failed).

``smarter.actor()`` is the profile the request's user acts as, in the account named by the
request's host. The user is the one the WSGI server authenticated (``REMOTE_USER``); pass
``user_of(request)`` to read it elsewhere, but never from a header a client can send unless
the proxy in front always overwrites it.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, current_app, has_app_context, jsonify, request
from flask.typing import ResponseReturnValue

from ..model.errors import SmarterError
from .http import PROBLEM_JSON, acting_profile, problem_response, readiness, settings_from

if TYPE_CHECKING:
    from ..domain import Domain
    from ..model.entities import UserProfile

EXTENSION = "smarter_domain"
_NOT_SETTINGS = frozenset(
    {"SMARTER_HEALTH_PATH", "SMARTER_HEALTH_DETAILS", "SMARTER_AUTH_CHALLENGE"}
)  # the extension's own keys: not the domain's settings


def remote_user(request: Request) -> str | None:
    """The user the WSGI server authenticated (``REMOTE_USER`` in its environ: a client
    cannot set it with a header)."""
    return request.remote_user


@dataclass
class _AppState:
    domain: Domain
    owned: bool
    challenge: str


class SmarterDomain:
    def __init__(
        self,
        app: Flask | None = None,
        *,
        domain: Domain | None = None,
        user_of: Callable[[Request], str | None] = remote_user,
    ) -> None:
        self._given = domain
        self._states: list[_AppState] = []
        self.user_of = user_of
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wire the app: its own domain (built from its config) unless the extension was
        given one, the error handler, the readiness probe."""
        from ..domain import Domain, current_default, set_domain

        domain, owned = self._given, False
        if domain is None:
            settings = _settings(app.config)
            domain = Domain(settings.database_url, settings.redis_url, cache_ttl=settings.cache_ttl)
            owned = True
            atexit.register(domain.close)  # flushes held-back invalidations at exit
        if current_default() is None:
            set_domain(domain)
        state = _AppState(
            domain, owned, app.config.get("SMARTER_AUTH_CHALLENGE", 'Bearer realm="smarter"')
        )
        self._states.append(state)
        app.extensions[EXTENSION] = state
        app.register_error_handler(SmarterError, _error_response)
        path = app.config.get("SMARTER_HEALTH_PATH", "/healthz/ready")
        if path:
            details = bool(app.config.get("SMARTER_HEALTH_DETAILS", False))

            def ready() -> ResponseReturnValue:
                status, body = readiness(domain.health(), details)
                return jsonify(body), status

            app.add_url_rule(path, endpoint="smarter_domain_ready", view_func=ready)

    @property
    def domain(self) -> Domain:
        """The current app's domain (the only app's, outside an app context)."""
        return self._state().domain

    def actor(self) -> UserProfile:
        """The profile the current request's user acts as (401 when there is none)."""
        return acting_profile(self.domain, self.user_of(request), request.url)

    def close(self) -> None:
        """Close the domains this extension built (one it was given is the caller's), and
        stop being the process default."""
        from ..domain import current_default, set_domain

        states, self._states = self._states, []
        for state in states:
            if current_default() is state.domain:
                set_domain(None)
            if state.owned:
                state.domain.close()
                atexit.unregister(state.domain.close)

    def _state(self) -> _AppState:
        if has_app_context():
            state = current_app.extensions.get(EXTENSION)
            if isinstance(state, _AppState):
                return state
        if len(self._states) == 1:
            return self._states[0]
        raise RuntimeError(
            "SmarterDomain: no app here (init_app has not run, or it serves several apps: "
            "use one's app context)"
        )


def _settings(config: Any) -> Any:
    """The domain's settings: the app's ``SMARTER_*`` config over the environment's."""
    return settings_from(config, _NOT_SETTINGS)


def _error_response(error: SmarterError) -> ResponseReturnValue:
    state = current_app.extensions.get(EXTENSION)
    challenge = state.challenge if isinstance(state, _AppState) else ""
    status, body, headers = problem_response(error, challenge)
    response = jsonify(body)
    response.content_type = PROBLEM_JSON
    response.headers.update(headers)
    return response, status
