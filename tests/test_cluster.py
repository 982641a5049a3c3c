"""The Redis tier on a real 3-master Redis Cluster: slots, multi-key reads, sharded pub/sub,
guarded fills and live slot moves. (``nox -s topologies``; the short stress run on the
cluster is in tests/stress.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from smarter_domain import Domain, User, set_domain
from smarter_domain.testing import (
    AccountFactory,
    RedisClusterServers,
    UserFactory,
    UserProfileFactory,
)

from .conftest import FAST_FAIL
from .test_coherence import PausedLoader

pytestmark = [pytest.mark.smarter_backends("sqlite"), pytest.mark.topology]


@pytest.fixture
def cluster(smarter_redis_cluster: RedisClusterServers) -> RedisClusterServers:
    for i in range(len(smarter_redis_cluster.ports)):
        smarter_redis_cluster.node_client(i).flushall()
    return smarter_redis_cluster


@pytest.fixture
def pair(
    smarter_database_url: str, cluster: RedisClusterServers
) -> Iterator[tuple[Domain, Domain]]:
    """Two domains on the cluster, as two processes would be."""
    first = Domain(smarter_database_url, cluster.url, redis_options=FAST_FAIL)
    second = Domain(smarter_database_url, cluster.url, redis_options=FAST_FAIL)
    previous = set_domain(first)  # the factories' default
    try:
        yield first, second
    finally:
        set_domain(previous)
        first.close()
        second.close()


def counts(domain: Domain) -> dict[str, int]:
    return {k: v for k, v in domain.cache.stats.snapshot().items() if v and k != "invalidations"}


def commands(cluster: RedisClusterServers) -> dict[str, int]:
    """Calls per command, summed over the nodes, since the last ``reset_commands``."""
    total: dict[str, int] = {}
    for i in range(len(cluster.ports)):
        for name, stats in cluster.node_client(i).info("commandstats").items():
            command = name.removeprefix("cmdstat_")
            if command not in ("info", "config", "ping", "cluster", "client", "command"):
                total[command] = total.get(command, 0) + int(stats["calls"])
    return total


def reset_commands(cluster: RedisClusterServers) -> None:
    for i in range(len(cluster.ports)):
        cluster.node_client(i).config_resetstat()


def test_memory_then_redis_then_database(
    pair: tuple[Domain, Domain], cluster: RedisClusterServers
) -> None:
    domain, _ = pair
    user = UserFactory(domain=domain)
    domain.cache.stats.reset()
    assert domain.users.get(user.id) == user
    assert counts(domain) == {"memory_misses": 1, "redis_misses": 1, "loads": 1}
    key = domain.cache.keys.user(user.id)
    assert cluster.node_client(cluster.owner_of(key)).exists(key)
    domain.cache.clear_memory()
    assert domain.users.get(user.id) == user
    assert counts(domain)["redis_hits"] == 1
    assert counts(domain)["loads"] == 1


def test_a_list_reads_its_members_with_one_mget_per_slot_pipelined(
    pair: tuple[Domain, Domain], cluster: RedisClusterServers
) -> None:
    domain, _ = pair
    account = AccountFactory(domain=domain)
    members = [UserProfileFactory(account=account, domain=domain).user for _ in range(60)]
    assert domain.users.list_for_account(account.id) == members
    slots = {key_slot(domain.cache.keys.user(u.id).encode()) for u in members}
    assert len({cluster.owner_of(domain.cache.keys.user(u.id)) for u in members}) == 3
    domain.cache.clear_memory()
    domain.cache.stats.reset()
    reset_commands(cluster)
    assert domain.users.list_for_account(account.id) == members
    assert counts(domain) == {"memory_misses": 61, "redis_hits": 61}
    seen = commands(cluster)
    assert seen.get("get") == 1  # the id list
    assert seen.get("mget") == len(slots)  # one MGET per slot, sent as one pipeline per node


def test_an_invalidation_reaches_the_other_process_and_is_acknowledged(
    pair: tuple[Domain, Domain],
) -> None:
    writer, reader = pair
    user = UserFactory(domain=writer, first_name="Old")
    assert reader.users.get(user.id) == user
    assert reader.users.get_by_username(user.username) == user
    updated = writer.users.update(user.id, first_name="New")
    # The write returned: the reader's listener has already dropped its copy.
    assert reader.users.get(user.id) == updated
    assert reader.users.get_by_username(user.username) == updated
    assert writer.cache.stats.snapshot()["ack_timeouts"] == 0
    assert reader.cache.listener.messages >= 1


def test_a_loader_paused_across_a_commit_does_not_cache_the_old_row(
    pair: tuple[Domain, Domain],
) -> None:
    domain, other = pair
    user = UserFactory(domain=domain, first_name="Old")
    paused = PausedLoader(domain.users.inner, "get")
    result: list[User | None] = []
    reader = threading.Thread(target=lambda: result.append(domain.users.get(user.id)))
    try:
        reader.start()
        assert paused.read_done.wait(10)
        updated = other.users.update(user.id, first_name="New")
        paused.release.set()
        reader.join(10)
    finally:
        paused.restore()
    assert result == [user]
    assert domain.cache.stats.snapshot()["fills_refused"] == 1
    domain.cache.clear_memory()
    assert domain.users.get(user.id) == updated


def test_one_load_for_a_cold_key_across_processes(
    pair: tuple[Domain, Domain],
) -> None:
    domains = pair
    user = UserFactory(domain=domains[0])
    loads: list[int] = []
    for domain in domains:
        original = domain.users.inner.get

        def slow(entity_id: int, original: Any = original) -> Any:
            loads.append(1)
            time.sleep(0.3)
            return original(entity_id)

        domain.users.inner.get = slow  # type: ignore[method-assign]
    barrier = threading.Barrier(16)

    def read(domain: Domain) -> None:
        barrier.wait()
        assert domain.users.get(user.id) == user

    threads = [threading.Thread(target=read, args=(domains[i % 2],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(loads) == 1


def test_slot_moves_keep_reads_right_and_invalidations_flowing(
    pair: tuple[Domain, Domain], cluster: RedisClusterServers
) -> None:
    writer, reader = pair
    user = UserFactory(domain=writer, first_name="Before")
    key = writer.cache.keys.user(user.id)
    assert reader.users.get(user.id) == user
    gaps = reader.cache.stats.snapshot()["listener_gaps"]

    # The entry's slot moves (its generation token goes with it: same slot).
    cluster.move_slot(key_slot(key.encode()), (cluster.owner_of(key) + 1) % 3)
    reader.cache.clear_memory()
    assert reader.users.get(user.id) == user  # a Redis hit that followed MOVED
    updated = writer.users.update(user.id, first_name="After")
    assert reader.users.get(user.id) == updated

    # The invalidation channel's slot moves: the listeners are unsubscribed, come back
    # (clearing their memory tier), and invalidations flow again.
    channel = writer.cache.keys.channel()
    cluster.move_slot(key_slot(channel.encode()), (cluster.owner_of(channel) + 1) % 3)
    deadline = time.monotonic() + 10
    while reader.cache.stats.snapshot()["listener_gaps"] == gaps and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reader.cache.stats.snapshot()["listener_gaps"] > gaps
    while not (reader.cache.listener.healthy and writer.cache.listener.healthy):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert reader.users.get(user.id) == updated
    again = writer.users.update(user.id, first_name="Again")
    assert reader.users.get(user.id) == again
    assert writer.cache.stats.snapshot()["ack_timeouts"] == 0
    assert writer.cache.stats.snapshot()["redis_errors"] == 0


def test_a_cluster_outage_is_served_from_the_database(
    pair: tuple[Domain, Domain], cluster: RedisClusterServers
) -> None:
    """Last in this module: it stops the module's cluster (and starts it again)."""
    domain, _ = pair
    domain.consistency = "available"  # writes go on during the outage: the replay path
    user = UserFactory(domain=domain)
    assert domain.users.get(user.id) == user
    cluster.stop()
    try:
        domain.cache.clear_memory()
        assert domain.users.get(user.id) == user  # no Redis error reaches the caller
        updated = domain.users.update(user.id, first_name="During")
        assert domain.users.get(user.id) == updated
        assert domain.cache.stats.snapshot()["redis_errors"] >= 1
    finally:
        cluster.start()
    deadline = time.monotonic() + 15
    while not domain.cache.listener.healthy:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    domain.cache.clear_memory()
    assert domain.users.get(user.id) == updated
