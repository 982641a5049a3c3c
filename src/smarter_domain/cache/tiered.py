"""Two dogpile regions used as one cache: memory first, then Redis, then the loader, filling
the tiers on the way back. Concurrent misses of a key in a process load once (``SingleFlight``);
across processes, a miss takes the key's lease in the same round trip that found no entry, and
the others wait for that loader's fill (``scripts.LOOKUP``). A cold miss is two round trips to
Redis: the lookup, and the fill that gives the lease back.

Coherence (with the Redis tier's proxy and an invalidation listener):
- a fill is guarded: it is stored in Redis only if the key's generation did not change while
  the loader ran (the token the lookup returned; ``ResilientRedisProxy.fill``) and no write
  holds the key off, and in memory only if, besides, no local invalidation touched the key
  (``Stripes``);
- an invalidation drops the key locally, bumps its generation in Redis, publishes it, and
  waits (briefly) until the other processes' listeners have dropped it too;
- while the listener is not subscribed, the memory tier is bypassed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from time import monotonic, time
from typing import TYPE_CHECKING, Any

from dogpile.cache import CacheRegion
from dogpile.cache.api import NO_VALUE, CachedValue

from ..model.changes import Change
from .concurrency import pause
from .keys import CacheKeys
from .options import renew_region_locks
from .protocol import HELD, LEASED, TRUST_WINDOW, UNLEASED, WAIT, Generations, Miss, WarnOnce
from .singleflight import SingleFlight
from .stats import CacheStats
from .store import MemoryStore, Stamp
from .stripes import Snapshot, Stripes

if TYPE_CHECKING:
    from .resilience import ResilientRedisProxy

log = logging.getLogger(__name__)

HOLD_SECONDS = 10
"""How long a prepared write's keys refuse fills if its writer never releases them (killed
between its commit and its release): longer than any commit takes, short enough that the
entries are cached again soon after."""

STAMP_SHARED = 0.1
"""Entries stored within this many seconds share one ``Stamp`` (their creation time, so they
expire up to this much early): one float for thousands of entries."""

LIST_SHARE = 4
"""A multi-get of more than 1/LIST_SHARE of the memory tier's size is not kept in it: the
list would evict itself (and whatever else is hot) before its next read."""

_entry = tuple.__new__
_value_of, _stamp_of = itemgetter(0), itemgetter(1)  # of a memory entry


class TieredCache:
    def __init__(
        self,
        memory: CacheRegion,
        redis: CacheRegion | None = None,
        *,
        keys: CacheKeys | None = None,
        stats: CacheStats | None = None,
        guard: ResilientRedisProxy | None = None,
        ack_timeout: float = 0.5,
    ) -> None:
        self.memory = memory
        self.redis = redis
        self.keys = keys or CacheKeys()
        self.stats = stats or CacheStats()
        if redis is not None and guard is None:
            raise ValueError("a Redis tier needs its guard (regions.secure_redis_region)")
        self.guard = guard
        self.ack_timeout = ack_timeout
        self.stripes = Stripes()
        self.flights = SingleFlight()
        self.listener: Any = None  # an InvalidationListener, attached by the domain
        self.last_gap: float | None = None  # when the listener last missed messages (epoch)
        # The hit path reads the store under the memory region directly (when it is ours),
        # checking each entry's Stamp against the region's expiration.
        store = getattr(memory.actual_backend, "_cache", None)
        self._lru: MemoryStore | None = store if isinstance(store, MemoryStore) else None
        self._hit = self.stats.memory_hit
        self._ttl = float(memory.expiration_time or 0)
        self._warn_once = WarnOnce(log)
        self._stamp = Stamp(0.0)
        # A multi-get longer than this is not kept in the memory tier (LIST_SHARE).
        self.keep_limit = self._lru.maxsize // LIST_SHARE if self._lru is not None else None

    def foreign(self, key: str, problem: str) -> None:
        """A value of the wrong type under ``key`` (well-formed, but not what the key holds):
        counted in ``decode_errors`` and logged once per key; the caller drops and reloads it."""
        self.stats.add("decode_errors")
        self._warn_once(
            key,
            "cache entry %s %s: ignored, reloaded",
            key,
            problem,
            extra={"event": "foreign_value", "key_kind": self.keys.kind_of(key)},
        )

    # -- reads ----------------------------------------------------------------------------

    def memory_usable(self) -> bool:
        """Without a listener the memory tier cannot hear other processes' invalidations."""
        listener = self.listener
        return listener is None or listener.healthy

    def peek(self, key: str) -> Any:
        """The memory tier's fresh value for ``key``, or NO_VALUE: the lock-free hit path
        (one dict lookup in the store's young generation, the entry's Stamp checked against
        the region's expiration)."""
        store = self._lru
        listener = self.listener
        if store is None or (listener is not None and monotonic() >= listener.trusted_until):
            return NO_VALUE
        cached = store.young.get(key)
        if cached is None:
            cached = store.from_old(key)
            if cached is None:
                return NO_VALUE
        if self._ttl and time() - cached[1] >= self._ttl:
            return NO_VALUE
        self._hit()
        return cached[0]

    def peek_through(self, key: str, target: Callable[[int], str]) -> Any:
        """The entity behind a secondary key, in one look: ``key`` holds an id and
        ``target(id)`` is the entity's key (the hit path of lookups by username or account
        number, counted as one memory hit). None when ``key`` holds None; NO_VALUE unless
        both entries are fresh."""
        store = self._lru
        listener = self.listener
        if store is None or (listener is not None and monotonic() >= listener.trusted_until):
            return NO_VALUE
        young = store.young
        ref = young.get(key) or store.from_old(key)
        if ref is None:
            return NO_VALUE
        entity_id = ref[0]
        if type(entity_id) is int:
            entity_key = target(entity_id)
            cached = young.get(entity_key) or store.from_old(entity_key)
            if cached is None:
                return NO_VALUE
        elif entity_id is None:
            cached = ref
        else:  # linked (``link``): valid while the entity's entry is that very tuple
            try:
                entity_key = target(entity_id.id)
            except AttributeError:
                return NO_VALUE
            cached = young.get(entity_key) or store.from_old(entity_key)
            if cached is not ref:
                return NO_VALUE
        ttl = self._ttl
        if ttl:
            now = time()
            if now - ref[1] >= ttl or now - cached[1] >= ttl:
                return NO_VALUE
        self._hit()
        return cached[0]

    def link(self, key: str, entity_key: str, entity_id: int) -> None:
        """Make the memory entry of a secondary key that holds ``entity_id`` the entity
        entry's own tuple: one entry object for both, and ``peek_through`` serves it only while
        the entity entry is still that tuple (an invalidation of either key, or a reload of
        the entity, ends the link). Not when the entity's entry is the newer by a second or
        more: the secondary entry would outlive its time to live (``STAMP_SHARED`` x 10)."""
        if self._lru is not None:
            self._lru.link(key, entity_key, entity_id, STAMP_SHARED * 10)

    def get_or_load(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None = None
    ) -> Any:
        if expiration_time is None:
            value = self.peek(key)
            if value is not NO_VALUE:
                return value
        return self._get_or_load(key, loader, expiration_time)

    def load_missed(self, key: str, loader: Callable[[], Any]) -> Any:
        """``get_or_load`` for a key ``peek`` just missed (it does not look again)."""
        return self._get_or_load(key, loader, None)

    def get_or_load_missed(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None
    ) -> Any:
        """``get_or_load`` past the ``peek`` (for the async front door)."""
        return self._get_or_load(key, loader, expiration_time)

    @property
    def owns_memory_store(self) -> bool:
        """Whether the memory tier is our ``MemoryStore`` (read directly), not another
        region's backend."""
        return self._lru is not None

    @staticmethod
    def is_hit(found: Any) -> bool:
        """Whether a lookup's answer is a value (not a ``Miss``)."""
        return type(found) is not Miss

    def _get_or_load(
        self, key: str, loader: Callable[[], Any], expiration_time: float | None
    ) -> Any:
        if not self.memory_usable():
            self.stats.add("memory_bypassed")
            return self._second_tier(key, loader, expiration_time)[0]
        if self._lru is None or expiration_time is not None:  # else peek() just looked
            value = self._memory_get(key, expiration_time)
            if value is not NO_VALUE:
                self.stats.add("memory_hits")
                return value
        self.stats.add("memory_misses")
        local = self.stripes.snapshot(key)
        guard = self.guard
        if guard is None or self.flights.busy(key):
            return self.flights.run(
                key, local, lambda: self._load_and_fill(key, loader, expiration_time, local)
            )
        # Redis first, outside any flight: a hit needs none (one round trip, nothing to
        # share); a miss goes on in a flight with what the lookup said.
        return self.looked_up(key, loader, local, guard.lookup(key), expiration_time)

    def looked_up(
        self,
        key: str,
        loader: Callable[[], Any],
        local: Snapshot,
        found: Any,
        expiration_time: float | None = None,
    ) -> Any:
        """The rest of a memory miss (``local``: the key's stripe before the lookup) once
        Redis answered ``found`` (the async front door looks up natively, then comes here).
        A caller that holds the key's lease and finds another caller's flight gives the
        lease back before it waits (that caller may be waiting for the lease), and looks
        again if it loads."""
        guard = self.guard
        assert guard is not None
        if type(found) is not Miss:
            self.stats.add("redis_hits")
            if self.memory_usable():
                self._keep(key, found, local)
            return found
        looked: list[Miss | None] = [found]

        def give_back() -> None:
            if found.lease == LEASED:
                guard.give_back(key, found.lease_id)
            looked[0] = None

        return self.flights.run(
            key,
            local,
            lambda: self._load_and_fill(key, loader, expiration_time, local, looked[0]),
            on_wait=give_back,
        )

    def _memory_get(self, key: str, expiration_time: float | None) -> Any:
        if self._lru is None:
            return self.memory.get(key, expiration_time=expiration_time)
        ttl = self._ttl if expiration_time is None else expiration_time
        cached = self._lru.lookup(key)
        if cached is None or (ttl and time() - cached[1] >= ttl):
            return NO_VALUE
        return cached[0]

    def _load_and_fill(
        self,
        key: str,
        loader: Callable[[], Any],
        expiration_time: float | None,
        local: Snapshot,
        found: Miss | None = None,
    ) -> tuple[Any, bool]:
        """One miss, in flight: the next tiers (``found``: what a lookup just said), then the
        memory tier if still current."""
        value, cacheable = self._second_tier(key, loader, expiration_time, found)
        return value, cacheable and self.memory_usable() and self._keep(key, value, local)

    def _keep(self, key: str, value: Any, local: Snapshot) -> bool:
        """Put ``value`` in the memory tier unless an invalidation touched ``key`` since
        ``local``. In our store the check and the store are one step under its lock: an
        invalidation bumps the generation, then deletes under that lock, so it either comes
        before the check (nothing stored) or deletes what was stored, before it is
        acknowledged (no reader after the write can see the value in between). Another
        region: checked again after the store."""
        unchanged = self.stripes.unchanged
        store = self._lru
        if store is not None:
            entry = _entry(CachedValue, (value, self._stamp_now()))
            return store.put_if(key, entry, lambda: unchanged(key, local))
        if not unchanged(key, local):
            return False
        self._store_one(key, value)
        if unchanged(key, local):
            return True
        self.memory.delete(key)
        return False

    def _stamp_now(self) -> Stamp:
        """A ``Stamp`` of now, shared by every entry stored within ``STAMP_SHARED``."""
        now = time()
        stamp = self._stamp
        if not 0 <= now - stamp < STAMP_SHARED:
            stamp = self._stamp = Stamp(now)
        return stamp

    def _store_one(self, key: str, value: Any) -> None:
        """Into the memory tier: straight into our store (a ``CachedValue`` with a shared
        ``Stamp``), else through the region."""
        store = self._lru
        if store is None:
            self.memory.set(key, value)
        else:
            store.put(key, _entry(CachedValue, (value, self._stamp_now())))

    def _second_tier(
        self,
        key: str,
        loader: Callable[[], Any],
        expiration_time: float | None,
        found: Any = None,
    ) -> tuple[Any, bool]:
        """Redis, then the loader: ``(value, whether it may go into the memory tier)``.

        One lookup answers with the entry, or with the key's generation token and its lease;
        the lease holder loads and fills, giving the lease back; a process that finds the
        lease taken waits for that fill (looking again every ``lease_sleep``), and loads
        itself if none comes within ``lease_wait``."""
        guard = self.guard
        if guard is None:
            self.stats.add("loads")
            return loader(), True
        if found is None:
            found = guard.lookup(key)
        if type(found) is Miss and found.lease == WAIT:
            found = self._wait_for_fill(guard, key, found)
        if type(found) is not Miss:
            self.stats.add("redis_hits")
            return found, True
        self.stats.add("redis_misses")
        self.stats.add("loads")
        leased = found.lease_id if found.lease == LEASED else ""  # then found has a token
        try:
            value = loader()
            if found.token is None or found.lease == HELD:
                return value, False
            stored = guard.fill(
                [(key, value)], Generations((found.token,)), leased, expiration_time
            )
        except BaseException:  # the load failed, or the record format refused its value:
            if leased:  # the processes waiting for this lease must not wait it out
                guard.give_back(key, leased)
            raise
        return value, stored[0]

    @staticmethod
    def _wait_for_fill(guard: ResilientRedisProxy, key: str, found: Miss) -> Any:
        """Another process holds ``key``'s lease: look again until its fill is there, the
        lease is ours, or ``lease_wait`` has passed (then load without a lease)."""
        deadline = monotonic() + guard.lease_wait
        while monotonic() < deadline:
            pause(guard.lease_sleep)
            found = guard.lookup(key)
            if type(found) is not Miss or found.lease != WAIT:
                return found
        log.warning(
            "gave up waiting for another process to load a cache entry; loading it",
            extra={
                "event": "lease_wait_gave_up",
                "tier": "redis",
                "key_kind": guard.keys.kind_of(key),
                "waited_s": guard.lease_wait,
            },
        )
        return Miss(found.token, UNLEASED)

    def lists_cached(self, count: int) -> bool:
        """Whether a list of ``count`` entities is worth caching: always with Redis (its
        members come from MGETs pipelined in one round trip); without it, only if the memory
        tier keeps them."""
        return self.guard is not None or self.keep_limit is None or count <= self.keep_limit

    def get_many_or_load(
        self, keys: Sequence[str], loader: Callable[[list[str]], Mapping[str, Any]]
    ) -> dict[str, Any]:
        """``values_or_load`` of ``keys`` (each once), as a dict."""
        keys = list(keys)
        return dict(zip(keys, self.values_or_load([keys], len(keys), loader), strict=True))

    def values_or_load(
        self,
        slices: Iterable[Sequence[str]],
        count: int,
        loader: Callable[[list[str]], Mapping[str, Any]],
    ) -> list[Any]:
        """The values of the ``count`` keys of ``slices`` (consecutive slices of one list of
        keys, each key once), in their order: memory, then Redis, then one call of
        ``loader(missing_keys)``; a key the loader leaves out is None (and cached as None).
        More keys than ``keep_limit`` are served from Redis (or loaded) without going into the
        memory tier.

        A slice's keys the memory tier lacks go to Redis as one MGET, sent (on a server the
        wire serves directly) as soon as the slice is looked at, before the next slice is even
        built, and every reply read after the last send (``Wire.pipeline``): one round trip,
        in which Redis works on the first slice while the caller builds the rest. Values
        travel as lists aligned with the keys (no dict per tier: a list of 1,000 is mostly
        passes of C over them)."""
        use_memory = self.memory_usable()
        # Kept in memory only if no invalidation at all happened meanwhile (one comparison
        # for the whole batch; under writes a list is then served from Redis this time).
        keep = use_memory and (self.keep_limit is None or count <= self.keep_limit)
        version = self.stripes.version if keep else None
        keys: list[str] = []
        values: list[Any] = []
        missing: list[int] = []

        def lacking() -> Iterator[Sequence[str]]:
            """Each slice's keys that the memory tier lacks (every slice's keys and values
            noted on the way)."""
            for some in slices:
                if use_memory:
                    found, absent = self._memory_many(some)
                else:
                    found, absent = [NO_VALUE] * len(some), range(len(some))
                offset = len(keys)
                keys.extend(some)
                values.extend(found)
                if len(absent) == len(some):
                    missing.extend(range(offset, offset + len(some)))
                    yield some
                elif absent:
                    missing.extend([offset + i for i in absent])
                    yield [some[i] for i in absent]

        asking = lacking()
        first = next(asking, None)  # none: the memory tier had them all, Redis is not asked
        guard = self.guard
        from_redis: tuple[list[Any], list[int]] | None = None  # (values, positions absent)
        if first is not None and guard is not None:
            from_redis = guard.get_many(chain((first,), asking))
        else:
            for _ in asking:  # the rest of the slices, through the memory tier
                pass
        if use_memory:
            self.stats.add("memory_hits", len(keys) - len(missing))
            if missing:
                self.stats.add("memory_misses", len(missing))
        else:
            self.stats.add("memory_bypassed", len(keys))
        if not missing:
            return values
        if from_redis is not None:
            found, absent = from_redis
            asked = keys if len(missing) == len(keys) else [keys[i] for i in missing]
            self.stats.add("redis_hits", len(asked) - len(absent))
            if len(asked) == len(keys):
                values = found  # memory had none of them
            else:
                for position, value in zip(missing, found, strict=True):
                    values[position] = value
            if version is not None:
                self._fill_memory(asked, found, version, absent)
            if not absent:
                return values
            missing = [missing[i] for i in absent]
            self.stats.add("redis_misses", len(missing))
        wanted = [keys[i] for i in missing]
        generations = guard.generations(wanted) if guard is not None else None
        self.stats.add("loads")
        loaded = loader(wanted)
        fresh = [loaded.get(key) for key in wanted]
        for position, value in zip(missing, fresh, strict=True):
            values[position] = value
        if guard is not None:
            stored = guard.fill(list(zip(wanted, fresh, strict=True)), generations)
            refused = [i for i, ok in enumerate(stored) if not ok]
        else:
            refused = []
        if version is not None:
            self._fill_memory(wanted, fresh, version, refused)
        return values

    def _memory_many(self, keys: Sequence[str]) -> tuple[list[Any], Sequence[int]]:
        """The fresh entries of ``keys`` in the memory tier, in their order (``NO_VALUE`` where
        it has none), and the positions it lacks."""
        count = len(keys)
        store = self._lru
        if store is None:
            got = list(self.memory.get_multi(keys))  # type: ignore[no-untyped-call]
            return got, [i for i, value in enumerate(got) if value is NO_VALUE]
        listener = self.listener
        if listener is not None and monotonic() >= listener.trusted_until:
            return [NO_VALUE] * count, range(count)
        young, old = store.young, store.old
        if young.keys().isdisjoint(keys) and (not old or old.keys().isdisjoint(keys)):
            return [NO_VALUE] * count, range(count)  # none there (a cold tier), in C
        oldest = time() - self._ttl if self._ttl else float("-inf")
        entries: list[Any] = list(map(young.get, keys))  # one pass of C for the common case
        if None not in entries and min(map(_stamp_of, entries)) > oldest:
            return list(map(_value_of, entries)), []  # all fresh
        values: list[Any] = []
        missing: list[int] = []
        for position, (key, cached) in enumerate(zip(keys, entries, strict=True)):
            if cached is None:
                cached = old.get(key)  # store.from_old, inline: this runs for every member
                if cached is None:
                    values.append(NO_VALUE)
                    missing.append(position)
                    continue
                store.promote(key, cached)
            if cached[1] <= oldest:
                values.append(NO_VALUE)
                missing.append(position)
            else:
                values.append(cached[0])
        return values, missing

    def _fill_memory(
        self, keys: Sequence[str], values: Sequence[Any], version: int, skip: Sequence[int]
    ) -> None:
        """Keep ``values[i]`` under ``keys[i]`` in memory (but for the positions in ``skip``)
        if no invalidation happened since ``version`` was read (checked under our store's
        lock, as in ``_keep``; another region: checked again after the store, and all dropped
        if one happened in between)."""
        if len(skip) == len(keys) or not self.memory_usable() or self.stripes.version != version:
            return
        if skip:
            left_out = set(skip)
            kept = [i for i in range(len(keys)) if i not in left_out]
            keys, values = [keys[i] for i in kept], [values[i] for i in kept]
        stripes, store = self.stripes, self._lru
        if store is not None:
            store.store(keys, values, self._stamp_now(), lambda: stripes.version == version)
            return
        self.memory.set_multi(dict(zip(keys, values, strict=True)))
        if stripes.version != version:
            self.memory.delete_multi(list(keys))

    # -- invalidation ---------------------------------------------------------------------

    def _trust_window(self) -> float:
        """How long a process that missed an invalidation may still trust its memory tier."""
        return TRUST_WINDOW if self.listener is not None else 0.0

    def _ack_timeout(self) -> float:
        return self.ack_timeout if self.listener is not None else 0.0

    def prepare(self, keys: Iterable[str]) -> str | None:
        """Before a write commits: drop ``keys`` here and in Redis, hold their fills off until
        ``release`` (or ``HOLD_SECONDS``), and have every process drop them, so that no
        process can serve the old value once the write commits, even if the writer dies
        before it invalidates. Returns the hold's id for ``release`` ("" without Redis); None
        when Redis could not be reached."""
        keys = list(keys)
        self.drop_local(keys)
        if self.guard is None or not keys:
            return ""
        return self.guard.prepare(keys, self._ack_timeout(), HOLD_SECONDS, self._trust_window())

    def release(self, keys: Iterable[str], hold: str) -> None:
        """After the commit of a prepared write: drop the keys here and everywhere once more,
        and end its hold-off (see ``ResilientRedisProxy.release``)."""
        keys = list(keys)
        if not keys:
            return
        self.stats.add("invalidations", len(keys))
        self.drop_local(keys)
        if self.guard is not None:  # prepare() gave a hold id: it had the same guard
            self.guard.release(keys, hold, self._ack_timeout(), self._trust_window())

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop ``keys`` in this process, in Redis, and (through the listeners) in every
        other process, and wait until they did (or until none can still trust a memory tier
        that missed it). Deletes Redis could not take are replayed when it is back."""
        keys = list(keys)
        if not keys:
            return
        self.stats.add("invalidations", len(keys))
        self.drop_local(keys)
        if self.guard is not None:
            self.guard.invalidate(keys, self._ack_timeout(), self._trust_window())

    def drop_local(self, keys: list[str]) -> None:
        """Forget ``keys`` in the memory tier (an invalidation, local or heard)."""
        self.stripes.bump(keys)
        self.memory.delete_multi(keys)

    def keys_of(self, changes: Sequence[Change]) -> list[str]:
        """Every key ``changes`` make stale."""
        keys: set[str] = set()
        for change in changes:
            keys |= self.keys.for_change(change)
        return sorted(keys)

    def clear_memory(self) -> None:
        """Forget everything in the memory tier (and let no running load fill it)."""
        self.stripes.bump_all()
        if self._lru is not None:
            self._lru.clear()
        else:
            self.memory.invalidate(hard=True)  # type: ignore[no-untyped-call]

    def listener_gap(self) -> None:
        self.stats.add("listener_gaps")
        self.last_gap = time()
        self.clear_memory()

    def memory_entries(self) -> int | None:
        """How many entries the memory tier holds (None: another region's backend)."""
        return len(self._lru) if self._lru is not None else None

    # -- processes ------------------------------------------------------------------------

    def after_fork_in_child(self, subscribe_wait: float) -> None:
        """Make this cache the forked child's own (called by ``forking``, in the child, right
        after the fork: only the forking thread exists, the others are gone mid-whatever).

        Every lock is new: one held by a thread of the parent at the fork would stay held
        forever. The state those locks guarded is dropped where it was the parent's (loads in
        flight, per-key mutexes, held-back invalidations, counters). With a listener, the
        memory tier is cleared and the child's own listener started (waiting for its
        subscription ``subscribe_wait`` seconds at most; until then the tier is bypassed):
        the child heard nothing between the fork and its subscription. Without one (no Redis,
        or ``listen=False``) the memory tier is kept: it only ever reflected this process's
        own writes, and the parent's entries are exactly as fresh in the child as in the
        parent (their time to live runs from their creation, as before)."""
        self.stripes.after_fork_in_child()  # first: also refuses fills begun before the fork
        self.flights.after_fork_in_child()
        self.stats.after_fork_in_child()
        self._warn_once.after_fork_in_child()
        if self._lru is not None:
            self._lru.after_fork_in_child()
        renew_region_locks(self.memory)
        if self.redis is not None:
            renew_region_locks(self.redis)
        guard = self.guard
        if guard is not None:
            guard.after_fork_in_child()
        listener = self.listener
        if listener is None:
            return
        listener.after_fork_in_child(guard.origin if guard is not None else listener.origin)
        self.clear_memory()
        listener.start(subscribe_wait)
