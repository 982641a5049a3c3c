"""Keeping Redis optional at run time: a circuit breaker, a dogpile proxy backend that turns
Redis failures into misses, and a lock that falls back to a local one.

dogpile lets a backend error reach the caller (dogpile.cache issue 189); here an outage costs
one short socket timeout, then Redis is skipped until ``retry_after`` has passed. Deletes that
could not reach Redis are kept and replayed before Redis serves anything again, so no entry
invalidated during an outage is read after it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dogpile.cache.api import (
    NO_VALUE,
    CacheMutex,
    CantDeserializeException,
    KeyType,
    SerializedReturnType,
)
from dogpile.cache.proxy import ProxyBackend
from dogpile.cache.region import value_version
from redis.crc import key_slot
from redis.exceptions import LockError, RedisClusterException, RedisError

from . import codec, scripts
from .keys import CacheKeys
from .scripts import generation_key
from .stats import CacheStats

log = logging.getLogger("smarter_domain.cache.redis")

# redis-py's cluster client raises RedisClusterException (not a RedisError) when it cannot
# reach the cluster or a slot is not covered.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
T = TypeVar("T")

# dogpile's own metadata header: anything else under our keys is foreign and a miss.
_METADATA = re.compile(rb'\{"ct": [0-9.eE+-]+, "v": [0-9]+\}\|')


class CircuitBreaker:
    """Closed: use Redis. Open: skip it until ``retry_after`` seconds have passed, then let
    one call try again. Logs once when an outage starts and once when it ends."""

    def __init__(self, retry_after: float = 2.0) -> None:
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    def allow(self) -> bool:
        """Closed: yes. Open: no, except one probe call each ``retry_after``."""
        if self._down_since is None:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        with self._lock:
            if now < self._retry_at:
                return False
            self._retry_at = now + self.retry_after  # this caller is the probe
            return True

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            self._retry_at = now + self.retry_after
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "Redis unavailable (%s: %s); serving from memory and the database, "
                    "retrying every %.1fs",
                    type(exc).__name__,
                    exc,
                    self.retry_after,
                )

    def success(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                log.warning("Redis is back after %.1fs", time.monotonic() - self._down_since)
                self._down_since = None


@dataclass(frozen=True, slots=True)
class Generations:
    """What a loader saw before reading the database: per key, the generation token. A fill
    is stored only if its key's token is still the same."""

    tokens: tuple[bytes, ...]


class ResilientRedisProxy(ProxyBackend):
    """Wraps dogpile's redis backend (the ``*_serialized`` methods, which byte backends use),
    and adds the coherent operations: generations, guarded fills, invalidations that bump
    generations and publish the keys.

    With ``clustered``, every script runs once per hash slot of the keys it is given (a
    script may only touch one slot), a multi-get is split by slot and pipelined per node,
    and invalidations go out on sharded pub/sub (``SPUBLISH``), whose receiver count covers
    every listener (they all subscribe on the shard that owns the channel)."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        stats: CacheStats,
        keys: CacheKeys,
        *,
        backend: Any = None,
        origin: str = "",
        generation_ttl: int = 3600,
        max_pending: int = 100_000,
        flush_namespace: Callable[[], None] | None = None,
        clustered: bool = False,
    ) -> None:
        self.breaker = breaker
        self.stats = stats
        self.keys = keys
        self._backend = backend  # the dogpile RedisBackend under any other proxies
        self.expiration_time = 0.0  # the region's; set by secure_redis_region
        self.origin = origin or uuid.uuid4().hex
        self.generation_ttl = generation_ttl
        self.max_pending = max_pending
        self._flush_namespace = flush_namespace
        self._pending: set[KeyType] = set()
        self._pending_overflow = False
        self._pending_lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self.clustered = clustered

    @property
    def pending_deletes(self) -> int:
        return len(self._pending)

    @property
    def backend(self) -> Any:
        return self._backend if self._backend is not None else self.proxied

    @property
    def client(self) -> Any:
        return self.backend.writer_client

    def _script(self, name: str, source: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.client.register_script(source)
        return script

    def _call(self, default: T, operation: Callable[[], T]) -> T:
        if not self.breaker.allow():
            return default
        try:
            if self.breaker.is_down or self._pending:
                self.replay_pending()
            result = operation()
        except REDIS_ERRORS as exc:
            self.stats.add("redis_errors")
            self.breaker.failure(exc)
            return default
        self.breaker.success()
        return result

    def deliver_pending(self) -> None:
        """Replay held-back invalidations now if Redis may be tried (never raises)."""
        if self._pending or self._pending_overflow:
            self._call(None, lambda: None)

    def replay_pending(self) -> None:
        """Deliver the invalidations an outage held back (raises if Redis still fails)."""
        with self._pending_lock:
            keys, self._pending = list(self._pending), set()
            overflow, self._pending_overflow = self._pending_overflow, False
        try:
            if overflow and self._flush_namespace is not None:
                self._flush_namespace()
            elif keys:
                self._invalidate_now(keys, publish=True)
        except BaseException:
            self._remember(keys, overflow)
            raise
        if keys or overflow:
            log.info("replayed %d cache invalidations missed during the outage", len(keys))

    def _remember(self, keys: Iterable[KeyType], overflow: bool = False) -> None:
        with self._pending_lock:
            self._pending.update(keys)
            if overflow or len(self._pending) > self.max_pending:
                self._pending_overflow = True
                self._pending.clear()

    # -- coherent operations ------------------------------------------------------------

    def _slots(self, keys: Sequence[str]) -> list[list[int]]:
        """Positions of ``keys`` grouped by hash slot (a single group unless clustered)."""
        if not self.clustered:
            return [list(range(len(keys)))]
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key_slot(key.encode()), []).append(i)
        return list(groups.values())

    def generations(self, keys: Sequence[str]) -> Generations | None:
        """The generation tokens of ``keys`` (None when Redis cannot be asked)."""

        def read() -> Generations:
            tokens = [b""] * len(keys)
            fresh = uuid.uuid4().hex
            script = self._script("generations", scripts.GENERATIONS)
            for group in self._slots(keys):
                found = script(
                    keys=[generation_key(keys[i]) for i in group],
                    args=[fresh, self.generation_ttl],
                )
                for i, token in zip(group, found, strict=True):
                    tokens[i] = bytes(token)
            return Generations(tuple(tokens))

        return self._call(None, read)

    def fill(self, items: Sequence[tuple[str, Any]], generations: Generations | None) -> list[bool]:
        """Store each value if its key was not invalidated since ``generations`` was read."""
        if generations is None or not items:
            return [False] * len(items)
        metadata = json.dumps({"ct": time.time(), "v": value_version}).encode("ascii")
        payloads = [metadata + b"|" + codec.dumps(value) for _, value in items]
        ttl = self.backend.redis_expiration_time or self.generation_ttl

        keys = [key for key, _ in items]

        def write() -> list[bool]:
            stored = [False] * len(items)
            script = self._script("fill", scripts.FILL)
            for group in self._slots(keys):
                flags = script(
                    keys=[k for i in group for k in (keys[i], generation_key(keys[i]))],
                    args=[
                        ttl,
                        *(generations.tokens[i] for i in group),
                        *(payloads[i] for i in group),
                    ],
                )
                for i, flag in zip(group, flags, strict=True):
                    stored[i] = bool(flag)
            return stored

        result = self._call([False] * len(items), write)
        refused = result.count(False)
        if refused:
            self.stats.add("fills_refused", refused)
        return result

    def _invalidate_now(self, keys: list[KeyType], publish: bool, ack: str = "") -> int:
        message = b""
        if publish:
            message = json.dumps({"o": self.origin, "t": time.time(), "k": keys, "a": ack}).encode()
        token = uuid.uuid4().hex
        script = self._script("invalidate", scripts.INVALIDATE)
        # One server: the script publishes too (one round trip). A cluster: one script per
        # slot, then one sharded publish.
        in_script = [self.keys.channel(), message] if publish and not self.clustered else []
        receivers = 0
        for group in self._slots(keys):
            receivers = script(
                keys=[k for i in group for k in (keys[i], generation_key(keys[i]))],
                args=[token, self.generation_ttl, *in_script],
            )
        if publish and self.clustered:
            receivers = self.client.spublish(self.keys.channel(), message)
        return int(receivers)

    def invalidate(self, keys: Sequence[str], ack_timeout: float = 0.0) -> bool:
        """Delete, bump generations and publish; with ``ack_timeout``, wait (that long at
        most) until every subscribed process has dropped the keys. Returns whether that was
        confirmed; when Redis cannot be reached the keys are kept, to be replayed."""
        keys = list(keys)
        if not keys:
            return True
        ack = f"{self.keys.namespace}:ack:{uuid.uuid4().hex}" if ack_timeout > 0 else ""
        receivers = self._call(None, lambda: self._invalidate_now(keys, True, ack))
        if receivers is None:
            self._remember(keys)
            return False
        if ack and not receivers:
            # Our own listener should have heard it: the subscription is elsewhere (a moved
            # cluster slot) or down, so nobody confirmed anything.
            self.stats.add("ack_timeouts")
            return False
        if ack:
            return self._wait_for_acks(ack, receivers, ack_timeout)
        return True

    def _wait_for_acks(self, ack: str, expected: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        received = 0

        def pop() -> bool:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            return self.client.blpop([ack], timeout=max(remaining, 0.001)) is not None

        while received < expected and self._call(False, pop):
            received += 1
        if received < expected:
            self.stats.add("ack_timeouts")
            log.debug("%d of %d processes acknowledged an invalidation", received, expected)
            return False
        return True

    def get_value(self, key: str) -> Any:
        """The fresh value of ``key`` in Redis, or NO_VALUE (missing, expired, foreign)."""
        raw = self.get_serialized(key)
        if raw is NO_VALUE:
            return NO_VALUE
        header, _, payload = bytes(raw).partition(b"|")
        created = json.loads(header)["ct"]
        if self.expiration_time and time.time() - created > self.expiration_time:
            return NO_VALUE
        try:
            return codec.loads(payload)
        except CantDeserializeException:
            self.stats.add("decode_errors")
            return NO_VALUE

    # -- dogpile's backend interface ----------------------------------------------------

    def _checked(self, value: SerializedReturnType) -> SerializedReturnType:
        if value is NO_VALUE or _METADATA.match(value):
            return value
        self.stats.add("decode_errors")
        log.warning("foreign cache entry ignored (%d bytes)", len(value))
        return NO_VALUE

    def get_serialized(self, key: KeyType) -> SerializedReturnType:
        return self._checked(self._call(NO_VALUE, lambda: self.proxied.get_serialized(key)))

    def get_serialized_multi(self, keys: Iterable[KeyType]) -> Sequence[SerializedReturnType]:
        keys = list(keys)
        if self.clustered:  # MGET per slot, pipelined: one round trip per node

            def read() -> list[Any]:
                found = self.backend.reader_client.mget_nonatomic(keys)
                return [NO_VALUE if value is None else value for value in found]

        else:

            def read() -> list[Any]:
                return list(self.proxied.get_serialized_multi(keys))

        values = self._call(None, read)
        if values is None:
            return [NO_VALUE] * len(keys)
        return [self._checked(value) for value in values]

    # Writes use SET ... EX (dogpile's backend calls SETEX, deprecated in redis-py 8).
    def set_serialized(self, key: KeyType, value: bytes) -> None:
        backend = self.backend
        ttl = backend.redis_expiration_time or None
        self._call(None, lambda: backend.writer_client.set(key, value, ex=ttl))

    def set_serialized_multi(self, mapping: Mapping[KeyType, bytes]) -> None:
        backend = self.backend
        ttl = backend.redis_expiration_time or None

        def write() -> None:
            pipe = backend.writer_client.pipeline(transaction=False)
            for key, value in mapping.items():
                pipe.set(key, value, ex=ttl)
            pipe.execute()

        self._call(None, write)

    def delete(self, key: KeyType) -> None:
        self.delete_multi([key])

    def delete_multi(self, keys: Iterable[KeyType]) -> None:
        self.invalidate(list(keys))

    def get_mutex(self, key: KeyType) -> CacheMutex | None:
        mutex = self.proxied.get_mutex(key)
        return None if mutex is None else FallbackMutex(mutex, self.breaker, self.stats)


class FallbackMutex(CacheMutex):
    """The distributed lock while Redis answers; a process-local lock while it does not.

    A lock whose holder died expires after the backend's ``lock_timeout``; a waiter that
    gives up (``lock_blocking_timeout``) goes on and loads the value itself.
    """

    __slots__ = ("_breaker", "_local", "_redis", "_state", "_stats")

    def __init__(self, redis_mutex: Any, breaker: CircuitBreaker, stats: CacheStats) -> None:
        self._redis = redis_mutex
        self._local = threading.Lock()
        self._breaker = breaker
        self._stats = stats
        self._state = threading.local()  # which lock this thread holds: dogpile shares us

    @property
    def _held(self) -> str | None:
        return getattr(self._state, "held", None)

    @_held.setter
    def _held(self, value: str | None) -> None:
        self._state.held = value

    def acquire(self, wait: bool = True) -> bool:
        if self._breaker.allow():
            try:
                acquired = bool(self._redis.acquire(wait))
            except REDIS_ERRORS as exc:
                self._stats.add("redis_errors")
                self._breaker.failure(exc)
            else:
                self._breaker.success()
                if acquired:
                    self._held = "redis"
                    return True
                if not wait:
                    return False
                log.warning("gave up waiting for a cache lock; loading without it")
                self._held = None
                return True
        acquired = self._local.acquire(wait)
        if acquired:
            self._held = "local"
        return acquired

    def release(self) -> None:
        held, self._held = self._held, None
        if held == "local":
            self._local.release()
        elif held == "redis":
            try:
                self._redis.release()
            except LockError:
                log.info("a cache lock expired before its holder released it")
            except REDIS_ERRORS as exc:
                self._stats.add("redis_errors")
                self._breaker.failure(exc)

    def locked(self) -> bool:
        if self._held == "local" or self._local.locked():
            return True
        try:
            return bool(self._redis.locked())
        except REDIS_ERRORS:
            return False
