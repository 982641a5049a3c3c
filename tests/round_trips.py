"""Counting what a call sends to Redis: the commands clients send, apart from the commands the
scripts they run call inside Redis (which ``INFO commandstats`` counts too); and the round
trips a ``Wire`` makes (a pipeline of several commands is one: every command is sent before
any reply is read)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from smarter_domain.cache.wire import Wire

IGNORED = ("monitor", "ping", "echo", "hello", "client", "auth", "select", "getrange")
"""Never counted: the listener's pings, this helper's own markers, and what a new connection
sends before its first command (a reconnect is not a round trip of the call)."""


def commands_sent(client: redis.Redis, action: Callable[[], Any]) -> Counter[str]:
    """The commands sent to the server of ``client`` while ``action()`` runs (MONITOR, which
    tags the commands scripts run with ``lua``), by name, lower case."""
    seen: Counter[str] = Counter()
    marker = f"end-of-count-{uuid.uuid4().hex}"
    ready = threading.Event()
    done = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            for entry in monitor.listen():
                command = str(entry["command"])
                if marker in command:
                    break
                if entry.get("client_type") == "lua" or command.lower().startswith(IGNORED):
                    continue
                seen[command.split(" ", 1)[0].lower()] += 1
        done.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(5)
    client.echo("start")  # MONITOR is on once a command after it shows
    seen.clear()
    action()
    client.echo(marker)
    assert done.wait(10), "MONITOR did not see the end marker"
    thread.join(5)
    return seen


def exchanges_on(wire: Wire, action: Callable[[], Any]) -> list[str]:
    """The round trips ``action()`` makes on ``wire``: a command's name for each single
    command, ``"pipeline"`` for each pipeline."""
    seen: list[str] = []
    call, pipeline = Wire.__call__, Wire.pipeline

    def counted_call(self: Wire, *args: Any) -> Any:
        if self is wire:
            seen.append(str(args[0]))
        return call(self, *args)

    def counted_pipeline(self: Wire, commands: Iterable[Sequence[Any]]) -> list[Any]:
        if self is wire:
            seen.append("pipeline")
        return pipeline(self, commands)

    Wire.__call__ = counted_call  # type: ignore[method-assign]
    Wire.pipeline = counted_pipeline  # type: ignore[method-assign]
    try:
        action()
    finally:
        Wire.__call__ = call  # type: ignore[method-assign]
        Wire.pipeline = pipeline  # type: ignore[method-assign]
    return seen
