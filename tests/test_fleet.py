"""The fleet-wide view: each process's heartbeat in Redis, read by ``smarter-domain cache
stats`` and ``cache top``, with two live processes (one sync, one async) on the session's real
Redis; hostile values under the fleet's keys; the view without Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import smarter_domain as sd
from smarter_domain.cache.fleet import MAX_RECORD_BYTES, fleet_key, parse, read_fleet

from .builders import cli_env

pytestmark = pytest.mark.smarter_backends("sqlite")
NAMESPACE = "smarter:v1"

PROCESS = """
import asyncio, sys, smarter_domain as sd
from smarter_domain.cache import RedisOptions
options = RedisOptions(heartbeat=0.1)
database_url, redis_url, door = sys.argv[1:4]

def reads(users):
    for _ in range(5):
        users.get_by_username("admin")

if door == "sync":
    with sd.Domain(database_url, redis_url, redis_options=options) as domain:
        domain.bootstrap()
        reads(domain.users)
        print("ready", flush=True)
        sys.stdin.read()
else:
    async def main():
        async with sd.AsyncDomain(database_url, redis_url, redis_options=options) as domain:
            await domain.bootstrap()
            for _ in range(5):
                await domain.users.get_by_username("admin")
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.read)
    asyncio.run(main())
"""


@pytest.fixture
def two_processes(smarter_database_url: str, smarter_redis_url: str) -> Iterator[list[int]]:
    """Two live processes on the session's Redis, one per front door; their pids."""
    started = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, smarter_database_url, smarter_redis_url, door],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for door in ("sync", "async")
    ]
    try:
        for process in started:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        yield [process.pid for process in started]
    finally:
        for process in started:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(30)


def _stats(tmp_path: Path, database_url: str, redis_url: str | None, *args: str) -> Any:
    return subprocess.run(
        ["smarter-domain", "cache", *args],
        cwd=tmp_path,
        env={**cli_env(database_url, redis_url), "COLUMNS": "200"},  # (the table, unwrapped)
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cache_stats_sees_every_live_process(
    two_processes: list[int], smarter_database_url: str, smarter_redis_url: str, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 10
    while True:
        result = _stats(tmp_path, smarter_database_url, smarter_redis_url, "stats", "-o", "json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        seen = {p["pid"]: p for p in data["processes"]}
        hits = [seen[pid]["counters"]["memory_hits"] for pid in two_processes if pid in seen]
        if (len(hits) == 2 and min(hits) >= 4) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(two_processes) <= set(seen), data
    assert {seen[pid]["door"] for pid in two_processes} == {"sync", "async"}
    for pid in two_processes:
        process = seen[pid]
        assert process["listener"] == "subscribed" and process["breaker"] == "closed"
        assert process["memory_hit_ratio"] > 0.5  # 5 reads of one user: 1 miss, then hits
        assert process["memory_entries"] >= 2  # the user and its username's entry
    assert data["totals"]["memory_hits"] >= sum(
        seen[p]["counters"]["memory_hits"] for p in two_processes
    )
    table = _stats(tmp_path, smarter_database_url, smarter_redis_url, "stats")
    assert table.returncode == 0 and "total" in table.stdout
    for pid in two_processes:
        assert str(pid) in table.stdout
    top = _stats(
        tmp_path,
        smarter_database_url,
        smarter_redis_url,
        "top",
        "--iterations",
        "2",
        "--interval",
        "0.1",
    )
    assert top.returncode == 0, top.stderr
    assert str(two_processes[0]) in top.stdout


def test_a_dead_process_drops_out_by_itself(
    smarter_database_url: str, smarter_redis_url: str, redis_client: redis.Redis
) -> None:
    options = sd.cache.RedisOptions(heartbeat=0.1)
    with sd.Domain(smarter_database_url, smarter_redis_url, redis_options=options) as domain:
        deadline = time.monotonic() + 5
        while not read_fleet(redis_client, NAMESPACE).processes:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        key = fleet_key(NAMESPACE, domain.cache.guard.origin)  # type: ignore[union-attr]
        ttl = redis_client.pttl(key)
        assert 0 < ttl <= 1000  # three intervals, at least a second
    time.sleep(1.1)
    assert read_fleet(redis_client, NAMESPACE).processes == []


@pytest.mark.parametrize(
    "planted",
    [
        b"\\x80\\x04garbage",
        b"[1, 2, 3]",
        b'{"v": 1, "host": "h"}',
        b'{"v": 1, "counters": {"memory_hits": -1}}',
        json.dumps({"v": 1, "pad": "x" * MAX_RECORD_BYTES}).encode(),
        b"\\x80\\x05\\x95\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00.",  # a pickle
        "hash",
        json.dumps({"v": 1, "at": 10**700}).encode(),  # a number no float holds
        b"x" * (64 * 1024 * 1024),  # read only as far as a record could go
    ],
)
def test_hostile_heartbeats_are_skipped_and_counted(
    smarter_database_url: str,
    smarter_redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    planted: Any,
) -> None:
    key = fleet_key(NAMESPACE, "planted")
    if planted == "hash":
        redis_client.hset(key, "a", "b")
    else:
        redis_client.set(key, planted)
    fleet = read_fleet(redis_client, NAMESPACE)
    assert fleet.processes == []
    assert fleet.unreadable == 1
    result = _stats(tmp_path, smarter_database_url, smarter_redis_url, "stats", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["processes"] == []


def test_parse_refuses_whatever_is_not_a_record() -> None:
    assert parse(None) is None
    assert parse(12) is None
    assert parse(b"{" * 100_000) is None
    assert parse(b'{"v": 1}') is None
    good = {
        "v": 1,
        "host": "h",
        "pid": 1,
        "origin": "o",
        "at": 1.0,
        "started": 1.0,
        "door": "sync",
        "counters": {"memory_hits": 3},  # the others: 0 (a record of another release)
        "memory_entries": None,
        "listener": "subscribed",
        "last_gap": None,
        "breaker": "closed",
        "pending_invalidations": 0,
    }
    view = parse(json.dumps(good))
    assert view is not None and view.counters["memory_hits"] == 3 and view.counters["loads"] == 0
    for field, hostile in (
        ("host", "\x1b]0;pwned\x07\x1b[2J"),  # terminal escapes
        ("host", "x" * 300),
        ("at", 10**700),
        ("at", float("inf")),
        ("last_gap", -1),
        ("pid", -5),
        ("pid", True),
    ):
        assert parse(json.dumps({**good, field: hostile})) is None, (field, hostile)


def test_a_host_name_is_shown_as_text_never_as_markup() -> None:
    from rich.console import Console

    from smarter_domain.cache.fleet import Fleet, ProcessView
    from smarter_domain.cache.stats import STAT_NAMES
    from smarter_domain.entrypoints.cli import _fleet_table

    counters = dict.fromkeys(STAT_NAMES, 0)
    views = [
        ProcessView("[/]", 1, "o", 1.0, 1.0, "sync", counters, None, "down", None, "closed", 0),
        ProcessView(
            "[link=https://x]y", 2, "p", 1.0, 1.0, "sync", counters, 3, "down", 5.0, "open", 0
        ),
    ]
    console = Console(record=True, width=200)
    console.print(_fleet_table(Fleet(views, 0)))
    text = console.export_text()
    assert "[/]" in text and "[link=https://x]y" in text


def test_without_redis_the_view_says_so_in_one_line(
    smarter_database_url: str, tmp_path: Path
) -> None:
    for command in ("stats", "top"):
        result = _stats(tmp_path, smarter_database_url, None, command)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no Redis configured" in lines[0], lines
