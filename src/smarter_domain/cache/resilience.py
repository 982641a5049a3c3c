"""Keeping Redis optional at run time: a circuit breaker, a dogpile proxy backend that turns
Redis failures into misses, and a lock that falls back to a local one.

dogpile lets a backend error reach the caller (dogpile.cache issue 189); here an outage costs
one short socket timeout, then Redis is skipped until ``retry_after`` has passed. Deletes that
could not reach Redis are kept and replayed before Redis serves anything again, so no entry
invalidated during an outage is read after it.

Whatever sits under a key is untrusted input (anyone who can write to Redis can put it there):
a value that is not a well-formed entry of ours (foreign bytes, a pickle, a broken header, an
oversized string, a hash or list where a string belongs) is a miss, counted in
``decode_errors`` and logged once per key. It never raises and never opens the circuit
breaker: a server that answers ``WRONGTYPE`` is up, and treating it as down would stop this
process's invalidations while the other processes go on trusting their memory tiers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import operator
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from dogpile.cache.api import (
    NO_VALUE,
    CachedValue,
    CacheMutex,
    CacheReturnType,
    CantDeserializeException,
    KeyType,
)
from dogpile.cache.proxy import ProxyBackend
from redis.crc import key_slot
from redis.exceptions import (
    LockError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.lock import Lock

from . import codec, scripts
from .backend import cached_value, read_raw, read_slices, record_of, write_records
from .concurrency import in_greenlet, pause
from .keys import CacheKeys
from .protocol import (
    DEFAULT_MAX_VALUE_BYTES,
    UNAVAILABLE,
    Generations,
    Miss,
    WarnOnce,
)
from .scripts import ack_keys, generation_key, hold_key, lease_key
from .stats import CacheStats
from .wire import Wire

log = logging.getLogger("smarter_domain.cache.redis")

# redis-py's cluster client raises RedisClusterException (not a RedisError) when it cannot
# reach the cluster or a slot is not covered.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)
T = TypeVar("T")

_TYPED_DECODERS = codec.typed_decoders()
_kind_of = operator.itemgetter(slice(0, len(codec.RECORD) + 1))  # of a record: its typed prefix
_body_of = operator.itemgetter(slice(len(codec.RECORD) + 1, None))  # and what follows it
_value_of = operator.itemgetter(1)  # of a decoded record: (created, value)

EARLIER_FORMAT = re.compile(rb'\{"ct": [0-9.eE+-]+, "v": [0-9]+\}\|' + re.escape(codec.MAGIC))
"""How the entries of the first release start: dogpile's JSON metadata header, then the typed
format's first version."""

ACK_POLL = 0.05
"""The longest one blocking pop for acknowledgements waits: shorter than any socket timeout."""


def is_foreign_type(exc: BaseException) -> bool:
    """Redis answered that a key holds another type (a hash where a string belongs): the value
    is foreign, the server is fine."""
    return isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc)


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
                    extra={
                        "event": "redis_unavailable",
                        "tier": "redis",
                        "error": type(exc).__name__,
                        "retry_after_s": self.retry_after,
                    },
                )

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock (a thread of the parent may have held
        the old one at the fork). The state is kept: whether Redis was down a moment ago is as
        true of the child as of the parent."""
        self._lock = threading.Lock()

    def success(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                down = time.monotonic() - self._down_since
                log.warning(
                    "Redis is back after %.1fs",
                    down,
                    extra={"event": "redis_back", "tier": "redis", "down_s": round(down, 3)},
                )
                self._down_since = None


_NOT_A_RECORD = object()


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
        flush_namespace: Callable[[Any], None] | None = None,
        clustered: bool = False,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
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
        self._replaying = 0  # keys taken from ``_pending`` by a replay still under way
        self._pending_lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self.clustered = clustered
        self.max_value_bytes = max_value_bytes
        self._warn_once = WarnOnce(log)
        self._counter = itertools.count()
        self._lookup_script: Any = None  # scripts.lookup with this proxy's settings
        self._wire: Wire | None = None  # the client's hot commands (``wire``)
        self._aio: Any = None  # the async front door's client (``attach_async``)
        self.server_watch: Any = None  # the restart watch of the connections (``regions``)
        self._background: set[Any] = set()  # tasks giving back leases of cancelled lookups
        self._aio_wire: Any = None
        self.lease_ms = 10_000
        """How long a loader's lease lasts if it never fills (it died): ``RedisOptions``."""
        self.lease_wait = 10.0
        """How long a miss waits for another loader's fill before loading itself."""
        self.lease_sleep = 0.01
        """How long it waits between two looks."""

    @property
    def pending_deletes(self) -> int:
        """Invalidations held back by an outage, a replay under way included (it puts them
        back if it fails); a namespace flush owed (too many were held back) counts as one."""
        return len(self._pending) + self._replaying + self._pending_overflow

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``).

        - A new origin: acknowledgements count distinct origins (``_wait_for_acks``) and a
          listener ignores the messages of its own origin, so a child that kept its parent's
          would neither count as a process of its own nor drop what its parent invalidates.
        - The invalidations an outage held back are forgotten: they are the parent's writes,
          which the parent (alive, its listener ticking) replays as soon as Redis is back.
          Replaying them from every child as well would multiply them by the number of
          workers (and an overflow's namespace flush with them, which refuses the fills of
          every load under way), and the child needs none of them for itself: its memory tier
          starts empty, and its own reads are no staler than another process's (in
          ``strict`` consistency a write that could not reach Redis was refused or is held
          off by its hold; in ``available``, other processes may serve the old value until
          the replay, as documented).
        - New locks, since threads of the parent (which do not exist here) may have held
          them at the fork. The connection pools renew themselves: redis-py's pools compare
          their pid with the process's on every checkout and start afresh in a child.
        """
        self.origin = uuid.uuid4().hex
        self._pending_lock = threading.Lock()
        self._pending = set()
        self._pending_overflow = False
        self._replaying = 0
        self.breaker.after_fork_in_child()
        self._warn_once.after_fork_in_child()

    @property
    def backend(self) -> Any:
        return self._backend if self._backend is not None else self.proxied

    def attach_async(self, client: Any, wire: Any) -> None:
        """Talk through ``client`` and ``wire`` (``async_redis.AwaitingRedis`` and
        ``AwaitingWire``: a redis.asyncio client, awaited) when called from a greenlet of the
        async front door; the blocking client still serves threads (the listener's replays)."""
        self._aio, self._aio_wire = client, wire

    @property
    def async_client(self) -> Any:
        """The async front door's ``AwaitingRedis`` (None for a sync-only domain)."""
        return self._aio

    @property
    def client(self) -> Any:
        if self._aio is not None and in_greenlet():
            return self._aio
        return self.backend.writer_client

    def close(self) -> None:
        """Give back the connections the wire keeps (to an application's pool, too)."""
        if self._wire is not None:
            self._wire.close()

    @property
    def wire(self) -> Any:
        """The client's scripts and multi-gets, sent on connections kept for them (a
        ``Wire``; in a greenlet of the async front door, its ``AwaitingWire``)."""
        if self._aio_wire is not None and in_greenlet():
            return self._aio_wire
        wire = self._wire
        if wire is None:
            wire = self._wire = Wire(self.client)
        return wire

    def _script(self, name: str, source: str) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self.backend.writer_client.register_script(source)
        return script

    def _run(self, name: str, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script ``source`` (registered once as ``name``) over ``keys`` and ``args``."""
        return self._evalsha(self._script(name, source), len(keys), *keys, *args)

    def _call(
        self, default: T, operation: Callable[[], T], key: str = "", force: bool = False
    ) -> T:
        """``operation()``, or ``default`` when Redis fails or the breaker is open (``force``:
        try anyway; a write that is refused otherwise is worth one socket timeout)."""
        if not (self.breaker.allow() or force):
            return default
        try:
            if self.breaker.is_down or self._pending or self._pending_overflow:
                self.replay_pending()
            result = operation()
        except REDIS_ERRORS as exc:
            if is_foreign_type(exc):  # Redis is up; the value under the key is not ours
                self.foreign(key, "holds a value of another Redis type")
                return default
            self.stats.add("redis_errors")
            self.breaker.failure(exc)
            return default
        except Exception as exc:
            # Nothing should get here; if something does, it is treated as an outage (an
            # invalidation is kept for replay), never passed on and never lost.
            log.exception(
                "unexpected error talking to Redis",
                extra={"event": "redis_unexpected_error", "tier": "redis"},
            )
            self.stats.add("redis_errors")
            self.breaker.failure(exc)
            return default
        self.breaker.success()
        return result

    def foreign(self, key: str, problem: str) -> None:
        """Count (and log once per key) a value under one of our keys that is not ours."""
        self.stats.add("decode_errors")
        self._warn_once(
            key,
            "cache entry %s %s: ignored, read as a miss",
            key or "-",
            problem,
            extra={"event": "foreign_value", "tier": "redis", "key_kind": self.keys.kind_of(key)},
        )

    def deliver_pending(self) -> None:
        """Replay held-back invalidations now if Redis may be tried (never raises)."""
        if self._pending or self._pending_overflow:
            self._call(None, lambda: None)

    def replay_pending(self) -> None:
        """Deliver the invalidations an outage held back (raises if Redis still fails)."""
        with self._pending_lock:
            keys, self._pending = list(self._pending), set()
            overflow, self._pending_overflow = self._pending_overflow, False
            in_flight = len(keys) + overflow
            self._replaying += in_flight
        try:
            if overflow and self._flush_namespace is not None:
                self._flush_namespace(self.client)
            elif keys:
                self._invalidate_now(keys)
        except BaseException:
            self._remember(keys, overflow, replayed=in_flight)
            raise
        with self._pending_lock:
            self._replaying -= in_flight
        if keys or overflow:
            log.info(
                "replayed %d cache invalidations missed during the outage",
                len(keys),
                extra={"event": "invalidations_replayed", "count": len(keys), "flush": overflow},
            )

    def _remember(self, keys: Iterable[KeyType], overflow: bool = False, replayed: int = 0) -> None:
        """Hold ``keys`` back for a replay (``replayed``: how many of a failed replay's were
        counted as under way, no longer)."""
        with self._pending_lock:
            self._replaying -= replayed
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

    def fresh_id(self) -> str:
        """A new token or lease id, unique across processes (the origin, renewed in a forked
        child) and within this one (a counter): cheaper than a uuid on the miss path."""
        return f"{self.origin}{next(self._counter):x}"

    def _lookup_call(self, key: str) -> tuple[Any, list[str], str]:
        """The lookup script, its keys and a new lease id, for one lookup of ``key``."""
        script = self._lookup_script
        if script is None:
            source = scripts.lookup(
                codec.RECORD, self.max_value_bytes, self.generation_ttl, self.lease_ms
            )
            script = self._lookup_script = self.backend.writer_client.register_script(source)
        keys = (
            [key, generation_key(key), hold_key(key), lease_key(key)] if self.clustered else [key]
        )
        return script, keys, self.fresh_id()

    def lookup(self, key: str, again: bool = True) -> Any:
        """One round trip (``scripts.LOOKUP``): the value of ``key`` in Redis, or a ``Miss``
        saying which generation token a fill must find and whether this caller holds the
        key's lease. ``UNAVAILABLE`` when Redis cannot be asked."""
        script, keys, lease_id = self._lookup_call(key)
        found = self._call(None, lambda: self._evalsha(script, len(keys), *keys, lease_id), key)
        if found is None:
            return UNAVAILABLE
        answer = self._answer(key, found, lease_id)
        if answer is not _NOT_A_RECORD:
            return answer
        # A record's prefix, not a record: drop it (a delete never makes anything stale) and
        # look again, once (``again``: a forger re-planting one cannot make this recurse).
        self.foreign(key, "is not of the cache's typed format")
        if self._call(None, lambda: self.client.delete(key), key) is None:
            return UNAVAILABLE
        if not again:
            return UNAVAILABLE
        retried = self.lookup(key, again=False)
        return retried if isinstance(retried, Miss) else UNAVAILABLE

    def _answer(self, key: str, found: Any, lease_id: str) -> Any:
        """What the lookup script's reply ``found`` means: the value, a ``Miss``, or
        ``_NOT_A_RECORD`` (bytes under the key that only look like a record)."""
        if type(found) is bytes:
            try:
                return codec.read_record(found)[1]
            except CantDeserializeException:
                return _NOT_A_RECORD
        if found[0] == 2:
            self._foreign_raw(key, bytes(found[3]), int(found[4]))
        return Miss(bytes(found[1]), int(found[2]), lease_id)

    async def lookup_async(self, key: str) -> Any:
        """``lookup`` on the async front door's client, awaited natively (no greenlet: a
        Redis-tier hit costs what the asyncio client costs). ``NO_VALUE`` when this path
        does not answer: Redis is considered down, invalidations wait for their replay, the
        script is not loaded on the server, or the entry is not a record; the caller then
        runs ``lookup`` in a greenlet, which deals with each."""
        if self.breaker.is_down or self._pending or self._pending_overflow:
            return NO_VALUE
        script, keys, lease_id = self._lookup_call(key)
        aio = self._aio
        try:
            if aio.fast is not None:  # its own connection (``async_wire``)
                found = await aio.fast.script(script, len(keys), *keys, lease_id)
            else:
                found = await aio.current().evalsha(script.sha, len(keys), *keys, lease_id)
        except NoScriptError:
            return NO_VALUE
        except asyncio.CancelledError:
            # The caller was cancelled: the script may have run and given it the key's lease,
            # which the processes waiting for it would wait out. Give it back (only this
            # lease id's: a no-op if it was not taken), in the background.
            self._give_back_later(key, lease_id)
            raise
        except REDIS_ERRORS as exc:
            if is_foreign_type(exc):
                self.foreign(key, "holds a value of another Redis type")
                return UNAVAILABLE
            self.stats.add("redis_errors")
            self.breaker.failure(exc)
            return UNAVAILABLE
        except Exception as exc:  # as ``_call``: an outage, never passed on
            log.exception(
                "unexpected error talking to Redis",
                extra={"event": "redis_unexpected_error", "tier": "redis"},
            )
            self.stats.add("redis_errors")
            self.breaker.failure(exc)
            return UNAVAILABLE
        self.breaker.success()
        answer = self._answer(key, found, lease_id)
        return NO_VALUE if answer is _NOT_A_RECORD else answer

    def _give_back_later(self, key: str, lease_id: str) -> None:
        from .concurrency import spawn

        task = asyncio.get_running_loop().create_task(spawn(self.give_back, key, lease_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _evalsha(self, script: Any, numkeys: int, *arguments: Any) -> Any:
        if self._aio_wire is not None and in_greenlet():
            return self._aio_wire.script(script, numkeys, *arguments)
        return (self._wire or self.wire).script(script, numkeys, *arguments)

    def generations(self, keys: Sequence[str]) -> Generations | None:
        """The generation tokens of ``keys`` (None when Redis cannot be asked)."""

        def read() -> Generations:
            tokens = [b""] * len(keys)
            fresh = self.fresh_id()
            for group in self._slots(keys):
                found = self._run(
                    "generations",
                    scripts.GENERATIONS,
                    [generation_key(keys[i]) for i in group],
                    [fresh, self.generation_ttl],
                )
                for i, token in zip(group, found, strict=True):
                    tokens[i] = bytes(token)
            return Generations(tuple(tokens))

        return self._call(None, read)

    def fill(
        self,
        items: Sequence[tuple[str, Any]],
        generations: Generations | None,
        lease_id: str = "",
        ttl: float | None = None,
    ) -> list[bool]:
        """Store each value if its key was not invalidated since ``generations`` was read and
        no write holds it off (``scripts.FILL``), for ``ttl`` seconds (the region's time to
        live by default); give back ``lease_id``'s leases."""
        if generations is None or not items:
            return [False] * len(items)
        created = time.time()
        payloads = [codec.record(value, created) for _, value in items]
        for i, payload in enumerate(payloads):
            if len(payload) > self.max_value_bytes:
                # Never read back (see LOOKUP), so never stored: the token cannot match.
                self._warn_once(
                    items[i][0],
                    "cache entry %s too large to cache",
                    items[i][0],
                    extra={
                        "event": "value_too_large",
                        "tier": "redis",
                        "key_kind": self.keys.kind_of(items[i][0]),
                        "size": len(payload),
                    },
                )
                payloads[i] = b""
        milliseconds = max(
            1, round((ttl if ttl is not None else self.expiration_time or 600) * 1000)
        )
        keys = [key for key, _ in items]

        def write() -> list[bool]:
            stored = [False] * len(items)
            for group in self._slots(keys):
                flags = self._run(
                    "fill",
                    scripts.FILL,
                    [k for i in group for k in self._fill_keys(keys[i])],
                    [
                        milliseconds,
                        lease_id,
                        *(generations.tokens[i] if payloads[i] else b"-" for i in group),
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

    def give_back(self, key: str, lease_id: str) -> None:
        """Return a lease without a fill (the loader failed, or a write holds the key off),
        so the processes waiting for it look again at once instead of at its expiry."""
        self._call(
            None,
            lambda: self._run("fill", scripts.FILL, self._fill_keys(key), [1, lease_id, b"-", b""]),
            key,
        )

    @staticmethod
    def _fill_keys(key: str) -> tuple[str, str, str, str]:
        return key, generation_key(key), hold_key(key), lease_key(key)

    def get_many(self, slices: Iterable[Sequence[str]]) -> tuple[list[Any], list[int]]:
        """The values in Redis of the keys of ``slices`` (consecutive slices of one list of
        keys, each sent as soon as it is yielded: see ``Wire.pipeline``), in their order
        (``NO_VALUE`` where a key is missing, or foreign there), and the positions of those.
        One MGET per slice, pipelined (one per node on a cluster). ``slices`` is read to its
        end even when Redis is not asked."""
        slices = iter(slices)
        sent: list[Sequence[str]] = []
        failed: list[Exception] = []

        def tracked() -> Iterator[Sequence[str]]:
            while True:
                try:
                    some = next(slices)
                except StopIteration:
                    return
                except Exception as exc:  # the caller's, not Redis's: raised below
                    failed.append(exc)
                    return
                sent.append(some)
                yield some

        values = self._call(None, lambda: read_slices(self.client, tracked(), self.wire))
        if failed:
            raise failed[0]
        sent.extend(slices)  # what Redis was not asked for (nothing when it answered)
        keys = sent[0] if len(sent) == 1 else [key for some in sent for key in some]
        if values is None:
            return [NO_VALUE] * len(keys), list(range(len(keys)))
        read, typed, limit = codec.read_record, _TYPED_DECODERS, self.max_value_bytes
        if values and None not in values:  # all there: of one kind, decoded in one pass of C
            kinds = set(map(_kind_of, values))
            decoder = typed.get(kinds.pop()) if len(kinds) == 1 else None
            if decoder is not None and max(map(len, values)) <= limit:
                with contextlib.suppress(Exception, RecursionError):  # else: one by one, below
                    return list(map(_value_of, map(decoder.decode, map(_body_of, values)))), []
        found: list[Any] = []
        missing: list[int] = []
        for position, (key, raw) in enumerate(zip(keys, values, strict=True)):
            if raw is None:
                found.append(NO_VALUE)
                missing.append(position)
                continue
            try:
                if len(raw) > limit:
                    raise CantDeserializeException()  # neither read nor stored
                decoder = typed.get(_kind_of(raw))
                found.append(read(raw)[1] if decoder is None else decoder.decode(_body_of(raw))[1])
            except (Exception, RecursionError):  # whatever a hostile record triggers
                self._foreign_raw(key, raw)
                found.append(NO_VALUE)
                missing.append(position)
        return found, missing

    def _foreign_raw(self, key: str, raw: bytes, size: int | None = None) -> None:
        """Count (log once) a value read under ``key`` that is not a record of this format
        (``raw``: its first bytes at least; ``size``: its length, -1 for another Redis type).
        An entry of the first release's format (dogpile's JSON header) is only a miss, never
        a warning: the next fill replaces it."""
        size = len(raw) if size is None else size
        if size < 0:
            self.foreign(key, "holds a value of another Redis type")
        elif size > self.max_value_bytes:
            self.foreign(key, f"is too large ({size} bytes)")
        elif EARLIER_FORMAT.match(raw):
            log.debug(
                "cache entry %s of an earlier format: read as a miss",
                key,
                extra={"event": "earlier_format", "key_kind": self.keys.kind_of(key)},
            )
        else:
            self.foreign(key, "is not of the cache's typed format")

    def _message(self, keys: list[KeyType], ack: str) -> bytes:
        return json.dumps({"o": self.origin, "t": time.time(), "k": keys, "a": ack}).encode()

    def _publish_script(
        self,
        name: str,
        source: str,
        keys: list[KeyType],
        per_key: Callable[[str], tuple[str, ...]],
        args: list[Any],
        ack: str,
    ) -> tuple[int, bool, bool]:
        """Run a script that publishes over ``keys`` (each with ``per_key(key)``'s keys):
        (receivers, whether any group returned "lost", whether every receiver acknowledged
        already). One server: the script publishes too and sets how many acknowledgements
        ``ack`` expects, and the first wait for them is pipelined with it (one round trip
        when they come quickly). A cluster: one script per slot, one sharded publish, then
        the expectation (``scripts.EXPECT``) on the acknowledgements' own slot."""
        message = self._message(keys, ack)
        script = self._script(name, source)
        if not self.clustered:
            flat = [k for key in keys for k in per_key(key)]
            tail = [self.keys.channel(), message]
            if not ack:
                result = self._evalsha(script, len(flat), *flat, *args, *tail)
                done = False
            else:
                flat += ack_keys(ack)
                result, done = self._script_then_wait(script, flat, [*args, *tail, "1"], ack)
            if isinstance(result, list):  # RELEASE: {receivers, lost}
                return int(result[0]), bool(result[1]), done
            return int(result), False, done
        lost = False
        for group in self._slots(keys):
            group_keys = [k for i in group for k in per_key(keys[i])]
            result = self._evalsha(script, len(group_keys), *group_keys, *args)
            if isinstance(result, list):
                lost = lost or bool(result[1])
        receivers = int(self.client.spublish(self.keys.channel(), message))
        if ack:
            self._run("expect", scripts.EXPECT, ack_keys(ack), [receivers])
        return receivers, lost, False

    def _script_then_wait(
        self, script: Any, keys: list[str], args: list[Any], ack: str
    ) -> tuple[Any, bool]:
        """The script, and a first short wait for all its acknowledgements, in one round
        trip: (the script's result, whether they all came)."""
        done = ack_keys(ack)[2]
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            pipe.execute_command("BLPOP", done, ACK_POLL)
            result, popped = pipe.execute(raise_on_error=False)
            if isinstance(result, NoScriptError) and attempt == 0:
                script.sha = self.client.script_load(script.script)
                continue
            if isinstance(result, Exception):
                raise result
            if isinstance(popped, Exception):
                raise popped
            return result, popped is not None
        raise AssertionError("unreachable")

    @staticmethod
    def _entry_and_token(key: str) -> tuple[str, str]:
        return key, generation_key(key)

    @staticmethod
    def _entry_token_and_holds(key: str) -> tuple[str, str, str]:
        return key, generation_key(key), scripts.hold_key(key)

    def _invalidate_now(self, keys: list[KeyType], ack: str = "") -> tuple[int, bool]:
        receivers, _, done = self._publish_script(
            "invalidate",
            scripts.INVALIDATE,
            keys,
            self._entry_and_token,
            [self.fresh_id(), self.generation_ttl],
            ack,
        )
        return receivers, done

    def invalidate(
        self, keys: Sequence[str], ack_timeout: float = 0.0, trust_window: float = 0.0
    ) -> bool:
        """Delete, bump generations and publish; with ``ack_timeout``, wait (that long at
        most) until every subscribed process has dropped the keys, and when some did not
        confirm, until ``trust_window`` after the publish (no listener trusts its memory tier
        longer without hearing it). Returns whether every process confirmed; when Redis cannot
        be reached the keys are kept, to be replayed."""
        keys = list(keys)
        if not keys:
            return True
        ack = self.keys.new_ack() if ack_timeout > 0 else ""

        def send() -> tuple[int, bool, float]:
            published = time.monotonic()
            receivers, done = self._invalidate_now(keys, ack)
            return receivers, done, published

        sent = self._call(None, send)
        if sent is None:
            self._remember(keys)
            if trust_window:
                pause(trust_window)
            return False
        return self._confirm(ack, sent[0], ack_timeout, sent[2], trust_window, sent[1])

    def prepare(
        self, keys: Sequence[str], ack_timeout: float, hold: float, trust_window: float = 0.0
    ) -> str | None:
        """Before a commit: delete the keys, add this writer's hold-off to each (no fill is
        stored while one is live: ``scripts.hold_key``) for ``hold`` seconds at most, publish,
        and wait for every process to drop them (as ``invalidate``). Returns the hold's id,
        for ``release``; None when Redis could not be reached (nothing is kept for replay: the
        write is refused, or invalidated after its commit)."""
        keys = list(keys)
        hold_id = self.fresh_id()
        ack = self.keys.new_ack() if ack_timeout > 0 else ""

        def send() -> tuple[int, bool, float]:
            published = time.monotonic()
            args = [hold_id, int(hold * 1000), self.fresh_id(), self.generation_ttl]
            receivers, _, done = self._publish_script(
                "hold", scripts.HOLD, keys, self._entry_token_and_holds, args, ack
            )
            return receivers, done, published

        sent = self._call(None, send, force=True)
        if sent is None:
            return None
        self._confirm(ack, sent[0], ack_timeout, sent[2], trust_window, sent[1])
        return hold_id

    def release(
        self, keys: Sequence[str], hold_id: str, ack_timeout: float, trust_window: float = 0.0
    ) -> None:
        """After the commit: drop the keys once more, end this writer's hold-off (only its
        own), publish. While the hold stood no process could cache the old value, so nobody
        is waited for, unless the hold was gone (expired, or Redis lost it): then a fill may
        have been stored meanwhile, and the keys are invalidated again, confirmed as
        ``invalidate`` does. When Redis cannot be reached, the keys are kept for replay (the
        hold expires by itself)."""
        keys = list(keys)

        def send() -> bool:
            args = [hold_id, self.fresh_id(), self.generation_ttl]
            _, lost, _ = self._publish_script(
                "release", scripts.RELEASE, keys, self._entry_token_and_holds, args, ""
            )
            return lost

        lost = self._call(None, send, force=True)
        if lost is None:
            self._remember(keys)
        elif lost:
            log.info(
                "a write's hold-off was gone at its release; invalidating again",
                extra={"event": "hold_lost", "tier": "redis", "keys": len(keys)},
            )
            self.invalidate(keys, ack_timeout, trust_window)

    def _confirm(
        self,
        ack: str,
        receivers: int,
        timeout: float,
        published: float,
        trust_window: float,
        done: bool = False,
    ) -> bool:
        """Wait until every process the publish reached has acknowledged (``done``: they all
        had by the end of the publishing round trip); when some did not, wait until
        ``trust_window`` after the publish. Whether every process confirmed."""
        if not ack:
            return True
        if not receivers:
            # Our own listener should have heard it: the subscription is elsewhere (a moved
            # cluster slot) or down, so nobody confirmed anything.
            self.stats.add("ack_timeouts")
            confirmed = False
        else:
            confirmed = done or self._wait_for_acks(ack, timeout)
        if not confirmed and trust_window:
            pause(published + trust_window - time.monotonic())
        return confirmed

    def _wait_for_acks(self, ack: str, timeout: float) -> bool:
        """Until the last expected process has acknowledged: its acknowledgement pushes the
        "done" signal once the set of distinct processes that acknowledged is complete (a
        replayed message makes a listener acknowledge twice: that does not stand in for
        another process). ``timeout`` seconds at most."""
        deadline = time.monotonic() + timeout
        done = ack_keys(ack)[2]
        signalled = False

        def pop() -> bool:
            nonlocal signalled
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Short blocking pops, each well inside the socket timeout: waiting for a slow
            # process is not Redis failing to answer.
            wait = min(max(remaining, 0.001), ACK_POLL)
            signalled = self.client.blpop([done], timeout=wait) is not None
            return True

        while not signalled and self._call(False, pop, ack):
            pass
        if not signalled:
            self.stats.add("ack_timeouts")
            log.debug(
                "not every process acknowledged an invalidation within %.2fs",
                timeout,
                extra={"event": "ack_timeout", "timeout_s": timeout},
            )
        return signalled

    # -- dogpile's backend interface ----------------------------------------------------
    # The region's own API (``region.get``, ``get_multi``, ``set``) reads and writes the same
    # records, whatever dogpile Redis backend is underneath (``secure_redis_region`` turns the
    # region's serializer off, so dogpile hands these methods its ``CachedValue``s).

    def get(self, key: KeyType) -> CacheReturnType:
        return self.get_multi([key])[0]

    def get_multi(self, keys: Iterable[KeyType]) -> Sequence[CacheReturnType]:
        keys = list(keys)
        values = self._call(None, lambda: read_raw(self.client, keys))
        if values is None:
            return [NO_VALUE] * len(keys)
        found: list[CacheReturnType] = []
        for key, raw in zip(keys, values, strict=True):
            too_large = raw is not None and len(raw) > self.max_value_bytes
            value = NO_VALUE if raw is None or too_large else cached_value(raw)
            if value is NO_VALUE and raw is not None:
                self._foreign_raw(key, raw)
            found.append(value)
        return found

    def set(self, key: KeyType, value: CachedValue | bytes) -> None:
        self.set_multi({key: value})

    def set_multi(self, mapping: Mapping[KeyType, CachedValue | bytes]) -> None:
        """Unguarded writes, as dogpile makes them (SET ... EX): the coherent fills are
        ``fill``'s. An entry too large to be read back is not written."""
        ttl = self.backend.redis_expiration_time or None
        records = {k: record_of(v) for k, v in mapping.items() if type(v) is CachedValue}
        records = {k: v for k, v in records.items() if len(v) <= self.max_value_bytes}
        if records:
            self._call(None, lambda: write_records(self.client, records, ttl))

    def delete(self, key: KeyType) -> None:
        self.delete_multi([key])

    def delete_multi(self, keys: Iterable[KeyType]) -> None:
        self.invalidate(list(keys))

    def get_mutex(self, key: KeyType) -> CacheMutex | None:
        backend = self.backend
        if not backend.distributed_lock:
            return None  # dogpile's process-local lock
        lock = GuardedLock(
            backend.writer_client,
            key + scripts.LOCK_SUFFIX,
            timeout=backend.lock_timeout,
            sleep=backend.lock_sleep,
            blocking_timeout=backend.lock_blocking_timeout,
            thread_local=False,  # dogpile's async_creation_runner releases in another thread
        )
        return FallbackMutex(lock, self.breaker, self.stats)


class GuardedLock(Lock):
    """redis-py's lock, with scripts that do not trust what is under the lock's key: a value
    that cannot be one of our locks (another Redis type, no expiry, an expiry longer than a
    lock's) is taken over instead of waited on, and releasing over a foreign value is a
    no-op instead of a WRONGTYPE error."""

    lua_release = None  # registered from this class's scripts, not the parent's
    lua_extend = None
    lua_reacquire = None
    lua_acquire: Any = None
    LUA_RELEASE_SCRIPT = scripts.LOCK_RELEASE

    def register_scripts(self) -> None:
        super().register_scripts()
        cls = type(self)
        if cls.lua_acquire is None:
            cls.lua_acquire = self.redis.register_script(scripts.LOCK_ACQUIRE)

    def do_acquire(self, token: str) -> bool:
        ttl = int((self.timeout or 10) * 1000)
        return bool(self.lua_acquire(keys=[self.name], args=[token, ttl], client=self.redis))


class FallbackMutex(CacheMutex):
    """The distributed lock while Redis answers; a process-local lock while it does not.

    A lock whose holder died expires after the backend's ``lock_timeout``; a waiter that
    gives up (``lock_blocking_timeout``) goes on and loads the value itself.

    dogpile shares one mutex between the threads that wait on a key, and its
    ``async_creation_runner`` releases in another thread than the one that acquired. So each
    acquisition records which lock it took, per thread and in order: a release by the
    acquiring thread undoes its own; a release from a thread that holds nothing undoes the
    oldest outstanding one.
    """

    __slots__ = ("_breaker", "_holds", "_holds_lock", "_local", "_redis", "_stats")

    def __init__(self, redis_lock: Lock, breaker: CircuitBreaker, stats: CacheStats) -> None:
        self._redis = redis_lock
        self._local = threading.Lock()
        self._breaker = breaker
        self._stats = stats
        self._holds: list[tuple[int, str]] = []  # (thread id, "redis" | "local" | "none")
        self._holds_lock = threading.Lock()

    def _record(self, held: str) -> None:
        with self._holds_lock:
            self._holds.append((threading.get_ident(), held))

    def _take_hold(self) -> str | None:
        me = threading.get_ident()
        with self._holds_lock:
            for i, (thread, _) in enumerate(self._holds):
                if thread == me:
                    return self._holds.pop(i)[1]
            return self._holds.pop(0)[1] if self._holds else None

    def _holds_local(self) -> bool:
        me = threading.get_ident()
        with self._holds_lock:
            return (me, "local") in self._holds

    def acquire(self, wait: bool = True) -> bool:
        if self._breaker.allow():
            try:
                acquired = bool(self._redis.acquire(blocking=wait))
            except REDIS_ERRORS as exc:
                self._stats.add("redis_errors")
                self._breaker.failure(exc)
            else:
                self._breaker.success()
                if acquired:
                    self._record("redis")
                    return True
                if not wait:
                    return False
                log.warning(
                    "gave up waiting for a cache lock; loading without it",
                    extra={"event": "lock_wait_gave_up", "tier": "redis"},
                )
                self._record("none")
                return True
        acquired = self._local.acquire(wait)
        if acquired:
            self._record("local")
        return acquired

    def release(self) -> None:
        held = self._take_hold()
        if held == "local":
            self._local.release()
        elif held == "redis":
            try:
                self._redis.release()
            except LockError:
                log.info(
                    "a cache lock expired before its holder released it",
                    extra={"event": "lock_expired", "tier": "redis"},
                )
            except REDIS_ERRORS as exc:
                self._stats.add("redis_errors")
                self._breaker.failure(exc)

    def locked(self) -> bool:
        if self._holds_local() or self._local.locked():
            return True
        try:
            return bool(self._redis.locked())
        except REDIS_ERRORS:
            return False
