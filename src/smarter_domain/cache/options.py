"""The tiers' settings and the memory region: what a domain needs whether or not Redis is
installed (the ``redis`` extra), so ``Domain`` imports redis-py only when it is given a Redis."""

from __future__ import annotations

from dataclasses import dataclass

from dogpile.cache import CacheRegion, make_region
from dogpile.util import NameRegistry

from .protocol import DEFAULT_MAX_VALUE_BYTES
from .store import MemoryStore


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the Redis tier talks to Redis. The defaults favour failing fast: a Redis that
    does not answer in ``socket_timeout`` is treated as down for ``retry_after`` seconds."""

    socket_timeout: float = 0.25
    connect_timeout: float = 0.25
    retry_after: float = 2.0
    lock_timeout: int = 10
    """How long a loader's lease on a missed key lasts if it never fills (it died), and how
    long the other processes wait for its fill before loading themselves."""
    lock_sleep: float = 0.01
    """How long a miss waiting for another process's fill sleeps between two looks."""
    max_connections: int = 64
    ack_timeout: float = 0.5
    """How long a write waits for the other processes to confirm they dropped its keys."""
    listen: bool = True
    """Run the invalidation listener (cross-process coherence of the memory tier)."""
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    """Entries larger than this are neither stored in nor read from Redis."""
    heartbeat: float = 5.0
    """How often (seconds) the listener publishes this process's heartbeat for the fleet view
    (``cache/fleet.py``: ``smarter-domain cache stats``, ``cache top``); 0: never."""


def memory_region(
    expiration_time: int, maxsize: int = 10_000, name: str = "smarter_domain.memory"
) -> CacheRegion:
    return make_region(name=name).configure(
        "dogpile.cache.memory",
        expiration_time=expiration_time,
        arguments={"cache_dict": MemoryStore(maxsize)},
    )


def renew_region_locks(region: CacheRegion) -> None:
    """In a forked child (``forking``): dogpile keeps one mutex per key being created in the
    region's name registry (a ``FallbackMutex`` for our Redis region, whose local lock a
    thread of the parent may hold, or a plain lock), and the registry has a lock of its own.
    Threads of the parent do not exist in the child and would never release them, so the
    child starts with an empty registry. (A Redis lock a parent's thread holds is released
    by that thread, in the parent.)"""
    if "_lock_registry" in vars(region):  # configured
        region._lock_registry = NameRegistry(region._create_mutex)
