"""Local generations for the memory tier: a loader may fill the memory tier only if no
invalidation touched its key (or cleared the tier) while it was loading.

Keys are hashed onto a fixed array of counters, so the memory this takes is bounded; two keys
sharing a counter only ever cost a skipped fill, never a stale one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

Snapshot = tuple[int, int]
Snapshots = tuple[int, dict[str, int]]
"""Many keys' snapshots at once: the epoch, and each key's counter."""


class Stripes:
    def __init__(self, size: int = 4096) -> None:
        self._counters = [0] * size
        self._size = size
        self._epoch = 0
        self._lock = threading.Lock()

    def snapshot(self, key: str) -> Snapshot:
        return self._epoch, self._counters[hash(key) % self._size]

    def unchanged(self, key: str, snapshot: Snapshot) -> bool:
        return snapshot == (self._epoch, self._counters[hash(key) % self._size])

    def snapshots(self, keys: list[str]) -> Snapshots:
        counters, size = self._counters, self._size
        return self._epoch, {key: counters[hash(key) % size] for key in keys}

    def unchanged_many(self, values: Mapping[str, Any], snapshots: Snapshots) -> dict[str, Any]:
        """The items of ``values`` whose keys no invalidation touched since ``snapshots``."""
        epoch, taken = snapshots
        if epoch != self._epoch:
            return {}
        counters, size = self._counters, self._size
        return {k: v for k, v in values.items() if taken[k] == counters[hash(k) % size]}

    def bump(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._counters[hash(key) % self._size] += 1

    def bump_all(self) -> None:
        with self._lock:
            self._epoch += 1

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock, since a thread of the parent (which
        does not exist here) may have held the old one at the fork, and a new epoch, so that
        no fill begun before the fork lands in the memory tier."""
        self._lock = threading.Lock()
        self._epoch += 1
