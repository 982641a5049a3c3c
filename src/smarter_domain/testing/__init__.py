"""Test support for smarter-domain and for applications built on it: real PostgreSQL and
Redis servers (single, Cluster, Sentinel) on loopback, factory-boy factories, and a pytest
plugin (loaded automatically through the ``pytest11`` entry point).

The names are imported on first use (PEP 562): the plugin is loaded by every pytest run of an
environment that has the library, and must not need the ``testing`` extra (factory-boy,
psycopg, redis-py) until a test asks for a server or a factory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .factories import AccountFactory, UserFactory, UserProfileFactory
    from .servers import (
        PostgresServer,
        RedisClusterServers,
        RedisSentinelServers,
        RedisServer,
        ServerNotAvailable,
    )

__all__ = [
    "AccountFactory",
    "PostgresServer",
    "RedisClusterServers",
    "RedisSentinelServers",
    "RedisServer",
    "ServerNotAvailable",
    "UserFactory",
    "UserProfileFactory",
]

_MODULE_OF = {
    "AccountFactory": ".factories",
    "UserFactory": ".factories",
    "UserProfileFactory": ".factories",
    "PostgresServer": ".servers",
    "RedisClusterServers": ".servers",
    "RedisSentinelServers": ".servers",
    "RedisServer": ".servers",
    "ServerNotAvailable": ".servers",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}{module}", fromlist=[name]), name)
    globals()[name] = value
    return value
