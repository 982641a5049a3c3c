"""Building the two named dogpile regions from settings. An application may build its own
regions (any dogpile backend) and pass them to ``Domain(memory_region=, redis_region=)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from dogpile.cache import CacheRegion, make_region
from dogpile.cache.api import CantDeserializeException
from dogpile.cache.backends.redis import RedisBackend
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ConfigurationError
from . import codec
from .keys import CacheKeys
from .lru import BoundedLRU
from .resilience import CircuitBreaker, ResilientRedisProxy
from .stats import CacheStats


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the Redis tier talks to Redis. The defaults favour failing fast: a Redis that
    does not answer in ``socket_timeout`` is treated as down for ``retry_after`` seconds."""

    socket_timeout: float = 0.25
    connect_timeout: float = 0.25
    retry_after: float = 2.0
    lock_timeout: int = 10
    lock_sleep: float = 0.01
    max_connections: int = 64
    ack_timeout: float = 0.5
    """How long a write waits for the other processes to confirm they dropped its keys."""
    listen: bool = True
    """Run the invalidation listener (cross-process coherence of the memory tier)."""


def memory_region(
    expiration_time: int, maxsize: int = 10_000, name: str = "smarter_domain.memory"
) -> CacheRegion:
    return make_region(name=name).configure(
        "dogpile.cache.memory",
        expiration_time=expiration_time,
        arguments={"cache_dict": BoundedLRU(maxsize)},
    )


def redis_connection_pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    try:
        return _pool(url, options)
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL: {exc}") from None


def _pool(url: str, options: RedisOptions) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(
        url,
        socket_timeout=options.socket_timeout,
        socket_connect_timeout=options.connect_timeout,
        retry=Retry(NoBackoff(), 0),
        max_connections=options.max_connections,
        health_check_interval=30,
        client_name="smarter-domain",
    )


def redis_region(
    pool: redis.ConnectionPool,
    expiration_time: int,
    stats: CacheStats,
    keys: CacheKeys,
    options: RedisOptions = RedisOptions(),
    name: str = "smarter_domain.redis",
) -> tuple[CacheRegion, ResilientRedisProxy]:
    """dogpile's redis backend on ``pool``, made safe by ``secure_redis_region``."""
    region = make_region(name=name).configure(
        "dogpile.cache.redis",
        expiration_time=expiration_time,
        arguments={
            "connection_pool": pool,
            # dogpile's metadata decides freshness; Redis's own TTL only reclaims memory.
            "redis_expiration_time": expiration_time * 2,
            "distributed_lock": True,
            "thread_local_lock": False,
            "lock_timeout": options.lock_timeout,
            "lock_sleep": options.lock_sleep,
            "lock_blocking_timeout": options.lock_timeout,
        },
    )
    return region, secure_redis_region(region, stats, keys, options)


def secure_redis_region(
    region: CacheRegion, stats: CacheStats, keys: CacheKeys, options: RedisOptions
) -> ResilientRedisProxy:
    """Give a dogpile Redis region the typed codec (never pickle) and the resilient, coherent
    proxy. An application's own region goes through here too, so it gets the same guarantees."""
    backend = region.actual_backend
    if not isinstance(backend, RedisBackend):
        raise ConfigurationError(
            f"redis_region must use a dogpile Redis backend, not {type(backend).__name__}"
        )
    client = backend.writer_client

    def deserialize(payload: bytes) -> Any:
        try:
            return codec.loads(payload)
        except CantDeserializeException:
            stats.add("decode_errors")
            raise

    def flush_namespace() -> None:
        batch: list[Any] = []
        for key in client.scan_iter(match=keys.pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)

    expiration = int(region.expiration_time or 600)
    proxy = ResilientRedisProxy(
        CircuitBreaker(options.retry_after),
        stats,
        keys,
        backend=backend,
        generation_ttl=max(3600, expiration * 2),
        flush_namespace=flush_namespace,
    )
    proxy.expiration_time = float(expiration)
    region.serializer = codec.dumps
    region.deserializer = deserialize
    region.wrap(proxy)
    return proxy
