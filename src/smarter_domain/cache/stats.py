"""Counters of what each tier did; read them with ``domain.cache.stats.snapshot()``."""

from __future__ import annotations

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
)


class CacheStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(STAT_NAMES, 0)

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._counts[name] += count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(STAT_NAMES, 0)
