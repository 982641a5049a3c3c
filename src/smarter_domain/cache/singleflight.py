"""Concurrent misses of one key in this process share one load: the first caller loads, the
others wait for it. This is the memory tier's stampede guard; it costs a dict entry and one
lock per miss, where dogpile's ``Lock`` costs a name registry, a mutex and two backend reads
(dogpile's distributed lock still guards the Redis tier across processes).

A waiter takes the leader's value only if the leader says it may be shared (it was cached:
no invalidation touched the key while it loaded) and the waiter arrived with the same local
generation the leader started from (no invalidation between the leader's start and the
waiter's arrival). Otherwise the value may predate a write that finished before the waiter
arrived, so the waiter loads again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .concurrency import Landing


class _Flight:
    __slots__ = ("generation", "landed", "shared", "value")

    def __init__(self, generation: object) -> None:
        self.generation = generation
        self.landed = Landing()  # threads and greenlets on an event loop may wait for it
        self.shared = False
        self.value: Any = None


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def busy(self, key: str) -> bool:
        """Whether a load of ``key`` is in flight (a hint: read without the lock)."""
        return key in self._flights

    def run(
        self,
        key: str,
        generation: object,
        load: Callable[[], tuple[Any, bool]],
        on_wait: Callable[[], None] | None = None,
    ) -> Any:
        """``load()`` returns ``(value, shareable)``; concurrent callers for ``key`` wait for
        one ``load`` and return its value when it is shareable and they arrived with the
        leader's ``generation``, else load themselves. ``on_wait`` runs (once) before a caller
        waits for another's load: what it holds that the leader may need, it gives back."""
        while True:
            with self._lock:
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight(generation)
                    break
            if on_wait is not None:
                on_wait()
                on_wait = None
            flight.landed.wait()  # for the leader
            if flight.shared and flight.generation == generation:
                return flight.value
        try:
            flight.value, flight.shared = load()
            return flight.value
        finally:
            with self._lock:
                del self._flights[key]
            flight.landed.land()

    def after_fork_in_child(self) -> None:
        """In a forked child (``forking``): the loads in flight at the fork belong to threads
        of the parent that do not exist here, so they never land: a caller waiting for one
        would wait forever. Forget them, and the lock, which one of those threads may hold."""
        self._lock = threading.Lock()
        self._flights = {}

    def __len__(self) -> int:
        """Loads in flight (for tests and diagnostics)."""
        return len(self._flights)
