"""SMARTER_REDIS_URL forms: one server over TCP, TLS or a unix socket, Sentinel and Cluster;
bad URLs are a ConfigurationError before anything connects."""

from __future__ import annotations

import random
import shutil
import string
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from smarter_domain import ConfigurationError, Domain
from smarter_domain.cache.keys import CacheKeys
from smarter_domain.cache.scripts import generation_key
from smarter_domain.cache.topology import parse_redis_url
from smarter_domain.testing import RedisServer, UserFactory
from smarter_domain.testing.servers import free_port

pytestmark = pytest.mark.smarter_backends("sqlite")


def test_sentinel_url() -> None:
    target = parse_redis_url("redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster/2")
    assert target.kind == "sentinel"
    assert target.nodes == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert (target.service_name, target.db, target.password, target.ssl) == (
        "mymaster",
        2,
        "s3cret",
        False,
    )
    assert "s3cret" not in target.safe_url and "s3cret" not in repr(target)
    assert parse_redis_url("rediss+sentinel://127.0.0.1:26379/main").ssl


def test_cluster_url() -> None:
    target = parse_redis_url("redis+cluster://app:pw@127.0.0.1:7000,[::1]:7001")
    assert target.kind == "cluster"
    assert target.nodes == (("127.0.0.1", 7000), ("::1", 7001))
    assert (target.username, target.password) == ("app", "pw")
    assert target.safe_url == "redis+cluster://app:***@127.0.0.1:7000,[::1]:7001"


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://127.0.0.1:6380/0", "unix:///run/redis.sock?db=1"],
)
def test_single_server_urls_are_redis_pys_own(url: str) -> None:
    target = parse_redis_url(url)
    assert (target.kind, target.url) == ("server", url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:6379", "scheme"),
        ("127.0.0.1:6379", "scheme"),
        ("redis+sentinel://127.0.0.1:26379", "names its service"),
        ("redis+sentinel:///mymaster", "no host:port"),
        ("redis+sentinel://127.0.0.1:x/mymaster", "port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/one", "database"),
        ("redis+cluster://127.0.0.1:7000/3", "database 0 only"),
        ("redis+cluster://7000", "host:port"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_redis_url(url)


def test_a_bad_url_fails_the_domain_before_it_connects(smarter_database_url: str) -> None:
    with pytest.raises(ConfigurationError):
        Domain(smarter_database_url, "redis+cluster://")


def test_every_key_and_its_generation_token_share_a_cluster_slot() -> None:
    keys = CacheKeys()
    rng = random.Random(7)
    lookups = [
        "{tag}",
        "a}b",
        "{",
        "}",
        "x y",
        "ü{ber}",
        *("".join(rng.choices(string.printable, k=rng.randint(1, 40))) for _ in range(300)),
    ]
    built = [keys.user(1), keys.profile_for(3, 4), keys.function("f", '[["a",{"b":1}]]')]
    built += [keys.user_by_username(text) for text in lookups]
    built += [keys.account_by_number(text) for text in lookups]
    for key in built:
        assert "{" not in key and "}" not in key and " " not in key
        assert key_slot(generation_key(key).encode()) == key_slot(key.encode())


@pytest.mark.parametrize("namespace", ["", "a b", "app{1}", "tab\there"])
def test_a_namespace_that_could_break_keys_is_refused(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        CacheKeys(namespace)


def _certificates(folder: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1."""

    def openssl(command: str) -> None:
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)

    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ca")
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt"
        " -days 2 -extfile san.cnf"
    )


@pytest.fixture(scope="module")
def tls_and_socket_redis() -> Iterator[RedisServer]:
    """One redis-server answering on TLS (its port) and on a unix socket, nothing else."""
    folder = Path(tempfile.mkdtemp(prefix="smarter-tls-"))  # short: a socket path is <108 bytes
    _certificates(folder)
    port = free_port()
    pem = {name: str(folder / f"{name}.crt") for name in ("server", "ca")}
    server = RedisServer(
        port=port,
        extra_args=[
            *("--tls-port", str(port), "--port", "0"),  # TLS only
            *("--tls-cert-file", pem["server"], "--tls-key-file", str(folder / "server.key")),
            *("--tls-ca-cert-file", pem["ca"], "--tls-auth-clients", "no"),
            *("--unixsocket", str(folder / "redis.sock"), "--unixsocketperm", "700"),
        ],
    )
    server.tls_ca = folder / "ca.crt"  # type: ignore[attr-defined]
    server.socket = folder / "redis.sock"  # type: ignore[attr-defined]
    with server:
        yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


def _works(database_url: str, redis_url: str) -> None:
    with Domain(database_url, redis_url) as domain:
        user = UserFactory(domain=domain)
        domain.users.get(user.id)
        domain.cache.clear_memory()
        domain.cache.stats.reset()
        assert domain.users.get(user.id) == user
        assert domain.cache.stats.snapshot()["redis_hits"] == 1
        assert domain.cache.listener.healthy
        domain.users.update(user.id, first_name="Changed")
        assert domain.cache.stats.snapshot()["redis_errors"] == 0


def test_rediss_url_talks_tls(smarter_database_url: str, tls_and_socket_redis: RedisServer) -> None:
    ca = tls_and_socket_redis.tls_ca  # type: ignore[attr-defined]
    url = f"rediss://127.0.0.1:{tls_and_socket_redis.port}/0?ssl_ca_certs={ca}"
    _works(smarter_database_url, url)


def test_unix_socket_url(smarter_database_url: str, tls_and_socket_redis: RedisServer) -> None:
    _works(smarter_database_url, f"unix://{tls_and_socket_redis.socket}?db=0")  # type: ignore[attr-defined]


def test_query_options_and_sentinel_credentials() -> None:
    target = parse_redis_url(
        "rediss+sentinel://:pa/ss@127.0.0.1:26379/mymaster/1"
        "?ssl_ca_certs=/etc/ca.pem&sentinel_password=sent"
    )
    assert (target.password, target.db, target.options) == (
        "pa/ss",
        1,
        {"ssl_ca_certs": "/etc/ca.pem"},
    )
    sentinels = target.sentinel_side({"socket_timeout": 0.25})
    assert sentinels == {"socket_timeout": 0.25, "username": None, "password": "sent", "db": 0}
    assert target.sentinel_options({})["db"] == 1  # the master's database, not the Sentinels'


def test_an_unreachable_cluster_is_a_configuration_error(smarter_database_url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot reach.*\*\*\*@127.0.0.1"):
        Domain(smarter_database_url, f"redis+cluster://:secret@127.0.0.1:{free_port()}")
