"""Manifest builders shared by the broker tests."""

from __future__ import annotations

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
