"""The async front door's hot Redis commands on one asyncio connection per event loop,
without redis.asyncio's per-command machinery: ``wire.py``'s idea for the loop.

A loopback EVALSHA through ``redis.asyncio`` costs about three times the blocking ``Wire``'s
(its connection pool's lock and checkout, its stream reader, its retry and observability
wrappers); an ``asyncio.Protocol`` that packs with hiredis and resolves a future from
``data_received`` costs what the blocking one does. The connection is multiplexed: commands
of concurrent tasks are written as they come and their replies, which Redis sends in the same
order, resolve their futures in turn (so concurrent callers pipeline for free, and a caller
cancelled while it waits leaves the stream in order: its reply is read and dropped).

What the blocking client's connections guarantee is kept:
- the handshake (AUTH, SELECT, CLIENT SETNAME) and the restart watch (``ServerWatch``: the
  namespace flushed before a new server's first use) run on every new connection, before any
  command is written on it;
- ``socket_timeout`` bounds every reply: past it, every command waiting on the connection
  fails with ``redis.TimeoutError`` and the connection is closed (its stream may be out of
  step), as is one the server closed; the next command reconnects;
- a forked child never uses its parent's connection.

Only a plain TCP server (``redis://``) is served so; TLS, unix sockets, Sentinel and Cluster
go through ``redis.asyncio`` (``async_redis.AwaitingRedis``). Blocking commands (BLPOP) never
go on this connection: they would hold every other command behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis
from redis._parsers.base import BaseParser
from redis.exceptions import InvalidResponse, NoScriptError

from .concurrency import await_only, spawn
from .restarts import ServerWatch


class _Protocol(asyncio.Protocol):
    """One connection: writes packed commands, resolves their futures in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error
        )
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except Exception as exc:  # a protocol error: the stream is lost
                self.fail(exc)
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: out of step
                self.fail(redis.ConnectionError("unexpected reply from Redis"))
                return
            future = waiting.popleft()
            if not future.done():  # (a cancelled caller's reply is read and dropped)
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.ConnectionError(f"Redis closed the connection: {exc or 'end of stream'}"))

    def fail(self, exc: BaseException) -> None:
        """Fail every command waiting here and close the connection."""
        if self.lost is None:
            self.lost = exc
        waiting, self.waiting = self.waiting, deque()
        for future in waiting:
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def send(self, packed: bytes, count: int = 1) -> list[asyncio.Future[Any]]:
        if self.lost is not None:
            raise redis.ConnectionError(f"Redis connection lost: {self.lost}")
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        self.waiting.extend(futures)
        self.transport.write(packed)
        return futures


class _Handshake:
    """A new connection, as ``ServerWatch.on_connect`` (sync logic, in a greenlet) sees it."""

    def __init__(self, protocol: _Protocol, options: dict[str, Any], timeout: float) -> None:
        self._protocol = protocol
        self._options = options
        self._timeout = timeout
        self._sent: deque[asyncio.Future[Any]] = deque()
        self.host = options.get("host", "-")
        self.port = options.get("port", "-")

    def send_command(self, *args: Any) -> None:
        self._sent.extend(self._protocol.send(_pack(args)))

    def read_response(self) -> Any:
        return await_only(_bounded(self._sent.popleft(), self._timeout, self._protocol))

    def on_connect(self) -> None:
        """The blocking connection's handshake: AUTH, SELECT, CLIENT SETNAME."""
        options = self._options
        password, username = options.get("password"), options.get("username")
        if password:
            self.send_command("AUTH", *((username,) if username else ()), password)
            self.read_response()
        if options.get("db"):
            self.send_command("SELECT", options["db"])
            self.read_response()
        if options.get("client_name"):
            self.send_command("CLIENT", "SETNAME", options["client_name"])
            self.read_response()

    def mark_for_reconnect(self) -> None:  # a cluster's replica: never served here
        pass


def _pack(args: Sequence[Any]) -> bytes:
    try:
        return hiredis.pack_command(tuple(args))  # type: ignore[no-any-return]
    except TypeError as exc:  # as redis-py reports it (nothing was sent)
        raise redis.DataError(str(exc)) from exc


async def _bounded(future: asyncio.Future[Any], timeout: float, protocol: _Protocol) -> Any:
    """The reply, or past ``timeout`` a ``redis.TimeoutError`` for every command waiting on
    the connection (which is closed: a late reply would come out of step)."""
    if future.done():
        return future.result()
    loop = asyncio.get_running_loop()
    timer = loop.call_later(
        timeout, protocol.fail, redis.TimeoutError("Timeout reading from socket")
    )
    try:
        return await future
    finally:
        timer.cancel()


class AsyncWire:
    """``Wire``'s interface for the async front door: ``await wire(*args)``, ``await
    wire.script(...)``, ``await wire.pipeline(commands)``, on one multiplexed connection per
    event loop. ``options``: the blocking pool's ``connection_kwargs`` (host, port, db,
    credentials, client name, timeouts)."""

    def __init__(self, options: dict[str, Any], watch: ServerWatch | None) -> None:
        self._options = options
        self._watch = watch
        self._timeout = float(options.get("socket_timeout") or 5.0)
        self._connect_timeout = float(
            options.get("socket_connect_timeout") or options.get("socket_timeout") or 5.0
        )
        self._protocol: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()
        self._connecting: asyncio.Task[_Protocol] | None = None
        self.closed = False

    @staticmethod
    def serves(client: Any) -> bool:
        """Whether a blocking client's server can be reached this way (plain TCP)."""
        if type(client) is not redis.Redis or getattr(client, "connection", None) is not None:
            return False
        pool = client.connection_pool
        return pool.connection_class is redis.Connection and getattr(pool, "cache", None) is None

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        loop = asyncio.get_running_loop()
        if (
            protocol is not None
            and protocol.lost is None
            and self._loop is loop
            and self._pid == os.getpid()
        ):
            return protocol
        if self.closed:
            raise redis.ConnectionError("the domain was closed")
        connecting = self._connecting
        if connecting is None or self._loop is not loop or self._pid != os.getpid():
            # In a task of its own, which every caller awaits shielded: one caller cancelled
            # while the handshake runs cancels neither the connection nor the others' wait.
            self._loop, self._pid, self._protocol = loop, os.getpid(), None
            self._connecting = connecting = loop.create_task(self._connect(loop))
            connecting.add_done_callback(self._connected)
        return await asyncio.shield(connecting)

    def _connected(self, task: asyncio.Task[_Protocol]) -> None:
        if self._connecting is task:
            self._connecting = None
        if task.cancelled() or task.exception() is not None:
            return
        protocol = task.result()
        if self.closed:
            protocol.fail(redis.ConnectionError("the domain was closed"))
        elif self._loop is asyncio.get_running_loop():
            self._protocol = protocol

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        options = self._options
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    _Protocol, options.get("host", "localhost"), options.get("port", 6379)
                ),
                self._connect_timeout,
            )
        except TimeoutError as exc:
            raise redis.TimeoutError("Timeout connecting to server") from exc
        except OSError as exc:
            raise redis.ConnectionError(f"Error connecting to Redis: {exc}") from exc
        handshake = _Handshake(protocol, options, self._timeout)
        try:
            if self._watch is not None:
                await spawn(self._watch.on_connect, handshake)
            else:
                await spawn(handshake.on_connect)
        except BaseException:
            protocol.fail(redis.ConnectionError("the connection's handshake failed"))
            raise
        return protocol

    async def __call__(self, *args: Any) -> Any:
        protocol = await self._connection()
        [future] = protocol.send(_pack(args))
        return await _bounded(future, self._timeout, protocol)

    async def script(self, script: Any, numkeys: int, *arguments: Any) -> Any:
        """A registered script (redis-py's ``Script``), loaded again if the server does not
        know it."""
        try:
            return await self("EVALSHA", script.sha, numkeys, *arguments)
        except NoScriptError:
            script.sha = await self("SCRIPT", "LOAD", script.script)
            return await self("EVALSHA", script.sha, numkeys, *arguments)

    async def pipeline(self, commands: Iterable[Sequence[Any]]) -> list[Any]:
        """Every command written in one go, every reply read in order (one round trip)."""
        protocol = await self._connection()
        packed = [_pack(args) for args in commands]
        if not packed:
            return []
        futures = protocol.send(b"".join(packed), len(packed))
        try:
            return [await _bounded(future, self._timeout, protocol) for future in futures]
        except BaseException:
            for future in futures:  # what failed with them: retrieved, never logged as lost
                if future.done() and not future.cancelled():
                    future.exception()
            raise

    def close(self) -> None:
        """Close the connection (from its loop; one of a loop that is gone is dropped); no
        new one is opened (a call gets ``redis.ConnectionError``: an outage, to the tiers)."""
        self.closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # it closed meanwhile
                    loop.call_soon_threadsafe(protocol.transport.close)
