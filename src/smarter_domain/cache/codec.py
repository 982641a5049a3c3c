"""The typed wire format of the Redis tier: msgpack with explicit type tags. Never pickle.

Every value decodes to plain data or to one of a fixed set of types (entities, datetimes,
tuples, sets, ...); nothing in a payload can name a class or run code. A payload that does not
start with this format's magic, or does not decode, is a miss (``CantDeserializeException``),
never an error for the caller.

What the Redis tier stores under a key is a *record* (``record``/``read_record``): four bytes
naming the format and the kind of value, then one msgpack array ``[created, value]``. The
kinds the repositories cache (an entity, an id, a list of ids, encoded bytes) decode with one
typed msgspec decoder each, in C, at wire speed; anything else goes through the tags above.
The creation time is inside the record, where dogpile keeps a JSON header in front of it
(``regions.CompactRedisBackend`` gives dogpile's API this format too).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import msgspec
from dogpile.cache.api import CantDeserializeException

from ..model.entities import Account, User, UserProfile
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
    return MAGIC + dumps_body(_tagged(value))


def loads(payload: bytes) -> Any:
    """Decode a payload; raises CantDeserializeException for anything not of this format."""
    if not payload.startswith(MAGIC):
        log.debug(
            "cache entry of an unknown format ignored (%d bytes)",
            len(payload),
            extra={"event": "cache_entry_unknown_format", "size": len(payload)},
        )
        raise CantDeserializeException()
    try:
        return _untag(_decoder.decode(memoryview(payload)[len(MAGIC) :]))
    except (Exception, RecursionError) as exc:  # whatever a hostile payload triggers
        log.debug(
            "undecodable cache entry ignored: %s: %s",
            type(exc).__name__,
            exc,
            extra={"event": "cache_entry_undecodable", "error": type(exc).__name__},
        )
        raise CantDeserializeException() from None


RECORD: Final = b"SD\x02"
"""Format name and version of a record; the byte after it names the kind of value. Entries of
the first release (dogpile's JSON header, then ``MAGIC``) are read as misses."""

_RECORD_TYPES: dict[bytes, Any] = {
    b"U": User,
    b"A": Account,
    b"P": ProfileRecord,
    b"I": int | None,  # an id (a lookup's answer), or None (nothing there)
    b"L": list[int],  # the ids of a list
    b"B": bytes,  # cache_results: its memory tier keeps encoded bytes too
    b"G": Any,  # anything else ``dumps`` can hold, tagged
}
_KIND_OF: dict[type[Any], bytes] = {
    User: b"U",
    Account: b"A",
    ProfileRecord: b"P",
    int: b"I",
    type(None): b"I",
    bytes: b"B",
}
_RECORD_DECODERS: dict[bytes, Any] = {
    RECORD + kind: msgspec.msgpack.Decoder(tuple[float, kind_type])  # type: ignore[valid-type]
    for kind, kind_type in _RECORD_TYPES.items()
}
_GENERIC = RECORD + b"G"


def _kind(value: Any) -> bytes:
    kind = _KIND_OF.get(type(value))
    if kind is not None:
        return kind
    if type(value) is list and all(type(item) is int for item in value):
        return b"L"
    return b"G"


def record(value: Any, created: float) -> bytes:
    """The Redis tier's entry for ``value`` created at ``created`` (seconds since the epoch).
    Raises TypeError for any value ``dumps`` refuses."""
    kind = _kind(value)
    if kind == b"G":
        return _GENERIC + dumps_body((created, _tagged(value)))
    return RECORD + kind + dumps_body((created, value))


def _tagged(value: Any) -> Any:
    """``_tag(value)``; a structure nested too deeply (or containing itself) is a TypeError."""
    try:
        return _tag(value)
    except RecursionError:
        raise TypeError("cannot serialize this value for the cache: nested too deeply") from None


def dumps_body(data: Any) -> bytes:
    """msgpack of already tagged ``data``, every encoding failure a TypeError."""
    try:
        return _encoder.encode(data)
    except TypeError:
        raise
    except UnicodeEncodeError:
        raise TypeError(
            "cannot serialize a string that is not valid Unicode (a lone surrogate) for the cache"
        ) from None
    except (ValueError, OverflowError, RecursionError, msgspec.MsgspecError) as exc:
        raise TypeError(f"cannot serialize this value for the cache: {exc}") from None


def typed_decoders() -> dict[bytes, Any]:
    """The record prefixes decoded by one typed decoder, without tags (for batch reads that
    decode inline: ``decoder.decode(raw[4:])`` is ``read_record(raw)``)."""
    return {kind: d for kind, d in _RECORD_DECODERS.items() if kind != _GENERIC}


def read_record(raw: bytes) -> tuple[float, Any]:
    """``(created, value)`` of a record; raises CantDeserializeException for anything that is
    not one (another format, a kind it does not know, a body that does not decode to that
    kind's type)."""
    kind = raw[:4]
    decoder = _RECORD_DECODERS.get(kind)
    if decoder is None:
        raise CantDeserializeException()
    try:
        created, value = decoder.decode(memoryview(raw)[4:])
        if kind == _GENERIC:
            value = _untag(value)
    except (Exception, RecursionError) as exc:  # whatever a hostile payload triggers
        log.debug(
            "undecodable cache record ignored: %s: %s",
            type(exc).__name__,
            exc,
            extra={"event": "cache_record_undecodable", "error": type(exc).__name__},
        )
        raise CantDeserializeException() from None
    return created, value
