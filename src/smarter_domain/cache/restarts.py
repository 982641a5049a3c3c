"""Noticing that the Redis behind a new connection is not the one the cache's contents were
kept coherent on: a server restarted with a persisted dataset, or a replica that Sentinel
promoted before it received the last invalidations (replication is asynchronous). Either may
hold entries and generation tokens that an invalidation had already replaced, so the
namespace is flushed before the connection is used.

Every new connection reads the server's run id (it changes on every start and differs between
master and replica) and compares it with the marker ``<namespace>:server``. The marker is
written only after a flush completes, so a connection that finds its server's run id there
knows that server's contents are clean; otherwise it flushes (processes racing to do so only
repeat harmless deletes).

A Redis Cluster is watched node by node: a master's replica promoted by a failover (a crash,
``CLUSTER FAILOVER FORCE``) may likewise miss the last invalidations of its slots. A node can
only hold keys of the slots it serves, so each master keeps its marker under a hash tag of its
lowest slot (``<namespace>:server{<tag>}``), and a flush deletes the namespace's keys of that
node only (one ``UNLINK`` per slot: a multi-key command must stay in one slot). A connection
to a replica (the cluster client's topology refreshes connect to every startup node, and a
stale slot map leads there too) has nothing to check, since replicas serve this library no
keys, but it must not stay pooled: that replica may be the one promoted next, and the pooled
connection would then skip this check. So it is marked for reconnection (redis-py's
``mark_for_reconnect``, redis-py 7 and later): the pool closes it when it is released, and the
next connection checks the node again. (With an older redis-py such a connection may stay
pooled: the gap needs a second failover within its life.) A slot moved by resharding takes
the marker with it, which costs one needless flush of the node that gave it up.

The marker is untrusted input like every key: whatever is there (garbage bytes, a pickle, an
oversized string, a hash) is simply not this server's run id, so the namespace is flushed and
the marker rewritten. Nothing here decodes it, and a wrong Redis type is not an error: an
exception in this callback would fail whatever call opened the connection.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import time
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ResponseError

from . import scripts
from .concurrency import pause
from .stats import CacheStats

CLAIM_SECONDS = 5.0
"""How long one connection may take to flush the namespace before another takes over."""

log = logging.getLogger("smarter_domain.cache.redis")


def _run_id(info: bytes | str) -> bytes:
    data = info if isinstance(info, bytes) else info.encode()
    for line in data.splitlines():
        if line.startswith(b"run_id:"):
            return line.partition(b":")[2].strip()
    return b""


@functools.lru_cache(maxsize=1024)
def slot_tag(slot: int) -> str:
    """The shortest decimal hash tag whose key slot is ``slot`` (some thousands of CRC16s)."""
    for n in itertools.count():
        if key_slot(str(n).encode()) == slot:
            return str(n)
    raise AssertionError("unreachable")  # pragma: no cover


def lowest_slot(nodes: bytes | str) -> int | None:
    """The lowest slot a node serves, from its ``CLUSTER NODES`` reply (its own line is
    flagged ``myself``); None for a replica or a master without slots. Slots being imported
    or migrated (``[slot->-id]``) are not counted: they may not stay."""
    text = nodes.decode(errors="replace") if isinstance(nodes, bytes) else nodes
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8 or "myself" not in fields[2].split(","):
            continue
        if "master" not in fields[2].split(","):
            return None
        starts = [
            int(item.partition("-")[0])
            for item in fields[8:]
            if not item.startswith("[") and item.partition("-")[0].isdigit()
        ]
        return min(starts, default=None)
    return None


class ServerWatch:
    def __init__(self, namespace: str, stats: CacheStats, clustered: bool = False) -> None:
        self.marker = f"{namespace}:server"
        self.pattern = f"{namespace}:*"
        self.stats = stats
        self.clustered = clustered

    def on_connect(self, connection: Any) -> None:
        """redis-py's ``redis_connect_func``: runs on every new connection, before its use
        (the cluster client has initialized the connection itself before calling this)."""
        marker = self.marker
        if self.clustered:
            connection.send_command("CLUSTER", "NODES")
            slot = lowest_slot(connection.read_response())
            if slot is None:  # a replica: used once (it answers MOVED to data commands)
                if hasattr(connection, "mark_for_reconnect"):
                    connection.mark_for_reconnect()
                return
            marker = f"{self.marker}{{{slot_tag(slot)}}}"
        else:
            connection.on_connect()
        claim = marker + scripts.LOCK_SUFFIX
        connection.send_command("INFO", "server")
        run_id = _run_id(connection.read_response())
        if run_id and self._read_marker(connection, marker) == run_id:
            return
        if not self._claim(connection, run_id, marker, claim):
            return  # another connection flushed for this server while we waited
        deleted = self._flush(connection, claim)
        connection.send_command("SET", marker, run_id)
        connection.read_response()
        connection.send_command("DEL", claim)
        connection.read_response()
        self.stats.add("server_changes")
        if deleted:
            log.warning(
                "Redis at %s:%s is a different server than the cache was kept on (restart "
                "or failover); flushed %d cache keys that may have missed invalidations",
                getattr(connection, "host", "-"),
                getattr(connection, "port", "-"),
                deleted,
                extra={"event": "server_changed", "tier": "redis", "flushed": deleted},
            )

    def _claim(self, connection: Any, run_id: bytes, marker: str, claim: str) -> bool:
        """One flush per server: the connections of every process meet a new server at once,
        and a second flush would delete the generation tokens of loads that began after the
        first (their fills refused, the stampede protection lost). True: this connection
        flushes; False: the one that claimed it wrote the marker meanwhile. The claim is a
        lock (``scripts.LOCK_ACQUIRE``: a planted value cannot hold it), and a claimer that
        dies lets the next connection take over when it expires."""
        deadline = time.monotonic() + CLAIM_SECONDS
        while True:
            connection.send_command(
                "EVAL", scripts.LOCK_ACQUIRE, 1, claim, run_id, int(CLAIM_SECONDS * 1000)
            )
            claimed = bool(connection.read_response())
            if self._read_marker(connection, marker) == run_id:  # flushed by another, just now
                if claimed:
                    connection.send_command("DEL", claim)
                    connection.read_response()
                return False
            if claimed or time.monotonic() > deadline:
                return True
            pause(0.01)  # on the event loop for an async client's connection

    def _read_marker(self, connection: Any, marker: str) -> bytes | None:
        # GETRANGE reads at most a run id's length (40) of whatever is there, so an oversized
        # value costs nothing; a hash or list under the marker answers WRONGTYPE.
        connection.send_command("GETRANGE", marker, 0, 63)
        try:
            marker = connection.read_response()
        except ResponseError:
            return None
        return marker if isinstance(marker, bytes) else None

    def _flush(self, connection: Any, claim: str) -> int:
        cursor, deleted, held = b"0", 0, claim.encode()
        while True:
            connection.send_command("SCAN", cursor, "MATCH", self.pattern, "COUNT", 1000)
            cursor, found = connection.read_response()
            keys = [k for k in found if k != held]  # held until the marker is written
            groups = self._by_slot(keys) if self.clustered else [keys] if keys else []
            for group in groups:  # pipelined: every UNLINK sent, then every reply read
                connection.send_command("UNLINK", *group)
            for _ in groups:
                # A slot moving away answers ASK or MOVED: its keys moved with it.
                with contextlib.suppress(ResponseError):
                    deleted += int(connection.read_response())
            if cursor in (b"0", "0", 0):
                return deleted

    @staticmethod
    def _by_slot(keys: list[bytes]) -> list[list[bytes]]:
        groups: dict[int, list[bytes]] = {}
        for key in keys:
            groups.setdefault(key_slot(key), []).append(key)
        return list(groups.values())
