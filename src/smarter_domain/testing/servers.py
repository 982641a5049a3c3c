"""Throw-away PostgreSQL and Redis servers on loopback, one per test session.

Both listen on 127.0.0.1 and a free port, keep their data in a temporary directory, and are
tuned for tests (no fsync, no persistence). PostgreSQL refuses to run as root, so under root
it runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql

from ..errors import SmarterError

LOOPBACK = "127.0.0.1"


class ServerNotAvailable(SmarterError):
    """The server's binaries are missing or it would not start."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _wait_until(ready: Callable[[], bool], timeout: float, what: str, process: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerNotAvailable(f"{what} exited with code {process.returncode} at start")
        if ready():
            return
        time.sleep(0.05)
    raise ServerNotAvailable(f"{what} did not become ready in {timeout:.0f}s")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


class _Server:
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _terminate(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._terminate()


class RedisServer(_Server):
    """``redis-server`` on 127.0.0.1; ``stop()`` and ``start()`` again keep the port, so
    tests can take Redis away and bring it back."""

    def __init__(self, executable: str | None = None, port: int | None = None) -> None:
        self.executable = executable or find_redis_server()
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="smarter-redis-"))

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until(lambda: _port_open(self.port), 15, "redis-server", self.process)

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        self._terminate(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang, as with a blackholed host; the
        data stays."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class PostgresServer(_Server):
    """A private PostgreSQL cluster (initdb + postgres) on 127.0.0.1, trust authentication."""

    superuser = "postgres"

    def __init__(self, bin_dir: str | Path | None = None, port: int | None = None) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_postgres_bin_dir()
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="smarter-pg-"))
        self.data = self.directory / "data"
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self._run_as = {
                "user": account.pw_uid,
                "group": account.pw_gid,
                "extra_groups": [],
                "env": {**os.environ, "HOME": str(self.directory)},
            }

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.superuser}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> None:
        if self.running:
            return
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.superuser,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=self.directory,
                **self._run_as,
            )
        self.process = subprocess.Popen(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
            **self._run_as,
        )
        _wait_until(self._accepts_connections, 30, "postgres", self.process)

    def _accepts_connections(self) -> bool:
        try:
            psycopg.connect(self._dsn("postgres"), connect_timeout=1).close()
        except psycopg.OperationalError:
            return False
        return True

    def _dsn(self, database: str) -> str:
        return f"host={LOOPBACK} port={self.port} user={self.superuser} dbname={database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally copied from ``template``); returns its URL."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
            connection.execute(statement)
        return self.url(name)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients instead of waiting.
        self._terminate(signal.SIGINT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def find_redis_server() -> str:
    candidates = [
        os.environ.get("SMARTER_REDIS_SERVER"),
        shutil.which("redis-server"),
        "/usr/bin/redis-server",
        "/usr/sbin/redis-server",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServerNotAvailable(
        "redis-server not found: install it (apt-get install redis-server) "
        "or set SMARTER_REDIS_SERVER"
    )


def find_postgres_bin_dir() -> Path:
    candidates: list[Path] = []
    if env := os.environ.get("SMARTER_PG_BIN"):
        candidates.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, check=True)
            candidates.append(Path(out.stdout.decode().strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise ServerNotAvailable(
        "PostgreSQL server binaries (initdb, postgres) not found: install them "
        "(apt-get install postgresql) or set SMARTER_PG_BIN"
    )
