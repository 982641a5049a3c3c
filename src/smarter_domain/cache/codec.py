"""The typed wire format of the Redis tier: msgpack with explicit type tags. Never pickle.

Every value decodes to plain data or to one of a fixed set of types (entities, datetimes,
tuples, sets, ...); nothing in a payload can name a class or run code. A payload that does not
start with this format's magic, or does not decode, is a miss (``CantDeserializeException``),
never an error for the caller.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
from dogpile.cache.api import CantDeserializeException

from ..entities import Account, User, UserProfile
from .records import ProfileRecord

log = logging.getLogger(__name__)

MAGIC = b"SD\x01"
"""Format name and version: a payload of another version is a miss, then reloaded."""

_ENTITY_TYPES: dict[type[Any], str] = {
    Account: "Account",
    User: "User",
    UserProfile: "UserProfile",
    ProfileRecord: "ProfileRecord",
}
_TAGGED_ENTITIES: dict[str, type[Any]] = {tag: cls for cls, tag in _ENTITY_TYPES.items()}

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def _tag(value: Any) -> Any:
    kind = type(value)
    if value is None or kind in (str, int, float, bool, bytes):
        return value
    tag = _ENTITY_TYPES.get(kind)
    if tag is not None:
        return {tag: value}  # msgspec encodes dataclasses field by field
    if kind is list:
        return [_tag(item) for item in value]
    if kind is tuple:
        return {"tuple": [_tag(item) for item in value]}
    if kind is dict:
        return {"dict": [[_tag(k), _tag(v)] for k, v in value.items()]}
    if kind in (set, frozenset):
        return {kind.__name__: [_tag(item) for item in value]}
    if kind is dt.datetime:
        return {"datetime": value.isoformat()}
    if kind is dt.date:
        return {"date": value.isoformat()}
    if kind is Decimal:
        return {"decimal": str(value)}
    if kind is uuid.UUID:
        return {"uuid": str(value)}
    raise TypeError(f"cannot serialize a value of type {kind.__qualname__} for the cache")


def _entity(cls: type[Any]) -> Callable[[Any], Any]:
    return lambda data: msgspec.convert(data, cls)


_UNTAG: dict[str, Callable[[Any], Any]] = {
    **{tag: _entity(cls) for tag, cls in _TAGGED_ENTITIES.items()},
    "tuple": lambda items: tuple(_untag(item) for item in items),
    "dict": lambda pairs: {_untag(k): _untag(v) for k, v in pairs},
    "set": lambda items: {_untag(item) for item in items},
    "frozenset": lambda items: frozenset(_untag(item) for item in items),
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "decimal": Decimal,
    "uuid": uuid.UUID,
}


def _untag(value: Any) -> Any:
    if type(value) is list:
        return [_untag(item) for item in value]
    if type(value) is dict:
        if len(value) != 1:
            raise ValueError("an untagged map")
        ((tag, data),) = value.items()
        return _UNTAG[tag](data)
    return value


def dumps(value: Any) -> bytes:
    """Encode ``value``; raises TypeError for any value the format cannot hold: a type it does
    not know, a string that is not valid Unicode (a lone surrogate), an int outside
    [-2**63, 2**64 - 1], or a structure nested too deeply (or containing itself)."""
    try:
        return MAGIC + _encoder.encode(_tag(value))
    except TypeError:
        raise
    except UnicodeEncodeError:
        raise TypeError(
            "cannot serialize a string that is not valid Unicode (a lone surrogate) for the cache"
        ) from None
    except (ValueError, OverflowError, RecursionError, msgspec.MsgspecError) as exc:
        raise TypeError(f"cannot serialize this value for the cache: {exc}") from None


def loads(payload: bytes) -> Any:
    """Decode a payload; raises CantDeserializeException for anything not of this format."""
    if not payload.startswith(MAGIC):
        log.debug("cache entry of an unknown format ignored (%d bytes)", len(payload))
        raise CantDeserializeException()
    try:
        return _untag(_decoder.decode(memoryview(payload)[len(MAGIC) :]))
    except (Exception, RecursionError) as exc:  # whatever a hostile payload triggers
        log.debug("undecodable cache entry ignored: %s: %s", type(exc).__name__, exc)
        raise CantDeserializeException() from None
