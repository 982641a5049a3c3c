"""One Redis command on a connection kept for it, without redis-py's per-command machinery.

A loopback GET through redis-py 8 spends about a quarter of its time in the client: the pool's
checkout (its lock, a poll for stray data, four observability recorders) and the command
dispatch around the socket calls (a retry wrapper, the HIMPORT check, duration recorders,
response callbacks). The Redis tier's hot commands need none of it: they are our scripts and
MGET (no response callback), and the domain's clients never retry (``Retry(NoBackoff(), 0)``:
the circuit breaker decides what a failure means). So ``Wire`` keeps a few connections it took
from the client's pool and sends on them directly, which makes a Redis-tier hit cost what a
raw GET costs although it is a script call.

What redis-py's pool guarantees is kept. A kept connection is checked before each use as the
pool checks one it hands out (``Wire._ready``), so a restart or a failover costs no error. A
connection whose exchange failed in any way but an error reply (a timeout, a reset, an
interrupt mid-read; in a pipeline, an error reply too) is disconnected, so it never carries a
stray reply into the next command; it reconnects on its next use, running the client's connect
hook (the restart watch). The connection's own health check runs as before (once before a
pipeline, never between its commands). In a forked child the kept connections are
forgotten, never used or closed (their sockets are the parent's: a reply would go to whichever
process reads first), as redis-py's pools do, by comparing the process id on every call (an
at-fork hook could run after another hook that already sends). A client this cannot serve as
redis-py would (a cluster client, a single-connection client, one whose connections retry, one
with client-side caching) gets ``execute_command`` (a redis-py pipeline for ``pipeline``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from time import monotonic
from typing import Any

import redis
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.utils import HIREDIS_AVAILABLE

if HIREDIS_AVAILABLE:
    from hiredis import pack_command

_WRITE = os.name == "posix"  # os.write on a socket's descriptor

KEEP = 8
"""Connections a ``Wire`` keeps between calls; more concurrent callers borrow from the pool
and give back to it."""

REUSE_UNCHECKED = 1.0
"""For a ``Wire(check=False)`` (the listener's acknowledgements): a kept connection used less
than this long ago (seconds) goes straight to the send. The check is a system call, and Python
lets other threads run during each one: a CPU-bound thread then keeps the interpreter for up
to a switch interval (5 ms) before the command goes out. A server that closed the connection
meanwhile costs that one command (an acknowledgement: the writer waits its trust window)."""


def _direct_pool(client: Any) -> Any:
    """The pool whose connections ``Wire`` may use directly, or None."""
    if type(client) is not redis.Redis or getattr(client, "connection", None) is not None:
        return None
    pool = client.connection_pool
    if getattr(pool, "cache", None) is not None:
        return None  # client-side caching: its connections are proxies with a cache
    retry = pool.connection_kwargs.get("retry")
    if retry is None or retry.get_retries() != 0:
        return None  # its connections retry (redis-py's default): let redis-py do it
    return pool


def _send(connection: Any, packed: bytes, check: bool = True) -> None:
    """``packed`` on ``connection`` in one write(2) where the socket is a plain one.

    A socket with a timeout (every one of ours) sends after a poll(2) for room, and Python
    lets other threads run during each system call: with a CPU-bound thread in the process,
    getting the interpreter back after the poll can take a switch interval (5 ms) before the
    command even goes out (an invalidation's acknowledgement, late by that much). A write to
    a socket with room in its buffer (the usual case: the last command's reply was read)
    sends at once; what does not fit goes out as redis-py sends it. TLS sockets are left to
    redis-py. ``check``: the connection's health check first, as ``send_packed_command``
    does (a ping when it is due; never between the commands of a pipeline, where the ping
    would read the reply of the command before it)."""
    if check:
        connection.check_health()
    sock = connection._sock
    if type(sock) is not socket.socket or not _WRITE:
        connection.send_packed_command((packed,), check_health=False)
        return
    try:
        sent = os.write(sock.fileno(), packed)
    except BlockingIOError:
        sent = 0
    except OSError as exc:  # as redis-py reports it
        raise redis.ConnectionError(f"Error while writing to socket: {exc}") from exc
    if sent < len(packed):
        connection.send_packed_command((memoryview(packed)[sent:],), check_health=False)


class Wire:
    """``wire(*args)`` sends one command and returns its reply, as
    ``client.execute_command(*args)`` would for the commands it is used for.

    ``check``: whether a kept connection is checked before each use, as the pool checks one
    it hands out (the default; without it, see ``REUSE_UNCHECKED``)."""

    __slots__ = ("_check_always", "_hiredis", "_idle", "_pid", "_pool", "client")

    def __init__(self, client: Any, check: bool = True) -> None:
        self.client = client
        self._pool = _direct_pool(client)
        self._idle: list[tuple[Any, float]] = []  # (connection, when it was last used)
        self._pid = os.getpid()
        self._check_always = check
        # Its connections pack with hiredis (redis-py's default when it is installed): called
        # directly, without redis-py's pass over the arguments (a list's MGET has 1,000).
        self._hiredis = (
            HIREDIS_AVAILABLE
            and self._pool is not None
            and ("command_packer" not in self._pool.connection_kwargs)
        )

    @property
    def direct(self) -> bool:
        return self._pool is not None

    def __call__(self, *args: Any) -> Any:
        pool = self._pool
        if pool is None:
            return self.client.execute_command(*args)
        packed = self._packed(args) if self._hiredis else None
        connection, used, now = self._checkout(pool)
        try:
            if used is not None:
                self._ready(pool, connection, now - used)
            if packed is not None:
                _send(connection, packed)
            else:
                connection.send_packed_command(connection.pack_command(*args))
            return connection.read_response()
        except ResponseError:  # an error reply: the exchange is complete
            raise
        except BaseException:  # the exchange may be half done: never reuse the stream
            connection.disconnect()
            raise
        finally:
            self._keep(connection, now)

    def pipeline(self, commands: Iterable[Sequence[Any]]) -> list[Any]:
        """The replies of ``commands``, each sent as soon as the iterable yields it, then all
        read in order: one round trip, in which the server works on the first command while
        the caller builds the next (a list's MGET in slices starts earlier than one MGET of
        every key). Any failure, an error reply included, disconnects: replies may be left
        unread. A client this cannot serve directly sends them as one redis-py pipeline
        (once the iterable is exhausted)."""
        pool = self._pool
        if pool is None:
            pipe = self.client.pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            return list(pipe.execute())
        connection, used, now = self._checkout(pool)
        try:
            if used is not None:
                self._ready(pool, connection, now - used)
            connection.check_health()  # once: a ping between two sends would read a reply
            sent = 0
            for args in commands:
                if self._hiredis:
                    _send(connection, self._packed(args), check=False)
                else:
                    connection.send_packed_command(
                        connection.pack_command(*args), check_health=False
                    )
                sent += 1
            return [connection.read_response() for _ in range(sent)]
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self._keep(connection, now)

    @staticmethod
    def _packed(args: Sequence[Any]) -> bytes:
        try:
            return pack_command(tuple(args))  # type: ignore[no-any-return]
        except TypeError as exc:  # as redis-py reports it (this command was not sent)
            raise DataError(str(exc)) from exc

    def _checkout(self, pool: Any) -> tuple[Any, float | None, float]:
        """A kept connection (and when it was last used), else one from the pool; and now."""
        if self._pid != os.getpid():  # a forked child: the kept sockets are the parent's
            self._idle = []  # first: another thread that sees the new pid reads this list
            self._pid = os.getpid()
        now = monotonic()
        try:
            connection, used = self._idle.pop()  # atomic: each caller gets its own
        except IndexError:
            return pool.get_connection(), None, now
        return connection, used, now

    def _ready(self, pool: Any, connection: Any, idle_for: float) -> None:
        """Make a kept connection what the pool would hand out: one the pool still owns (a
        Sentinel pool owns only connections to the current master), not marked for
        reconnection (redis-py's maintenance notices), with nothing to read (stray bytes, or
        the end of a stream the server closed: a restart, a failover, a killed client), and
        connected (a Sentinel-managed connection asks the Sentinels for the master in its
        ``connect``; sending alone would reconnect to the address it had)."""
        reconnect = getattr(connection, "should_reconnect", None)  # redis-py 7 and later
        if not pool.owns_connection(connection) or (reconnect is not None and reconnect()):
            connection.disconnect()
        elif self._check_always or idle_for >= REUSE_UNCHECKED:
            try:
                readable = connection.can_read()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                readable = True
            if readable:
                connection.disconnect()
        connection.connect()

    def script(self, script: Any, numkeys: int, *arguments: Any) -> Any:
        """A registered script (redis-py's ``Script``) called on the wire (its own
        ``__call__`` costs a few microseconds more), loaded again if the server does not know
        it (a restarted server, or another one after a failover)."""
        try:
            return self("EVALSHA", script.sha, numkeys, *arguments)
        except NoScriptError:
            script.sha = self.client.script_load(script.script)
            return self("EVALSHA", script.sha, numkeys, *arguments)

    def _keep(self, connection: Any, used: float) -> None:
        if len(self._idle) < KEEP:
            self._idle.append((connection, used))
        else:
            self._pool.release(connection)

    def close(self) -> None:
        """Give the kept connections back to the pool: the client's (an application's
        client outlives the domain), whose close disconnects them."""
        idle, self._idle = self._idle, []
        if self._pid == os.getpid() and self._pool is not None:
            for connection, _ in idle:
                self._pool.release(connection)
