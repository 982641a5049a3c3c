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
import math
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
        return hit_ratio(self.counters, tier)


def hit_ratio(counters: Mapping[str, int], tier: str) -> float | None:
    """The hit ratio of ``tier`` (``memory`` or ``redis``) in ``counters`` (a process's, or a
    fleet's totals), None before any lookup."""
    hits, misses = counters[f"{tier}_hits"], counters[f"{tier}_misses"]
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
    if not isinstance(counters, dict):
        return None
    # A counter a record lacks is 0 (a process of another release, during a rolling deploy);
    # one that is there must be a count.
    counts = {name: counters.get(name, 0) for name in STAT_NAMES}
    if not all(_count(value) for value in counts.values()):
        return None
    texts = {
        name: _text(data.get(name)) for name in ("host", "origin", "door", "listener", "breaker")
    }
    if None in texts.values():
        return None
    at, started, gap = _moment(data.get("at")), _moment(data.get("started")), data.get("last_gap")
    if at is None or started is None or not (gap is None or _moment(gap) is not None):
        return None
    pid: Any
    pending: Any
    pid, pending, entries = (
        data.get("pid"),
        data.get("pending_invalidations"),
        data.get("memory_entries"),
    )
    if not (_count(pid) and _count(pending) and (entries is None or _count(entries))):
        return None
    return ProcessView(
        host=str(texts["host"]),
        pid=int(pid),
        origin=str(texts["origin"]),
        at=at,
        started=started,
        door=str(texts["door"]),
        counters=counts,
        memory_entries=entries,
        listener=str(texts["listener"]),
        last_gap=None if gap is None else _moment(gap),
        breaker=str(texts["breaker"]),
        pending_invalidations=int(pending),
    )


_MAX_COUNT = 2**63


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _MAX_COUNT


def _moment(value: Any) -> float | None:
    """A time (seconds since the epoch), finite and plausible, or None."""
    if type(value) not in (int, float):
        return None
    try:
        moment = float(value)
    except OverflowError:  # an int of hundreds of digits
        return None
    return moment if math.isfinite(moment) and 0 <= moment < 2**40 else None


def _text(value: Any) -> str | None:
    """A short printable string (what a terminal may be shown), or None."""
    if not isinstance(value, str) or len(value) > 255 or not value.isprintable():
        return None
    return value


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
    values: Iterable[Any] = _heads(client, keys) if keys else []
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


def _heads(client: Any, keys: list[Any]) -> list[Any]:
    """The first ``MAX_RECORD_BYTES + 1`` bytes of each key's value, pipelined (a planted
    string of hundreds of megabytes is never read whole); None where a key expired, or holds
    another Redis type (nothing a heartbeat would be)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.getrange(key, 0, MAX_RECORD_BYTES)
    found: list[Any] = []
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, Exception):
            if "WRONGTYPE" not in str(reply):
                raise reply
            reply = b"\x00"  # not a record: counted as unreadable
        found.append(reply or None)  # GETRANGE of a missing key: b""
    return found
