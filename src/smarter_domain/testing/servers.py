"""Throw-away PostgreSQL and Redis servers on loopback: a single Redis, and also a Redis
Cluster and a Redis Sentinel setup made of several ``redis-server`` processes.

All listen on 127.0.0.1 and free ports, keep their data in temporary directories, and are
tuned for tests (no fsync, no persistence). PostgreSQL refuses to run as root, so under root
it runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from ..model.errors import SmarterError

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

    def __init__(
        self,
        executable: str | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.executable = executable or find_redis_server()
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="smarter-redis-"))
        #: Appended to the command line (later options win): cluster or replication settings.
        self.extra_args = list(extra_args)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_until(lambda: _port_open(self.port), 15, "redis-server", self.process)

    def _command(self) -> list[str]:
        return [
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
            *self.extra_args,
        ]

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
    """A private PostgreSQL cluster (initdb + postgres) on 127.0.0.1, trust authentication.

    Tuned for tests (no fsync, asynchronous commits) unless ``durable``: a crash (``crash()``,
    kill -9) of a server that is not durable may lose commits it acknowledged, so fault tests
    that crash it ask for a durable one. ``restart()`` is a fast shutdown and a start."""

    superuser = "postgres"

    def __init__(
        self, bin_dir: str | Path | None = None, port: int | None = None, durable: bool = False
    ) -> None:
        self.durable = durable
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
                *(() if self.durable else _FAST_BUT_NOT_DURABLE),
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

    def restart(self) -> None:
        """A fast restart (``pg_ctl restart -m fast``): clients are disconnected."""
        self.stop()
        self.start()

    def crash(self) -> None:
        """kill -9 the postmaster and every backend, then start again (crash recovery)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            children = _children_of(process.pid)
            process.kill()
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait()
            deadline = time.monotonic() + 10
            while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


_FAST_BUT_NOT_DURABLE = (
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
)


def _children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: ``free_port()`` alone may hand out the same one twice."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def _client(port: int) -> redis.Redis:
    # No retries and a short connect timeout: these servers get killed on purpose, and a dead
    # one must fail at once instead of stalling the readiness polls with backoffs.
    return redis.Redis(
        host=LOOPBACK,
        port=port,
        socket_timeout=10,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )


def _quietly(check: Callable[[], bool]) -> Callable[[], bool]:
    """A readiness check that counts "not reachable yet" or "not answering yet" as not ready."""

    def ready() -> bool:
        try:
            return check()
        except (redis.RedisError, OSError):
            return False

    return ready


def _execute(client: redis.Redis, *args: Any) -> Any:
    """A raw command, with redis-py's reply parsing out of the way (it differs between
    versions for CLUSTER and SENTINEL replies)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: Any) -> dict[str, str]:
    """A SENTINEL MASTER or SENTINEL REPLICAS entry as a ``str`` dict: a flat ``[field,
    value, ...]`` list, or a map under RESP3 (and some redis-py versions)."""
    if isinstance(reply, dict):
        return {_text(key): _text(value) for key, value in reply.items()}
    items = [_text(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def _healthy(entry: dict[str, str], role: str) -> bool:
    """A sentinel's view of an instance: connected, not down, no failover under way.
    ``master_down`` on another sentinel only recalls its vote in the last failover, and
    fades by itself after 5 s."""
    return set(entry["flags"].split(",")) - {"master_down"} == {role}


class _Members:
    """Stands in for one process in ``_wait_until``: it has "exited" as soon as any member
    has, so a crashed node fails the wait at once instead of at the timeout."""

    def __init__(self, servers: Iterable[_Server]) -> None:
        self.servers = list(servers)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        for server in self.servers:
            code = -1 if server.process is None else server.process.poll()
            if code is not None:
                self.returncode = code
                return code
        return None


def _stop_all(servers: Iterable[RedisServer]) -> None:
    for server in servers:
        server.resume()  # a paused (SIGSTOP) server cannot handle SIGTERM
        server._terminate(signal.SIGTERM, timeout=5)


class _TopologyServers(_Server):
    """A group of redis-server processes used as one: ``with`` starts it and cleans up
    everything (processes and directories) on exit, since a half-torn-down topology is of no
    use to anyone."""

    def __init__(self, executable: str | None) -> None:
        self.executable = executable or find_redis_server()
        self._clients: dict[int, redis.Redis] = {}

    @property
    def members(self) -> list[RedisServer]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return all(member.running for member in self.members)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _client(self, port: int) -> redis.Redis:
        if port not in self._clients:
            self._clients[port] = _client(port)
        return self._clients[port]

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        running = [member for member in self.members if member.process is not None]
        _wait_until(_quietly(ready), timeout, what, _Members(running))

    def stop(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        _stop_all(self.members)

    def close(self) -> None:
        self.stop()
        for member in self.members:
            member.close()


class RedisClusterServers(_TopologyServers):
    """A real three-master Redis Cluster on 127.0.0.1 (slots split evenly), to test cluster
    clients against MOVED/ASK redirections, live slot migration and, with ``replicas=1``,
    a master's failover to its replica (``fail_over()``).

    Each node gets an explicit ``--cluster-port``: the default bus port is the data port +
    10000, which can be taken or exceed 65535 when the data port is a high ephemeral one.
    ``nodes`` lists every node (masters first, as created); which ones are masters changes
    with failovers: ``masters()`` says.
    """

    size = 3

    def __init__(
        self, executable: str | None = None, cli: str | None = None, replicas: int = 0
    ) -> None:
        super().__init__(executable)
        self.cli = cli or find_redis_cli(self.executable)
        self.replicas = replicas
        count = self.size * (1 + replicas)
        ports = _free_ports(2 * count)
        self.nodes = [RedisServer(self.executable, port) for port in ports[:count]]
        for node, bus_port in zip(self.nodes, ports[count:], strict=True):
            node.extra_args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.directory / f"nodes-{node.port}.conf"),
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                str(bus_port),
                "--repl-diskless-sync-delay",
                "0",
            ]
        self._created = False

    @property
    def members(self) -> list[RedisServer]:
        return self.nodes

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{port}" for port in self.ports)

    def start(self) -> None:
        """Start the nodes; the first time, create the cluster. Returns once every node
        reports ``cluster_state:ok`` and all agree on the slot map. A stopped cluster starts
        again from its ``nodes-<port>.conf`` files, same ports, same slots."""
        if self.running:
            return
        try:
            for node in self.nodes:
                node.start()
            if not self._created:
                self._create()
            self._wait(self._settled, 30, "redis cluster")
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        command = [
            self.cli,
            "--cluster",
            "create",
            *(f"{LOOPBACK}:{port}" for port in self.ports),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        except subprocess.CalledProcessError as error:
            output = (error.stdout + error.stderr).decode(errors="replace")
            raise ServerNotAvailable(f"redis-cli --cluster create failed: {output}") from error
        self._created = True

    def _live(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.running]

    def _settled(self, replicas: int | None = None) -> bool:
        """Every running node says ``cluster_state:ok`` and sees the same slot map, served by
        ``size`` masters that each have ``replicas`` (by default all of theirs) replicas."""
        wanted = self.replicas if replicas is None else replicas
        live = self._live()
        for i in live:
            info = _text(_execute(self.node_client(i), "CLUSTER", "INFO"))
            if "cluster_state:ok" not in info:
                return False
        replies = [_execute(self.node_client(i), "CLUSTER", "SLOTS") for i in live]
        tables = [self._table(reply) for reply in replies]
        owners = {port for _, _, port in tables[0]}
        if not all(table == tables[0] for table in tables) or len(owners) != self.size:
            return False
        return all(len(entry) - 3 >= wanted for reply in replies for entry in reply)

    def masters(self) -> list[int]:
        """Indexes (in ``nodes``) of the nodes that serve slots now."""
        owners = {port for _, _, port in self._slot_table(self._live()[0])}
        return [i for i, port in enumerate(self.ports) if port in owners]

    def fail_over(self, master: int) -> int:
        """Kill -9 the master ``nodes[master]``, as a crash would; return (the index of its
        replica, promoted by the cluster) once its slots are served again, after the
        node-timeout (2 s) and an election. The killed node is then started again and
        rejoins as a replica of the one that replaced it (it had no persistence: it syncs
        from it); this returns once every master has its replicas again."""
        if self.replicas < 1:
            raise ValueError("fail_over() needs a cluster created with replicas=1 or more")
        before = self.masters()
        if master not in before:
            raise ValueError(f"node {master} is not a master")
        killed = self.ports[master]
        self.nodes[master].kill()

        def promoted() -> bool:
            return all(
                "cluster_state:ok" in _text(_execute(self.node_client(i), "CLUSTER", "INFO"))
                and killed not in {port for _, _, port in self._slot_table(i)}
                for i in self._live()
            )

        self._wait(promoted, 30, "redis cluster failover")
        (replacement,) = set(self.masters()) - set(before)
        self.nodes[master].start()
        self._wait(self._settled, 30, "redis cluster rejoin")
        return replacement

    @staticmethod
    def _table(reply: Any) -> list[tuple[int, int, int]]:
        return sorted((int(first), int(last), int(nodes[1])) for first, last, nodes, *_ in reply)

    def _slot_table(self, i: int) -> list[tuple[int, int, int]]:
        """Node ``i``'s view of the slot map: ``(first, last, owner port)`` ranges."""
        return self._table(_execute(self.node_client(i), "CLUSTER", "SLOTS"))

    def node_client(self, i: int) -> redis.Redis:
        """A plain (non-cluster) client of node ``i``, owned by this object: no need to close
        it. Commands on keys of other nodes get MOVED errors, as they should."""
        return self._client(self.nodes[i].port)

    def node_id(self, i: int) -> str:
        return _text(_execute(self.node_client(i), "CLUSTER", "MYID"))

    def slot_owner(self, slot: int, seen_by: int = 0) -> int:
        """Index of the node that serves ``slot``, according to node ``seen_by``."""
        for first, last, port in self._slot_table(seen_by):
            if first <= slot <= last:
                return self.ports.index(port)
        raise LookupError(f"slot {slot} is not served by any node")

    def owner_of(self, key: str) -> int:
        """Index of the node that serves ``key``."""
        return self.slot_owner(key_slot(key.encode()))

    def key_on(self, i: int, prefix: str = "key") -> str:
        """A key (``prefix`` plus a number) that node ``i`` serves, to aim a test at a node."""
        table = self._slot_table(0)
        for n in itertools.count():
            key = f"{prefix}{n}"
            slot = key_slot(key.encode())
            if any(first <= slot <= last and port == self.ports[i] for first, last, port in table):
                return key
        raise AssertionError("unreachable")

    def move_slot(self, slot: int, to: int) -> None:
        """Live-migrate ``slot`` and its keys to node ``to``, as ``redis-cli --cluster
        reshard`` would: clients see ASK during the move and MOVED after it. Returns once
        every node agrees on the new owner."""
        source = self.slot_owner(slot)
        if source == to:
            return
        source_client, target_client = self.node_client(source), self.node_client(to)
        source_id, target_id = self.node_id(source), self.node_id(to)
        _execute(target_client, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        _execute(source_client, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := _execute(source_client, "CLUSTER", "GETKEYSINSLOT", slot, 100):
            _execute(source_client, "MIGRATE", LOOPBACK, self.ports[to], "", 0, 5000, "KEYS", *keys)
        # The target first, then the source (so no request bounces between the two), then
        # the others, rather than waiting for gossip.
        others = [i for i in self.masters() if i not in (source, to)]
        for i in [to, source, *others]:
            _execute(self.node_client(i), "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self._wait(
            lambda: all(self.slot_owner(slot, seen_by=i) == to for i in self._live()),
            10,
            "redis cluster slot migration",
        )

    def flushall(self) -> None:
        for i in self.masters():  # replicas follow (and refuse writes)
            self.node_client(i).flushall()


class _SentinelServer(RedisServer):
    """``redis-server <conf> --sentinel``: Sentinel wants a writable config file, it rewrites
    it with what it learns (other sentinels, replicas, failovers)."""

    def __init__(
        self, executable: str, port: int, master_port: int, service_name: str, quorum: int
    ) -> None:
        super().__init__(executable, port)
        self.config = self.directory / f"sentinel-{port}.conf"
        self.config.write_text(
            f"port {port}\n"
            f"bind {LOOPBACK}\n"
            "protected-mode yes\n"
            f"dir {self.directory}\n"
            "loglevel warning\n"
            f"sentinel monitor {service_name} {LOOPBACK} {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {service_name} 1000\n"
            f"sentinel failover-timeout {service_name} 3000\n"
            f"sentinel parallel-syncs {service_name} 1\n"
        )

    def _command(self) -> list[str]:
        return [self.executable, str(self.config), "--sentinel"]


class RedisSentinelServers(_TopologyServers):
    """A real Sentinel setup on 127.0.0.1: a master, one replica and three sentinels (quorum
    2), with a 1 s down-after, so tests can kill the master and watch a failover in seconds.
    Start it once: it is not meant to be stopped and started again."""

    service_name = "mymaster"

    def __init__(self, executable: str | None = None) -> None:
        super().__init__(executable)
        master_port, replica_port, *sentinel_ports = _free_ports(5)
        self.data_nodes = [
            RedisServer(self.executable, port) for port in (master_port, replica_port)
        ]
        self._replicate(self.data_nodes[0], None)
        self._replicate(self.data_nodes[1], master_port)
        self.sentinels = [
            _SentinelServer(self.executable, port, master_port, self.service_name, quorum=2)
            for port in sentinel_ports
        ]
        self._killed: RedisServer | None = None
        self._killed_port: int | None = None

    @staticmethod
    def _replicate(node: RedisServer, master_port: int | None) -> None:
        # No diskless-sync delay (5 s by default): the full sync must not hold up a test.
        node.extra_args = ["--repl-diskless-sync-delay", "0"]
        if master_port is not None:
            node.extra_args += ["--replicaof", LOOPBACK, str(master_port)]

    @property
    def members(self) -> list[RedisServer]:
        return [*self.sentinels, *self.data_nodes]

    @property
    def running(self) -> bool:
        # A killed master is part of the test, not a stopped setup.
        return all(member.running for member in self.members if member is not self._killed)

    @property
    def sentinel_ports(self) -> list[int]:
        return [sentinel.port for sentinel in self.sentinels]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """For ``redis.sentinel.Sentinel(...)``."""
        return [(LOOPBACK, port) for port in self.sentinel_ports]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{LOOPBACK}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service_name}/0"

    def start(self) -> None:
        """Start the data nodes, wait for the replica's link, then the sentinels (so their
        first INFO of the master already lists the replica: they poll it only every 10 s),
        and return once every sentinel knows the two others and a healthy replica."""
        if self.running:
            return
        try:
            for node in self.data_nodes:
                node.start()
            master, replica = self.data_nodes
            self._wait(lambda: self._link_up(replica, master.port), 10, "redis replica")
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait(self._sentinels_agree, 15, "redis sentinels")
        except BaseException:
            self.close()
            raise

    def _link_up(self, node: RedisServer, master_port: int) -> bool:
        info = self._client(node.port).info("replication")
        return bool(
            info["role"] == "slave"
            and info["master_port"] == master_port
            and info["master_link_status"] == "up"
        )

    def _sentinels_agree(self) -> bool:
        """Every sentinel names the same master, is connected to the other sentinels, and
        lists every other running data node as a reachable replica, whose link to the master
        is up: a failover can start. (The link is asked of the replica itself: the sentinels'
        copy of it is refreshed only every 10 s.)"""
        master_port = self.master_port()
        replicas = [n for n in self.data_nodes if n.running and n.port != master_port]
        if not all(self._link_up(replica, master_port) for replica in replicas):
            return False
        for sentinel in self.sentinels:
            client = self._client(sentinel.port)
            master = _pairs(_execute(client, "SENTINEL", "MASTER", self.service_name))
            if int(master["port"]) != master_port or not _healthy(master, "master"):
                return False
            others = map(_pairs, _execute(client, "SENTINEL", "SENTINELS", self.service_name))
            # Connected, not merely heard of: they must vote together for a failover.
            if sum(_healthy(other, "sentinel") for other in others) != len(self.sentinels) - 1:
                return False
            known = map(_pairs, _execute(client, "SENTINEL", "REPLICAS", self.service_name))
            healthy = {int(replica["port"]) for replica in known if _healthy(replica, "slave")}
            if not {replica.port for replica in replicas} <= healthy:
                return False
        return True

    def master_port(self) -> int:
        """The master's port, as the first sentinel that answers reports it."""
        for port in self.sentinel_ports:
            try:
                reply = _execute(
                    self._client(port), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name
                )
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            return int(reply[1])
        raise ServerNotAvailable("no sentinel answers")

    def _node(self, port: int) -> RedisServer:
        return next(node for node in self.data_nodes if node.port == port)

    def master_client(self) -> redis.Redis:
        """A plain client of the current master (owned by this object)."""
        return self._client(self.master_port())

    def replica_client(self) -> redis.Redis:
        """A plain client of the data node that is not the master (owned by this object)."""
        master_port = self.master_port()
        return self._client(next(n.port for n in self.data_nodes if n.port != master_port))

    def plant_on_replica(self, key: str, value: bytes) -> None:
        """Write ``key`` on the replica only, as if the master's later change (say, an
        invalidation) had been lost by asynchronous replication."""
        client = self.replica_client()
        client.config_set("replica-read-only", "no")
        try:
            client.set(key, value)
        finally:
            client.config_set("replica-read-only", "yes")

    def kill_master(self) -> int:
        """SIGKILL the current master, as a crash would; returns its port."""
        port = self.master_port()
        node = self._node(port)
        node.kill()
        self._killed, self._killed_port = node, port
        return port

    def wait_for_failover(self, timeout: float = 20, *, from_port: int | None = None) -> int:
        """Wait until every sentinel names a master other than ``from_port`` (by default, the
        one ``kill_master()`` killed) and that node says ``role:master``; returns its port."""
        old = from_port if from_port is not None else self._killed_port
        if old is None:
            raise ValueError("wait_for_failover() needs from_port, or kill_master() first")
        found: list[int] = []

        def promoted() -> bool:
            ports = set()
            for sentinel in self.sentinels:
                if sentinel.running:
                    reply = _execute(
                        self._client(sentinel.port),
                        "SENTINEL",
                        "GET-MASTER-ADDR-BY-NAME",
                        self.service_name,
                    )
                    ports.add(int(reply[1]))
            if len(ports) != 1 or old in ports:
                return False
            (port,) = ports
            if self._client(port).info("replication")["role"] != "master":
                return False
            found[:] = [port]
            return True

        self._wait(promoted, timeout, "redis sentinel failover")
        return found[0]

    def restart_killed(self, *, as_replica: bool = True) -> int:
        """Bring back the node ``kill_master()`` killed; returns its port. By default it
        starts as a replica of the current master, and this returns once the sentinels see it
        as a healthy replica. With ``as_replica=False`` it comes back still believing it is
        the master, as a crashed master would, and the sentinels demote it themselves (they
        only look every 10 s, so that takes a while)."""
        node = self._killed
        if node is None:
            raise ValueError("no node was killed")
        master_port = self.master_port()
        self._replicate(node, master_port if as_replica else None)
        node.start()
        self._killed = self._killed_port = None
        self._wait(self._sentinels_agree, 30 if as_replica else 60, "redis sentinels")
        return node.port


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


def find_redis_cli(redis_server: str | None = None) -> str:
    """``redis-cli``, preferably next to ``redis-server`` so that their versions match."""
    candidates = [os.environ.get("SMARTER_REDIS_CLI")]
    if redis_server:
        candidates.append(str(Path(redis_server).with_name("redis-cli")))
    candidates += [shutil.which("redis-cli"), "/usr/bin/redis-cli"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServerNotAvailable(
        "redis-cli not found: install it (apt-get install redis-tools) or set SMARTER_REDIS_CLI"
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
