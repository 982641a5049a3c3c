"""``cache_results``: memoize a function in the domain's tiers, with a working ``.invalidate``.

The key is the function's module and qualified name plus a canonical encoding of its
arguments bound to its signature with defaults applied, so ``f(1, 2)``, ``f(1, y=2)`` and
``f(x=1, y=2)`` share one entry. Every argument is encoded with its type (``1``, ``"1"``,
``1.0`` and ``True`` differ); entities are keyed by type and id; anything else raises
TypeError naming the argument.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import inspect
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Generic, ParamSpec, TypeVar

from dogpile.cache.api import CantDeserializeException

from ..entities import Account, User, UserProfile
from . import codec

P = ParamSpec("P")
R = TypeVar("R")

_ENTITIES = (Account, User, UserProfile)
_MAX_PLAIN_KEY = 160


def _canonical(value: Any, name: str) -> Any:
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind in _ENTITIES:
        return ["E", kind.__name__, value.id]
    if kind is list:
        return ["L", *(_canonical(item, name) for item in value)]
    if kind is tuple:
        return ["T", *(_canonical(item, name) for item in value)]
    if kind is dict:
        pairs = [[_canonical(k, name), _canonical(v, name)] for k, v in value.items()]
        return ["D", *sorted(pairs, key=_dump)]
    if kind in (set, frozenset):
        return ["S", *sorted((_canonical(item, name) for item in value), key=_dump)]
    if kind is dt.datetime or kind is dt.date:
        return [kind.__name__, value.isoformat()]
    if kind is Decimal or kind is uuid.UUID:
        return [kind.__name__, str(value)]
    if kind is bytes:
        return ["B", value.hex()]
    if isinstance(value, enum.Enum):
        return ["enum", f"{kind.__module__}.{kind.__qualname__}", _canonical(value.value, name)]
    raise TypeError(
        f"cache_results cannot build a key from argument {name!r} "
        f"of type {kind.__module__}.{kind.__qualname__}"
    )


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def argument_key(signature: inspect.Signature, args: Any, kwargs: Any) -> str:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    text = _dump([[name, _canonical(v, name)] for name, v in bound.arguments.items()])
    if len(text) <= _MAX_PLAIN_KEY:
        return text
    return "#" + hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


class CachedFunction(Generic[P, R]):
    """What ``@cache_results`` returns: call it, or ``.invalidate(same arguments)``."""

    def __init__(
        self,
        function: Callable[P, R],
        timeout: float | None,
        cache_key: str | None,
        domain: Any = None,
    ) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.timeout = timeout
        self.fixed_key = cache_key
        self._domain = domain
        self._signature = inspect.signature(function)
        self._name = f"{function.__module__}.{function.__qualname__}"

    def _cache(self) -> Any:
        if self._domain is not None:
            return self._domain.cache
        from ..domain import get_domain

        return get_domain().cache

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key of this call (the same for every call form of the same arguments)."""
        cache = self._cache()
        if self.fixed_key is not None:
            return str(cache.keys.function(self._name, "=" + self.fixed_key))
        return str(cache.keys.function(self._name, argument_key(self._signature, args, kwargs)))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        cache = self._cache()
        key = self.key(*args, **kwargs)

        def load() -> bytes:
            return codec.dumps(self.function(*args, **kwargs))

        # The memory tier keeps the encoded bytes: each caller gets its own copy of a
        # mutable result, exactly what the Redis tier would give it.
        payload = cache.get_or_load(key, load, self.timeout)
        try:
            result: R = codec.loads(payload)
        except (CantDeserializeException, AttributeError, TypeError):
            cache.invalidate([key])  # a foreign entry under our key: drop it, compute afresh
            result = codec.loads(cache.get_or_load(key, load, self.timeout))
        return result

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Drop the entry of these arguments (any call form) from every tier."""
        self._cache().invalidate([self.key(*args, **kwargs)])

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        raise TypeError(
            "cache_results keys arguments by value; decorate a function or a staticmethod"
        )


def cache_results(
    timeout: float | None = None, cache_key: str | None = None, *, domain: Any = None
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Memoize a function in the default domain's cache tiers (or ``domain=``'s).

    ``timeout`` (seconds) defaults to the domain's ``cache_ttl``. ``None`` results are
    cached, exceptions are not. A result the cache format cannot hold raises TypeError.
    """

    if dataclasses.is_dataclass(timeout) or callable(timeout):
        raise TypeError("use @cache_results() or @cache_results(timeout=...), with parentheses")

    def decorate(function: Callable[P, R]) -> CachedFunction[P, R]:
        return CachedFunction(function, timeout, cache_key, domain)

    return decorate
