"""cache_results under hostile arguments, results and closures (issue 12): a key is a pure
function of the bound arguments (and of a closure's captured values), distinct values never
share a key, and nothing but TypeError is ever raised."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smarter_domain import Domain, cache_results
from smarter_domain.cache import codec

pytestmark = pytest.mark.smarter_backends("sqlite")

HOSTILE_TEXT = [
    *["\ud800", "\udfff", "a\ud800b", "\x00", "a\x00", "\x00\ud800", " ", "a b", "{", "}"],
    *["{}", "#", "#0", "=", "=x", "[1]", '"', "\\", "None", "1", "1.0", "true", ":", "é"],
]
BIG_INTS = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**700, -(10**4000)]
SPECIAL_FLOATS = [math.nan, -0.0, 0.0, math.inf, -math.inf, 1e308, 5e-324]

texts = st.one_of(
    st.text(),
    st.sampled_from(HOSTILE_TEXT),
    st.lists(st.sampled_from(HOSTILE_TEXT), max_size=5).map("".join),
    st.tuples(st.sampled_from(["x", "\x00", "\ud800", " "]), st.integers(150, 3000)).map(
        lambda pair: pair[0] * pair[1]
    ),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BIG_INTS),
    st.integers(min_value=2**62, max_value=2**66),
    st.floats(),
    st.sampled_from(SPECIAL_FLOATS),
    texts,
    st.binary(max_size=20),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(leaves, children, max_size=3),
        st.sets(leaves, max_size=3),
        st.frozensets(leaves, max_size=3),
    ),
    max_leaves=8,
)


def identity(value: Any) -> Any:
    """What makes two argument values the same: their types and contents, with floats by
    their exact text (nan is nan, -0.0 is not 0.0), dicts and sets in any order."""
    kind = type(value)
    if kind is float:
        return ("float", repr(value))
    if kind in (list, tuple):
        return (kind.__name__, tuple(identity(item) for item in value))
    if kind is dict:
        pairs = frozenset((identity(k), identity(v)) for k, v in value.items())
        return ("dict", pairs)
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(identity(item) for item in value))
    return (kind.__name__, value)


def has_surrogate(value: Any) -> bool:
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if type(value) is dict:
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if type(value) in (list, tuple, set, frozenset):
        return any(has_surrogate(item) for item in value)
    return False


def storable(value: Any) -> bool:
    """Whether the typed cache format holds this result."""
    if type(value) is int:
        return -(2**63) <= value <= 2**64 - 1
    if type(value) is dict:
        return all(storable(k) and storable(v) for k, v in value.items())
    if type(value) in (list, tuple, set, frozenset):
        return all(storable(item) for item in value)
    return not has_surrogate(value)


calls: list[Any] = []
DEFAULT: Any = ("default", None)


@cache_results()
def record(salt: str, value: Any) -> int:
    calls.append((salt, value))
    return len(calls)


@cache_results()
def forms(a: Any, b: Any = DEFAULT, *, c: Any = None) -> None:
    calls.append((a, b, c))


RESULTS: dict[int, Any] = {}
_tokens = itertools.count()


@cache_results()
def echo(token: int) -> Any:
    calls.append(token)
    return RESULTS[token]


@pytest.fixture
def cached_domain(either_tier: Domain) -> Domain:
    calls.clear()
    return either_tier


fixture_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# Keys of arguments ------------------------------------------------------------------------


@fixture_settings
@given(st.lists(values, min_size=1, max_size=5))
def test_distinct_values_get_distinct_keys_and_only_type_errors(
    cached_domain: Domain, items: list[Any]
) -> None:
    calls.clear()
    salt = uuid.uuid4().hex
    keys: dict[Any, str] = {}
    for value in items:
        if has_surrogate(value):
            with pytest.raises(TypeError, match="'value'"):
                record.key(salt, value)
            with pytest.raises(TypeError, match="'value'"):
                record(salt, value)
            with pytest.raises(TypeError, match="'value'"):
                record.invalidate(salt, value=value)
            continue
        key = record.key(salt, value)
        assert record.key(salt, value) == key  # pure
        keys.setdefault(identity(value), key)
        assert keys[identity(value)] == key
        record(salt, value)
    assert len(set(keys.values())) == len(keys)  # distinct values, distinct keys
    # ... and distinct entries in the real tiers: each distinct value computed once.
    assert len(calls) == len(keys)
    for value in items:
        if not has_surrogate(value):
            record(salt, value)
    assert len(calls) == len(keys)


@fixture_settings
@given(values, values, values)
def test_every_call_form_of_the_same_arguments_gives_one_key(
    cached_domain: Domain, a: Any, b: Any, c: Any
) -> None:
    call_forms = [
        ((a, b), {"c": c}),
        ((), {"a": a, "b": b, "c": c}),
        ((a,), {"b": b, "c": c}),
        ((), {"c": c, "b": b, "a": a}),
    ]
    if has_surrogate(a) or has_surrogate(b) or has_surrogate(c):
        for args, kwargs in call_forms:
            with pytest.raises(TypeError, match=r"argument '[abc]'"):
                forms.key(*args, **kwargs)
        return
    keys = {forms.key(*args, **kwargs) for args, kwargs in call_forms}
    assert len(keys) == 1
    # Defaults applied: leaving b out is passing the default.
    assert forms.key(a, c=c) == forms.key(a, DEFAULT, c=c)
    assert forms.key(a) == forms.key(a, DEFAULT, c=None)
    forms.invalidate(a, b, c=c)  # an earlier example may have made this entry
    calls.clear()
    for args, kwargs in call_forms:
        forms(*args, **kwargs)
    assert len(calls) == 1
    forms.invalidate(*call_forms[1][0], **call_forms[1][1])
    forms(*call_forms[2][0], **call_forms[2][1])
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({1}, frozenset({1})),
        (0.0, -0.0),
        (2**63, float(2**63)),
        (10**700, -(10**700)),
        (10**700, 10**700 + 1),
        ("\x00", ""),
        ("\x00", "\\u0000"),
        ("a\x00b", "a b"),
        (b"\x00", "\x00"),
        ("#" * 200, "#" * 201),
    ],
    ids=lambda value: type(value).__name__,
)
def test_near_values_never_share_a_key(cached_domain: Domain, first: Any, second: Any) -> None:
    salt = uuid.uuid4().hex
    assert record.key(salt, first) != record.key(salt, second)
    assert record(salt, first) != record(salt, second)


@pytest.mark.parametrize(
    "value", ["\ud800", ["ok", "\udfff"], {"\ud800": 1}, {1: ("\ud800",)}, {"\udc00"}]
)
def test_a_lone_surrogate_is_a_type_error_naming_the_argument(
    cached_domain: Domain, value: Any
) -> None:
    for text in (value, [value] * 100):  # short keys and digested long keys alike
        with pytest.raises(TypeError, match=r"'value'.*surrogate"):
            record("salt", text)
        with pytest.raises(TypeError, match=r"'value'.*surrogate"):
            record.invalidate("salt", value=text)
    assert calls == []


def test_a_nul_is_keyed_but_never_raw_in_a_key(cached_domain: Domain) -> None:
    assert record("salt", "a\x00b") == record("salt", "a\x00b")
    assert len(calls) == 1
    assert "\x00" not in record.key("salt", "a\x00b")
    assert "\x00" not in record.key("salt", "\x00" * 500)


def deep_and_self_containing() -> tuple[Any, Any]:
    """A list nested 100,000 deep, and a list that contains itself."""
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    looped: list[Any] = []
    looped.append(looped)
    return deep, looped


def test_deep_or_self_containing_arguments_are_type_errors(cached_domain: Domain) -> None:
    for value in deep_and_self_containing():
        with pytest.raises(TypeError, match="'value'"):
            record("salt", value)
    assert calls == []


def test_a_cache_key_with_a_lone_surrogate_is_refused_when_decorated() -> None:
    with pytest.raises(TypeError, match="cache_key"):
        cache_results(cache_key="fixed\ud800")
    with pytest.raises(TypeError, match="cache_key"):
        cache_results(cache_key=3)  # type: ignore[arg-type]


def test_a_cache_key_with_a_nul_works(cached_domain: Domain) -> None:
    @cache_results(cache_key="fixed\x00")
    def fixed() -> int:
        calls.append(())
        return 1

    @cache_results(cache_key="fixed")
    def other() -> int:
        calls.append(())
        return 2

    assert "\x00" not in fixed.key()
    assert fixed() == 1 and fixed() == 1 and other() == 2
    assert len(calls) == 2
    fixed.invalidate()
    assert fixed() == 1
    assert len(calls) == 3


# Results ------------------------------------------------------------------------------------


@fixture_settings
@given(values)
def test_a_result_is_stored_exactly_or_refused_with_type_error(
    cached_domain: Domain, value: Any
) -> None:
    token = next(_tokens)
    RESULTS[token] = value
    if not storable(value):
        with pytest.raises(TypeError, match="cannot serialize"):
            echo(token)
        with pytest.raises(TypeError, match="cannot serialize"):
            echo(token)  # nothing was cached
        return
    assert identity(echo(token)) == identity(value)
    assert identity(echo(token)) == identity(value)  # from the cache
    assert calls.count(token) == 1


@pytest.mark.parametrize(
    "value",
    ["\ud800", ["a", "\udfff"], {"\ud800": 1}, {("\ud800",)}, 2**64, -(2**63) - 1, 10**5000],
    ids=["surrogate", "nested", "key", "set", "2**64", "-2**63-1", "10**5000"],
)
def test_codec_refuses_what_it_cannot_hold_with_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="cannot serialize"):
        codec.dumps(value)


def test_codec_refuses_deep_or_self_containing_results_with_type_error() -> None:
    for value in deep_and_self_containing():
        with pytest.raises(TypeError, match="cannot serialize"):
            codec.dumps(value)


def test_special_floats_and_nul_results_round_trip(cached_domain: Domain) -> None:
    token = next(_tokens)
    RESULTS[token] = [math.nan, -0.0, math.inf, -math.inf, "a\x00b", 2**64 - 1, -(2**63)]
    for _ in range(2):
        nan, zero, inf, minus_inf, text, big, small = echo(token)
        assert math.isnan(nan)
        assert zero == 0 and math.copysign(1, zero) == -1
        assert (inf, minus_inf, text, big, small) == (
            math.inf,
            -math.inf,
            "a\x00b",
            2**64 - 1,
            -(2**63),
        )
    assert calls.count(token) == 1


# Closures -----------------------------------------------------------------------------------


def make_adder(n: Any) -> Any:
    @cache_results()
    def add(x: int) -> Any:
        calls.append((n, x))
        return [x, n]

    return add


def test_closures_of_one_factory_never_share_an_entry(cached_domain: Domain) -> None:
    assert make_adder(1)(0) == [0, 1]
    assert make_adder(2)(0) == [0, 2]
    assert make_adder("1")(0) == [0, "1"]
    assert make_adder(1.0)(0) == [0, 1.0]
    assert len(calls) == 4
    # The same captured values share the entry, whatever closure object holds them.
    assert make_adder(1)(0) == [0, 1]
    assert make_adder(2)(0) == [0, 2]
    assert len(calls) == 4
    assert make_adder(1).key(0) == make_adder(1).key(0) != make_adder(2).key(0)
    make_adder(1).invalidate(0)
    assert make_adder(1)(0) == [0, 1]
    assert len(calls) == 5


@fixture_settings
@given(st.lists(values, min_size=2, max_size=4))
def test_closure_keys_follow_captured_values(cached_domain: Domain, captured: list[Any]) -> None:
    keys: dict[Any, str] = {}
    for value in captured:
        if has_surrogate(value):
            with pytest.raises(TypeError, match="captured variable 'n'"):
                make_adder(value)
            continue
        key = make_adder(value).key(0)
        assert make_adder(value).key(0) == key
        assert keys.setdefault(identity(value), key) == key
    assert len(set(keys.values())) == len(keys)


def test_lambdas_and_same_named_local_functions_never_share_an_entry(
    cached_domain: Domain,
) -> None:
    """Their qualified names are not unique in a module: their code tells them apart."""
    double = cache_results()(lambda x: x * 2)
    triple = cache_results()(lambda x: x * 3)
    assert (double(2), triple(2)) == (4, 6)

    def factory(flag: bool) -> Any:
        if flag:

            @cache_results()
            def f(x: int) -> str:
                return "A"

        else:

            @cache_results()
            def f(x: int) -> str:
                return "B"

        return f

    assert (factory(True)(1), factory(False)(1)) == ("A", "B")
    assert factory(True).key(1) == factory(True).key(1)


def test_closure_keys_are_the_same_in_every_process() -> None:
    script = textwrap.dedent(
        """
        from types import SimpleNamespace
        from smarter_domain import cache_results
        from smarter_domain.cache.keys import CacheKeys

        domain = SimpleNamespace(cache=SimpleNamespace(keys=CacheKeys()))

        def make(n):
            @cache_results(domain=domain)
            def f(x):
                return x

            return f

        print(make({"a", "b", "c", ("d", 1.5), frozenset({b"e"})}).key({"x", "y", "z"}))
        """
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert ":fn:" in outputs.pop()


def test_an_unkeyable_captured_value_is_refused_when_decorated() -> None:
    with pytest.raises(TypeError, match=r"captured variable 'n'.*namespace="):
        make_adder(object())
    with pytest.raises(TypeError, match=r"captured variable 'n'.*surrogate.*namespace="):
        make_adder(["\ud800"])


def make_with_namespace(n: Any, namespace: str) -> Any:
    @cache_results(namespace=namespace)
    def lookup(x: int) -> int:
        calls.append((namespace, x))
        return x + n.offset

    return lookup


class Offset:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_a_namespace_names_the_closure_entries(cached_domain: Domain) -> None:
    assert make_with_namespace(Offset(1), "one")(1) == 2
    assert make_with_namespace(Offset(2), "two")(1) == 3
    assert make_with_namespace(Offset(1), "one")(1) == 2  # the same namespace: shared
    assert len(calls) == 2
    with pytest.raises(TypeError, match="namespace"):
        cache_results(namespace="\ud800")(lambda: 1)
    with pytest.raises(TypeError, match="namespace"):
        cache_results(namespace="")(lambda: 1)


def make_factorial(n: int) -> Any:
    @cache_results()
    def factorial(x: int) -> int:
        calls.append(x)
        return n if x == 0 else x * factorial(x - 1)

    return factorial


def test_a_closure_that_calls_itself(cached_domain: Domain) -> None:
    assert make_factorial(1)(5) == 120
    assert make_factorial(2)(5) == 240
    assert make_factorial(1)(6) == 720
    assert len(calls) == 6 + 6 + 1


def test_a_variable_assigned_after_decoration_is_refused() -> None:
    def make(n: int) -> Any:
        @cache_results()
        def f(x: int) -> int:
            return x + later

        later = n
        return f

    with pytest.raises(TypeError, match=r"'later'.*no value yet.*namespace="):
        make(1)


def test_a_static_method_using_its_class_cell(cached_domain: Domain) -> None:
    class Service:
        base = 10

        @staticmethod
        @cache_results()
        def lookup(x: int) -> int:
            calls.append(x)
            return x + __class__.base  # type: ignore[name-defined]

    assert Service.lookup(1) == 11
    assert Service.lookup(1) == 11
    assert calls == [1]
