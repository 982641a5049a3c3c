"""Manifest builders shared by the broker tests."""

from __future__ import annotations

import os
from typing import Any


def user_manifest(
    username: str, account_number: str | None = None, **config: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"config": {"email": f"{username}@example.com", **config}}
    if account_number:
        spec["accountNumber"] = account_number
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "User",
        "metadata": {"name": username, "username": username},
        "spec": spec,
    }


def profile_manifest(username: str, account_number: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "UserProfile",
        "metadata": {"name": f"{username}-member"},
        "spec": {"username": username, "accountNumber": account_number, **spec},
    }


def cli_env(database_url: str | None, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this one's, with only the SMARTER_* settings given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTER_")}
    if database_url:
        env["SMARTER_DATABASE_URL"] = database_url
    if redis_url:
        env["SMARTER_REDIS_URL"] = redis_url
    env.update(extra)
    return env
