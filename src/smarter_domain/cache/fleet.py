"""A fleet-wide view of the cache: each process publishes a small heartbeat to Redis, and
``smarter-domain cache stats`` / ``cache top`` read every live one.

A heartbeat is one key per process, ``<namespace>:fleet:<origin>``, holding a JSON record of
at most ``MAX_RECORD_BYTES`` (host, pid, counters, memory-tier size, listener and breaker
state, the last listener gap), written with ``SET ... EX`` every ``interval`` seconds by the
invalidation listener's thread (never on a request's path) and expiring ``ttl`` seconds after
the last one: a process that dies drops out of the view by itself, and the fleet's keys are
bounded by its live processes.

What is read back is untrusted like every key of the namespace: a value that is not a record
of this shape (garbage, a pickle, another Redis type, an oversized string) is counted as
unreadable and skipped, never decoded further and never an error.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .stats import STAT_NAMES

MAX_RECORD_BYTES = 4096
"""A heartbeat larger than this is neither written nor read."""

RECORD_VERSION = 1


def fleet_key(namespace: str, origin: str) -> str:
    return f"{namespace}:fleet:{origin}"


def fleet_pattern(namespace: str) -> str:
    return f"{namespace}:fleet:*"


class Heartbeat:
    """Writes this process's record every ``interval`` seconds (``beat`` is called by the
    listener's loop, often: it writes only when one is due)."""

    def __init__(
        self,
        namespace: str,
        report: Callable[[], dict[str, Any]],
        interval: float = 5.0,
        ttl: float | None = None,
    ) -> None:
        self.namespace = namespace
        self.report = report
        self.interval = interval
        self.ttl = ttl if ttl is not None else max(3 * interval, 1.0)
        self._due = 0.0

    def beat(self, client: Any, origin: str) -> None:
        """Write the record if one is due (errors are the caller's: the listener's loop
        treats them as Redis failing)."""
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self.interval
        record = json.dumps(self.report(), separators=(",", ":"), default=str)
        if len(record) <= MAX_RECORD_BYTES:
            client.set(fleet_key(self.namespace, origin), record, px=int(self.ttl * 1000))

    def after_fork_in_child(self) -> None:
        """A forked child beats at once, as a process of its own (its own origin)."""
        self._due = 0.0


def process_record(
    *,
    origin: str,
    counters: Mapping[str, int],
    memory_entries: int | None,
    listener: str,
    last_gap: float | None,
    breaker: str,
    pending_invalidations: int,
    started: float,
    front_door: str,
) -> dict[str, Any]:
    """This process's heartbeat record."""
    return {
        "v": RECORD_VERSION,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "origin": origin,
        "at": time.time(),
        "started": started,
        "door": front_door,
        "counters": {name: int(counters.get(name, 0)) for name in STAT_NAMES},
        "memory_entries": memory_entries,
        "listener": listener,
        "last_gap": last_gap,
        "breaker": breaker,
        "pending_invalidations": pending_invalidations,
    }


@dataclass(frozen=True)
class ProcessView:
    """One live process as its heartbeat describes it."""

    host: str
    pid: int
    origin: str
    at: float
    started: float
    door: str
    counters: dict[str, int]
    memory_entries: int | None
    listener: str
    last_gap: float | None
    breaker: str
    pending_invalidations: int

    def ratio(self, tier: str) -> float | None:
        """The hit ratio of ``tier`` (``memory`` or ``redis``), None before any lookup."""
        hits, misses = self.counters[f"{tier}_hits"], self.counters[f"{tier}_misses"]
        return hits / (hits + misses) if hits + misses else None


def parse(raw: Any) -> ProcessView | None:
    """A heartbeat record, or None for anything that is not one (untrusted input)."""
    if not isinstance(raw, bytes | str) or len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("v") != RECORD_VERSION:
        return None
    counters = data.get("counters")
    if not isinstance(counters, dict) or not all(
        type(counters.get(name)) is int and counters[name] >= 0 for name in STAT_NAMES
    ):
        return None
    texts = ("host", "origin", "door", "listener", "breaker")
    numbers = ("at", "started")
    if not all(isinstance(data.get(name), str) and len(data[name]) <= 255 for name in texts):
        return None
    if not all(type(data.get(name)) in (int, float) for name in numbers):
        return None
    if type(data.get("pid")) is not int or type(data.get("pending_invalidations")) is not int:
        return None
    entries, gap = data.get("memory_entries"), data.get("last_gap")
    if not (entries is None or type(entries) is int) or not (
        gap is None or type(gap) in (int, float)
    ):
        return None
    return ProcessView(
        host=data["host"],
        pid=data["pid"],
        origin=data["origin"],
        at=float(data["at"]),
        started=float(data["started"]),
        door=data["door"],
        counters={name: counters[name] for name in STAT_NAMES},
        memory_entries=entries,
        listener=data["listener"],
        last_gap=None if gap is None else float(gap),
        breaker=data["breaker"],
        pending_invalidations=data["pending_invalidations"],
    )


@dataclass(frozen=True)
class Fleet:
    processes: list[ProcessView]
    unreadable: int

    def totals(self) -> dict[str, int]:
        return {name: sum(p.counters[name] for p in self.processes) for name in STAT_NAMES}


def read_fleet(client: Any, namespace: str, limit: int = 10_000) -> Fleet:
    """Every live process's heartbeat (``limit`` at most), by host and pid."""
    keys: list[Any] = []
    for key in client.scan_iter(match=fleet_pattern(namespace), count=1000):
        keys.append(key)
        if len(keys) >= limit:
            break
    values: Iterable[Any] = []
    if keys:
        mget = getattr(client, "mget_nonatomic", None) or client.mget  # a cluster's, by slot
        values = _values(client, keys, mget)
    processes: list[ProcessView] = []
    unreadable = 0
    for raw in values:
        if raw is None:  # expired between the scan and the read
            continue
        view = parse(raw)
        if view is None:
            unreadable += 1
        else:
            processes.append(view)
    processes.sort(key=lambda p: (p.host, p.pid))
    return Fleet(processes, unreadable)


def _values(client: Any, keys: list[Any], mget: Callable[..., Any]) -> list[Any]:
    """The keys' values, a key of another Redis type read as unreadable bytes."""
    try:
        return list(mget(keys))
    except Exception as exc:
        if "WRONGTYPE" not in str(exc):
            raise
    found: list[Any] = []
    for key in keys:
        try:
            found.append(client.get(key))
        except Exception as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            found.append(b"\x00")  # not a record
    return found
