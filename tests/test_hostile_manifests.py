"""Hostile manifests: whatever comes in, ``load_manifests`` returns manifests or raises
``ValidationError`` (never TypeError, RecursionError, UnicodeEncodeError...), fast, with
messages that are one printable line; and Smarter's ``metadata.tags`` / ``annotations``."""

from __future__ import annotations

import copy
import datetime
import time
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smarter_domain as sd
from smarter_domain.model.manifests import (
    MAX_ANNOTATIONS,
    MAX_DEPTH,
    MAX_TAGS,
    MAX_TEXT,
    AccountManifest,
    UserManifest,
    UserProfileManifest,
    load_manifests,
    parse_manifest,
)
from smarter_domain.model.text import text_problem

ACCOUNT: dict[str, Any] = {
    "apiVersion": "smarter.sh/v1",
    "kind": "Account",
    "metadata": {"name": "acme", "description": "Acme Corp"},
    "spec": {"config": {"companyName": "Acme Corp", "country": "US"}},
}
USER: dict[str, Any] = {
    "apiVersion": "smarter.sh/v1",
    "kind": "User",
    "metadata": {"name": "jdoe", "username": "jdoe"},
    "spec": {"accountNumber": "1234-5678-9012", "config": {"firstName": "John"}},
}
PROFILE: dict[str, Any] = {
    "apiVersion": "smarter.sh/v1",
    "kind": "UserProfile",
    "metadata": {"name": "jdoe-acme"},
    "spec": {"username": "jdoe", "accountNumber": "1234-5678-9012"},
}
KINDS = [ACCOUNT, USER, PROFILE]


def refused(source: Any) -> sd.ValidationError:
    """The ValidationError ``load_manifests(source)`` raises, checked for a clean message."""
    with pytest.raises(sd.ValidationError) as info:
        load_manifests(source)
    assert_clean(info.value)
    return info.value


def assert_clean(error: sd.ValidationError) -> None:
    """A message any terminal prints on one line, that does not repeat the input at length."""
    message = str(error)
    assert text_problem(message) is None, ascii(message)
    assert "\n" not in message and "\r" not in message
    assert len(message) < 10_000
    for path, problem in error.errors.items():
        assert text_problem(path) is None and text_problem(problem) is None


def edited(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    result = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = result
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return result


# -- kind and apiVersion of any shape ------------------------------------------------------


@pytest.mark.parametrize("value", [["Account"], {"Account": 1}, {"a": [1]}, [], 1.5, None, True])
@pytest.mark.parametrize("field", ["kind", "apiVersion"])
def test_kind_or_api_version_of_any_shape(field: str, value: Any) -> None:
    error = refused(edited(ACCOUNT, field, value))
    assert field in error.errors


def test_unhashable_kind_in_yaml() -> None:
    error = refused("apiVersion: [smarter.sh/v1]\nkind: {Account: 1}\nmetadata: {name: a}\n")
    assert set(error.errors) == {"kind", "apiVersion"}


# -- nesting, size, alias bombs -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 50_000 + "]" * 50_000,
        "{a: " * 20_000 + "1" + "}" * 20_000,
        "".join("  " * i + "-\n" for i in range(200)),
        "".join("  " * i + f"k{i}:\n" for i in range(200)),
        "metadata: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "block-maps", "just-too-deep"],
)
def test_deep_yaml_is_refused(text: str) -> None:
    error = refused(text)
    assert any("deep" in problem for problem in error.errors.values()), error.errors


def test_deep_dicts_and_cycles_are_refused() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = {"a": [deep]}
    assert "deep" in str(refused(edited(ACCOUNT, "metadata.description", deep)))
    cyclic: dict[str, Any] = {"apiVersion": "smarter.sh/v1", "kind": "Account"}
    cyclic["metadata"] = cyclic
    assert "deep" in str(refused(cyclic))
    looped: list[Any] = []
    looped.append(looped)
    assert "deep" in str(refused(edited(ACCOUNT, "metadata.tags", looped)))


def test_nesting_up_to_the_limit_is_a_plain_validation_error() -> None:
    nested: Any = "x"
    for _ in range(MAX_DEPTH - 4):
        nested = [nested]
    error = refused(edited(ACCOUNT, "spec.config.city", nested))
    assert "spec.config.city" in error.errors


def billion_laughs(levels: int = 9, fan: int = 10) -> str:
    lines = ["apiVersion: smarter.sh/v1", "kind: Account", "metadata: {name: acme}", "lol:"]
    lines.append('  a0: &a0 ["lol"' + ', "lol"' * (fan - 1) + "]")
    for level in range(1, levels):
        lines.append(f"  a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * fan) + "]")
    return "\n".join(lines)


def merge_bomb(levels: int = 9, fan: int = 10) -> str:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4}"]
    for level in range(1, levels):
        merged = ", ".join([f"*m{level - 1}"] * fan)
        lines.append(f"m{level}: &m{level} {{<<: [{merged}], k{level}: 1}}")
    return "\n".join(lines)


@pytest.mark.parametrize("text", [billion_laughs(), merge_bomb()], ids=["aliases", "merges"])
def test_yaml_bombs_are_refused_fast(text: str) -> None:
    started = time.monotonic()
    error = refused(text)
    assert time.monotonic() - started < 2
    assert "more than" in str(error)


def test_an_alias_bomb_in_a_dict_is_refused_fast() -> None:
    shared: Any = ["lol"] * 10
    for _ in range(9):
        shared = [shared] * 10
    started = time.monotonic()
    refused(edited(ACCOUNT, "metadata.tags", shared))
    assert time.monotonic() - started < 2


def test_small_aliases_and_merges_still_work() -> None:
    text = (
        "base: &base {apiVersion: smarter.sh/v1, kind: Account}\n"
        "---\n"
        "apiVersion: smarter.sh/v1\nkind: Account\n"
        "metadata: &meta {name: acme, tags: &tags [a, b]}\n"
        "spec: {config: {<<: {city: Boston}, country: US}}\n"
    )
    with pytest.raises(sd.ValidationError):  # the first document has no metadata
        load_manifests(text)
    (manifest,) = load_manifests(text.split("---\n", 1)[1])
    assert isinstance(manifest, AccountManifest)
    assert manifest.metadata.tags == ("a", "b")
    assert manifest.spec.config.city == "Boston"


def test_too_much_text_is_refused() -> None:
    assert "characters" in str(refused("a: " + "x" * MAX_TEXT))
    assert "characters" in str(refused(edited(ACCOUNT, "metadata.description", "x" * MAX_TEXT)))


# -- strings no backend can store -----------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "\x00", "a\ud800", "\udfff"])
@pytest.mark.parametrize(
    ("base", "path"),
    [
        (ACCOUNT, "metadata.name"),
        (ACCOUNT, "metadata.description"),
        (ACCOUNT, "spec.config.companyName"),
        (ACCOUNT, "spec.config.city"),
        (ACCOUNT, "spec.config.country"),
        (USER, "metadata.username"),
        (USER, "spec.config.email"),
        (USER, "spec.config.lastName"),
        (PROFILE, "spec.username"),
        (PROFILE, "metadata.description"),
    ],
)
def test_nul_and_lone_surrogates_are_reported_at_their_path(
    base: dict[str, Any], path: str, bad: str
) -> None:
    error = refused(edited(base, path, bad))
    assert path in error.errors, error.errors


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
def test_bad_strings_in_tags_annotations_and_keys(bad: str) -> None:
    error = refused(edited(ACCOUNT, "metadata.tags", ["ok", f"x{bad}"]))
    assert "metadata.tags.1" in error.errors
    error = refused(edited(USER, "metadata.annotations", {"k": f"v{bad}"}))
    assert "metadata.annotations.k" in error.errors
    error = refused(edited(USER, "metadata.annotations", [{"a": "b"}, {f"k{bad}": "v"}]))
    assert any(path.startswith("metadata.annotations.1.") for path in error.errors)
    error = refused(edited(PROFILE, f"spec.x{bad}", 1))
    assert any(path.startswith("spec.") for path in error.errors), error.errors
    error = refused({**ACCOUNT, bad: "x"})
    assert "the key" in str(error)


def test_escaped_nul_and_surrogates_in_yaml() -> None:
    text = (
        "apiVersion: smarter.sh/v1\nkind: Account\n"
        'metadata: {name: acme, description: "a\\0b", tags: ["\\ud800"]}\n'
        'spec: {config: {"\\0": 1}}\n'
    )
    error = refused(text)
    assert {"metadata.description", "metadata.tags.0"} <= set(error.errors)
    assert any(path.startswith("spec.config.") for path in error.errors)


@pytest.mark.parametrize("raw", ["\x00", "\ud800", "\x07"])
def test_raw_unprintable_characters_in_yaml(raw: str) -> None:
    refused(f"apiVersion: smarter.sh/v1\nkind: Account\nmetadata: {{name: a{raw}b}}\n")


def test_a_problem_string_is_reported_before_anything_is_written(domain: sd.Domain) -> None:
    """On PostgreSQL a NUL used to pass validation and fail at INSERT (DataError)."""
    admin = domain.bootstrap()
    for bad in ("Acme\x00Corp", "Acme\ud800"):
        with pytest.raises(sd.ValidationError) as info:
            domain.apply(edited(ACCOUNT, "spec.config.companyName", bad), actor=admin)
        assert "spec.config.companyName" in info.value.errors
    assert [a.name for a in domain.accounts.list_all()] == ["smarter"]


# -- odd YAML shapes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        ("metadata: {name: acme, 1: x}", "metadata.1"),
        ("metadata: {name: acme, null: x}", "metadata.None"),
        ("metadata: {name: acme, true: x}", "metadata.True"),
        ("metadata: {name: acme, 1.5: x}", "metadata"),
        ("metadata: {name: acme, 2020-01-01: x}", "metadata"),
        ("metadata: {name: acme, description: 2020-01-01}", "metadata.description"),
        ("metadata: {name: acme, description: 2020-01-01T10:00:00Z}", "metadata.description"),
        ("metadata: {name: acme, description: !!binary aGVsbG8=}", "metadata.description"),
        ("metadata: !!set {a, b}", "metadata"),
        ("metadata: {name: acme, tags: !!set {a, b}}", "metadata.tags"),
        ("metadata: !!omap [name: acme]", "metadata"),
        ("metadata: {name: acme, annotations: !!pairs [a: b, a: c]}", "metadata.annotations"),
        ("metadata: {name: acme, description: !!float 1e999}", "metadata.description"),
    ],
)
def test_odd_yaml_values_and_keys(snippet: str, path: str) -> None:
    error = refused(f"apiVersion: smarter.sh/v1\nkind: Account\n{snippet}\n")
    assert any(key.startswith(path) for key in error.errors), error.errors


@pytest.mark.parametrize(
    "text",
    [
        "a: 2020-02-30",
        "a: " + "1" * 5000,
        "? [a]\n: 1",
        "? {a: 1}\n: 1",
        "!!python/object/apply:os.system ['true']",
        "a: !!binary not-base64!",
        "a: *undefined",
        "a: &x 1\nb: &x 2",
        "<<: 1",
        "a: {<<: [1]}",
        "\t- a",
        "%YAML 9.9\n---\na: 1",
        "a: !custom 1",
    ],
)
def test_yaml_the_safe_loader_refuses(text: str) -> None:
    assert "manifest" in refused(text).errors


def test_non_string_keys_in_dicts() -> None:
    for key in (1, None, ("a",), b"k", 1.5, datetime.date(2020, 1, 1), frozenset()):
        error = refused({**ACCOUNT, key: "x"})
        assert "keys must be strings" in str(error)


def test_odd_python_values_in_dicts() -> None:
    for value in (b"x", {1, 2}, object(), datetime.datetime.now(), 1j, range(3)):
        error = refused(edited(ACCOUNT, "metadata.description", value))
        assert "metadata.description" in error.errors


def test_odd_documents() -> None:
    for document in (None, 1, "x", b"kind: Account", [ACCOUNT], ()):
        refused(document)
    for text in ("--- 1", "--- [a]", "--- !!binary aGVsbG8=", "--- 2020-01-01"):
        refused(text)


# -- metadata.tags and metadata.annotations --------------------------------------------------


@pytest.mark.parametrize("base", KINDS, ids=[k["kind"] for k in KINDS])
def test_tags_and_annotations_on_every_kind(base: dict[str, Any]) -> None:
    as_mapping = edited(base, "metadata.tags", ["db", "prod", "b"])
    as_mapping["metadata"]["annotations"] = {"smarter.sh/owner": "ops", "z": "", "a": "1"}
    as_list = copy.deepcopy(as_mapping)
    as_list["metadata"]["annotations"] = [{"smarter.sh/owner": "ops"}, {"z": ""}, {"a": "1"}]
    dumped = [yaml.safe_dump(d, sort_keys=False) for d in (as_list, as_mapping)]
    for document in (as_mapping, as_list, *dumped):
        (manifest,) = load_manifests(document)
        assert manifest.metadata.tags == ("db", "prod", "b")
        assert manifest.metadata.annotations == (("smarter.sh/owner", "ops"), ("z", ""), ("a", "1"))
    assert isinstance(manifest, AccountManifest | UserManifest | UserProfileManifest)


def test_tags_and_annotations_default_to_empty() -> None:
    for base in KINDS:
        (manifest,) = load_manifests(base)
        assert manifest.metadata.tags == ()
        assert manifest.metadata.annotations == ()
    (manifest,) = load_manifests(
        edited(edited(ACCOUNT, "metadata.tags", []), "metadata.annotations", {})
    )
    assert manifest.metadata.tags == () and manifest.metadata.annotations == ()


def test_annotations_round_trip_as_a_mapping() -> None:
    """describe() shows annotations as a mapping: it must apply back to the same pairs."""
    document = edited(USER, "metadata.annotations", [{"b": "2"}, {"a": "1"}, {"c": "x y"}])
    (manifest,) = load_manifests(document)
    shown = dict(manifest.metadata.annotations)
    text = yaml.safe_dump(edited(document, "metadata.annotations", shown), sort_keys=False)
    (again,) = load_manifests(text)
    assert again.metadata.annotations == manifest.metadata.annotations
    assert parse_manifest(manifest) is manifest


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tags", "db"),
        ("tags", None),
        ("tags", {"db": 1}),
        ("tags", [1]),
        ("tags", [True]),
        ("tags", [["a"]]),
        ("tags", [""]),
        ("tags", ["x" * 256]),
        ("tags", ["a", "a"]),
        ("tags", [f"t{i}" for i in range(MAX_TAGS + 1)]),
        ("annotations", "a=b"),
        ("annotations", None),
        ("annotations", ["a"]),
        ("annotations", [["a", "b"]]),
        ("annotations", [{}]),
        ("annotations", [{"a": "1", "b": "2"}]),
        ("annotations", [{"a": "1"}, {"a": "2"}]),
        ("annotations", {"a": 1}),
        ("annotations", {"a": None}),
        ("annotations", {"a": ["b"]}),
        ("annotations", {"a": {"b": "c"}}),
        ("annotations", [{"a": True}]),
        ("annotations", {"": "v"}),
        ("annotations", {"k" * 256: "v"}),
        ("annotations", {"k": "v" * 5000}),
        ("annotations", {f"k{i}": "v" for i in range(MAX_ANNOTATIONS + 1)}),
    ],
)
def test_bad_tags_and_annotations(field: str, value: Any) -> None:
    for base in KINDS:
        error = refused(edited(base, f"metadata.{field}", value))
        assert any(path.startswith(f"metadata.{field}") for path in error.errors), error.errors


def test_annotation_keys_may_repeat_across_yaml_list_items_only_once() -> None:
    text = (
        "apiVersion: smarter.sh/v1\nkind: Account\nmetadata:\n  name: acme\n"
        "  annotations:\n    - smarter.sh/a: x\n    - smarter.sh/a: y\n"
    )
    assert "duplicate" in refused(text).errors["metadata.annotations"]


# -- errors stay short -------------------------------------------------------------------------


def test_many_problems_are_counted_not_all_listed() -> None:
    document = edited(ACCOUNT, "metadata.tags", [f"x\x00{i}" for i in range(MAX_TAGS + 10)])
    document["spec"] = {f"bad{i}": 1 for i in range(500)}
    error = refused(document)
    assert len(error.errors) <= 51
    assert "more problems" in error.errors["manifest"]


def test_long_values_and_keys_are_cut_in_messages() -> None:
    error = refused(edited(ACCOUNT, "spec.config.country", "Z" * 100_000))
    assert len(str(error)) < 500
    error = refused(edited(ACCOUNT, "spec." + "k" * 100_000, 1))
    assert len(str(error)) < 500


# -- properties ----------------------------------------------------------------------------

HOSTILE_CHARACTERS = st.one_of(
    st.characters(exclude_categories=()),  # surrogates included
    st.sampled_from(["\x00", "\ud800", "\udfff", "\ufeff", "\x85", "\u2028", "\t", "\r"]),
)


def outcome(source: Any) -> None:
    """The property: manifests, or a clean ValidationError; nothing else."""
    try:
        manifests = load_manifests(source)
    except sd.ValidationError as error:
        assert_clean(error)
        return
    assert manifests
    for manifest in manifests:
        assert isinstance(manifest, AccountManifest | UserManifest | UserProfileManifest)
        for tag in manifest.metadata.tags:
            assert text_problem(tag) is None
        for key, value in manifest.metadata.annotations:
            assert text_problem(key) is None and text_problem(value) is None


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@PROPERTY
@given(st.text(HOSTILE_CHARACTERS, max_size=300))
def test_any_text(text: str) -> None:
    outcome(text)


YAML_PIECES = [
    "apiVersion: smarter.sh/v1",
    "kind: Account",
    "kind: User",
    "kind: UserProfile",
    "kind: [Account]",
    "kind: {Account: 1}",
    "apiVersion: [smarter.sh/v1]",
    "metadata:",
    "metadata: {name: acme}",
    "  name: acme",
    "  name: &n acme",
    "  username: *n",
    "  tags: [a, b]",
    "  tags: &t [a, *t]",
    "  annotations: {a: b}",
    "  annotations: [{a: b}, {a: c}]",
    "  annotations: [{1: 2}]",
    "spec:",
    "spec: {config: {country: US}}",
    "  config:",
    "    country: US",
    "    city: !!binary aGVsbG8=",
    "    city: 2020-01-01",
    "    city: 2020-02-30",
    '    city: "\\0"',
    '    city: "\\ud800"',
    "    city: " + "9" * 5000,
    "  <<: *n",
    "  <<: {a: 1}",
    "  ? [a]",
    "  : b",
    "  1: one",
    "  null: x",
    "  !!set {a, b}: 1",
    "x: &a [1, 2, 3]",
    "y: &b [*a, *a, *a, *a]",
    "z: [*b, *b, *b, *b]",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "]]]]]]",
    "{a: {b: {c: {d:",
    "---",
    "...",
    "%YAML 1.1",
    "- a",
    "- [b, c]",
    "!!python/name:os.system",
    "&anchor",
    "*anchor",
    "'unterminated",
    "\t",
    "\x00",
    "\ud800",
]


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.sampled_from(YAML_PIECES),
            st.sampled_from(["\n", "\n", " ", "", "\n  "]),
        ),
        max_size=25,
    )
)
def test_yaml_built_from_hostile_pieces(pieces: list[tuple[str, str]]) -> None:
    outcome("".join(piece + sep for piece, sep in pieces))


HOSTILE_TEXT = st.text(HOSTILE_CHARACTERS, max_size=20) | st.sampled_from(
    ["Account", "User", "UserProfile", "smarter.sh/v1", "acme", "jdoe", "US", "1234-5678-9012"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    HOSTILE_TEXT,
    st.binary(max_size=5),
    st.dates(),
    st.datetimes(),
)
KEYS = st.one_of(
    HOSTILE_TEXT,
    st.sampled_from(["apiVersion", "kind", "metadata", "spec", "name", "tags", "annotations"]),
    st.integers(),
    st.none(),
    st.booleans(),
    st.tuples(st.integers()),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(KEYS, children, max_size=5),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=40,
)


@PROPERTY
@given(TREES)
def test_arbitrary_structures(tree: Any) -> None:
    outcome(tree)


@PROPERTY
@given(
    st.sampled_from(KINDS),
    st.sampled_from(
        [
            "kind",
            "apiVersion",
            "metadata",
            "metadata.name",
            "metadata.description",
            "metadata.tags",
            "metadata.annotations",
            "spec",
            "spec.config",
            "spec.config.country",
            "spec.username",
            "spec.accountNumber",
            "status",
        ]
    ),
    TREES,
)
def test_arbitrary_structures_inside_a_manifest(base: dict[str, Any], path: str, tree: Any) -> None:
    document = edited(base, path, tree)
    outcome(document)
    outcome(yaml.safe_dump(document, allow_unicode=False) if _dumpable(tree) else document)


def _dumpable(tree: Any) -> bool:
    try:
        yaml.safe_dump(tree)
    except Exception:
        return False
    return True
