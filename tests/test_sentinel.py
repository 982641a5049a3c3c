"""The Redis tier behind Redis Sentinel (a master, a replica, three Sentinels), including a
failover: the library keeps serving from the database while it happens, and serves nothing
stale afterwards, even an entry whose invalidation the promoted replica never received."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from smarter_domain import Domain, set_domain
from smarter_domain.cache import RedisOptions
from smarter_domain.testing import RedisSentinelServers, UserFactory

from .conftest import reading_meanwhile

pytestmark = [pytest.mark.smarter_backends("sqlite"), pytest.mark.topology]

OPTIONS = RedisOptions(
    socket_timeout=0.2, connect_timeout=0.2, retry_after=0.3, lock_timeout=2, ack_timeout=0.3
)


@pytest.fixture
def domain(
    smarter_database_url: str, smarter_redis_sentinel: RedisSentinelServers
) -> Iterator[Domain]:
    with Domain(smarter_database_url, smarter_redis_sentinel.url, redis_options=OPTIONS) as d:
        previous = set_domain(d)  # the factories' default
        try:
            yield d
        finally:
            set_domain(previous)


def test_reads_and_writes_go_to_the_master_the_sentinels_name(
    domain: Domain, smarter_redis_sentinel: RedisSentinelServers
) -> None:
    user = UserFactory(domain=domain)
    assert domain.users.get(user.id) == user
    key = domain.cache.keys.user(user.id)
    assert smarter_redis_sentinel.master_client().exists(key)
    domain.cache.clear_memory()
    domain.cache.stats.reset()
    assert domain.users.get(user.id) == user
    assert domain.cache.stats.snapshot()["redis_hits"] == 1
    updated = domain.users.update(user.id, first_name="Changed")
    assert not smarter_redis_sentinel.master_client().exists(key)
    assert domain.users.get(user.id) == updated
    assert domain.cache.listener.healthy


def test_failover_serves_from_the_database_meanwhile_and_nothing_stale_after(
    domain: Domain, smarter_redis_sentinel: RedisSentinelServers
) -> None:
    domain.consistency = "available"  # writes go on during the outage: the replay path
    servers = smarter_redis_sentinel
    user = UserFactory(domain=domain, first_name="v1")
    other = UserFactory(domain=domain, first_name="w1")
    key = domain.cache.keys.user(user.id)
    assert domain.users.get(user.id) == user
    assert domain.users.get(other.id) == other
    old_payload = servers.master_client().get(key)
    assert old_payload is not None
    v2 = domain.users.update(user.id, first_name="v2")  # DEL on the master, replicated
    # ...but suppose the replica never got that DEL (replication is asynchronous):
    servers.plant_on_replica(key, old_payload)

    with reading_meanwhile(lambda: domain.users.get(other.id)) as (seen, errors):
        servers.kill_master()
        time.sleep(0.3)
        w2 = domain.users.update(other.id, first_name="w2")  # during the failover
        servers.wait_for_failover()
        time.sleep(0.5)
    assert errors == []
    assert len(seen) > 10
    assert seen[-1] == w2
    domain.cache.clear_memory()
    # The promoted replica held the planted old entry: it was flushed on first contact.
    assert domain.users.get(user.id) == v2
    assert domain.users.get(other.id) == w2
    assert domain.cache.stats.snapshot()["server_changes"] >= 1
    # Redis works again, and coherently.
    domain.cache.stats.reset()
    domain.cache.clear_memory()
    assert domain.users.get(user.id) == v2
    assert domain.cache.stats.snapshot()["redis_hits"] == 1
    v3 = domain.users.update(user.id, first_name="v3")
    assert domain.users.get(user.id) == v3


def test_closing_the_domain_closes_its_sentinel_connections(
    smarter_database_url: str, smarter_redis_sentinel: RedisSentinelServers
) -> None:
    import redis

    def sentinel_clients() -> int:
        total = 0
        for host, port in smarter_redis_sentinel.sentinel_addresses:
            client = redis.Redis(host=host, port=port)
            total += int(client.info("clients")["connected_clients"]) - 1  # not this one
            client.close()
        return total

    before = sentinel_clients()
    for _ in range(3):
        with Domain(smarter_database_url, smarter_redis_sentinel.url, redis_options=OPTIONS) as d:
            UserFactory(domain=d)
    deadline = time.monotonic() + 5
    while sentinel_clients() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sentinel_clients() <= before
