"""Benchmarks: every figure is a ratio to a baseline measured in the same process and run.

    nox -s bench            (or: python bench/run.py)

Starts PostgreSQL and Redis on loopback, prints a table, writes bench/results.json and
bench/results.md, and exits 1 if a target is missed. Each timing is the mean of a batch of
calls; a figure reports min / median / max over several batches. Our path and its baseline
run in alternating batches, and a ratio is the median of the per-round ratios: a burst of
load from a neighbour on this shared machine then falls on both sides of it.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import redis
from dogpile.cache import make_region
from sqlalchemy import select
from sqlalchemy.orm import Session

import smarter_domain as sd
from smarter_domain.adapters.orm import UserRow
from smarter_domain.adapters.repositories import user_from_row
from smarter_domain.cache import codec
from smarter_domain.testing import PostgresServer, RedisServer

HERE = Path(__file__).resolve().parent
BATCHES = 9
sys.path[:0] = [str(HERE), str(HERE.parent)]

from imports import import_rows  # noqa: E402
from tests.round_trips import commands_sent, exchanges_on  # noqa: E402

Timing = dict[str, float]


def _batch(call: Callable[[], Any], per_batch: int, before: Callable[[], Any] | None) -> float:
    """Mean ns per call over one batch (``before`` runs untimed before each call)."""
    total = 0
    for _ in range(per_batch):
        if before:
            before()
        start = time.perf_counter_ns()
        call()
        total += time.perf_counter_ns() - start
    return total / per_batch


def _summary(means: list[float]) -> Timing:
    return {"min": min(means), "median": statistics.median(means), "max": max(means)}


def timed(
    call: Callable[[], Any], per_batch: int, before: Callable[[], Any] | None = None
) -> Timing:
    """min / median / max of the batch means, after a warm-up."""
    _batch(call, min(per_batch, 200), before)
    return _summary([_batch(call, per_batch, before) for _ in range(BATCHES)])


def paired(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    per_batch: int,
    before: Callable[[], Any] | None = None,
    rounds: int = BATCHES,
) -> tuple[Timing, Timing, float]:
    """Both timed in alternating batches, so a shift in the machine's load (these machines
    are shared) falls on both sides alike; the ratio (ours / baseline) is the median of the
    rounds' ratios. ``before`` applies to ``ours``."""
    _batch(ours, min(per_batch, 200), before)
    _batch(baseline, min(per_batch, 200), None)
    ours_means, baseline_means = [], []
    for _ in range(rounds):
        ours_means.append(_batch(ours, per_batch, before))
        baseline_means.append(_batch(baseline, per_batch, None))
    ratios = [o / b for o, b in zip(ours_means, baseline_means, strict=True)]
    return _summary(ours_means), _summary(baseline_means), statistics.median(ratios)


class Bench:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def ratio(
        self,
        figure: str,
        ours: dict[str, float],
        base: dict[str, float],
        baseline: str,
        target: str,
        ok: bool | None,
        ratio: float,
        note: str = "",
    ) -> None:
        self.rows.append(
            {
                "figure": figure,
                "ours_ns": ours,
                "baseline": baseline,
                "baseline_ns": base,
                "ratio": round(ratio, 2),
                "target": target,
                "met": ok,
                "note": note,
            }
        )

    def fact(self, figure: str, value: str, target: str, ok: bool | None, note: str = "") -> None:
        self.rows.append(
            {"figure": figure, "value": value, "target": target, "met": ok, "note": note}
        )


def fmt(t: dict[str, float]) -> str:
    return f"{t['min'] / 1000:.2f} / {t['median'] / 1000:.2f} / {t['max'] / 1000:.2f} µs"


def add_members(domain: sd.Domain, account: sd.Account, count: int, prefix: str) -> None:
    """``count`` users ``<prefix><n>``, each with a profile in ``account``, in one commit."""
    with domain.unit_of_work() as uow:
        for n in range(count):
            user = uow.users.add(username=f"{prefix}{n}")
            uow.profiles.add(user_id=user.id, account_id=account.id)
        uow.commit()


def seed(domain: sd.Domain, members: int) -> sd.Account:
    admin = domain.bootstrap()
    account = domain.accounts.add(name="bench", account_number="5555-5555-5555")
    add_members(domain, account, members, "member")
    assert admin
    return account


def hit_rows(bench: Bench, domain: sd.Domain) -> None:
    sd.set_domain(domain)
    sd.get_cached_user_for_username("admin")
    hit = lambda: sd.get_cached_user_for_username("admin")  # noqa: E731

    region = make_region().configure("dogpile.cache.memory", expiration_time=600)

    @region.cache_on_arguments()
    def stock(username: str) -> Any:
        return domain.users.inner.get_by_username(username)

    @functools.lru_cache(maxsize=10_000)
    def plain(username: str) -> Any:
        return domain.users.inner.get_by_username(username)

    stock("admin")
    plain("admin")
    ours, dogpile, slower = paired(hit, lambda: stock("admin"), 20_000)
    ours_again, lru, lru_ratio = paired(hit, lambda: plain("admin"), 20_000)
    speedup = 1 / slower
    bench.ratio(
        "memory-tier hit of get_cached_user_for_username",
        ours,
        dogpile,
        "dogpile cache_on_arguments hit (memory region)",
        ">= 5x faster",
        speedup >= 5,
        speedup,
        "ratio = baseline / ours",
    )
    bench.ratio(
        "memory-tier hit",
        ours_again,
        lru,
        "functools.lru_cache hit",
        "report",
        None,
        lru_ratio,
        "ratio = ours / baseline",
    )


def redis_hit_row(bench: Bench, domain: sd.Domain, redis_url: str) -> None:
    user = domain.users.get_by_username("admin")
    assert user is not None
    key = domain.cache.keys.user(user.id)
    domain.users.get(user.id)
    raw_client = redis.Redis.from_url(redis_url)
    payload = raw_client.get(key)
    assert payload is not None and payload.startswith(codec.RECORD + b"U")
    decoder = msgspec.msgpack.Decoder(tuple[float, sd.User])

    def raw() -> Any:
        value = raw_client.get(key)
        return decoder.decode(value[4:])[1]

    assert raw() == user
    ours, base, ratio = paired(
        lambda: domain.users.get(user.id), raw, 500, before=domain.cache.clear_memory, rounds=25
    )
    bench.ratio(
        "Redis-tier hit (memory tier cold)",
        ours,
        base,
        "raw redis-py GET + typed msgspec decode of the same bytes",
        "<= 1.1x",
        ratio <= 1.1,
        ratio,
    )
    raw_client.close()


def cold_miss_row(bench: Bench, domain: sd.Domain, redis_url: str) -> None:
    """Nothing cached anywhere: the lookup, the SQL, the guarded fill."""
    user = domain.users.get_by_username("admin")
    assert user is not None
    key = domain.cache.keys.user(user.id)
    client = redis.Redis.from_url(redis_url)
    table = UserRow.__table__
    stmt = select(table).where(table.c.id == user.id)
    scratch = f"{domain.cache.keys.namespace}:bench-raw"

    def forget() -> None:
        client.delete(key)
        domain.cache.drop_local([key])

    def raw() -> Any:
        client.get(scratch)
        with domain.engine.connect() as connection:
            row = connection.execute(stmt).one()
        client.set(scratch, b"x" * 200, ex=600)
        return row

    forget()
    sent = commands_sent(client, lambda: domain.users.get(user.id))
    ours, base, ratio = paired(
        lambda: domain.users.get(user.id), raw, 100, before=forget, rounds=25
    )
    bench.ratio(
        "cold miss by id (PostgreSQL + Redis)",
        ours,
        base,
        "raw Core select by pk + raw GET + raw SET",
        "<= 1.3x",
        ratio <= 1.3,
        ratio,
    )
    trips = sum(sent.values())
    bench.fact(
        "  Redis round trips of that cold miss",
        f"{trips} ({', '.join(f'{n} {c}' for c, n in sorted(sent.items()))})",
        "<= 2",
        trips <= 2,
    )
    client.close()


def miss_row(bench: Bench, domain: sd.Domain, label: str) -> None:
    user = domain.users.inner.get_by_username("admin")
    assert user is not None
    key = domain.cache.keys.user_by_username("admin")
    entity_key = domain.cache.keys.user(user.id)

    def forget() -> None:
        domain.cache.drop_local([key, entity_key])

    stmt = select(UserRow).where(UserRow.username == "admin")

    def raw() -> Any:
        with Session(domain.engine) as session:
            row = session.scalars(stmt).one_or_none()
            return user_from_row(row) if row is not None else None

    # The miss runs two queries: by username, then the entity by id.
    ours, base, ratio = paired(
        lambda: domain.users.get_by_username("admin"),
        lambda: (raw(), raw()),
        100,
        before=forget,
        rounds=25,
    )
    bench.ratio(
        f"database miss path ({label}, memory tier)",
        ours,
        base,
        "the raw SQLAlchemy queries it runs (2: by username, by id)",
        "<= 1.3x",
        ratio <= 1.3,
        ratio,
    )


def list_row(bench: Bench, domain: sd.Domain, account: sd.Account, redis_url: str) -> None:
    utils = domain.utils
    cached = lambda: utils.get_users_for_account(account)  # noqa: E731
    users = cached()
    assert len(users) == 1000
    client = redis.Redis.from_url(redis_url)
    keys = [domain.cache.keys.user(u.id) for u in users]
    decoder = msgspec.msgpack.Decoder(tuple[float, sd.User])

    def raw() -> Any:
        return [decoder.decode(value[4:])[1] for value in client.mget(keys)]

    assert raw() == users
    from_redis, base, ratio = paired(cached, raw, 20, before=domain.cache.clear_memory, rounds=15)
    bench.ratio(
        "get_users_for_account, 1,000 members, from Redis (memory tier cold)",
        from_redis,
        base,
        "raw MGET + typed msgspec decode of the same 1,000 values",
        "<= 1.3x",
        ratio <= 1.3,
        ratio,
    )
    uncached = timed(lambda: domain.users.inner.list_for_account(account.id), 10)
    speedup = uncached["median"] / from_redis["median"]
    bench.ratio(
        "  the same, from Redis, against the uncached SQL",
        from_redis,
        uncached,
        "the same, uncached (SQL)",
        ">= 5x faster",
        speedup >= 5,
        speedup,
        "ratio = baseline / ours",
    )
    ours = timed(cached, 200)
    bench.ratio(
        "  the same, from the memory tier",
        ours,
        uncached,
        "the same, uncached (SQL)",
        "report",
        None,
        uncached["median"] / ours["median"],
        "ratio = baseline / ours",
    )
    domain.cache.clear_memory()
    guard = domain.cache.guard
    assert guard is not None
    trips: list[str] = []
    sent = commands_sent(client, lambda: trips.extend(exchanges_on(guard.wire, cached)))
    client.close()
    bench.fact(
        "  Redis round trips, memory tier cold",
        f"{len(trips)} ({', '.join(trips)}; commands: "
        f"{', '.join(f'{n} {c}' for c, n in sorted(sent.items()))})",
        "<= 2",
        len(trips) <= 2 and sent["evalsha"] == 1 and set(sent) <= {"evalsha", "mget"},
    )


def long_list_row(bench: Bench, domain: sd.Domain, members: int) -> None:
    """A list longer than a quarter of the memory tier: its members come from Redis."""
    account = domain.accounts.add(name="long", account_number="7777-7777-7777")
    add_members(domain, account, members, "long")
    cached = lambda: domain.users.list_for_account(account.id)  # noqa: E731
    assert len(cached()) == members
    uncached = lambda: domain.users.inner.list_for_account(account.id)  # noqa: E731
    ours, base, ratio = paired(cached, uncached, 3, rounds=9)
    speedup = 1 / ratio
    bench.ratio(
        f"list of {members:,} members (memory tier {domain.cache.keep_limit:,} per list)",
        ours,
        base,
        "the same, uncached (SQL)",
        "faster",
        speedup > 1,
        speedup,
        "ratio = baseline / ours",
    )


def memory_rows(bench: Bench, domain: sd.Domain, count: int) -> None:
    """What caching one more user costs the memory tier, entity included, and the hit path."""
    import gc
    import tracemalloc

    names = [f"member{n}" for n in range(count)]
    domain.cache.clear_memory()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for name in names:
        domain.users.get_by_username(name)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per_user = grown / count
    bench.fact(
        "memory per cached user (entity, its two entries and keys)",
        f"{per_user:.0f} B ({count:,} users cached by username)",
        "<= 600 B",
        per_user <= 600,
    )
    user = domain.users.get_by_username(names[7])
    assert user is not None
    plain = {"k": user}
    by_id, base, ratio = paired(lambda: domain.users.get(user.id), lambda: plain.get("k"), 50_000)
    bench.ratio("memory-tier hit by id", by_id, base, "dict get", "<= 10x", ratio <= 10, ratio)
    name = names[7]
    by_name, base, ratio = paired(
        lambda: domain.users.get_by_username(name), lambda: plain.get("k"), 50_000
    )
    bench.ratio(
        "memory-tier hit by username", by_name, base, "dict get", "<= 15x", ratio <= 15, ratio
    )


def stampede_row(bench: Bench, database_url: str, redis_url: str) -> None:
    worker = HERE.parent / "tests" / "helpers" / "stampede_worker.py"
    client = redis.Redis.from_url(redis_url)
    client.delete("stampede:loads", "smarter:v1:stampede")
    start_at = time.time() + 2.0
    processes = [
        subprocess.Popen(
            [sys.executable, str(worker), database_url, redis_url, "32", str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for p in processes:
        p.communicate(timeout=120)
    loads = int(client.get("stampede:loads") or 0)
    client.close()
    bench.fact(
        "32 threads x 4 processes, cold miss on one key",
        f"{loads} database load(s)",
        "exactly 1",
        loads == 1 and all(p.returncode == 0 for p in processes),
    )


LISTENER = """
import json, sys, time, smarter_domain as sd
d = sd.Domain(sys.argv[1], sys.argv[2])
print("ready", flush=True)
time.sleep(float(sys.argv[3]))
print(json.dumps(list(d.cache.listener.latencies_ms)), flush=True)
d.close()
"""


def propagation_row(bench: Bench, domain: sd.Domain, database_url: str, redis_url: str) -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", LISTENER, database_url, redis_url, "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None
    assert other.stdout.readline().strip() == "ready"
    for n in range(1000):
        domain.cache.invalidate([f"{domain.cache.keys.namespace}:bench:{n}"])
        time.sleep(0.001)
    samples = sorted(json.loads(other.stdout.readline()))
    other.wait(30)
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    bench.fact(
        "invalidation propagation to another process",
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {samples[-1]:.2f} ms ({len(samples)} messages)",
        "p99 < 5 ms",
        p99 < 5,
    )


def main() -> int:
    started = time.monotonic()
    bench = Bench()
    with (
        PostgresServer() as postgres,
        RedisServer() as redis_server,
        tempfile.TemporaryDirectory() as folder,
    ):
        sqlite_url = f"sqlite:///{folder}/bench.db"
        postgres_url = postgres.create_database("bench")
        for url in (sqlite_url, postgres_url):
            with sd.Domain(url) as setup:
                setup.migrate()
        with sd.Domain(sqlite_url) as memory_domain:
            account = seed(memory_domain, 1000)
            hit_rows(bench, memory_domain)
            memory_rows(bench, memory_domain, 1000)
            miss_row(bench, memory_domain, "SQLite")
        with sd.Domain(postgres_url) as pg_memory:
            seed(pg_memory, 1000)
            miss_row(bench, pg_memory, "PostgreSQL")
        with sd.Domain(postgres_url, redis_server.url) as full:
            redis_hit_row(bench, full, redis_server.url)
            cold_miss_row(bench, full, redis_server.url)
            list_row(
                bench,
                full,
                full.accounts.get_by_number("5555-5555-5555") or account,
                redis_server.url,
            )
            long_list_row(bench, full, 3000)
            propagation_row(bench, full, postgres_url, redis_server.url)
        stampede_row(bench, postgres_url, redis_server.url)
        # (imported here: they import this module's helpers)
        from aio_rows import async_rows
        from http_rows import http_rows
        from telemetry_rows import telemetry_rows

        telemetry_rows(bench, sqlite_url)

        async_rows(bench, sqlite_url, postgres_url, redis_server.url)
        http_rows(bench, postgres_url, redis_server.url)
    import_rows(bench)
    report(bench, machine(), time.monotonic() - started)
    try:  # the plots of docs/benchmarks.md, from the results.json just written
        from plots import write_plots

        for path in write_plots(HERE / "results.json"):
            print(f"wrote {path}")
    except ImportError as error:
        print(f"No plots ({error}): matplotlib is not installed (nox -s bench installs it).")
    return 0 if all(row["met"] is not False for row in bench.rows) else 1


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()}"
    )


def table(bench: Bench) -> str:
    """The rows as a markdown table (``report``'s, and ``peers.py``'s)."""
    lines = [
        "| figure | ours (min / median / max) | baseline | baseline (min / median / max) "
        "| ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in bench.rows:
        met = {True: "yes", False: "**NO**", None: "-"}[row["met"]]
        if "value" in row:
            lines.append(f"| {row['figure']} | {row['value']} | | | | {row['target']} | {met} |")
        else:
            lines.append(
                f"| {row['figure']} | {fmt(row['ours_ns'])} | {row['baseline']} | "
                f"{fmt(row['baseline_ns'])} | {row['ratio']}x ({row['note'] or 'ours / baseline'}) "
                f"| {row['target']} | {met} |"
            )
    return "\n".join(lines)


def report(bench: Bench, machine: str, seconds: float, write: bool = True) -> None:
    text = table(bench) + f"\nMachine: {machine}. Run time {seconds:.0f} s."
    print(text)
    if not write:
        return
    (HERE / "results.md").write_text(text + "\n")
    (HERE / "results.json").write_text(
        json.dumps({"machine": machine, "seconds": seconds, "rows": bench.rows}, indent=2)
    )


if __name__ == "__main__":
    sys.exit(main())
