"""cache_results: CONTRACT section 4 and upstream defects 2, 3 and 5, on both tiers."""

from __future__ import annotations

from typing import Any

import pytest
import redis

import smarter_domain as sd
from smarter_domain import Domain, cache_results
from smarter_domain.cache import codec
from smarter_domain.testing import AccountFactory, UserFactory

calls: list[tuple[Any, ...]] = []


@cache_results(timeout=600)
def add(x: Any, y: Any = 10) -> Any:
    calls.append((x, y))
    return [x, y]


@cache_results()
def variadic(*args: Any, **kwargs: Any) -> list[Any]:
    calls.append(args)
    return [list(args), sorted(kwargs)]


@cache_results(cache_key="fixed")
def fixed(x: int) -> int:
    calls.append((x,))
    return x * 2


@cache_results()
def maybe(x: int) -> None:
    calls.append((x,))


@cache_results()
def flaky(x: int) -> int:
    calls.append((x,))
    if len(calls) == 1:
        raise RuntimeError("the first call fails")
    return x


@cache_results()
def unserializable() -> object:
    calls.append(())
    return object()


@cache_results()
def describe(entity: Any) -> str:
    calls.append((entity,))
    return f"{type(entity).__name__}:{entity.id}"


@pytest.fixture
def cached_domain(either_tier: Domain) -> Domain:
    calls.clear()
    return either_tier


pytestmark = pytest.mark.smarter_backends("sqlite")


def test_every_call_form_shares_one_entry(cached_domain: Domain) -> None:
    assert add(1, 2) == [1, 2]
    assert add(1, y=2) == [1, 2]
    assert add(x=1, y=2) == [1, 2]
    assert add(y=2, x=1) == [1, 2]
    assert calls == [(1, 2)]
    assert add(1) == [1, 10]  # the default is part of the key
    assert add(1, 10) == [1, 10]
    assert calls == [(1, 2), (1, 10)]


@pytest.mark.parametrize(
    ("call", "invalidate"),
    [
        (lambda: add(1, 2), lambda: add.invalidate(x=1, y=2)),
        (lambda: add(x=1, y=2), lambda: add.invalidate(1, 2)),
        (lambda: add(1, y=2), lambda: add.invalidate(1, 2)),
        (lambda: add(1), lambda: add.invalidate(1, 10)),
        (lambda: add(1, 10), lambda: add.invalidate(x=1)),
    ],
)
def test_invalidate_works_whatever_form_the_call_used(
    cached_domain: Domain, call: Any, invalidate: Any
) -> None:
    """Upstream defect 2."""
    call()
    call()
    assert len(calls) == 1
    invalidate()
    call()
    assert len(calls) == 2


def test_invalidate_of_a_fixed_key(cached_domain: Domain) -> None:
    """Upstream defect 2, fixed cache_key: one entry whatever the arguments."""
    assert fixed(1) == 2
    assert fixed(5) == 2
    assert calls == [(1,)]
    fixed.invalidate()
    assert fixed(5) == 10
    assert calls == [(1,), (5,)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a b",), ("a", "b")),
        ((None,), ("None",)),
        ((1,), ("1",)),
        ((1,), (1.0,)),
        ((1,), (True,)),
        ((0,), (False,)),
        (([1, 2],), ((1, 2),)),
        (("x",), (["x"],)),
        (("[1]",), ([1],)),
        (({"a": 1},), ([["a", 1]],)),
        ((b"ab",), ("ab",)),
    ],
)
def test_distinct_arguments_never_share_a_key(
    cached_domain: Domain, first: tuple[Any, ...], second: tuple[Any, ...]
) -> None:
    """Upstream defect 3: keys are not built from str()."""
    variadic(*first)
    variadic(*second)
    assert len(calls) == 2


def test_entities_are_keyed_by_type_and_id(cached_domain: Domain) -> None:
    account = AccountFactory(name="same")
    other = AccountFactory(name="same")
    user = UserFactory()
    assert str(account) != str(other)  # but names alike: still two entries by id
    assert describe(account) == f"Account:{account.id}"
    assert describe(other) == f"Account:{other.id}"
    user_with_same_id = user if user.id == account.id else None
    if user_with_same_id is not None:
        assert describe(user_with_same_id) == f"User:{user.id}"
    assert len(calls) == 2 + (user_with_same_id is not None)
    # The same entity in a newer version is the same argument.
    renamed = cached_domain.accounts.update(account.id, name="renamed")
    assert describe(renamed) == f"Account:{account.id}"
    assert len(calls) == 2 + (user_with_same_id is not None)
    describe.invalidate(account)
    describe(renamed)
    assert len(calls) == 3 + (user_with_same_id is not None)


def test_an_argument_it_cannot_key_raises_type_error_naming_it(cached_domain: Domain) -> None:
    with pytest.raises(TypeError, match="'x'"):
        add(object())
    with pytest.raises(TypeError, match="'y'"):
        add(1, y=[object()])
    assert calls == []


def test_none_is_cached_exceptions_are_not(cached_domain: Domain) -> None:
    assert maybe(1) is None
    assert maybe(1) is None
    assert calls == [(1,)]
    calls.clear()
    with pytest.raises(RuntimeError):
        flaky(7)
    assert flaky(7) == 7
    assert flaky(7) == 7
    assert len(calls) == 2


def test_a_result_the_format_cannot_hold_raises_type_error(cached_domain: Domain) -> None:
    with pytest.raises(TypeError, match="cannot serialize"):
        unserializable()
    with pytest.raises(TypeError):
        unserializable()
    assert len(calls) == 2  # nothing was cached


def test_callers_get_their_own_copy_of_a_mutable_result(cached_domain: Domain) -> None:
    first = add(1, 2)
    first.append("mutated")
    assert add(1, 2) == [1, 2]


def test_results_in_redis_use_the_typed_format(
    redis_domain: Domain, redis_client: redis.Redis
) -> None:
    """Upstream defect 5: nothing pickled."""
    calls.clear()
    add(3, 4)
    raw = redis_client.get(add.key(3, 4))
    assert raw is not None
    assert raw.startswith(codec.RECORD + b"B")  # a record holding the encoded result
    payload = codec.read_record(raw)[1]
    assert payload.startswith(codec.MAGIC)
    assert codec.loads(payload) == [3, 4]


def test_redis_entries_are_shared_between_domains(
    redis_domain: Domain, smarter_database_url: str, smarter_redis_url: str
) -> None:
    calls.clear()
    add(5, 6)
    with Domain(smarter_database_url, smarter_redis_url) as other:
        previous = sd.set_domain(other)
        try:
            assert add(5, 6) == [5, 6]
        finally:
            sd.set_domain(previous)
    assert calls == [(5, 6)]


def test_a_method_cannot_be_decorated() -> None:
    class Service:
        @cache_results()
        def lookup(self, x: int) -> int:
            return x

    with pytest.raises(TypeError, match="staticmethod"):
        Service().lookup(1)
