"""Counting what a call sends to Redis: the commands clients send (round trips), apart from the
commands the scripts they run call inside Redis (which ``INFO commandstats`` counts too)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

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
