from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

import smarter_domain as sd
from smarter_domain import SMARTER_ACCOUNT_NUMBER, Account, User, UserProfile
from smarter_domain.model.account_number import (
    generate_account_number,
    is_account_number,
    random_account_number,
    validate_account_number,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_profile() -> UserProfile:
    account = Account(
        id=1, account_number="1234-5678-9012", name="acme", created_at=NOW, updated_at=NOW
    )
    user = User(id=2, username="jdoe", date_joined=NOW)
    return UserProfile(id=3, user=user, account=account, created_at=NOW, updated_at=NOW)


def test_entities_are_immutable_and_hashable() -> None:
    profile = make_profile()
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.user.username = "other"  # type: ignore[misc]
    assert hash(profile) == hash(make_profile())
    assert profile == make_profile()
    assert profile.user.username == "jdoe"
    assert (profile.user_id, profile.account_id) == (2, 1)


def test_entities_have_no_orm_state_and_no_secret_fields() -> None:
    profile = make_profile()
    assert not hasattr(profile, "__dict__")  # slots: nothing can be attached, no lazy loading
    user_fields = {f.name for f in dataclasses.fields(User)}
    assert not {"password", "token", "secret"} & user_fields


@pytest.mark.parametrize(
    ("entity", "error"),
    [(Account, sd.AccountNotFound), (User, sd.UserNotFound), (UserProfile, sd.UserProfileNotFound)],
)
def test_does_not_exist_aliases(entity: type, error: type[Exception]) -> None:
    assert entity.DoesNotExist is error
    assert issubclass(error, sd.NotFoundError)
    assert issubclass(error, LookupError)
    assert issubclass(error, sd.SmarterError)


def test_error_hierarchy() -> None:
    assert issubclass(sd.ValidationError, ValueError)
    assert issubclass(sd.ValidationError, sd.SmarterError)
    assert issubclass(sd.ConflictError, sd.ValidationError)
    assert issubclass(sd.ConfigurationError, sd.SmarterError)
    assert issubclass(sd.PermissionDenied, sd.SmarterError)
    err = sd.ValidationError("bad manifest", {"name": "required", "email": "invalid"})
    assert err.errors == {"name": "required", "email": "invalid"}
    assert "name: required" in str(err)
    assert "email: invalid" in str(err)


@pytest.mark.parametrize("value", ["1234-5678-9012", SMARTER_ACCOUNT_NUMBER, "0000-0000-0000"])
def test_valid_account_numbers(value: str) -> None:
    assert is_account_number(value)
    assert validate_account_number(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1234-5678-901",
        "1234-5678-90123",
        "1234_5678_9012",
        "abcd-efgh-ijkl",
        "1234-5678-9012\n",
        " 1234-5678-9012",
        "١٢٣٤-٥٦٧٨-٩٠١٢",
        None,
        123456789012,
    ],
)
def test_invalid_account_numbers(value: object) -> None:
    assert not is_account_number(value)
    with pytest.raises(sd.ValidationError) as info:
        validate_account_number(value)
    assert "account_number" in info.value.errors


def test_random_account_numbers_are_well_formed_and_vary() -> None:
    numbers = {random_account_number() for _ in range(200)}
    assert all(is_account_number(n) for n in numbers)
    assert len(numbers) > 190


def test_generate_skips_taken_numbers() -> None:
    seen: list[str] = []

    def taken(candidate: str) -> bool:
        seen.append(candidate)
        return len(seen) < 3

    number = generate_account_number(taken)
    assert number == seen[-1]
    assert len(seen) == 3


def test_generate_gives_up_with_a_typed_error() -> None:
    with pytest.raises(sd.ValidationError):
        generate_account_number(lambda _: True, attempts=5)
