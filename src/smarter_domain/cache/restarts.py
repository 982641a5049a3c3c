"""Noticing that the Redis behind a new connection is not the one the cache's contents were
kept coherent on: a server restarted with a persisted dataset, or a replica that Sentinel
promoted before it received the last invalidations (replication is asynchronous). Either may
hold entries and generation tokens that an invalidation had already replaced, so the
namespace is flushed before the connection is used.

Every new connection reads the server's run id (it changes on every start and differs between
master and replica) and compares it with the marker ``<namespace>:server``. The marker is
written only after a flush completes, so a connection that finds its server's run id there
knows that server's contents are clean; otherwise it flushes (processes racing to do so only
repeat harmless deletes). A Redis Cluster is not watched: see the README's limits.

The marker is untrusted input like every key: whatever is there (garbage bytes, a pickle, an
oversized string, a hash) is simply not this server's run id, so the namespace is flushed and
the marker rewritten. Nothing here decodes it, and a wrong Redis type is not an error: an
exception in this callback would fail whatever call opened the connection.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import ResponseError

from . import scripts
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


class ServerWatch:
    def __init__(self, namespace: str, stats: CacheStats) -> None:
        self.marker = f"{namespace}:server"
        self.claim = self.marker + scripts.LOCK_SUFFIX
        self.pattern = f"{namespace}:*"
        self.stats = stats

    def on_connect(self, connection: Any) -> None:
        """redis-py's ``redis_connect_func``: runs on every new connection, before its use."""
        connection.on_connect()
        connection.send_command("INFO", "server")
        run_id = _run_id(connection.read_response())
        if run_id and self._read_marker(connection) == run_id:
            return
        if not self._claim(connection, run_id):
            return  # another connection flushed for this server while we waited
        deleted = self._flush(connection)
        connection.send_command("SET", self.marker, run_id)
        connection.read_response()
        connection.send_command("DEL", self.claim)
        connection.read_response()
        self.stats.add("server_changes")
        if deleted:
            log.warning(
                "Redis at %s:%s is a different server than the cache was kept on (restart "
                "or failover); flushed %d cache keys that may have missed invalidations",
                getattr(connection, "host", "-"),
                getattr(connection, "port", "-"),
                deleted,
            )

    def _claim(self, connection: Any, run_id: bytes) -> bool:
        """One flush per server: the connections of every process meet a new server at once,
        and a second flush would delete the generation tokens of loads that began after the
        first (their fills refused, the stampede protection lost). True: this connection
        flushes; False: the one that claimed it wrote the marker meanwhile. The claim is a
        lock (``scripts.LOCK_ACQUIRE``: a planted value cannot hold it), and a claimer that
        dies lets the next connection take over when it expires."""
        deadline = time.monotonic() + CLAIM_SECONDS
        while True:
            connection.send_command(
                "EVAL", scripts.LOCK_ACQUIRE, 1, self.claim, run_id, int(CLAIM_SECONDS * 1000)
            )
            claimed = bool(connection.read_response())
            if self._read_marker(connection) == run_id:  # flushed by another, just now
                if claimed:
                    connection.send_command("DEL", self.claim)
                    connection.read_response()
                return False
            if claimed or time.monotonic() > deadline:
                return True
            time.sleep(0.01)

    def _read_marker(self, connection: Any) -> bytes | None:
        # GETRANGE reads at most a run id's length (40) of whatever is there, so an oversized
        # value costs nothing; a hash or list under the marker answers WRONGTYPE.
        connection.send_command("GETRANGE", self.marker, 0, 63)
        try:
            marker = connection.read_response()
        except ResponseError:
            return None
        return marker if isinstance(marker, bytes) else None

    def _flush(self, connection: Any) -> int:
        cursor, deleted, claim = b"0", 0, self.claim.encode()
        while True:
            connection.send_command("SCAN", cursor, "MATCH", self.pattern, "COUNT", 1000)
            cursor, keys = connection.read_response()
            keys = [k for k in keys if k != claim]  # held until the marker is written
            if keys:
                connection.send_command("UNLINK", *keys)
                deleted += int(connection.read_response())
            if cursor in (b"0", "0", 0):
                return deleted
