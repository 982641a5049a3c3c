"""The Redis Cluster and Redis Sentinel fixtures themselves, with plain redis-py."""

from __future__ import annotations

import time

import pytest
import redis
from redis.cluster import RedisCluster, key_slot
from redis.exceptions import MovedError
from redis.sentinel import Sentinel

from smarter_domain.testing import RedisClusterServers, RedisSentinelServers

pytestmark = pytest.mark.smarter_backends("sqlite")  # no database here: run once


def test_cluster_spreads_keys_over_three_nodes(smarter_redis_cluster: RedisClusterServers) -> None:
    cluster = smarter_redis_cluster
    assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
    assert len({cluster.node_id(i) for i in range(3)}) == 3
    keys = [cluster.key_on(i) for i in range(3)]
    assert [cluster.owner_of(key) for key in keys] == [0, 1, 2]

    client = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    try:
        for key in keys:
            client.set(key, key.encode())
        for i, key in enumerate(keys):
            assert client.get(key) == key.encode()
            assert cluster.node_client(i).get(key) == key.encode()  # really on node i
    finally:
        client.close()


def test_cluster_node_clients_get_moved(smarter_redis_cluster: RedisClusterServers) -> None:
    key = smarter_redis_cluster.key_on(1)
    with pytest.raises(MovedError) as moved:
        smarter_redis_cluster.node_client(0).get(key)
    assert moved.value.node_addr == ("127.0.0.1", smarter_redis_cluster.ports[1])


def test_move_slot_keeps_keys_readable(smarter_redis_cluster: RedisClusterServers) -> None:
    cluster = smarter_redis_cluster
    key = cluster.key_on(0, prefix="moving")
    client = RedisCluster(host="127.0.0.1", port=cluster.ports[2])
    try:
        client.set(key, b"before")
        assert client.get(key) == b"before"  # the client now routes the slot to node 0

        cluster.move_slot(key_slot(key.encode()), to=1)

        assert cluster.owner_of(key) == 1
        assert cluster.node_client(1).get(key) == b"before"  # the key moved with its slot
        assert client.get(key) == b"before"  # follows MOVED
        client.set(key, b"after")
        assert cluster.node_client(1).get(key) == b"after"
    finally:
        client.close()


def test_sentinel_replicates_and_plants(smarter_redis_sentinel: RedisSentinelServers) -> None:
    setup = smarter_redis_sentinel
    ports = ",".join(f"127.0.0.1:{p}" for p in setup.sentinel_ports)
    assert setup.url == f"redis+sentinel://{ports}/mymaster/0"
    assert setup.master_port() == setup.data_nodes[0].port

    setup.master_client().set("k", b"v")
    replica = setup.replica_client()
    deadline = time.monotonic() + 5
    while replica.get("k") != b"v" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert replica.get("k") == b"v"
    with pytest.raises(redis.ReadOnlyError):
        replica.set("k", b"w")

    setup.plant_on_replica("k", b"stale")
    assert replica.get("k") == b"stale"
    assert setup.master_client().get("k") == b"v"
    assert replica.config_get("replica-read-only") == {"replica-read-only": "yes"}


def test_sentinel_failover(smarter_redis_sentinel: RedisSentinelServers) -> None:
    setup = smarter_redis_sentinel
    sentinel = Sentinel(setup.sentinel_addresses, socket_timeout=1)
    master = sentinel.master_for(setup.service_name, socket_timeout=1)
    try:
        master.set("before", b"1")
        old = setup.kill_master()
        new = setup.wait_for_failover(timeout=15)
        assert new != old
        assert setup.master_port() == new
        assert sentinel.discover_master(setup.service_name) == ("127.0.0.1", new)

        master = sentinel.master_for(setup.service_name, socket_timeout=1)
        master.set("after", b"2")
        assert master.get("after") == b"2"

        assert setup.restart_killed() == old
        # The Sentinels reconfigure the restarted node as the master's replica in a moment
        # (slower on a loaded machine, where they may even fail over once more, back to the
        # restarted node): wait, boundedly, until the data node that is not the master
        # replicates from the one that is.
        deadline = time.monotonic() + 20

        def follows_the_master() -> bool:
            current = setup.master_port()
            replication = setup.replica_client().info("replication")
            return replication.get("master_port") == current and current in (old, new)

        while not follows_the_master() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert follows_the_master()
    finally:
        master.close()
        for client in sentinel.sentinels:
            client.close()
