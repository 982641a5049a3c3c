"""Where the Redis tier lives, read from one URL, and the redis-py clients for it.

- ``redis://``, ``rediss://`` (TLS), ``unix://``: one server (redis-py's own URL forms, query
  options included);
- ``redis+sentinel://[user:password@]host:port,host:port/service[/db]``: the master that the
  Sentinels name, found again after a failover (``rediss+sentinel://`` for TLS);
- ``redis+cluster://[user:password@]host:port,host:port``: a Redis Cluster, from any of its
  nodes (``rediss+cluster://`` for TLS).

So moving from one Redis to Sentinel or Cluster is a change of ``SMARTER_REDIS_URL`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel, SentinelManagedSSLConnection

from ..model.errors import ConfigurationError

Kind = Literal["server", "sentinel", "cluster"]

_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("server", False),
    "rediss": ("server", True),
    "unix": ("server", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    kind: Kind
    url: str = field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    """The Sentinels, or the Cluster's start-up nodes."""
    service_name: str = ""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    options: dict[str, str] = field(default_factory=dict, repr=False)
    """The URL's query options (``ssl_ca_certs=...``), for the connections to Redis."""
    sentinel_auth: dict[str, str] = field(default_factory=dict, repr=False)
    """``sentinel_username`` / ``sentinel_password`` from the query: the Sentinels' own."""

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages and logs."""
        scheme, _, rest = self.url.partition("://")
        location, slash, path = rest.partition("/")
        userinfo, at, hosts = location.rpartition("@")
        if not at or ":" not in userinfo:
            return self.url
        return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}{slash}{path}"

    def credentials(self) -> dict[str, Any]:
        found: dict[str, Any] = dict(self.options)
        if self.username:
            found["username"] = self.username
        if self.password:
            found["password"] = self.password
        return found

    def sentinel(self, **connection: Any) -> Sentinel:
        """Sentinel clients (``connection`` applies to the master's connections)."""
        sentinel_side = {k: v for k, v in connection.items() if k.startswith("socket_")}
        return Sentinel(  # type: ignore[no-untyped-call]
            list(self.nodes),
            sentinel_kwargs=self.sentinel_side(sentinel_side),
            **self.sentinel_options(connection),
        )

    def sentinel_side(self, socket_options: dict[str, Any]) -> dict[str, Any]:
        """Options of the connections to the Sentinels themselves (database 0: a Sentinel
        knows no SELECT; their own credentials, not the master's)."""
        return {**socket_options, "username": None, "password": None, **self.sentinel_auth, "db": 0}

    def sentinel_options(self, connection: dict[str, Any]) -> dict[str, Any]:
        """Options of the connections to the master the Sentinels name."""
        found = {**connection, **self.credentials(), "db": self.db}
        if self.ssl:
            found["connection_class"] = SentinelManagedSSLConnection
        return found

    def cluster(self, **connection: Any) -> RedisCluster:
        return RedisCluster(startup_nodes=self.cluster_nodes(), **self.cluster_options(connection))

    def cluster_nodes(self) -> list[ClusterNode]:
        return [ClusterNode(host, port) for host, port in self.nodes]  # type: ignore[no-untyped-call]

    def cluster_options(self, connection: dict[str, Any]) -> dict[str, Any]:
        found = {**connection, **self.credentials()}
        found.pop("health_check_interval", None)  # not a cluster client option
        if self.ssl:
            found["ssl"] = True
        return found

    def client(self, **connection: Any) -> Any:
        """A new client of this target: the Sentinels' current master, the cluster, or the
        server (the invalidation listener opens one per subscription)."""
        if self.kind == "sentinel":
            return self.sentinel(**connection).master_for(self.service_name)  # type: ignore[no-untyped-call]
        if self.kind == "cluster":
            return self.cluster(**connection)
        return redis.Redis.from_url(self.url, **connection)


def close_client(client: Any) -> None:
    """Close a client of any topology with everything it opened: its pool (also one that was
    passed in) and, for a Sentinel-managed client, its connections to the Sentinels."""
    client.close()
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return
    pool.disconnect()
    for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
        sentinel.close()


def parse_redis_url(url: str) -> RedisTarget:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"invalid Redis URL: the scheme must be one of {', '.join(sorted(_SCHEMES))}"
        )
    kind, ssl = _SCHEMES[scheme]
    if kind == "server":
        return RedisTarget("server", url)
    rest, _, query = url.partition("://")[2].partition("?")
    userinfo, _, location = rest.rpartition("@")  # a password may hold "/" but not "@"
    hosts, _, path = location.partition("/")
    username, _, password = userinfo.partition(":")
    nodes = tuple(_node(item, url) for item in hosts.split(",") if item)
    if not nodes:
        raise ConfigurationError("invalid Redis URL: no host:port given")
    path = path.strip("/")
    options = dict(parse_qsl(query))
    sentinel_auth = {
        name.removeprefix("sentinel_"): options.pop(name)
        for name in ("sentinel_username", "sentinel_password")
        if name in options
    }
    service, db = "", 0
    if kind == "sentinel":
        service, _, db_text = path.partition("/")
        if not service:
            raise ConfigurationError(
                "invalid Redis URL: a Sentinel URL names its service, "
                "redis+sentinel://host:port,host:port/mymaster[/db]"
            )
        db = _number(db_text or "0", "database", url)
    elif path not in ("", "0"):
        raise ConfigurationError("invalid Redis URL: a Redis Cluster has database 0 only")
    return RedisTarget(
        kind,
        url,
        nodes,
        service,
        db,
        unquote(username) or None,
        unquote(password) or None,
        ssl,
        options,
        sentinel_auth,
    )


def _node(item: str, url: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host:
        raise ConfigurationError(f"invalid Redis URL: {item!r} is not host:port")
    return host.strip("[]"), _number(port, "port", url)


def _number(text: str, what: str, url: str) -> int:
    if not text.isdigit():
        raise ConfigurationError(f"invalid Redis URL: the {what} {text!r} is not a number")
    return int(text)
