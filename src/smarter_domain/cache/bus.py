"""The invalidation listener: a background thread subscribed to the namespace's channel.

Every process's memory tier drops what other processes invalidate. Pub/sub is at-most-once,
so the listener is only trusted while it is subscribed and its pings come back: until then
(start-up, a lost connection, a frozen Redis) the memory tier is bypassed, and every
(re)subscription clears it, since messages may have been missed. Each message is acknowledged,
so a writer can wait until every subscribed process has dropped the keys.

Anyone who can publish on the channel can forge a message, so a message is untrusted input: it
is size-capped and checked field by field, it can only ever drop keys of this namespace from
the memory tier (which costs a reload, never a stale read), and its acknowledgement goes only
to an acknowledgement key ``<namespace>:ack:<32 hex digits>`` and the keys derived from it
(``scripts.ack_keys``) that writers use, so a forged message cannot make listeners write to or
expire any other key in Redis.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from .keys import CacheKeys
from .protocol import TRUST_WINDOW
from .resilience import REDIS_ERRORS
from .scripts import ACK, ack_keys
from .topology import RedisTarget, close_client
from .wire import Wire

log = logging.getLogger("smarter_domain.cache.bus")

PING_EVERY = 0.1
DEAD_AFTER = 1.5
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""A replayed outage can publish up to 100,000 keys at once (``max_pending``); more is forged."""


READ_EVERY = 0.02
"""The longest one read of the subscription waits (the loop's tick: pings, ``DEAD_AFTER``)."""

_NOT_ENOUGH = object()


class _PolledMessages:
    """The subscription's messages as redis-py reads them (``get_message``): the fallback of
    ``_SocketMessages``."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def next(self) -> dict[str, Any] | None:
        message: dict[str, Any] | None = self._pubsub.get_message(timeout=READ_EVERY)
        return message


class _SocketMessages:
    """The subscription's messages read straight from its socket: one system call per
    wake-up, where redis-py's ``get_message`` makes four (a timeout set and restored, a poll,
    a read). Python lets other threads run during each system call, and a CPU-bound thread
    then keeps the interpreter for up to a switch interval (5 ms) each time: four of those
    were what a busy process's acknowledgement waited for. Here the socket blocks in a single
    read that the kernel ends after ``READ_EVERY`` (``SO_RCVTIMEO``), and hiredis parses what
    it returns.

    Taken over right after the SUBSCRIBE is sent, before anything is read from the stream
    (redis-py buffers nothing of it), on a connection speaking RESP2 (messages are plain
    arrays). Only on POSIX, with hiredis, over a plain (not TLS) socket: ``open`` says."""

    def __init__(self, sock: socket.socket) -> None:
        import hiredis

        self._sock = sock
        self._reader = hiredis.Reader(notEnoughData=_NOT_ENOUGH)
        sock.settimeout(None)
        micros = int(READ_EVERY * 1_000_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, micros))
        # A ping's send never waits longer than the listener may go without an answer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 1, 0))

    @classmethod
    def open(cls, pubsub: Any) -> _SocketMessages | _PolledMessages:
        connection = pubsub.connection
        sock = getattr(connection, "_sock", None)
        if (
            not HIREDIS_AVAILABLE
            or os.name != "posix"
            or type(sock) is not socket.socket
            or str(getattr(connection, "protocol", 2)) != "2"  # a URL's ?protocol=3 wins
        ):
            return _PolledMessages(pubsub)
        try:
            return cls(sock)
        except OSError:  # a platform whose timeval is not two C longs refuses the options
            sock.settimeout(connection.socket_timeout)
            return _PolledMessages(pubsub)

    def next(self) -> dict[str, Any] | None:
        frame = self._reader.gets()
        if frame is _NOT_ENOUGH:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:  # nothing within READ_EVERY
                return None
            if not data:
                raise redis.ConnectionError("Redis closed the subscription")
            self._reader.feed(data)
            frame = self._reader.gets()
            if frame is _NOT_ENOUGH:
                return None
        if not isinstance(frame, list) or not frame or not isinstance(frame[0], bytes):
            raise redis.ConnectionError(f"unexpected reply on the subscription: {frame!r:.80}")
        kind = frame[0].decode("ascii", "replace").lower()
        return {"type": kind, "data": frame[-1]}


def _finite(value: object) -> float | None:
    """A message's send time, if it is a finite number (an int too large for a float is not)."""
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class InvalidationListener:
    def __init__(
        self,
        target: RedisTarget,
        ack_client: Any,
        keys: CacheKeys,
        origin: str,
        drop: Callable[[list[str]], None],
        gap: Callable[[], None],
        tick: Callable[[], None] = lambda: None,
    ) -> None:
        self._target = target
        self._ack_client = ack_client
        # One script adds this process to the set of those that dropped the keys, and tells
        # the writer when the set is complete (``scripts.ACK``).
        self._ack_script = ack_client.register_script(ACK)
        # Sent at once (a writer waits for it): unchecked while in steady use.
        self._ack_wire = Wire(ack_client, check=False)
        self._prefix = keys.namespace + ":"
        self._is_ack = keys.is_ack
        channel = keys.channel()
        # A cluster uses sharded pub/sub: every listener subscribes on the shard that owns
        # the channel, so a publish's receiver count covers all of them.
        self._sharded = target.kind == "cluster"
        self.channel = channel
        self.origin = origin
        self._drop = drop
        self._gap = gap
        self._tick = tick
        self._healthy = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smarter-invalidations", daemon=True)
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=100_000)
        self.latency_hook: Callable[[float], None] | None = None
        self.messages = 0

    trusted_until = 0.0
    """CLOCK_MONOTONIC time until which the memory tier may be trusted (read by the hit path)."""

    @property
    def healthy(self) -> bool:
        return time.monotonic() < self.trusted_until

    def _set_healthy(self, value: bool) -> None:
        if value:
            self.trusted_until = time.monotonic() + TRUST_WINDOW
            self._healthy.set()
        else:
            self.trusted_until = 0.0
            self._healthy.clear()

    def start(self, wait: float = 2.0) -> None:
        self._thread.start()
        self.wait_subscribed(wait)

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the listener is subscribed (``timeout`` seconds at most)."""
        return self._healthy.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._ack_wire.close()

    def after_fork_in_child(self, origin: str) -> None:
        """In a forked child (``forking``), before ``start``: threads do not survive a fork,
        so the parent's listener thread does not run here, and nothing would ever make the
        memory tier trusted again (or, for the rest of the inherited trust window, it would be
        trusted with nobody dropping what other processes invalidate). Untrusted at once; a
        thread of this process's own, with this process's ``origin`` (acknowledgements count
        distinct origins, and a listener drops only what other origins invalidate); new
        events (a thread of the parent may have held their locks at the fork); the parent's
        figures forgotten. The subscription opens its own connection, as always."""
        self.trusted_until = 0.0
        self.origin = origin
        self._healthy = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smarter-invalidations", daemon=True)
        self.latencies_ms = collections.deque(maxlen=100_000)
        self.messages = 0

    def wait_until_healthy(self, timeout: float) -> bool:
        """Wait (``timeout`` seconds at most) until the listener is subscribed; whether it
        is."""
        self._healthy.wait(timeout)
        return self.healthy

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            try:
                self._listen()
                backoff = 0.05
            except REDIS_ERRORS as exc:
                if self._healthy.is_set():
                    self._set_healthy(False)
                    log.warning(
                        "invalidation listener lost Redis at %s (%s); memory tier bypassed",
                        self._target.safe_url,
                        exc,
                        extra={"event": "listener_lost", "error": type(exc).__name__},
                    )
            except Exception:
                self._set_healthy(False)
                log.exception(
                    "invalidation listener failed; restarting it",
                    extra={"event": "listener_failed"},
                )
            if not self._stopping.is_set():
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 1.0)

    def _listen(self) -> None:
        client = self._client()
        pubsub = client.pubsub()
        try:
            if self._sharded:
                pubsub.ssubscribe(self.channel)
            else:
                pubsub.subscribe(self.channel)
            messages = _SocketMessages.open(pubsub)
            self._await(messages, "ssubscribe" if self._sharded else "subscribe")
            # Anything published before this subscription may have been missed.
            self._gap()
            was_down = not self._healthy.is_set()
            self._set_healthy(True)
            if was_down and self.messages:
                log.warning(
                    "invalidation listener back; memory tier cleared",
                    extra={"event": "listener_back"},
                )
            pings: collections.deque[float] = collections.deque()
            last_pong = time.monotonic()
            next_ping = last_pong
            while not self._stopping.is_set():
                message = messages.next()
                now = time.monotonic()
                if message is not None:
                    if message["type"] == "pong" and pings:
                        # Every message published before this ping was sent has been handled.
                        self.trusted_until = pings.popleft() + TRUST_WINDOW
                        last_pong = now
                    elif message["type"] in ("message", "smessage"):
                        self._handle(message["data"])
                    elif message["type"] == "sunsubscribe":
                        raise redis.ConnectionError("the channel's slot moved to another node")
                self._tick()
                if now >= next_ping:
                    pings.append(time.monotonic())
                    pubsub.ping()
                    next_ping = now + PING_EVERY
                if now - last_pong > DEAD_AFTER:
                    raise redis.TimeoutError("no answer to the listener's pings")
        finally:
            self._set_healthy(False)
            try:
                pubsub.close()
                close_client(client)
            except REDIS_ERRORS:
                pass

    def _client(self) -> Any:
        """A new connection for the subscription: to the server, to the master the Sentinels
        name now, or to the cluster node that owns the channel's slot now."""
        options: dict[str, Any] = {
            "socket_timeout": 2.0,
            "socket_connect_timeout": 0.5,
            "retry": Retry(NoBackoff(), 0),
            "client_name": "smarter-domain-listener",
            "protocol": 2,  # messages as plain arrays (``_SocketMessages``)
        }
        if not self._sharded:
            return self._target.client(**options)
        cluster = self._target.cluster(**options)
        try:
            node = cluster.get_node_from_key(self.channel)  # type: ignore[no-untyped-call]
        finally:
            cluster.close()
        return redis.Redis(
            host=node.host,
            port=node.port,
            ssl=self._target.ssl,
            **self._target.credentials(),
            **options,
        )

    def _await(self, messages: _SocketMessages | _PolledMessages, kind: str) -> None:
        deadline = time.monotonic() + DEAD_AFTER
        while time.monotonic() < deadline:
            message = messages.next()
            if message is not None and message["type"] == kind:
                return
        raise redis.TimeoutError(f"no {kind} confirmation")

    def _parse(self, data: Any) -> tuple[list[str], str, str, float | None] | None:
        """(keys, origin, ack key, sent time) of a well-formed message, else None."""
        if not isinstance(data, bytes) or len(data) > MAX_MESSAGE_BYTES:
            return None
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            return None
        if not isinstance(message, dict):
            return None
        keys, origin = message.get("k"), message.get("o", "")
        ack, sent = message.get("a", ""), message.get("t")
        if not isinstance(keys, list) or not all(type(k) is str for k in keys):
            return None
        if type(origin) is not str:
            origin = ""
        if type(ack) is not str or not self._is_ack(ack):
            # Not an acknowledgement key of ours (forged, or of another release): the keys are
            # still dropped (that costs a reload at worst), nothing is written anywhere.
            ack = ""
        ours = [k for k in keys if k.startswith(self._prefix)]
        return ours, origin, ack, _finite(sent)

    def _handle(self, data: Any) -> None:
        try:
            parsed = self._parse(data)
        except Exception:  # a message is input: whatever it holds, it cannot stop the listener
            parsed = None
        if parsed is None:
            log.warning(
                "malformed invalidation message ignored", extra={"event": "message_malformed"}
            )
            return
        keys, origin, ack, sent = parsed
        self.messages += 1
        if origin != self.origin:
            self._drop(keys)
            if sent is not None:
                seconds = time.time() - sent
                self.latencies_ms.append(seconds * 1000)
                hook = self.latency_hook
                if hook is not None and seconds >= 0:  # (clocks of two hosts may disagree)
                    try:  # telemetry's histogram (``smarter_domain.telemetry``)
                        hook(seconds)
                    except Exception:  # never the listener's problem
                        log.debug(
                            "latency not recorded", exc_info=True, extra={"event": "hook_failed"}
                        )
        if ack:
            try:
                self._ack_wire.script(self._ack_script, 4, *ack_keys(ack), ack, self.origin)
            except REDIS_ERRORS as exc:
                log.debug(
                    "could not acknowledge an invalidation: %s",
                    exc,
                    extra={"event": "ack_failed", "error": type(exc).__name__},
                )
