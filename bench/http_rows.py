"""Requests per second of a FastAPI endpoint reading one user, with and without the cache.

uvicorn serves ``http_app`` (one worker, loopback); a client in this process keeps
``CONNECTIONS`` keep-alive connections busy for ``SECONDS`` per round, alternating the cached
and the uncached endpoint. The client shares the 2 cores with the server and the databases:
the figures are this machine's, the ratio is the point.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import Bench

HERE = Path(__file__).resolve().parent
CONNECTIONS = 16
SECONDS = 2.0
ROUNDS = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _requests_per_second(port: int, path: str, seconds: float) -> float:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    deadline = time.monotonic() + seconds
    done = 0

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head[:80]
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return done / (time.monotonic() - started)


def http_rows(bench: Bench, database_url: str, redis_url: str) -> None:
    port = _free_port()
    environment = {
        **os.environ,
        "SMARTER_DATABASE_URL": database_url,
        "SMARTER_REDIS_URL": redis_url,
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(HERE),
            "http_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=environment,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)
        cached_path, uncached_path = "/cached/member7", "/uncached/member7"
        for path in (cached_path, uncached_path):  # warm-up: connections, caches, scripts
            asyncio.run(_requests_per_second(port, path, 0.5))
        cached, uncached = [], []
        for _ in range(ROUNDS):
            cached.append(asyncio.run(_requests_per_second(port, cached_path, SECONDS)))
            uncached.append(asyncio.run(_requests_per_second(port, uncached_path, SECONDS)))
    finally:
        server.terminate()
        server.wait(30)
    with_cache, without = statistics.median(cached), statistics.median(uncached)
    bench.fact(
        "FastAPI example endpoint, one user by username, requests/s (uvicorn, 1 worker, "
        f"{CONNECTIONS} keep-alive connections)",
        f"{with_cache:,.0f} with the cache, {without:,.0f} without ({with_cache / without:.2f}x)",
        "report",
        None,
    )
