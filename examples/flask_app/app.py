"""A Flask application on smarter-domain (``pip install smarter-domain[flask]``).

    smarter-domain migrate && smarter-domain bootstrap
    SMARTER_DATABASE_URL=sqlite:///smarter_domain.db flask --app app run

Reads go through the cache, writes through the brokers as the request's user (the user the
WSGI server authenticated, ``REMOTE_USER``, acting in the account its host names), errors come
back with their HTTP status and a problem-details body, and ``/healthz/ready`` is the
readiness probe. The test suite drives it with Flask's test client
(tests/test_integration_flask.py).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from smarter_domain import ValidationError
from smarter_domain.integrations.flask import SmarterDomain

smarter = SmarterDomain()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    smarter.init_app(app)

    @app.get("/users/<username>")
    def user(username: str) -> ResponseReturnValue:
        smarter.actor()  # members only: 401 otherwise
        found = smarter.domain.utils.get_cached_user_for_username(username)  # 404 if none
        return {"username": found.username, "name": f"{found.first_name} {found.last_name}"}

    @app.get("/me")
    def me() -> ResponseReturnValue:
        profile = smarter.actor()
        return {"username": profile.user.username, "account": profile.account.account_number}

    @app.post("/manifests")
    def apply() -> ResponseReturnValue:
        """Create or update what a manifest describes, with the permissions of the actor."""
        entity = smarter.domain.apply(request.get_data(as_text=True), actor=smarter.actor())
        return jsonify(entity), 201

    @app.post("/users")
    def add_user() -> ResponseReturnValue:
        """A member of the actor's account (``{"username": ...}``), through the user broker."""
        actor = smarter.actor()
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("username"), str):
            raise ValidationError("a JSON object with a username", {"username": "required"})
        manifest = {
            "apiVersion": "smarter.sh/v1",
            "kind": "User",
            "metadata": {"name": body["username"], "username": body["username"]},
            "spec": {"accountNumber": actor.account.account_number},
        }
        return jsonify(smarter.domain.apply(manifest, actor=actor)), 201

    return app
