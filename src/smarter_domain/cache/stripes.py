"""Local generations for the memory tier: a loader may fill the memory tier only if no
invalidation touched its key (or cleared the tier) while it was loading.

Keys are hashed onto a fixed array of counters, so the memory this takes is bounded; two keys
sharing a counter only ever cost a skipped fill, never a stale one.
"""

from __future__ import annotations

import threading

Snapshot = tuple[int, int]


class Stripes:
    def __init__(self, size: int = 4096) -> None:
        self._counters = [0] * size
        self._size = size
        self._epoch = 0
        self._lock = threading.Lock()
        self.version = 0
        """Bumped by every invalidation: a batch that finds it unchanged was touched by none
        (one comparison for a whole list, where per-key snapshots cost a hash each)."""

    def snapshot(self, key: str) -> Snapshot:
        return self._epoch, self._counters[hash(key) % self._size]

    def unchanged(self, key: str, snapshot: Snapshot) -> bool:
        return snapshot == (self._epoch, self._counters[hash(key) % self._size])

    def bump(self, keys: list[str]) -> None:
        with self._lock:
            self.version += 1
            for key in keys:
                self._counters[hash(key) % self._size] += 1

    def bump_all(self) -> None:
        with self._lock:
            self.version += 1
            self._epoch += 1

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock, since a thread of the parent (which
        does not exist here) may have held the old one at the fork, and a new epoch, so that
        no fill begun before the fork lands in the memory tier."""
        self._lock = threading.Lock()
        self._epoch += 1
        self.version += 1
