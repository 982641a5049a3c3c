"""Declarative manifests (``apiVersion: smarter.sh/v1``) for Account, User and UserProfile.

Parsed from YAML (several ``---`` documents allowed) or dicts, and validated all at once:
every bad field is reported in one ``ValidationError`` whose ``errors`` map dotted field
paths (``spec.config.country``) to what is wrong. Unknown keys are rejected. Countries are
ISO 3166-1 alpha-2, currencies ISO 4217 (pycountry), languages BCP 47 (langcodes), time zones
IANA (zoneinfo).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import langcodes
import pycountry
import pydantic
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StrictBool, StrictStr

from .account_number import ACCOUNT_NUMBER_PATTERN
from .errors import ValidationError
from .repositories.sql import USERNAME_PATTERN

API_VERSION = "smarter.sh/v1"
KINDS = ("Account", "User", "UserProfile")

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
VERSION_PATTERN = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
PHONE_PATTERN = r"^(\+?[0-9 ().-]{3,30})?$"


_BCP47_CHARACTERS = re.compile(r"[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*")


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _country(value: str) -> str:
    if value and (
        len(value) != 2 or not value.isupper() or pycountry.countries.get(alpha_2=value) is None
    ):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value


def _currency(value: str) -> str:
    if value and (
        len(value) != 3 or not value.isupper() or pycountry.currencies.get(alpha_3=value) is None
    ):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


def _language(value: str) -> str:
    if value and (not _BCP47_CHARACTERS.fullmatch(value) or not langcodes.tag_is_valid(value)):
        raise ValueError(f"{value!r} is not a BCP 47 language tag")
    return value


def _timezone(value: str) -> str:
    if value and value not in _time_zones():
        raise ValueError(f"{value!r} is not an IANA time zone")
    return value


Name = Annotated[StrictStr, Field(pattern=NAME_PATTERN)]
Text = Annotated[StrictStr, Field(max_length=255)]
AccountNumber = Annotated[StrictStr, Field(pattern=f"^{ACCOUNT_NUMBER_PATTERN}$")]
Username = Annotated[StrictStr, Field(pattern=USERNAME_PATTERN.pattern)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(_Strict):
    name: Name
    description: Annotated[StrictStr, Field(max_length=2000)] = ""
    version: Annotated[StrictStr, Field(pattern=VERSION_PATTERN)] = "1.0.0"


class AccountMetadata(Metadata):
    accountNumber: AccountNumber | None = None


class AccountConfig(_Strict):
    companyName: Text = ""
    phoneNumber: Annotated[StrictStr, Field(pattern=PHONE_PATTERN)] = ""
    address1: Text = ""
    address2: Text = ""
    city: Text = ""
    state: Text = ""
    postalCode: Annotated[StrictStr, Field(max_length=20)] = ""
    country: Annotated[StrictStr, AfterValidator(_country)] = ""
    language: Annotated[StrictStr, AfterValidator(_language)] = ""
    timezone: Annotated[StrictStr, AfterValidator(_timezone)] = ""
    currency: Annotated[StrictStr, AfterValidator(_currency)] = ""


class AccountSpec(_Strict):
    config: AccountConfig = AccountConfig()


class UserMetadata(Metadata):
    username: Username | None = None


class UserConfig(_Strict):
    firstName: Annotated[StrictStr, Field(max_length=150)] = ""
    lastName: Annotated[StrictStr, Field(max_length=150)] = ""
    email: EmailStr | None = None
    isStaff: StrictBool = False
    isActive: StrictBool = True


class UserSpec(_Strict):
    accountNumber: AccountNumber | None = None
    config: UserConfig = UserConfig()


class UserProfileSpec(_Strict):
    username: Username
    accountNumber: AccountNumber
    isTest: StrictBool = False


class _Manifest(_Strict):
    apiVersion: Literal["smarter.sh/v1"]


class AccountManifest(_Manifest):
    kind: Literal["Account"]
    metadata: AccountMetadata
    spec: AccountSpec = AccountSpec()


class UserManifest(_Manifest):
    kind: Literal["User"]
    metadata: UserMetadata
    spec: UserSpec = UserSpec()

    @property
    def username(self) -> str:
        return self.metadata.username or self.metadata.name


class UserProfileManifest(_Manifest):
    kind: Literal["UserProfile"]
    metadata: Metadata
    spec: UserProfileSpec


Manifest = AccountManifest | UserManifest | UserProfileManifest
_MODELS: dict[str, type[BaseModel]] = {
    "Account": AccountManifest,
    "User": UserManifest,
    "UserProfile": UserProfileManifest,
}


def _path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "manifest"


def parse_manifest(document: Mapping[str, Any] | BaseModel) -> Manifest:
    """Validate one manifest document (a mapping); every bad field is reported at once."""
    if isinstance(document, (AccountManifest, UserManifest, UserProfileManifest)):
        return document
    if not isinstance(document, Mapping):
        raise ValidationError(
            "invalid manifest", {"manifest": f"expected a mapping, got {type(document).__name__}"}
        )
    kind = document.get("kind")
    if kind not in _MODELS:
        problems = {"kind": f"expected one of {', '.join(KINDS)}, got {kind!r}"}
        if document.get("apiVersion") != API_VERSION:
            problems["apiVersion"] = f"expected {API_VERSION!r}"
        raise ValidationError("invalid manifest", problems)
    try:
        manifest: Manifest = _MODELS[kind].model_validate(dict(document))  # type: ignore[assignment]
    except pydantic.ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            errors.setdefault(_path(error["loc"]), error["msg"])
        raise ValidationError(f"invalid {kind} manifest", errors) from None
    return manifest


def load_manifests(source: str | Mapping[str, Any] | BaseModel) -> list[Manifest]:
    """Every document of YAML text (``---`` separated), or one dict / manifest."""
    if not isinstance(source, str):
        return [parse_manifest(source)]
    try:
        documents = [doc for doc in yaml.safe_load_all(source) if doc is not None]
    except yaml.YAMLError as exc:
        raise ValidationError("invalid manifest", {"manifest": f"invalid YAML: {exc}"}) from None
    if not documents:
        raise ValidationError("invalid manifest", {"manifest": "no document"})
    return [parse_manifest(document) for document in documents]
