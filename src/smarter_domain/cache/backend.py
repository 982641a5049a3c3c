"""dogpile Redis backends that store compact records (``codec.record``) instead of dogpile's
JSON metadata header in front of a serialized value.

Registered as dogpile plug-ins, so a region configured anywhere reads and writes the entries
the domain caches::

    make_region().configure("smarter_domain.redis", arguments={"url": "redis://..."})

(``smarter_domain.redis_sentinel`` and ``smarter_domain.redis_cluster`` likewise.) The creation
time travels inside the typed record, so a hit costs one prefix check and one typed msgspec
decode, and nothing in an entry is pickled. The domain's own Redis tier uses these backends
(``regions.redis_region``) under ``resilience.ResilientRedisProxy``, which reads and writes the
same records whatever dogpile Redis backend an application's region has underneath.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dogpile.cache import register_backend
from dogpile.cache.api import NO_VALUE, CachedValue, CacheReturnType, CantDeserializeException
from dogpile.cache.backends.redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend
from dogpile.cache.region import value_version
from redis.cluster import RedisCluster

from . import codec


def cached_value(raw: bytes) -> CacheReturnType:
    """A record as dogpile's ``CachedValue`` (its creation time as dogpile's metadata), or
    NO_VALUE for anything that is not a record."""
    try:
        created, value = codec.read_record(raw)
    except CantDeserializeException:
        return NO_VALUE
    return CachedValue(value, {"ct": created, "v": value_version})


def record_of(value: CachedValue) -> bytes:
    """dogpile's ``CachedValue`` as a record (TypeError for a value the format cannot hold)."""
    return codec.record(value.payload, float(value.metadata["ct"]))


def read_raw(client: Any, keys: Sequence[str]) -> list[Any]:
    """The raw values of ``keys`` (None where missing): one MGET, or one per node pipelined on
    a cluster (whose MGET must stay within one slot). The Redis tier's multi-gets go out on its
    wire instead (``read_slices``)."""
    if isinstance(client, RedisCluster) or getattr(client, "clustered", False):
        return list(client.mget_nonatomic(keys))  # (``clustered``: async_redis.AwaitingRedis)
    return list(client.mget(keys))


def read_slices(client: Any, slices: Iterable[Sequence[str]], wire: Any) -> list[Any]:
    """``read_raw`` of the keys of ``slices`` (consecutive slices of one list of keys), one
    MGET per slice pipelined on ``wire`` (each sent as soon as ``slices`` yields it); on a
    cluster, one ``read_raw`` of them all."""
    if isinstance(client, RedisCluster) or getattr(client, "clustered", False):
        return read_raw(client, [key for keys in slices for key in keys])
    values: list[Any] = []
    for reply in wire.pipeline(("MGET", *keys) for keys in slices if keys):
        values += reply
    return values


def write_records(client: Any, records: Mapping[str, bytes], ttl: int | None) -> None:
    """SET ... EX each record, pipelined (dogpile's backends call SETEX, which redis-py 8
    deprecates)."""
    pipe = client.pipeline(transaction=False)
    for key, value in records.items():
        pipe.set(key, value, ex=ttl)
    pipe.execute()


class CompactRecords:
    """The record format for a dogpile Redis backend: dogpile hands these methods its
    ``CachedValue``s (``serializer`` is None), and they store records."""

    serializer = None
    deserializer = None
    reader_client: Any
    writer_client: Any
    redis_expiration_time: int

    def get(self, key: str) -> CacheReturnType:
        return self.get_multi([key])[0]

    def get_multi(self, keys: Sequence[str]) -> list[CacheReturnType]:
        return [
            NO_VALUE if raw is None else cached_value(raw)
            for raw in read_raw(self.reader_client, keys)
        ]

    def set(self, key: str, value: CachedValue) -> None:
        self.set_multi({key: value})

    def set_multi(self, mapping: Mapping[str, CachedValue]) -> None:
        records = {key: record_of(value) for key, value in mapping.items()}
        write_records(self.writer_client, records, self.redis_expiration_time or None)


class CompactRedisBackend(CompactRecords, RedisBackend):  # type: ignore[misc]
    """``smarter_domain.redis``: dogpile's ``redis`` backend, storing records."""


class CompactRedisSentinelBackend(CompactRecords, RedisSentinelBackend):  # type: ignore[misc]
    """``smarter_domain.redis_sentinel``: dogpile's ``redis_sentinel`` backend, storing
    records."""


class CompactRedisClusterBackend(CompactRecords, RedisClusterBackend):  # type: ignore[misc]
    """``smarter_domain.redis_cluster``: dogpile's ``redis_cluster`` backend, storing
    records."""


REDIS, REDIS_SENTINEL, REDIS_CLUSTER = (
    "smarter_domain.redis",
    "smarter_domain.redis_sentinel",
    "smarter_domain.redis_cluster",
)
"""The dogpile backend names these classes are registered under (on import of this module)."""

BACKENDS = {
    REDIS: "CompactRedisBackend",
    REDIS_SENTINEL: "CompactRedisSentinelBackend",
    REDIS_CLUSTER: "CompactRedisClusterBackend",
}
for _name, _class in BACKENDS.items():
    register_backend(_name, __name__, _class)  # type: ignore[no-untyped-call]
