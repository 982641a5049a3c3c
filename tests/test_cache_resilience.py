"""Stampedes, dead lock holders and Redis outages (upstream defect 4), on a real Redis."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import smarter_domain as sd
from smarter_domain import Domain, cache_results
from smarter_domain.testing import RedisServer, UserFactory

pytestmark = pytest.mark.smarter_backends("sqlite")


def test_32_threads_missing_one_key_load_it_once(redis_domain: Domain) -> None:
    loads: list[int] = []
    barrier = threading.Barrier(32)
    results: list[object] = []

    def loader() -> str:
        loads.append(1)
        time.sleep(0.3)
        return "value"

    def worker() -> None:
        barrier.wait()
        results.append(redis_domain.cache.get_or_load("smarter:v1:hot", loader))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == [1]
    assert results == ["value"] * 32


def test_processes_missing_one_key_load_it_once(
    smarter_database_url: str, smarter_redis_url: str, redis_client: redis.Redis
) -> None:
    worker = Path(__file__).parent / "helpers" / "stampede_worker.py"
    start_at = time.time() + 1.5
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                smarter_database_url,
                smarter_redis_url,
                "8",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    assert redis_client.get("stampede:loads") == b"1"


def test_a_lock_whose_holder_died_expires(redis_domain: Domain, redis_client: redis.Redis) -> None:
    key = "smarter:v1:orphaned"
    # A holder that took the distributed lock and died: nobody will release it.
    assert redis_client.lock(f"{key}#lock", timeout=1).acquire(blocking=False)
    started = time.monotonic()
    assert redis_domain.cache.get_or_load(key, lambda: "loaded") == "loaded"
    assert time.monotonic() - started < 5


def test_redis_down_every_call_still_succeeds_and_logs_once(
    redis_domain: Domain,
    smarter_redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Upstream defect 4: no read raises. A write is refused (nothing committed) with the
    default strict consistency, and goes through with ``consistency="available"``."""
    user = UserFactory()
    assert redis_domain.users.get(user.id) == user
    smarter_redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="smarter_domain"):
            for round_ in range(6):
                redis_domain.consistency = "strict" if round_ < 3 else "available"
                redis_domain.cache.clear_memory()
                assert redis_domain.users.get(user.id) == user
                assert redis_domain.users.get_by_username(user.username) == user
                assert redis_domain.users.list_for_account(1) == []
                assert cached_square(round_) == round_ * round_
                if redis_domain.consistency == "strict":
                    with pytest.raises(sd.CacheUnavailable):
                        redis_domain.users.update(user.id, first_name=f"n{round_}")
                    assert redis_domain.users.inner.get(user.id) == user
                    continue
                updated = redis_domain.users.update(user.id, first_name=f"n{round_}")
                assert redis_domain.users.get(user.id) == updated
                user = updated
                time.sleep(0.1)
        outages = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(outages) == 1
        assert redis_domain.cache.stats.snapshot()["redis_errors"] >= 1
    finally:
        smarter_redis_server.start()
    time.sleep(0.4)  # past retry_after: the next call tries Redis again
    assert redis_domain.users.get(user.id) == user
    assert redis_domain.users.get(user.id) == user


@cache_results()
def cached_square(x: int) -> int:
    return x * x


def test_no_stale_value_after_a_blackholed_redis_comes_back(
    redis_domain: Domain,
    smarter_redis_server: RedisServer,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis hangs (SIGSTOP keeps its data) while a write commits: its invalidation cannot be
    delivered. Once Redis answers again, the stale entry it still holds is never served."""
    redis_domain.consistency = "available"  # writes go on during the outage: the replay path
    user = UserFactory(first_name="Old")
    assert redis_domain.users.get(user.id) == user
    key = redis_domain.cache.keys.user(user.id)
    stale = redis_client.get(key)
    assert stale is not None
    smarter_redis_server.pause()
    try:
        updated = redis_domain.users.update(user.id, first_name="New")  # no error
        assert redis_domain.users.get(user.id) == updated
        redis_domain.cache.clear_memory()
        assert redis_domain.users.get(user.id) == updated  # from the database
        guard = redis_domain.cache.guard
        assert guard is not None and guard.breaker.is_down and guard.pending_deletes
        # Nobody (the listener's replay included) contacts Redis until the stale entry is
        # back in place: the first contact after it must replay before it reads. A probe
        # already sent to the frozen server (one every ``retry_after``) would succeed once it
        # resumes: the breaker lets none through now, and the probes in flight time out
        # before Redis resumes.
        monkeypatch.setattr(guard.breaker, "allow", lambda: False)
        time.sleep(1.0)  # a connect and a read, each 0.2 s at most, and some scheduling
    finally:
        smarter_redis_server.resume()
    # A DEL that timed out may or may not have reached Redis; make sure it did not.
    redis_client.set(key, stale)
    assert guard.pending_deletes
    monkeypatch.undo()
    guard.breaker._retry_at = 0.0
    for _ in range(3):
        redis_domain.cache.clear_memory()
        assert redis_domain.users.get(user.id) == updated  # ...and never served
    assert redis_domain.cache.stats.snapshot()["redis_errors"] >= 1


def test_a_restarted_redis_serves_no_value_from_before_the_outage(
    redis_domain: Domain, smarter_redis_server: RedisServer
) -> None:
    redis_domain.consistency = "available"  # writes go on during the outage: the replay path
    user = UserFactory()
    assert redis_domain.users.get(user.id) == user
    smarter_redis_server.stop()
    try:
        updated = redis_domain.users.update(user.id, last_name="During")
    finally:
        smarter_redis_server.start()
    time.sleep(0.4)
    redis_domain.cache.clear_memory()
    assert redis_domain.users.get(user.id) == updated


def test_pending_deletes_count_a_flush_owed_and_a_replay_under_way(redis_domain: Domain) -> None:
    guard = redis_domain.cache.guard
    assert guard is not None
    guard.max_pending = 3
    guard._remember([f"{redis_domain.cache.keys.namespace}:k{n}" for n in range(5)])
    assert guard.pending_deletes == 1  # more than max_pending: a namespace flush is owed
    seen: list[int] = []
    flush = guard._flush_namespace
    assert flush is not None

    def watched_flush(client: Any) -> None:
        seen.append(guard.pending_deletes)  # while the replay is under way
        flush(client)

    guard._flush_namespace = watched_flush
    guard.deliver_pending()
    assert seen == [1]
    assert guard.pending_deletes == 0
