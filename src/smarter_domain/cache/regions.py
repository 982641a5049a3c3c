"""Building the two named dogpile regions from settings. An application may build its own
regions (any dogpile backend) and pass them to ``Domain(memory_region=, redis_region=)``."""

from __future__ import annotations

from typing import Any

import redis
from dogpile.cache import CacheRegion, make_region
from dogpile.cache.backends.redis import RedisBackend, RedisClusterBackend
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..model.errors import ConfigurationError
from .backend import REDIS, REDIS_CLUSTER, REDIS_SENTINEL  # (registered with dogpile)
from .keys import CacheKeys
from .options import RedisOptions, memory_region, renew_region_locks
from .resilience import CircuitBreaker, ResilientRedisProxy
from .restarts import ServerWatch
from .stats import CacheStats
from .topology import RedisTarget

__all__ = [  # (memory_region, renew_region_locks, RedisOptions: from ``options``, as before)
    "RedisOptions",
    "memory_region",
    "redis_connection_pool",
    "redis_region",
    "renew_region_locks",
    "secure_redis_region",
]

DEFAULT_OPTIONS = RedisOptions()  # (frozen)


def redis_connection_pool(
    url: str, options: RedisOptions, watch: ServerWatch | None = None
) -> redis.ConnectionPool:
    try:
        return redis.ConnectionPool.from_url(url, **connection_options(options, watch))
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL: {exc}") from None


def connection_options(options: RedisOptions, watch: ServerWatch | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": options.max_connections,
        "client_name": "smarter-domain",
        "health_check_interval": 30,
    }
    if watch is not None:
        found["redis_connect_func"] = watch.on_connect
    return found


def redis_region(
    target: RedisTarget,
    expiration_time: int,
    stats: CacheStats,
    keys: CacheKeys,
    options: RedisOptions = DEFAULT_OPTIONS,
    name: str = "smarter_domain.redis",
) -> tuple[CacheRegion, ResilientRedisProxy]:
    """A region on the compact backend (``backend``: dogpile's redis, redis_sentinel or
    redis_cluster backend, storing records) for ``target``, made safe by
    ``secure_redis_region``."""
    arguments: dict[str, Any] = {
        # An entry lives as long as it is fresh (its creation time is in the record too).
        "redis_expiration_time": expiration_time,
        "distributed_lock": True,
        "thread_local_lock": False,
        "lock_timeout": options.lock_timeout,
        "lock_sleep": options.lock_sleep,
        "lock_blocking_timeout": options.lock_timeout,
    }
    watch = ServerWatch(keys.namespace, stats, clustered=target.kind == "cluster")
    connection = connection_options(options, watch)
    if target.kind == "cluster":
        backend = REDIS_CLUSTER
        arguments["startup_nodes"] = target.cluster_nodes()
        arguments["connection_kwargs"] = target.cluster_options(connection)
    elif target.kind == "sentinel":
        backend = REDIS_SENTINEL
        arguments.update(
            sentinels=list(target.nodes),
            service_name=target.service_name,
            db=target.db,
            username=target.username,
            password=target.password,
            socket_timeout=options.socket_timeout,
            socket_connect_timeout=options.connect_timeout,
            sentinel_kwargs=target.sentinel_side(
                {
                    "socket_timeout": options.socket_timeout,
                    "socket_connect_timeout": options.connect_timeout,
                }
            ),
            connection_kwargs=target.sentinel_options(connection),
        )
    else:
        backend = REDIS
        arguments["connection_pool"] = redis_connection_pool(target.url, options, watch)
    region = make_region(name=name).configure(
        backend, expiration_time=expiration_time, arguments=arguments
    )
    guard = secure_redis_region(region, stats, keys, options)
    guard.server_watch = watch  # for the async front door's connections (``attach_async``)
    return region, guard


def secure_redis_region(
    region: CacheRegion, stats: CacheStats, keys: CacheKeys, options: RedisOptions
) -> ResilientRedisProxy:
    """Give a dogpile Redis region the record format (typed, never pickle) and the resilient,
    coherent proxy. An application's own region (any dogpile Redis backend) goes through here
    too, so it gets the same guarantees and the same entries."""
    backend = region.actual_backend
    if not isinstance(backend, RedisBackend):
        raise ConfigurationError(
            f"redis_region must use a dogpile Redis backend, not {type(backend).__name__}"
        )
    client = backend.writer_client
    # Read the master: a replica may not have an invalidation yet.
    backend.reader_client = client

    def flush_namespace(client: Any) -> None:
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
        clustered=isinstance(backend, RedisClusterBackend),
        max_value_bytes=options.max_value_bytes,
    )
    proxy.expiration_time = float(expiration)
    proxy.lease_ms = int(options.lock_timeout * 1000)
    proxy.lease_wait = float(options.lock_timeout)
    proxy.lease_sleep = options.lock_sleep
    # dogpile hands the proxy its CachedValues, which it stores as records (``backend``).
    region.serializer = None
    region.deserializer = None
    region.wrap(proxy)
    return proxy
