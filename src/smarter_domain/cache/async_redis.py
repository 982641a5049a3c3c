"""The Redis tier's I/O for the async front door: a ``redis.asyncio`` client of the same
target with the same options (timeouts, no retries, the restart watch; one server, Sentinel
or Cluster), seen by the tiers' logic, which runs in a greenlet (``concurrency.spawn``), as
the blocking client and ``Wire`` it stands in for. Each command is a coroutine of the
asyncio client that the greenlet hands to the event loop (``await_only``): the loop serves
other tasks while Redis answers, and a paused Redis costs the caller its socket timeout, never
the loop.

``ResilientRedisProxy`` talks through these only inside a greenlet (``in_greenlet``): the
invalidation listener's thread and its replay of an outage's invalidations keep the blocking
client of the same proxy, so the two front doors share one circuit breaker, one set of held
back invalidations and one origin.

An asyncio client belongs to the loop it was first used on (its connections' streams do):
a call from another loop (``asyncio.run`` twice in a script, a test per loop) gets a new
client, and the old one is dropped with its loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from ..model.errors import ConfigurationError
from .async_wire import AsyncWire
from .concurrency import await_only, spawn
from .restarts import ServerWatch
from .topology import RedisTarget


class _AwaitingConnection:
    """An asyncio connection as ``ServerWatch.on_connect`` (written for blocking ones) uses
    it, from a greenlet."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.host = getattr(connection, "host", "-")
        self.port = getattr(connection, "port", "-")

    def send_command(self, *args: Any) -> None:
        await_only(self._connection.send_command(*args))

    def read_response(self) -> Any:
        return await_only(self._connection.read_response())

    def on_connect(self) -> None:
        await_only(self._connection.on_connect())

    def mark_for_reconnect(self) -> None:
        mark = getattr(self._connection, "mark_for_reconnect", None)
        if mark is not None:
            mark()


def _watching(watch: ServerWatch, clustered: bool) -> Callable[[Any], Any]:
    """``redis_connect_func`` for asyncio connections: the restart watch's own logic, run in
    a greenlet (the cluster client calls it instead of the connection's handshake, which is
    done first here, as the blocking cluster client does before its hook)."""

    async def on_connect(connection: Any) -> None:
        if clustered:
            await connection.on_connect()
        await spawn(watch.on_connect, _AwaitingConnection(connection))

    return on_connect


def async_client_factory(
    target: RedisTarget, connection: dict[str, Any], watch: ServerWatch | None
) -> Callable[[], Any]:
    """What makes a ``redis.asyncio`` client of ``target`` with the blocking client's
    connection options (``regions.connection_options``)."""
    options = dict(connection)
    options["retry"] = AsyncRetry(NoBackoff(), 0)
    options.pop("redis_connect_func", None)
    if watch is not None:
        options["redis_connect_func"] = _watching(watch, target.kind == "cluster")

    def make() -> Any:
        if target.kind == "cluster":
            found = target.cluster_options(options)
            on_connect = found.pop("redis_connect_func", None)
            cluster = AsyncRedisCluster(
                startup_nodes=[AsyncClusterNode(host, port) for host, port in target.nodes],
                **found,
            )
            if on_connect is not None:
                # The asyncio cluster client takes no ``redis_connect_func``: it goes into
                # the connection options of its nodes, those it made and those it will make
                # (as redis-py itself adds its maintenance-notification handler).
                cluster.nodes_manager.connection_kwargs["redis_connect_func"] = on_connect
                for node in cluster.nodes_manager.startup_nodes.values():
                    node.connection_kwargs["redis_connect_func"] = on_connect
            return cluster
        if target.kind == "sentinel":
            sentinel_side = {k: v for k, v in options.items() if k.startswith("socket_")}
            master = target.sentinel_options(options)
            if target.ssl:
                from redis.asyncio.sentinel import SentinelManagedSSLConnection

                master["connection_class"] = SentinelManagedSSLConnection
            sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
                list(target.nodes), sentinel_kwargs=target.sentinel_side(sentinel_side), **master
            )
            return sentinel.master_for(target.service_name)
        try:
            pool = aioredis.ConnectionPool.from_url(target.url, **options)
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL: {exc}") from None
        return aioredis.Redis(connection_pool=pool)

    return make


class AwaitingRedis:
    """The blocking client's commands that the proxy sends, each awaited on the loop.

    ``clustered``: a Redis Cluster (``backend.read_raw`` reads it with ``mget_nonatomic``).
    Scripts are registered on the blocking client (``register_script`` sends nothing: it
    only computes the script's SHA) and called here by SHA."""

    def __init__(
        self,
        make_client: Callable[[], Any],
        blocking: Any,
        clustered: bool,
        fast: AsyncWire | None = None,
    ) -> None:
        self._make_client = make_client
        self._blocking = blocking
        self.clustered = clustered
        self.fast = fast
        """The scripts' and multi-gets' own connection (``async_wire``), where it serves."""
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()
        self.closed = False

    def current(self) -> Any:
        """The asyncio client of the running loop (made on first use there, and again in a
        forked child: the parent's connections are not its own)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._pid != os.getpid():
            if self.closed:  # a late call (a background give-back): an outage, to the tiers
                raise redis.ConnectionError("the domain was closed")
            self._client, self._loop, self._pid = self._make_client(), loop, os.getpid()
        return self._client

    def register_script(self, source: str) -> Any:
        return self._blocking.register_script(source)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """``delete``, ``spublish``, ``blpop``, ``script_load``, ``ping``, ``mget``,
        ``mget_nonatomic``, ``execute_command``...: the asyncio client's, awaited."""
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return await_only(getattr(self.current(), name)(*args, **kwargs))

        return call

    def scan_iter(self, **options: Any) -> Iterator[Any]:
        """Every key the scan finds (collected on the loop, then iterated)."""

        async def collect() -> list[Any]:
            return [key async for key in self.current().scan_iter(**options)]

        return iter(await_only(collect()))

    def pipeline(self, transaction: bool = False) -> _AwaitingPipeline:
        return _AwaitingPipeline(self.current().pipeline(transaction=transaction))

    async def aclose(self) -> None:
        """Close the client (and its connections) if it is the running loop's; one made on
        another loop, now closed, is only dropped (its streams cannot be closed from here)."""
        self.closed = True
        if self.fast is not None:
            self.fast.close()
        client, loop = self._client, self._loop
        self._client, self._loop = None, None
        if client is None:
            return
        if loop is not asyncio.get_running_loop():
            return
        await client.aclose()
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            await sentinel.aclose()


class _AwaitingPipeline:
    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def execute_command(self, *args: Any) -> _AwaitingPipeline:
        self._pipeline.execute_command(*args)
        return self

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """The pipeline's commands (``set``, ``get``...): queued, as on a blocking one."""
        if name.startswith("_"):
            raise AttributeError(name)
        command = getattr(self._pipeline, name)

        def queue(*args: Any, **kwargs: Any) -> _AwaitingPipeline:
            command(*args, **kwargs)
            return self

        return queue

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return list(await_only(self._pipeline.execute(raise_on_error=raise_on_error)))


class AwaitingWire:
    """``Wire``'s interface (``wire(*args)``, ``pipeline``, ``script``) for the sync logic
    in a greenlet: on the ``AsyncWire`` where it serves (a plain TCP server), else over the
    ``AwaitingRedis``, whose redis.asyncio pipeline sends the commands of a ``pipeline`` call
    in one write and reads the replies in one round trip."""

    direct = False

    def __init__(self, client: AwaitingRedis) -> None:
        self.client = client
        self.fast = client.fast

    def __call__(self, *args: Any) -> Any:
        if self.fast is not None:
            return await_only(self.fast(*args))
        return self.client.execute_command(*args)

    def pipeline(self, commands: Iterable[Sequence[Any]]) -> list[Any]:
        if self.fast is not None:
            return await_only(self.fast.pipeline(list(commands)))  # type: ignore[no-any-return]
        pipe = self.client.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        return pipe.execute()

    def script(self, script: Any, numkeys: int, *arguments: Any) -> Any:
        if self.fast is not None:
            return await_only(self.fast.script(script, numkeys, *arguments))
        try:
            return self("EVALSHA", script.sha, numkeys, *arguments)
        except NoScriptError:
            script.sha = self.client.script_load(script.script)
            return self("EVALSHA", script.sha, numkeys, *arguments)

    def close(self) -> None:
        """Nothing kept: the asyncio client's pool owns the connections (``aclose``)."""


def attach_async_client(guard: Any, target: RedisTarget, options: Any) -> AwaitingRedis:
    """Give ``guard`` (a ``ResilientRedisProxy``) the asyncio client of ``target``, with
    ``options`` (``RedisOptions``) and the guard's restart watch, for its calls from the
    async front door's greenlets."""
    from .regions import connection_options

    watch = guard.server_watch
    blocking = guard.backend.writer_client
    fast = None
    if target.kind == "server" and AsyncWire.serves(blocking):
        fast = AsyncWire(dict(blocking.connection_pool.connection_kwargs), watch)
    client = AwaitingRedis(
        async_client_factory(target, connection_options(options, watch), watch),
        blocking,
        target.kind == "cluster",
        fast,
    )
    guard.attach_async(client, AwaitingWire(client))
    return client
