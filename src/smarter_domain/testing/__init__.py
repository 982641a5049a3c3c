"""Test support for smarter-domain and for applications built on it: real PostgreSQL and
Redis servers (single, Cluster, Sentinel) on loopback, factory-boy factories, and a pytest
plugin (loaded automatically through the ``pytest11`` entry point)."""

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
