"""The short stress runs: 4 processes, about 20 s, one Redis restart; then a short run of each
other fault (``harness.FAULTS``). Two of the four workers use the async front door
(``AsyncDomain``), two the sync one, on the same cache. Zero stale reads and zero errors in
every one. (``nox -s stress`` runs the long ones.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from smarter_domain.cache.keys import CacheKeys
from smarter_domain.testing import PostgresServer, RedisClusterServers, RedisServer

from .harness import run


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own: this test kills it."""
    with RedisServer() as server:
        yield server
    server.close()


@pytest.mark.timeout(180)
def test_short_stress_run(smarter_postgres_server: PostgresServer, own_redis: RedisServer) -> None:
    url = smarter_postgres_server.create_database("stress_short")
    report = run(url, own_redis, seconds=20, workers=4, redis_restarts=1, async_workers=2)
    print("\n".join(report.lines()))
    assert report.reads > 1000
    assert report.writes > 50
    assert report.async_operations > 100  # both front doors did work
    assert report.operations - report.async_operations > 100
    assert report.errors == 0, report.examples
    assert report.stale_reads == 0, report.examples
    assert report.redis_restarts == 1


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "fault",
    [
        "redis-pause",
        "redis-pause-long",
        "peer-freeze",
        "writer-kill",
        "postgres-restart",
        "postgres-kill",
    ],
)
def test_short_fault_run(
    smarter_postgres_server: PostgresServer, own_redis: RedisServer, fault: str
) -> None:
    if fault.startswith("postgres"):
        # A server of its own, which this test restarts; durable, since a crash of a server
        # that is not may lose commits it acknowledged.
        with PostgresServer(durable=True) as postgres:
            url = postgres.create_database("stress")
            report = run(
                url,
                own_redis,
                seconds=12,
                workers=4,
                fault=fault,
                faults=1,
                postgres=postgres,
                async_workers=2,
            )
        postgres.close()
    else:
        url = smarter_postgres_server.create_database(f"stress_{fault.replace('-', '_')}")
        report = run(url, own_redis, seconds=12, workers=4, fault=fault, faults=1, async_workers=2)
    print("\n".join(report.lines()))
    assert report.reads > 1000
    assert report.errors == 0, report.examples
    assert report.stale_reads == 0, report.examples
    assert report.faults >= 1
    if fault.startswith("redis-pause"):
        assert report.refused_writes > 0  # strict: writes during the pause were refused


@pytest.mark.topology
@pytest.mark.timeout(180)
def test_short_stress_run_on_a_cluster(
    smarter_postgres_server: PostgresServer, smarter_redis_cluster: RedisClusterServers
) -> None:
    """The same run on a 3-master Redis Cluster; instead of a restart, live slot moves of
    the invalidation channel (its listeners resubscribe) and of a few entry slots."""
    cluster = smarter_redis_cluster
    cluster.flushall()
    url = smarter_postgres_server.create_database("stress_cluster")
    keys = CacheKeys()
    moved = [keys.channel(), *(keys.user(i) for i in range(1, 6)), keys.account(1)]

    def move_slots() -> None:
        for key in moved:
            cluster.move_slot(key_slot(key.encode()), (cluster.owner_of(key) + 1) % 3)

    report = run(url, cluster, seconds=20, workers=4, redis_restarts=1, disrupt=move_slots)
    print("\n".join(report.lines()))
    assert report.reads > 1000
    assert report.writes > 50
    assert report.errors == 0, report.examples
    assert report.stale_reads == 0, report.examples


@pytest.mark.topology
@pytest.mark.timeout(240)
def test_short_stress_run_with_a_cluster_failover(smarter_postgres_server: PostgresServer) -> None:
    """A master of a Redis Cluster with replicas is killed: its replica takes over (after
    the node timeout, 2 s) and the killed node rejoins as a replica. Writes to its slots are
    refused meanwhile; the promoted replica is flushed before anything is read from it."""
    url = smarter_postgres_server.create_database("stress_cluster_failover")
    with RedisClusterServers(replicas=1) as cluster:
        report = run(url, cluster, seconds=15, workers=4, fault="cluster-failover", faults=1)
    cluster.close()
    print("\n".join(report.lines()))
    assert report.reads > 1000
    assert report.errors == 0, report.examples
    assert report.stale_reads == 0, report.examples
    assert report.faults == 1
