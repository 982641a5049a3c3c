"""Counters of what each tier did; read them with ``domain.cache.stats.snapshot()``.

Each counter is an ``itertools.count``: ``next()`` is atomic under the GIL and takes no lock,
so counting costs the hit path next to nothing.
"""

from __future__ import annotations

import itertools
import threading

STAT_NAMES = (
    "memory_hits",
    "memory_misses",
    "redis_hits",
    "redis_misses",
    "loads",
    "redis_errors",
    "decode_errors",
    "invalidations",
    "fills_refused",
    "memory_bypassed",
    "ack_timeouts",
    "listener_gaps",
    "server_changes",
)


def _value(counter: itertools.count[int]) -> int:
    # count(n) reprs as "count(n)": the only way to read one without advancing it.
    return int(repr(counter)[6:-1])


class CacheStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters = {name: itertools.count() for name in STAT_NAMES}
        self._bulk = dict.fromkeys(STAT_NAMES, 0)
        self._offsets = dict.fromkeys(STAT_NAMES, 0)
        self.memory_hit = self._counters["memory_hits"].__next__
        """The hit path's counter, bound once (``reset`` never replaces it)."""

    def add(self, name: str, count: int = 1) -> None:
        if count == 1:
            next(self._counters[name])
        elif count:
            with self._lock:
                self._bulk[name] += count

    def _totals(self) -> dict[str, int]:
        return {name: _value(c) + self._bulk[name] for name, c in self._counters.items()}

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            totals = self._totals()
            return {name: totals[name] - self._offsets[name] for name in STAT_NAMES}

    def reset(self) -> None:
        with self._lock:
            self._offsets = self._totals()

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock (a thread of the parent may have held
        the old one at the fork), and counters from zero: they count what this process did,
        and a prefork worker must not report its parent's hits as its own."""
        self._lock = threading.Lock()
        self.reset()
