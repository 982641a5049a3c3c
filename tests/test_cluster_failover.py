"""A Redis Cluster master fails over to its replica (``RedisClusterServers(replicas=1)``).

Replication is asynchronous: the promoted replica may lack the last invalidations of its
slots. Each master keeps a marker with its run id under a hash tag of its lowest slot, and a
connection that finds another run id there flushes the namespace's keys of that node first
(``restarts.ServerWatch``). (``nox -s topologies``; the stress run with failovers is in
tests/stress.)"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from smarter_domain import Domain, set_domain
from smarter_domain.cache.restarts import lowest_slot, slot_tag
from smarter_domain.cache.scripts import generation_key
from smarter_domain.testing import RedisClusterServers, UserFactory

from .conftest import FAST_FAIL, reading_meanwhile

pytestmark = [pytest.mark.smarter_backends("sqlite"), pytest.mark.topology]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServers]:
    """Three masters, each with one replica; the tests fail masters over."""
    with RedisClusterServers(replicas=1) as servers:
        yield servers
    servers.close()


@pytest.fixture
def domain(smarter_database_url: str, cluster: RedisClusterServers) -> Iterator[Domain]:
    cluster.flushall()
    domain = Domain(smarter_database_url, cluster.url, redis_options=FAST_FAIL)
    previous = set_domain(domain)
    try:
        yield domain
    finally:
        set_domain(previous)
        domain.close()


def marker_of(cluster: RedisClusterServers, node: int) -> str:
    slot = lowest_slot(cluster.node_client(node).execute_command("CLUSTER", "NODES"))
    assert slot is not None
    return f"smarter:v1:server{{{slot_tag(slot)}}}"


def test_every_master_gets_its_own_marker_in_a_slot_it_serves(
    domain: Domain, cluster: RedisClusterServers
) -> None:
    users = [UserFactory(domain=domain) for _ in range(12)]
    for user in users:  # touches every master
        assert domain.users.get(user.id) == user
    for node in cluster.masters():
        client = cluster.node_client(node)
        marker = marker_of(cluster, node)
        assert cluster.owner_of(marker) == node
        assert client.get(marker) == client.info("server")["run_id"].encode()
    for node in set(range(len(cluster.nodes))) - set(cluster.masters()):
        # replicas: nothing to check
        assert lowest_slot(cluster.node_client(node).execute_command("CLUSTER", "NODES")) is None
    # Connections meeting a known server do not flush again: the cache stays warm.
    changes = domain.cache.stats.snapshot()["server_changes"]
    other = Domain(domain.settings.database_url, cluster.url, redis_options=FAST_FAIL)
    try:
        other.cache.stats.reset()
        assert other.users.get(users[0].id) == users[0]
        assert other.cache.stats.snapshot()["redis_hits"] == 1
        assert other.cache.stats.snapshot()["server_changes"] == 0
    finally:
        other.close()
    assert domain.cache.stats.snapshot()["server_changes"] == changes


def test_slot_tags_hash_to_their_slot() -> None:
    for slot in (0, 1, 5460, 5461, 10922, 16383):
        assert key_slot(f"smarter:v1:server{{{slot_tag(slot)}}}".encode()) == slot
    assert lowest_slot(b"abc 127.0.0.1:1@2 myself,master - 0 0 1 connected 5461-10922 3") == 3
    assert lowest_slot("abc 127.0.0.1:1@2 myself,slave def 0 0 1 connected") is None
    assert lowest_slot("abc 127.0.0.1:1@2 myself,master - 0 0 1 connected [7->-def]") is None
    assert lowest_slot("garbage") is None


def test_a_promoted_replica_that_missed_an_invalidation_serves_nothing_stale(
    domain: Domain, cluster: RedisClusterServers
) -> None:
    user, other = UserFactory(domain=domain), UserFactory(domain=domain)
    key = domain.cache.keys.user(user.id)
    assert domain.users.get(user.id) == user
    master = cluster.owner_of(key)
    client = cluster.node_client(master)
    old = {k: client.get(k) for k in (key, generation_key(key))}
    assert None not in old.values()
    v2 = domain.users.update(user.id, first_name="v2")  # DEL and a new token on the master
    # ...but suppose the replica never got them (replication is asynchronous): put the old
    # entry and token back on the master, let them replicate, then the master dies.
    client.mset(old)
    assert client.execute_command("WAIT", 1, 5000) == 1

    changes = domain.cache.stats.snapshot()["server_changes"]
    with reading_meanwhile(lambda: domain.users.get(other.id)) as (seen, errors):
        replacement = cluster.fail_over(master)
    assert errors == []
    assert len(seen) > 10
    assert cluster.owner_of(key) == replacement
    # Until Redis is used again (the breaker retries), reads come from the database; from
    # then on, from the promoted replica, which held the old entry: the first connection to
    # it flushed it. Never the old row, either way.
    deadline = time.monotonic() + 15
    while True:
        domain.cache.clear_memory()
        closed = not domain.cache.guard.breaker.is_down  # type: ignore[union-attr]
        assert domain.users.get(user.id) == v2
        if closed and not domain.cache.guard.breaker.is_down:  # type: ignore[union-attr]
            break  # that read went to Redis, and succeeded
        assert time.monotonic() < deadline, "the cache never used Redis again"
        time.sleep(0.05)
    assert domain.cache.stats.snapshot()["server_changes"] > changes
    promoted = cluster.node_client(replacement)
    assert (
        promoted.get(marker_of(cluster, replacement)) == promoted.info("server")["run_id"].encode()
    )
    # The cache works again, and coherently.
    domain.cache.stats.reset()
    domain.cache.clear_memory()
    assert domain.users.get(user.id) == v2
    assert domain.cache.stats.snapshot()["redis_hits"] == 1
    v3 = domain.users.update(user.id, first_name="v3")
    assert domain.users.get(user.id) == v3
