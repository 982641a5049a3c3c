"""The coherence protocol's vocabulary, without I/O (and without redis-py): what a lookup
answers (``Miss`` and its lease states), what a fill must still find (``Generations``), how
long a memory tier may be trusted without hearing its listener (``TRUST_WINDOW``), and how
a foreign value is reported (``WarnOnce``). The tiers import these whether or not Redis is
installed (the ``redis`` extra)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

TRUST_WINDOW = 0.3
"""The memory tier is trusted only while a ping sent less than this long ago has come back:
its pong proves every invalidation published before that ping was handled."""

DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024
"""Entries larger than this are neither stored nor read (an entity is a few hundred bytes)."""


class WarnOnce:
    """Log a warning the first time a key shows a problem, not on every read of it (a planted
    value is read until something overwrites it). Remembers a bounded number of keys."""

    def __init__(self, logger: logging.Logger, remember: int = 1024) -> None:
        self._log = logger
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def __call__(
        self, key: str, message: str, *args: Any, extra: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        self._log.warning(message, *args, extra=extra)

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): a new lock, since a thread of the parent (which
        does not exist here) may have held the old one at the fork."""
        self._lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Generations:
    """What a loader saw before reading the database: per key, the generation token. A fill
    is stored only if its key's token is still the same."""

    tokens: tuple[bytes, ...]


LEASED, WAIT, HELD, UNLEASED = 1, 0, 2, -1
"""What a miss tells its caller to do (``Miss.lease``): load and fill (it holds the key's
lease); wait for another loader's fill and look again; load without filling (a write holds
the key off, a fill would be refused); load and fill without a lease (gave up waiting)."""


class Miss:
    """``lookup``'s answer when Redis has no entry: the generation token a fill must still
    find (None when Redis could not be asked: then nothing is filled), and what to do about
    the lease."""

    __slots__ = ("lease", "lease_id", "token")

    def __init__(self, token: bytes | None, lease: int, lease_id: str = "") -> None:
        self.token = token
        self.lease = lease
        self.lease_id = lease_id


UNAVAILABLE = Miss(None, HELD)
"""Redis could not be asked: load, and cache nothing."""
