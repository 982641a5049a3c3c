"""Manifest validation: every field, every rule, all errors at once."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import smarter_domain as sd
from smarter_domain.model.manifests import (
    AccountManifest,
    UserManifest,
    UserProfileManifest,
    load_manifests,
)

ACCOUNT: dict[str, Any] = {
    "apiVersion": "smarter.sh/v1",
    "kind": "Account",
    "metadata": {"name": "acme", "description": "Acme Corp", "version": "1.0.0"},
    "spec": {
        "config": {
            "companyName": "Acme Corp",
            "phoneNumber": "+1 617 555 0100",
            "address1": "1 Main St",
            "address2": "Suite 2",
            "city": "Boston",
            "state": "MA",
            "postalCode": "02110",
            "country": "US",
            "language": "en-US",
            "timezone": "America/New_York",
            "currency": "USD",
        }
    },
}
USER: dict[str, Any] = {
    "apiVersion": "smarter.sh/v1",
    "kind": "User",
    "metadata": {"name": "jdoe", "description": "John", "version": "1.0.0", "username": "jdoe"},
    "spec": {
        "accountNumber": "1234-5678-9012",
        "config": {
            "firstName": "John",
            "lastName": "Doe",
            "email": "john@example.com",
            "isStaff": False,
            "isActive": True,
        },
    },
}
PROFILE: dict[str, Any] = {
    "apiVersion": "smarter.sh/v1",
    "kind": "UserProfile",
    "metadata": {"name": "jdoe-acme", "description": "membership"},
    "spec": {"username": "jdoe", "accountNumber": "1234-5678-9012", "isTest": False},
}


def with_value(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``path`` set (or removed, for ``...``)."""
    result = copy.deepcopy(document)
    *parents, last = path.split(".")
    node = result
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return result


BAD: list[tuple[dict[str, Any], str, Any, str]] = [
    # (base, path, value, expected error field)
    (ACCOUNT, "apiVersion", "smarter.sh/v2", "apiVersion"),
    (ACCOUNT, "apiVersion", ..., "apiVersion"),
    (ACCOUNT, "kind", "Tenant", "kind"),
    (ACCOUNT, "metadata", ..., "metadata"),
    (ACCOUNT, "metadata.name", ..., "metadata.name"),
    (ACCOUNT, "metadata.name", "", "metadata.name"),
    (ACCOUNT, "metadata.name", "Acme Corp", "metadata.name"),
    (ACCOUNT, "metadata.name", "-acme", "metadata.name"),
    (ACCOUNT, "metadata.name", "a" * 64, "metadata.name"),
    (ACCOUNT, "metadata.name", 42, "metadata.name"),
    (ACCOUNT, "metadata.version", "1.0", "metadata.version"),
    (ACCOUNT, "metadata.version", 1.0, "metadata.version"),
    (ACCOUNT, "metadata.description", ["x"], "metadata.description"),
    (ACCOUNT, "metadata.accountNumber", "1234-5678", "metadata.accountNumber"),
    (ACCOUNT, "metadata.accountNumber", "abcd-efgh-ijkl", "metadata.accountNumber"),
    (ACCOUNT, "metadata.owner", "me", "metadata.owner"),
    (ACCOUNT, "spec.config.country", "USA", "spec.config.country"),
    (ACCOUNT, "spec.config.country", "XX", "spec.config.country"),
    (ACCOUNT, "spec.config.country", "us", "spec.config.country"),
    (ACCOUNT, "spec.config.language", "english", "spec.config.language"),
    (ACCOUNT, "spec.config.language", "en_US", "spec.config.language"),
    (ACCOUNT, "spec.config.timezone", "Mars/Olympus", "spec.config.timezone"),
    (ACCOUNT, "spec.config.timezone", "EST5EDTX", "spec.config.timezone"),
    (ACCOUNT, "spec.config.currency", "DOLLARS", "spec.config.currency"),
    (ACCOUNT, "spec.config.currency", "XYZ", "spec.config.currency"),
    (ACCOUNT, "spec.config.phoneNumber", "call me", "spec.config.phoneNumber"),
    (ACCOUNT, "spec.config.postalCode", "1" * 21, "spec.config.postalCode"),
    (ACCOUNT, "spec.config.companyName", "x" * 256, "spec.config.companyName"),
    (ACCOUNT, "spec.config.city", 12, "spec.config.city"),
    (ACCOUNT, "spec.config.isDefault", True, "spec.config.isDefault"),
    (ACCOUNT, "spec.plan", "gold", "spec.plan"),
    (ACCOUNT, "status", {}, "status"),
    (USER, "metadata.username", "john doe", "metadata.username"),
    (USER, "metadata.username", "", "metadata.username"),
    (USER, "spec.accountNumber", "1234", "spec.accountNumber"),
    (USER, "spec.config.email", "not-an-email", "spec.config.email"),
    (USER, "spec.config.email", "john@", "spec.config.email"),
    (USER, "spec.config.isStaff", "yes", "spec.config.isStaff"),
    (USER, "spec.config.isActive", 1, "spec.config.isActive"),
    (USER, "spec.config.isSuperuser", True, "spec.config.isSuperuser"),
    (USER, "spec.config.password", "hunter2", "spec.config.password"),
    (USER, "spec.config.firstName", "x" * 151, "spec.config.firstName"),
    (USER, "kind", "user", "kind"),
    (PROFILE, "spec.username", ..., "spec.username"),
    (PROFILE, "spec.accountNumber", ..., "spec.accountNumber"),
    (PROFILE, "spec.accountNumber", "3141592653", "spec.accountNumber"),
    (PROFILE, "spec.isTest", "false", "spec.isTest"),
    (PROFILE, "spec.role", "owner", "spec.role"),
    (PROFILE, "spec", ..., "spec"),
    (PROFILE, "metadata.name", "Bad_Name!", "metadata.name"),
    (ACCOUNT, "metadata.tags", "db", "metadata.tags"),
    (ACCOUNT, "metadata.description", "nul\x00", "metadata.description"),
    (ACCOUNT, "kind", ["Account"], "kind"),
    (USER, "metadata.annotations", [{"a": 1}], "metadata.annotations.0.1"),
    (USER, "spec.config.lastName", "\ud800", "spec.config.lastName"),
    (PROFILE, "metadata.tags", ["a", "a"], "metadata.tags"),
    (PROFILE, "metadata.annotations", [{"a": "1"}, {"a": "2"}], "metadata.annotations"),
]


@pytest.mark.parametrize(
    ("base", "path", "value", "field"),
    BAD,
    ids=[f"{b['kind']}-{p}-{v!r}"[:60] for b, p, v, _ in BAD],
)
def test_bad_manifest_names_the_field(
    base: dict[str, Any], path: str, value: Any, field: str
) -> None:
    with pytest.raises(sd.ValidationError) as info:
        load_manifests(with_value(base, path, value))
    assert field in info.value.errors, info.value.errors


def test_the_table_is_large_enough() -> None:
    assert len(BAD) >= 40


def test_every_bad_field_is_reported_at_once() -> None:
    document = with_value(ACCOUNT, "spec.config.country", "XX")
    document = with_value(document, "spec.config.currency", "XYZ")
    document = with_value(document, "metadata.name", "Bad Name")
    document = with_value(document, "spec.extra", 1)
    with pytest.raises(sd.ValidationError) as info:
        load_manifests(document)
    assert set(info.value.errors) == {
        "spec.config.country",
        "spec.config.currency",
        "metadata.name",
        "spec.extra",
    }


@pytest.mark.parametrize(
    "text",
    ["", "just a string", "- a\n- list", "kind: [unclosed", "apiVersion: smarter.sh/v1\n"],
)
def test_bad_yaml_documents(text: str) -> None:
    with pytest.raises(sd.ValidationError):
        load_manifests(text)


def test_good_manifests_parse_from_dicts_and_yaml() -> None:
    import yaml

    assert isinstance(load_manifests(ACCOUNT)[0], AccountManifest)
    text = "\n---\n".join(yaml.safe_dump(d) for d in (ACCOUNT, USER, PROFILE))
    parsed = load_manifests(text)
    assert [type(m) for m in parsed] == [AccountManifest, UserManifest, UserProfileManifest]
    user = parsed[1]
    assert isinstance(user, UserManifest)
    assert user.username == "jdoe"
    assert user.spec.config.email == "john@example.com"


def test_minimal_manifests_take_defaults() -> None:
    (account,) = load_manifests(
        {"apiVersion": "smarter.sh/v1", "kind": "Account", "metadata": {"name": "tiny"}}
    )
    assert isinstance(account, AccountManifest)
    assert account.spec.config.country == ""
    (user,) = load_manifests(
        {"apiVersion": "smarter.sh/v1", "kind": "User", "metadata": {"name": "solo"}}
    )
    assert isinstance(user, UserManifest)
    assert user.username == "solo"
    assert not user.spec.config.isStaff
