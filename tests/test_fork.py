"""A Domain built before ``os.fork()`` (gunicorn --preload, Celery prefork, multiprocessing's
fork start method) works in the child: its memory tier serves hits once the child's own
listener is subscribed, it stays coherent with the parent both ways, it has its own database
connections and origin, a lock another thread held at the fork does not hang it, and the
parent's held-back invalidations are the parent's to replay (``smarter_domain.forking``).

Children are forked with ``os.fork()`` (and once through ``multiprocessing``), talk to the
test over a socket pair (JSON lines), leave with ``os._exit`` and are killed if they do not
answer in time: a hung child fails the test, it never hangs it."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import text

import smarter_domain.domain as domain_module
from smarter_domain import Domain, get_domain, set_domain
from smarter_domain.cache.bus import TRUST_WINDOW
from smarter_domain.testing import RedisServer, UserFactory

from .conftest import FAST_FAIL

ANSWER_WITHIN = 15.0
"""How long a child may take to answer (a hung child is killed and fails the test)."""


class Channel:
    """JSON lines over one end of a socket pair, each read bounded by a timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, value: Any) -> None:
        self.sock.sendall(json.dumps(value).encode() + b"\n")

    def recv(self, timeout: float = ANSWER_WITHIN) -> Any:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the child did not answer in time (hung?)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise EOFError("the child exited without answering")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message = json.loads(line)
        if isinstance(message, dict) and "child_error" in message:
            raise AssertionError(f"in the child:\n{message['child_error']}")
        return message


@contextlib.contextmanager
def forked(body: Callable[[Channel], None]) -> Iterator[Channel]:
    """Fork; the child runs ``body(channel)`` and ``os._exit``s (an exception is sent to the
    parent as ``child_error``); the parent gets its end of the channel, and on leaving, the
    child is reaped (killed if it is still running after a grace period)."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome reaches the parent by the channel
        code = 0
        try:
            ours.close()
            channel = Channel(theirs)
            try:
                body(channel)
            except BaseException:
                code = 1
                channel.send({"child_error": traceback.format_exc()})
        finally:
            os._exit(code)
    theirs.close()
    try:
        yield Channel(ours)
    finally:
        ours.close()
        deadline = time.monotonic() + 5
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.01)


def counts(domain: Domain) -> dict[str, int]:
    return domain.cache.stats.snapshot()


# -- the memory tier, coherence both ways, identity ------------------------------------------


def test_a_forked_child_serves_from_its_memory_tier_and_stays_coherent(
    redis_domain: Domain,
) -> None:
    """The issue's measurement: the child reads an entity twice and the second read is a
    memory hit. Then the parent writes (the child reads the new value at once: its listener
    acknowledged), and the child writes (the parent, which had the entity in memory, reads
    the new value at once)."""
    serves_from_memory_and_stays_coherent(redis_domain)


@pytest.mark.topology
@pytest.mark.smarter_backends("sqlite")
@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_a_forked_child_on_a_cluster_or_sentinel_serves_from_memory_and_stays_coherent(
    request: pytest.FixtureRequest, smarter_database_url: str, topology: str
) -> None:
    """The same on Redis Cluster (per-node pools, sharded pub/sub) and Sentinel (a pool of
    the master the Sentinels name): redis-py's pools of both renew themselves in a child."""
    servers = request.getfixturevalue(
        "smarter_redis_cluster" if topology == "cluster" else "smarter_redis_sentinel"
    )
    with Domain(smarter_database_url, servers.url, redis_options=FAST_FAIL) as domain:
        previous = set_domain(domain)  # the factories' default
        try:
            serves_from_memory_and_stays_coherent(domain)
        finally:
            set_domain(previous)


def serves_from_memory_and_stays_coherent(domain: Domain) -> None:
    shared, theirs = UserFactory(first_name="Before"), UserFactory(first_name="Parent's")
    for user in (shared, theirs):  # in the parent's memory tier before the fork
        assert domain.users.get(user.id) == user
        assert domain.users.get(user.id) == user
    parent_origin = domain.cache.guard.origin

    def child(channel: Channel) -> None:
        before = counts(domain)
        # Past the trust the parent's last pong gave: from here on only a listener of the
        # child's own can make the memory tier usable.
        time.sleep(TRUST_WINDOW * 2)
        first = domain.users.get(shared.id)
        second = domain.users.get(shared.id)
        assert first is not None and second is not None
        listener = domain.cache.listener
        channel.send(
            {
                "counts_at_start": before,
                "counts": counts(domain),
                "version": second.version,
                "origin": domain.cache.guard.origin,
                "listener_origin": listener.origin,
                "listening": listener.healthy,
            }
        )
        written = channel.recv()
        seen = [domain.users.get(shared.id) for _ in range(3)]
        channel.send([user.version if user else None for user in seen])
        updated = domain.users.update(theirs.id, first_name="Child's")
        channel.send({"version": updated.version, "counts": counts(domain)})
        assert written is not None

    with forked(child) as channel:
        report = channel.recv()
        # The parent's figures stayed there; the child's subscription is its only event.
        assert {k: v for k, v in report["counts_at_start"].items() if v} == {"listener_gaps": 1}
        hits = report["counts"]["memory_hits"] - report["counts_at_start"]["memory_hits"]
        assert hits >= 1, report["counts"]  # the measurement
        assert report["version"] == shared.version
        assert report["listening"]
        assert report["origin"] != parent_origin
        assert report["listener_origin"] == report["origin"]

        domain.cache.stats.reset()
        updated = domain.users.update(shared.id, first_name="After")
        assert counts(domain)["ack_timeouts"] == 0  # two processes, two acknowledgements
        channel.send(updated.version)
        assert channel.recv() == [updated.version] * 3

        child_write = channel.recv()
        assert child_write["counts"]["ack_timeouts"] == 0
        seen = domain.users.get(theirs.id)
        assert seen is not None and seen.version == child_write["version"]
        assert seen.first_name == "Child's"
    # The parent's memory tier is fine too (once its listener is trusted: a loaded machine
    # may delay a pong past the trust window, which only bypasses the tier for a moment).
    deadline = time.monotonic() + 10
    while counts(domain)["memory_hits"] < 1:
        assert time.monotonic() < deadline, counts(domain)
        domain.cache.listener.wait_until_healthy(1)  # type: ignore[union-attr]
        assert domain.users.get(theirs.id) == seen


def test_a_child_forked_by_multiprocessing_serves_from_memory_and_sees_the_parents_writes(
    redis_domain: Domain,
) -> None:
    domain = redis_domain
    user = UserFactory(first_name="Before")
    assert domain.users.get(user.id) == user
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()

    def child() -> None:
        try:
            time.sleep(TRUST_WINDOW * 2)  # past the trust inherited from the parent
            before = counts(domain)["memory_hits"]
            domain.users.get(user.id)
            domain.users.get(user.id)
            theirs.send(counts(domain)["memory_hits"] - before)
            if not theirs.poll(ANSWER_WITHIN):
                return
            theirs.recv()
            found = domain.users.get(user.id)
            theirs.send(found.first_name if found else None)
        except BaseException:
            theirs.send(traceback.format_exc())

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        assert ours.poll(ANSWER_WITHIN), "the child did not answer (hung?)"
        hits = ours.recv()
        assert isinstance(hits, int) and hits >= 1, hits
        domain.users.update(user.id, first_name="After")
        ours.send("written")
        assert ours.poll(ANSWER_WITHIN), "the child did not answer (hung?)"
        assert ours.recv() == "After"
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    assert process.exitcode == 0


def test_a_forked_child_has_its_own_database_connections(domain: Domain) -> None:
    """``engine.dispose(close=False)`` in the child: a new pool there, the parent's
    connections left open and working (on SQLite, with the memory tier only, too)."""
    user = UserFactory()
    postgres = domain.engine.dialect.name == "postgresql"
    with domain.engine.connect() as connection:
        parents = connection.connection.dbapi_connection
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar() if postgres else 0

    def child(channel: Channel) -> None:
        with domain.engine.connect() as connection:
            same = connection.connection.dbapi_connection is parents
            theirs = connection.execute(text("SELECT pg_backend_pid()")).scalar() if postgres else 0
        found = domain.users.inner.get(user.id)
        channel.send({"same": same, "backend": theirs, "read": found is not None})

    with forked(child) as channel:
        report = channel.recv()
    assert not report["same"]
    assert report["read"]
    if postgres:
        assert report["backend"] != backend
    with domain.engine.connect() as connection:  # the parent's connection still works
        assert connection.connection.dbapi_connection is parents
        assert connection.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.smarter_backends("sqlite")
def test_a_memory_only_child_keeps_its_parents_entries_and_sees_its_own_writes(
    domain: Domain,
) -> None:
    """Without Redis nothing keeps memory tiers of processes coherent (as for any two
    processes): the child starts with the parent's entries, exactly as fresh as the
    parent's, and its own writes are its own."""
    assert domain.cache.guard is None
    user = UserFactory(first_name="Before")
    assert domain.users.get(user.id) == user

    def child(channel: Channel) -> None:
        first = domain.users.get(user.id)
        hits = counts(domain)["memory_hits"]
        updated = domain.users.update(user.id, first_name="Child's")
        seen = domain.users.get(user.id)
        channel.send(
            {
                "first": first == user,
                "hits": hits,
                "loads": counts(domain)["loads"],
                "own_write_seen": seen == updated,
                "version": updated.version,
            }
        )

    with forked(child) as channel:
        report = channel.recv()
    assert report["first"] and report["own_write_seen"]
    assert report["hits"] >= 1
    assert report["loads"] == 1  # only the read after its own write
    fresh = domain.utils.get_cached_user_for_user_id(user.id, invalidate=True)
    assert fresh is not None and fresh.version == report["version"]


# -- locks held at the fork -------------------------------------------------------------------


def _lock_of(domain: Domain, name: str) -> Any:
    cache = domain.cache
    return {
        "stripes": lambda: cache.stripes._lock,
        "flights": lambda: cache.flights._lock,
        "stats": lambda: cache.stats._lock,
        "lru": lambda: cache._lru._lock if cache._lru is not None else None,
        "mutexes": lambda: cache.redis._lock_registry._mutex if cache.redis else None,
        "default": lambda: domain_module._defaults._lock,
    }[name]()


@pytest.mark.parametrize("name", ["stripes", "flights", "stats", "lru", "mutexes", "default"])
def test_a_lock_another_thread_holds_at_the_fork_does_not_hang_the_child(
    domain: Domain, name: str
) -> None:
    """Only the forking thread exists in the child: a lock another thread held at the fork
    would stay held there forever. The child reads (misses and hits), writes, reads its
    figures and the process default, and answers in time."""
    lock = _lock_of(domain, name)
    if lock is None:
        pytest.skip(f"no {name} lock on this stack")
    user = UserFactory()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)

    def child(channel: Channel) -> None:
        domain.cache.clear_memory()
        assert domain.users.get(user.id) == user  # a miss: a flight, a fill, a mutex
        assert domain.users.get(user.id) == user
        updated = domain.users.update(user.id, first_name="Child's")
        assert domain.users.get(user.id) == updated
        counts(domain)
        set_domain(set_domain(None))
        assert get_domain() is domain
        channel.send("ok")

    try:
        with forked(child) as channel:
            assert channel.recv() == "ok"
    finally:
        release.set()
        holder.join(5)


def test_a_load_in_flight_in_another_thread_at_the_fork_does_not_hang_the_child(
    domain: Domain,
) -> None:
    """A parent's thread is loading the key when the process forks: in the child that load
    never lands, so the child must not wait for it (it loads by itself)."""
    user = UserFactory()
    key = domain.cache.keys.user(user.id)
    domain.cache.invalidate([key])
    loading, release = threading.Event(), threading.Event()

    def slow() -> Any:
        loading.set()
        release.wait(30)
        return domain.users.inner.get(user.id)

    loader = threading.Thread(target=lambda: domain.cache.get_or_load(key, slow), daemon=True)
    loader.start()
    assert loading.wait(5)
    assert len(domain.cache.flights) == 1

    def child(channel: Channel) -> None:
        found = domain.users.get(user.id)
        channel.send(found is not None and found.id == user.id)

    try:
        with forked(child) as channel:
            assert channel.recv() is True
    finally:
        release.set()
        loader.join(5)


# -- invalidations held back by an outage -----------------------------------------------------


def test_the_parents_held_back_invalidations_are_not_replayed_by_the_child(
    redis_domain: Domain, smarter_redis_server: RedisServer
) -> None:
    """An invalidation the parent could not deliver (Redis frozen) is the parent's to replay
    when Redis is back: the child starts without it and never publishes it, so it goes out
    from the parent only."""
    domain = redis_domain
    user = UserFactory()
    key = domain.cache.keys.user(user.id)
    heard: list[dict[str, Any]] = []
    listening, stop = threading.Event(), threading.Event()

    def listen() -> None:
        client = redis.Redis.from_url(smarter_redis_server.url)
        pubsub = client.pubsub()
        pubsub.subscribe(domain.cache.keys.channel())
        listening.set()
        while not stop.is_set():
            with contextlib.suppress(redis.RedisError):
                message = pubsub.get_message(timeout=0.05)
                if message is not None and message["type"] == "message":
                    heard.append(json.loads(message["data"]))
        pubsub.close()
        client.close()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(5)

    def child(channel: Channel) -> None:
        guard = domain.cache.guard
        channel.send({"pending": guard.pending_deletes, "origin": guard.origin})
        channel.recv()  # Redis is back
        time.sleep(guard.breaker.retry_after + 0.2)
        for _ in range(5):  # Redis calls, each of which would replay what is held back
            domain.users.get(user.id)
            domain.cache.invalidate([domain.cache.keys.user(user.id + 1000)])
        channel.send({"pending": guard.pending_deletes})

    smarter_redis_server.pause()
    try:
        domain.cache.invalidate([key])
        assert domain.cache.guard.pending_deletes == 1
        with forked(child) as channel:
            report = channel.recv()
            assert report["pending"] == 0
            smarter_redis_server.resume()
            deadline = time.monotonic() + 10
            while domain.cache.guard.pending_deletes:  # the parent replays it
                assert time.monotonic() < deadline, "the parent did not replay"
                domain.cache.guard.deliver_pending()
                time.sleep(0.05)
            channel.send("resumed")
            assert channel.recv(ANSWER_WITHIN + 5)["pending"] == 0
    finally:
        smarter_redis_server.resume()
        time.sleep(0.3)  # the last messages reach the test's subscriber
        stop.set()
        listener.join(5)
    # The frozen Redis may still run the first attempt once it is resumed (the command was
    # sent; only its answer timed out): that one carries an acknowledgement key. A replay
    # carries none; every one is the parent's (a probe the parent sent to the frozen server,
    # which timed out, runs when it resumes, as the first attempt does).
    carrying = [message for message in heard if key in message["k"]]
    replays = [message for message in carrying if not message["a"]]
    assert replays, carrying
    assert {message["o"] for message in replays} == {domain.cache.guard.origin}
    assert not [message for message in carrying if message["o"] == report["origin"]]
