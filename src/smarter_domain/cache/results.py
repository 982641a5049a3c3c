"""``CachedFunction``: a function memoized in a domain's tiers, with a working ``.invalidate``
(what ``smarter_domain.cache_results`` returns).

The key is the function's module and qualified name plus a canonical encoding of its
arguments bound to its signature with defaults applied, so ``f(1, 2)``, ``f(1, y=2)`` and
``f(x=1, y=2)`` share one entry. Every argument is encoded with its type (``1``, ``"1"``,
``1.0`` and ``True`` differ); entities are keyed by type and id; anything else raises
TypeError naming the argument. A closure's captured values are part of its key, so two
closures made by one factory never share an entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import inspect
import json
import types
import uuid
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, Generic, ParamSpec, TypeVar

from dogpile.cache.api import CantDeserializeException

from ..model.entities import Account, User, UserProfile
from ..model.errors import ConfigurationError
from ..model.text import text_problem
from . import codec
from .concurrency import await_only

P = ParamSpec("P")
R = TypeVar("R")

_ENTITIES = (Account, User, UserProfile)
FOREIGN_PAYLOAD = (CantDeserializeException, AttributeError, TypeError)
"""What ``codec.loads`` raises for a payload that is not a result of ours (a foreign entry
under our key): it is invalidated and the function run afresh, by both front doors."""
_MAX_PLAIN_KEY = 160
_MAX_JSON_INT_BITS = 2000  # well under the smallest int-to-str digit limit Python allows


class _Unkeyable(TypeError):
    """A value ``_canonical`` cannot encode, and why; the caller says where it was."""


def _canonical(value: Any, name: str) -> Any:
    kind = type(value)
    if kind is str:
        # NUL is keyable (JSON escapes it); a lone surrogate cannot be encoded, ever.
        if not value.isascii():
            problem = text_problem(value.replace("\x00", ""))
            if problem is not None:
                raise _Unkeyable(f"it holds a string that {problem}")
        return value
    if kind is int:
        if value.bit_length() > _MAX_JSON_INT_BITS:
            return ["int", hex(value)]  # str() of a huge int is refused (and slow)
        return value
    if value is None or kind is float or kind is bool:
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
    if kind is set:
        return ["S", *sorted((_canonical(item, name) for item in value), key=_dump)]
    if kind is frozenset:
        return ["F", *sorted((_canonical(item, name) for item in value), key=_dump)]
    if kind is dt.datetime or kind is dt.date:
        return [kind.__name__, value.isoformat()]
    if kind is Decimal or kind is uuid.UUID:
        return [kind.__name__, str(value)]
    if kind is bytes:
        return ["B", value.hex()]
    if isinstance(value, enum.Enum):
        return ["enum", f"{kind.__module__}.{kind.__qualname__}", _canonical(value.value, name)]
    raise _Unkeyable(f"it holds a value of type {kind.__module__}.{kind.__qualname__}")


def _keyable(value: Any, name: str, what: str) -> Any:
    """``_canonical(value)``, or TypeError naming ``what`` (e.g. "argument 'x'")."""
    try:
        return _canonical(value, name)
    except _Unkeyable as exc:
        raise TypeError(f"cache_results cannot build a key from {what}: {exc}") from None
    except RecursionError:
        raise TypeError(
            f"cache_results cannot build a key from {what}: "
            "it is nested too deeply (or contains itself)"
        ) from None


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def argument_key(signature: inspect.Signature, args: Any, kwargs: Any) -> str:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    parts = [[name, _keyable(v, name, f"argument {name!r}")] for name, v in bound.arguments.items()]
    try:
        text = _dump(parts)
    except RecursionError:
        raise TypeError("cache_results cannot build a key: arguments nested too deeply") from None
    if len(text) <= _MAX_PLAIN_KEY:
        return text
    return "#" + hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def scope_key(function: Callable[..., Any], namespace: str | None) -> str:
    """What tells this function's entries from those of another function of the same module
    and qualified name: ``""`` for a plain function, else ``"@"`` and a digest of the
    ``namespace`` or, for a closure, of its captured values (read once, now, and encoded like
    arguments: deterministic, so every process running the same code shares the entries)."""
    if namespace is not None:
        return "@" + _digest(_dump(["N", _check_namespace(namespace)]))
    cells = getattr(function, "__closure__", None) or ()
    names = getattr(getattr(function, "__code__", None), "co_freevars", ())
    captured = []
    for name, cell in zip(names, cells, strict=False):
        if name == "__class__":
            continue  # the class a method body refers to: already in the qualified name
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell: a variable assigned after the decoration
            if name == function.__name__:
                continue  # the decorated function referring to itself (recursion)
            raise TypeError(
                f"cache_results cannot key closure {function.__qualname__!r}: its captured "
                f"variable {name!r} has no value yet when it is decorated; assign it first, "
                f"or pass cache_results(namespace='...') to name this closure's entries "
                "yourself (closures given the same namespace share entries)"
            ) from None
        what = f"captured variable {name!r} of closure {function.__qualname__!r}"
        try:
            captured.append([name, _keyable(value, name, what)])
        except TypeError as exc:
            raise TypeError(
                f"{exc}; captured values are part of a closure's key (two closures made by "
                "one factory must not share entries): pass cache_results(namespace='...') to "
                "name this closure's entries yourself (closures given the same namespace "
                "share entries), or pass the value as an argument"
            ) from None
    parts: list[Any] = []
    if captured:
        parts.append(["C", captured])
    code = getattr(function, "__code__", None)
    if "<" in function.__qualname__ and isinstance(code, types.CodeType):
        # A lambda, or a function defined inside another: its qualified name is not unique in
        # its module (two lambdas; a factory defining ``f`` in either branch of an ``if``), so
        # its code is part of its identity too.
        parts.append(["K", _code_identity(code)])
    return "@" + _digest(_dump(parts)) if parts else ""


def _code_identity(code: types.CodeType) -> list[Any]:
    """What a function's code is, deterministically across processes (no ids, no hashes)."""
    return [
        code.co_firstlineno,
        code.co_code.hex(),
        list(code.co_names),
        [_constant(c) for c in code.co_consts],
    ]


def _constant(value: Any) -> Any:
    if isinstance(value, types.CodeType):
        return _code_identity(value)
    if isinstance(value, tuple):
        return [_constant(v) for v in value]
    if isinstance(value, frozenset):  # iteration order follows (randomized) str hashes
        return sorted(repr(v) for v in value)
    return repr(value)


def _check_namespace(namespace: str) -> str:
    if type(namespace) is not str or not namespace or text_problem(namespace) is not None:
        raise TypeError("cache_results(namespace=...) must be a non-empty str of valid Unicode")
    return namespace


def fixed_key_part(cache_key: str) -> str:
    if type(cache_key) is not str or text_problem(cache_key.replace("\x00", "")) is not None:
        raise TypeError("cache_results(cache_key=...) must be a str of valid Unicode")
    if cache_key.isprintable():
        return "=" + cache_key
    return "~" + _digest(cache_key)  # NUL and other controls never reach a key raw


class CachedFunction(Generic[P, R]):
    """What ``@cache_results`` returns: call it, or ``.invalidate(same arguments)``."""

    def __init__(
        self,
        function: Callable[P, R],
        timeout: float | None,
        cache_key: str | None,
        domain_of: Callable[[], Any],
        namespace: str | None = None,
    ) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.timeout = timeout
        self.fixed_key = cache_key
        self._fixed_part = None if cache_key is None else fixed_key_part(cache_key)
        self._domain_of = domain_of  # the domain whose cache it uses, asked at each call
        self._signature = inspect.signature(function)
        scope = scope_key(function, namespace)
        self._name = f"{function.__module__}.{function.__qualname__}{scope}"

    def _cache(self) -> Any:
        return self._domain_of().cache

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key of this call (the same for every call form of the same arguments)."""
        cache = self._cache()
        if self._fixed_part is not None:
            return str(cache.keys.function(self._name, self._fixed_part))
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
        except FOREIGN_PAYLOAD:
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


class AsyncCachedFunction(Generic[P, R]):
    """What ``@cache_results`` returns for an ``async def``: ``await f(...)``, and
    ``await f.invalidate(same arguments)``. Keys and entries are those of ``CachedFunction``
    (one cache for both front doors); the function is awaited in the greenlet of the miss,
    on the loop (``AsyncTieredCache``). Its domain is an ``AsyncDomain``."""

    def __init__(
        self,
        function: Callable[P, Coroutine[Any, Any, R]],
        timeout: float | None,
        cache_key: str | None,
        domain_of: Callable[[], Any],
        namespace: str | None = None,
    ) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.timeout = timeout
        self._keys = CachedFunction(function, timeout, cache_key, domain_of, namespace)
        self._domain_of = domain_of

    def _front(self) -> Any:
        front = getattr(self._domain_of(), "acache", None)
        if front is None:
            raise ConfigurationError(
                "an async function is cached by an AsyncDomain: configure one "
                "(smarter_domain.aio.configure) or pass cache_results(domain=AsyncDomain(...))"
            )
        return front

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key of this call (the same for every call form of the same arguments)."""
        return self._keys.key(*args, **kwargs)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        front = self._front()
        key = self.key(*args, **kwargs)

        def load() -> bytes:
            return codec.dumps(await_only(self.function(*args, **kwargs)))

        payload = await front.get_or_load(key, load, self.timeout)
        try:
            result: R = codec.loads(payload)
        except FOREIGN_PAYLOAD:
            await front.invalidate([key])  # a foreign entry under our key: computed afresh
            result = codec.loads(await front.get_or_load(key, load, self.timeout))
        return result

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Drop the entry of these arguments (any call form) from every tier."""
        await self._front().invalidate([self.key(*args, **kwargs)])

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        return self._keys.__get__(instance, owner) if instance is not None else self


def check_options(timeout: Any, cache_key: str | None, namespace: str | None) -> None:
    """What ``cache_results(...)`` refuses before it decorates anything."""
    if dataclasses.is_dataclass(timeout) or callable(timeout):
        raise TypeError("use @cache_results() or @cache_results(timeout=...), with parentheses")
    if cache_key is not None:
        fixed_key_part(cache_key)
    if namespace is not None:
        _check_namespace(namespace)
