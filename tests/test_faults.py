"""The faults production sees, one deterministic test each (CONTRACT §10): when a write
returns, no read in any process returns an older value; where that needs refusing the write
(``consistency="strict"``, the default), the write is refused and nothing is committed.

The "other process" is a second Domain on the same database and Redis (its own memory tier
and listener), or a real subprocess where the fault is a process's (kill -9, SIGSTOP).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

import smarter_domain as sd
from smarter_domain import Domain
from smarter_domain.testing import PostgresServer, RedisServer, UserFactory

from .conftest import FAST_FAIL

pytestmark = pytest.mark.smarter_backends("postgresql")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own: these tests pause and kill it."""
    with RedisServer() as server:
        yield server
    server.close()


@pytest.fixture
def reader(smarter_database_url: str, own_redis: RedisServer) -> Iterator[Domain]:
    """Another process's domain: its memory tier, its listener."""
    domain = Domain(smarter_database_url, own_redis.url, redis_options=FAST_FAIL)
    previous = sd.set_domain(domain)
    try:
        yield domain
    finally:
        sd.set_domain(previous)
        domain.close()


def _process(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


KILLED_WRITER = """
    import os, sys
    from smarter_domain import Domain

    domain = Domain(sys.argv[1], sys.argv[2])
    # Killed (kill -9) right after the commit, before its invalidation.
    kill = lambda *args, **kwargs: os.kill(os.getpid(), 9)
    domain.cache.release = domain.cache.invalidate = kill
    domain.users.update(int(sys.argv[3]), first_name="Killed")
"""


def test_a_writer_killed_between_commit_and_invalidation_leaves_nothing_stale(
    smarter_database_url: str, own_redis: RedisServer, reader: Domain
) -> None:
    user = UserFactory()
    assert reader.users.get(user.id) == user  # in the reader's memory tier and in Redis
    writer = _process(KILLED_WRITER, smarter_database_url, own_redis.url, str(user.id))
    assert writer.wait(60) == -signal.SIGKILL, writer.communicate()
    committed = reader.users.inner.get(user.id)
    assert committed is not None and committed.first_name == "Killed"
    assert reader.users.get(user.id) == committed  # not the reader's memory tier's copy
    reader.cache.clear_memory()
    assert reader.users.get(user.id) == committed  # nor Redis's
    assert reader.utils.get_cached_user_for_username(user.username) == committed


def test_a_write_while_redis_is_paused_is_refused_and_commits_nothing(
    own_redis: RedisServer, reader: Domain, smarter_database_url: str
) -> None:
    user = UserFactory()
    writer = Domain(smarter_database_url, own_redis.url, redis_options=FAST_FAIL)
    try:
        assert reader.users.get(user.id) == user
        assert writer.users.get(user.id) == user
        own_redis.pause()
        try:
            with pytest.raises(sd.CacheUnavailable):
                writer.users.update(user.id, first_name="During the pause")
        finally:
            own_redis.resume()
        assert reader.users.inner.get(user.id) == user  # nothing was committed
        assert reader.users.get(user.id) == user
        updated = writer.users.update(user.id, first_name="After")  # Redis is back: accepted
        assert reader.users.get(user.id) == updated
    finally:
        writer.close()


def test_available_mode_commits_while_redis_is_paused(
    own_redis: RedisServer, reader: Domain, smarter_database_url: str
) -> None:
    """The trade, taken explicitly: writes go on, other processes may read the old value
    until the writer's invalidation is replayed."""
    user = UserFactory()
    writer = Domain(
        smarter_database_url, own_redis.url, redis_options=FAST_FAIL, consistency="available"
    )
    try:
        own_redis.pause()
        try:
            updated = writer.users.update(user.id, first_name="During the pause")
        finally:
            own_redis.resume()
        assert writer.users.inner.get(user.id) == updated
        deadline = time.monotonic() + 5
        while reader.users.get(user.id) != updated and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.users.get(user.id) == updated  # once the writer replayed
    finally:
        writer.close()


FROZEN_PEER = """
    import sys, time
    from smarter_domain import Domain
    from smarter_domain.cache import RedisOptions

    domain = Domain(sys.argv[1], sys.argv[2])
    user_id = int(sys.argv[3])
    print(domain.users.get(user_id).first_name, flush=True)  # cached in its memory tier
    sys.stdin.readline()  # frozen (SIGSTOP) and thawed while waiting here
    print(domain.users.get(user_id).first_name, flush=True)
    domain.close()
"""


def test_a_frozen_peer_neither_trips_the_writers_breaker_nor_serves_the_old_value(
    smarter_database_url: str, own_redis: RedisServer, reader: Domain
) -> None:
    user = UserFactory(first_name="Before")
    peer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(FROZEN_PEER),
            smarter_database_url,
            own_redis.url,
            str(user.id),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert peer.stdout is not None and peer.stdin is not None
        assert peer.stdout.readline().strip() == "Before"
        peer.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        reader.users.update(user.id, first_name="During the freeze")
        elapsed = time.monotonic() - started
        guard = reader.cache.guard
        assert guard is not None
        assert not guard.breaker.is_down  # waiting for a slow peer is not a Redis failure
        assert reader.cache.stats.snapshot()["ack_timeouts"] >= 1
        assert elapsed < 2.0
        # The next write is published, not queued behind an open breaker.
        reader.users.update(user.id, first_name="After")
        assert guard.pending_deletes == 0
        peer.send_signal(signal.SIGCONT)
        peer.stdin.write("\n")
        peer.stdin.flush()
        assert peer.stdout.readline().strip() == "After"
    finally:
        peer.send_signal(signal.SIGCONT)
        peer.kill()
        peer.communicate(timeout=30)


@pytest.mark.parametrize("fault", ["restart", "crash"])
def test_postgresql_restarting_gives_typed_errors_then_recovers_with_nothing_stale(
    own_redis: RedisServer, fault: str
) -> None:
    """A fast restart, or kill -9 of a durable server (crash recovery keeps every commit it
    acknowledged): calls meanwhile raise DatabaseError, never a raw driver error; the first
    calls after it succeed (stale pooled connections are replaced), and no read is stale."""
    with PostgresServer(durable=True) as postgres:
        url = postgres.create_database("faults")
        with (
            Domain(url, own_redis.url, redis_options=FAST_FAIL) as writer,
            Domain(url, own_redis.url, redis_options=FAST_FAIL) as reader,
        ):
            writer.migrate()
            user = writer.users.add(username="pg-fault")
            other = writer.users.add(username="pg-uncached")
            assert reader.users.get(user.id) == user
            updated = writer.users.update(user.id, first_name="Before")
            assert reader.users.get(user.id) == updated
            postgres.stop()
            with pytest.raises(sd.DatabaseError):
                writer.users.update(user.id, first_name="While down")
            with pytest.raises(sd.DatabaseError):
                reader.users.get(other.id)  # not cached anywhere: needs the database
            assert reader.users.get(user.id) == updated  # cached: still served
            postgres.start()
            if fault == "crash":
                postgres.crash()
            started = time.monotonic()
            after = writer.users.update(user.id, first_name="After")
            recovery = time.monotonic() - started
            assert recovery < 2.0
            assert reader.users.get(user.id) == after
            assert reader.users.inner.get(user.id) == after
            assert reader.users.get(other.id) == other
    postgres.close()


def test_a_hold_survives_other_invalidations_of_its_keys(
    smarter_database_url: str, own_redis: RedisServer, reader: Domain
) -> None:
    """While a write commits, another process invalidates and reloads the same entry (an
    ``invalidate=True`` lookup; another writer's release of a shared list key or a replay
    would do the same). Its fill must still be refused: the hold is the writer's own, and
    only the writer's release (or its expiry) ends it. Then the writer dies before its release:
    nobody may serve the old row."""
    user = UserFactory(first_name="Old")
    writer = Domain(smarter_database_url, own_redis.url, redis_options=FAST_FAIL)
    third = Domain(smarter_database_url, own_redis.url, redis_options=FAST_FAIL)
    try:
        assert reader.users.get(user.id) == user

        def meddle(session: Any) -> None:  # between the writer's prepare and its commit
            reader.utils.get_cached_user_for_user_id(user.id, invalidate=True)

        event.listen(writer.session_factory, "before_commit", meddle)
        writer.cache.release = lambda *args, **kwargs: None  # type: ignore[method-assign]
        updated = writer.users.update(user.id, first_name="New")
        assert third.users.get(user.id) == updated
        assert reader.users.get(user.id) == updated
        assert reader.utils.get_cached_user_for_user_id(user.id) == updated
    finally:
        writer.close()
        third.close()
