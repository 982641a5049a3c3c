"""Declarative manifests (``apiVersion: smarter.sh/v1``) for Account, User and UserProfile.

Parsed from YAML (several ``---`` documents allowed) or dicts, and validated all at once:
every bad field is reported in one ``ValidationError`` whose ``errors`` map dotted field
paths (``spec.config.country``) to what is wrong. Unknown keys are rejected. Countries are
ISO 3166-1 alpha-2, currencies ISO 4217 (pycountry), languages BCP 47 (langcodes), time zones
IANA (zoneinfo).

Hostile input is refused with the same ``ValidationError``, before any model sees it: text
over ``MAX_TEXT`` characters, anything nested more than ``MAX_DEPTH`` levels, more than
``MAX_NODES`` values in all (counted each time a value is reached, so a YAML alias bomb, whose
shared references a naive walk would expand, stops there), keys that are not strings, values
that are not strings, numbers, booleans, nulls, mappings or lists (YAML dates, binary, sets),
and strings no backend can store (NUL characters, lone surrogates), each at its dotted path.

``metadata.tags`` (a list of strings) and ``metadata.annotations`` (a mapping, or a list of
one-pair mappings, of string keys to string values), as Smarter's own manifests carry them,
are accepted on every kind and exposed as ``metadata.tags: tuple[str, ...]`` and
``metadata.annotations: tuple[tuple[str, str], ...]``, in order.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import langcodes
import pycountry
import pydantic
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StrictStr,
)
from yaml.nodes import MappingNode, Node, SequenceNode

from .account_number import ACCOUNT_NUMBER_PATTERN
from .entities import USERNAME_PATTERN
from .errors import ValidationError
from .text import MAX_TEXT, text_problem

API_VERSION = "smarter.sh/v1"
KINDS = ("Account", "User", "UserProfile")

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
VERSION_PATTERN = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
PHONE_PATTERN = r"^(\+?[0-9 ().-]{3,30})?$"

MAX_DEPTH = 32
"""The deepest a value may sit (the document itself is at depth 1)."""
MAX_NODES = 100_000
"""The most values (mappings, lists, scalars) in all the documents taken at once, counted
each time one is reached: YAML aliases do not make a value free."""
MAX_ERRORS = 50
"""The most problems one ValidationError lists; the rest are counted."""
MAX_TAGS = 50
MAX_ANNOTATIONS = 50
_SHOWN = 40
"""The most characters of a bad value (or a key in a path) that an error message repeats."""


_BCP47_CHARACTERS = re.compile(r"[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*")


def _shown(value: object) -> str:
    """``value`` for an error message: escaped (ASCII, one line) and cut short."""
    text = ascii(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}..."


def _segment(part: object) -> str:
    """One part of a dotted path: a clean short key as is, anything else escaped."""
    if isinstance(part, int) and not isinstance(part, bool):
        return str(part)
    if (
        isinstance(part, str)
        and part
        and len(part) <= _SHOWN
        and part.isprintable()
        and part.isascii()
        and "." not in part
    ):
        return part
    return _shown(part)


def _path(location: tuple[object, ...]) -> str:
    return ".".join(_segment(part) for part in location) or "manifest"


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _country(value: str) -> str:
    if value and (
        len(value) != 2 or not value.isupper() or pycountry.countries.get(alpha_2=value) is None
    ):
        raise ValueError(f"{_shown(value)} is not an ISO 3166-1 alpha-2 country code")
    return value


def _currency(value: str) -> str:
    if value and (
        len(value) != 3 or not value.isupper() or pycountry.currencies.get(alpha_3=value) is None
    ):
        raise ValueError(f"{_shown(value)} is not an ISO 4217 currency code")
    return value


def _language(value: str) -> str:
    if value and (not _BCP47_CHARACTERS.fullmatch(value) or not langcodes.tag_is_valid(value)):
        raise ValueError(f"{_shown(value)} is not a BCP 47 language tag")
    return value


def _timezone(value: str) -> str:
    if value and value not in _time_zones():
        raise ValueError(f"{_shown(value)} is not an IANA time zone")
    return value


def _tag_list(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of strings, got {type(value).__name__}")
    return value


def _unique_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for tag in tags:
        if tag in seen:
            raise ValueError(f"duplicate tag {_shown(tag)}")
        seen.add(tag)
    return tags


def _annotation_pairs(value: Any) -> Any:
    """A mapping, or a list of one-pair mappings (or ``(key, value)`` pairs), as pairs."""
    if isinstance(value, Mapping):
        return tuple(value.items())
    if not isinstance(value, list | tuple):
        raise ValueError(
            "expected a mapping of keys to values, or a list of one-pair mappings, "
            f"got {type(value).__name__}"
        )
    pairs: list[Any] = []
    for index, item in enumerate(value):
        if isinstance(item, Mapping) and len(item) == 1:
            pairs.append(next(iter(item.items())))
        elif isinstance(item, tuple) and len(item) == 2:
            pairs.append(item)
        else:
            raise ValueError(f"item {index}: expected a mapping of one key to its value")
    return tuple(pairs)


def _unique_keys(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {_shown(key)}")
        seen.add(key)
    return pairs


Name = Annotated[StrictStr, Field(pattern=NAME_PATTERN)]
Text = Annotated[StrictStr, Field(max_length=255)]
AccountNumber = Annotated[StrictStr, Field(pattern=f"^{ACCOUNT_NUMBER_PATTERN}$")]
Username = Annotated[StrictStr, Field(pattern=USERNAME_PATTERN.pattern)]
Tag = Annotated[StrictStr, Field(min_length=1, max_length=255)]
AnnotationKey = Annotated[StrictStr, Field(min_length=1, max_length=255)]
AnnotationValue = Annotated[StrictStr, Field(max_length=4096)]
Tags = Annotated[
    tuple[Tag, ...],
    BeforeValidator(_tag_list),
    Field(max_length=MAX_TAGS),
    AfterValidator(_unique_tags),
]
Annotations = Annotated[
    tuple[tuple[AnnotationKey, AnnotationValue], ...],
    BeforeValidator(_annotation_pairs),
    Field(max_length=MAX_ANNOTATIONS),
    AfterValidator(_unique_keys),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metadata(_Strict):
    name: Name
    description: Annotated[StrictStr, Field(max_length=2000)] = ""
    version: Annotated[StrictStr, Field(pattern=VERSION_PATTERN)] = "1.0.0"
    tags: Tags = ()
    annotations: Annotations = ()


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


# -- hostile input ------------------------------------------------------------------------


class _TooLarge(Exception):
    """A limit was passed: the input is refused as a whole, at once."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


@dataclass
class _Budget:
    """What one call may still take: values reached, and characters of strings."""

    nodes: int = MAX_NODES
    text: int = MAX_TEXT
    problems: dict[str, str] = field(default_factory=dict)
    unshown: int = 0

    def spend(self, path: tuple[object, ...], characters: int = 0) -> None:
        self.nodes -= 1
        self.text -= characters
        if self.nodes < 0:
            raise _TooLarge(_path(path), f"more than {MAX_NODES} values (a YAML alias bomb?)")
        if self.text < 0:
            raise _TooLarge(_path(path), f"more than {MAX_TEXT} characters of text")

    def report(self, path: tuple[object, ...], problem: str) -> None:
        if len(self.problems) < MAX_ERRORS:
            self.problems.setdefault(_path(path), problem)
        else:
            self.unshown += 1

    def error(self, message: str, problems: Mapping[str, str] | None = None) -> ValidationError:
        errors = dict(self.problems)
        for key, problem in (problems or {}).items():
            if len(errors) < MAX_ERRORS:
                errors.setdefault(key, problem)
            else:
                self.unshown += 1
        if self.unshown:
            errors.setdefault("manifest", f"and {self.unshown} more problems")
        return ValidationError(message, errors)


_SCALARS = (str, int, float, bool, type(None))


def _inspect(value: object, path: tuple[object, ...], budget: _Budget) -> None:
    """Check the shape of a document before any model sees it (see the module docstring)."""
    if len(path) >= MAX_DEPTH:
        raise _TooLarge(_path(path[:MAX_DEPTH]), f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        budget.spend(path, len(value))
        problem = text_problem(value)
        if problem:
            budget.report(path, problem)
    elif isinstance(value, Mapping):
        budget.spend(path)
        for key, item in value.items():
            if isinstance(key, str):
                budget.spend(path, len(key))
                problem = text_problem(key)
                if problem:
                    budget.report((*path, key), f"the key {problem}")
                    continue
            else:
                budget.spend(path)
                budget.report(
                    (*path, key),
                    f"keys must be strings, got {type(key).__name__} (quote it)",
                )
                continue
            _inspect(item, (*path, key), budget)
    elif isinstance(value, list | tuple):
        budget.spend(path)
        for index, item in enumerate(value):
            _inspect(item, (*path, index), budget)
    elif isinstance(value, _SCALARS):
        budget.spend(path)
    else:
        budget.spend(path)
        budget.report(
            path,
            f"expected a string, number, boolean, null, mapping or list, "
            f"got {type(value).__name__}" + (" (quote it)" if path else ""),
        )


def _check(document: object, budget: _Budget) -> None:
    """``_inspect`` the whole document; raise at once when it passes a limit."""
    try:
        _inspect(document, (), budget)
    except _TooLarge as exc:
        raise ValidationError("manifest too large", {exc.path: exc.problem}) from None
    except RecursionError:  # only a Mapping subclass that recurses on its own gets here
        raise ValidationError(
            "manifest too large", {"manifest": f"nested more than {MAX_DEPTH} levels deep"}
        ) from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on nesting and on merged (``<<``) keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._merged = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooLarge("manifest", f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _merge(self, pairs: list[tuple[Node, Node]], into: list[tuple[Node, Node]]) -> None:
        self._merged += len(pairs)
        if self._merged > MAX_NODES:
            raise _TooLarge("manifest", f"more than {MAX_NODES} merged keys (a YAML merge bomb?)")
        into.extend(pairs)

    def flatten_mapping(self, node: MappingNode) -> None:
        """PyYAML's, with every merged key counted: ``<<: [*a, *a, ...]`` nested a few
        times would otherwise build lists of billions of keys."""
        merge: list[tuple[Node, Node]] = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag == "tag:yaml.org,2002:merge":
                del node.value[index]
                if isinstance(value_node, MappingNode):
                    self.flatten_mapping(value_node)
                    self._merge(value_node.value, merge)
                elif isinstance(value_node, SequenceNode):
                    submerge: list[list[tuple[Node, Node]]] = []
                    for subnode in value_node.value:
                        if not isinstance(subnode, MappingNode):
                            raise yaml.constructor.ConstructorError(
                                "while constructing a mapping",
                                node.start_mark,
                                f"expected a mapping for merging, but found {subnode.id}",
                                subnode.start_mark,
                            )
                        self.flatten_mapping(subnode)
                        submerge.append(subnode.value)
                    for pairs in reversed(submerge):
                        self._merge(pairs, merge)
                else:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        "expected a mapping or list of mappings for merging, "
                        f"but found {value_node.id}",
                        value_node.start_mark,
                    )
            elif key_node.tag == "tag:yaml.org,2002:value":
                key_node.tag = "tag:yaml.org,2002:str"
                index += 1
            else:
                index += 1
        if merge:
            node.value = merge + node.value


def _yaml_problem(exc: Exception) -> str:
    """What is wrong with the YAML, on one line, without repeating the document."""
    if isinstance(exc, yaml.reader.ReaderError):
        return (
            f"unacceptable character #x{exc.character:04x} at position {exc.position}: {exc.reason}"
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [part for part in (exc.context, exc.problem) if part]
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{', '.join(parts) or 'invalid YAML'}{where}"
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _documents(text: str) -> Iterator[Any]:
    loader = _Loader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    finally:
        loader.dispose()


def _parse_yaml(text: str) -> list[Any]:
    if len(text) > MAX_TEXT:
        raise ValidationError(
            "manifest too large",
            {"manifest": f"more than {MAX_TEXT} characters ({len(text)})"},
        )
    try:
        return [document for document in _documents(text) if document is not None]
    except _TooLarge as exc:
        raise ValidationError("manifest too large", {exc.path: exc.problem}) from None
    except Exception as exc:
        # Whatever the YAML is, it is a bad manifest: PyYAML raises YAMLError, and also
        # ValueError (an int of 5000 digits, 2024-02-30) or TypeError on some inputs.
        problem = f"invalid YAML: {_yaml_problem(exc)}"
        raise ValidationError("invalid manifest", {"manifest": problem}) from None


def _parse(document: object, budget: _Budget) -> Manifest:
    if isinstance(document, (AccountManifest, UserManifest, UserProfileManifest)):
        return document
    if not isinstance(document, Mapping):
        raise ValidationError(
            "invalid manifest", {"manifest": f"expected a mapping, got {type(document).__name__}"}
        )
    budget.problems.clear()
    budget.unshown = 0
    _check(document, budget)
    kind = document.get("kind")
    if not isinstance(kind, str) or kind not in _MODELS:
        got = _shown(kind) if isinstance(kind, str | int | float | None) else type(kind).__name__
        problems = {"kind": f"expected one of {', '.join(KINDS)}, got {got}"}
        if document.get("apiVersion") != API_VERSION:
            problems["apiVersion"] = f"expected {API_VERSION!r}"
        raise budget.error("invalid manifest", problems)
    if budget.problems:
        # Strings no backend can store never reach the models (pydantic cannot even read a
        # lone surrogate): fix these first, the models then report the rest.
        raise budget.error(f"invalid {kind} manifest")
    try:
        manifest: Manifest = _MODELS[kind].model_validate(dict(document))  # type: ignore[assignment]
    except pydantic.ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            errors.setdefault(_path(error["loc"]), error["msg"])
        raise budget.error(f"invalid {kind} manifest", errors) from None
    return manifest


def parse_manifest(document: Mapping[str, Any] | BaseModel) -> Manifest:
    """Validate one manifest document (a mapping); every bad field is reported at once."""
    return _parse(document, _Budget())


def load_manifests(source: str | Mapping[str, Any] | BaseModel) -> list[Manifest]:
    """Every document of YAML text (``---`` separated), or one dict / manifest."""
    budget = _Budget()
    if not isinstance(source, str):
        return [_parse(source, budget)]
    documents = _parse_yaml(source)
    if not documents:
        raise ValidationError("invalid manifest", {"manifest": "no document"})
    return [_parse(document, budget) for document in documents]
