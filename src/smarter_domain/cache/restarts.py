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
from typing import Any

from redis.exceptions import ResponseError

from .stats import CacheStats

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
        self.pattern = f"{namespace}:*"
        self.stats = stats

    def on_connect(self, connection: Any) -> None:
        """redis-py's ``redis_connect_func``: runs on every new connection, before its use."""
        connection.on_connect()
        connection.send_command("INFO", "server")
        run_id = _run_id(connection.read_response())
        # GETRANGE reads at most a run id's length (40) of whatever is there, so an oversized
        # value costs nothing; a hash or list under the marker answers WRONGTYPE.
        connection.send_command("GETRANGE", self.marker, 0, 63)
        try:
            marker = connection.read_response()
        except ResponseError:
            marker = None
        if run_id and marker == run_id:
            return
        deleted = self._flush(connection)
        connection.send_command("SET", self.marker, run_id)
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

    def _flush(self, connection: Any) -> int:
        cursor, deleted = b"0", 0
        while True:
            connection.send_command("SCAN", cursor, "MATCH", self.pattern, "COUNT", 1000)
            cursor, keys = connection.read_response()
            if keys:
                connection.send_command("UNLINK", *keys)
                deleted += int(connection.read_response())
            if cursor in (b"0", "0", 0):
                return deleted
