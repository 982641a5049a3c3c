"""Stress harness: N worker processes read (through the cached account utilities) and write
(through brokers) shared entities, with a checker for stale reads.

Every write records the version it committed and the moment ``apply()`` returned (its
invalidation published and acknowledged); every read records the version it saw and the
moment it started. The checker flags any read that started after a write of the same entity
returned and still saw an older version. Times are CLOCK_MONOTONIC, shared by all processes.

    python -m tests.stress.harness --seconds 300 --workers 8 --redis-restarts 3
    python -m tests.stress.harness --seconds 180 --workers 4 --fault redis-pause --faults 6
    python -m tests.stress.harness --seconds 180 --workers 4 --fault all

starts its own PostgreSQL and Redis on loopback, injects the fault (``FAULTS``) evenly
spread over the run, and prints the figures: operations, stale reads and the age of the
oldest stale value, errors surfaced to callers, and writes refused (``CacheUnavailable``:
with strict consistency a write that cannot reach Redis before its commit is refused, which is
not an error of the library but the trade it makes), and how long after the last fault
writes were still refused. ``--fault all`` runs every fault in turn and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USERS_PER_WORKER = 3
ACCOUNT_NAME = "stress"
ACCOUNT_NUMBER = "7777-7777-7777"
FAULTS = (
    "redis-restart",  # kill -9, then start it again, empty
    "redis-pause",  # SIGSTOP for 1-3 s, then SIGCONT (a long fork, a VM stall)
    "redis-pause-long",  # SIGSTOP for 6-8 s
    "peer-freeze",  # SIGSTOP a worker process for 1-3 s (a GC pause, a busy host)
    "writer-kill",  # a writer that kill -9s itself at random points of its writes, respawned
    "postgres-restart",  # a fast restart (clients disconnected)
    "postgres-kill",  # kill -9 of the postmaster and its backends, on a durable server
    "cluster-failover",  # kill -9 a Redis Cluster master: its replica takes over, it rejoins
)
KILL_CHANCE = 0.25
"""writer-kill: the share of the kamikaze writer's writes it dies in (half of them right after
the commit, before the invalidation; half after preparing, before the commit)."""


@dataclass
class Report:
    operations: int = 0
    async_operations: int = 0
    """Of ``operations``, those of the workers on the async front door (``AsyncDomain``)."""
    reads: int = 0
    writes: int = 0
    stale_reads: int = 0
    oldest_stale_ms: float = 0.0
    errors: int = 0
    refused_writes: int = 0
    database_errors: int = 0
    redis_restarts: int = 0
    fault: str = "none"
    faults: int = 0
    recovery_ms: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        latency = ", ".join(f"{k} {v:.2f} ms" for k, v in self.latency_ms.items()) or "none"
        return [
            f"operations: {self.operations} ({self.async_operations} through AsyncDomain)",
            f"reads: {self.reads}",
            f"writes: {self.writes}",
            f"stale reads: {self.stale_reads} (oldest stale value: {self.oldest_stale_ms:.1f} ms)",
            f"errors: {self.errors}",
            f"writes refused: {self.refused_writes}",
            f"calls failed with DatabaseError (database down): {self.database_errors}",
            f"faults: {self.faults} x {self.fault}",
            f"redis restarts: {self.redis_restarts}",
            f"writes refused up to {self.recovery_ms:.0f} ms after the last fault ended",
            f"invalidation propagation latency: {latency}",
        ]


CONSISTENCY = os.environ.get("SMARTER_STRESS_CONSISTENCY", "strict")
"""The workers' ``Domain(consistency=...)`` (``--consistency``; inherited by spawned workers)."""


def _domain(database_url: str, redis_url: str, asynchronous: bool = False) -> Any:
    """A worker's domain: a ``Domain``, or (``asynchronous``) an ``AsyncDomain``."""
    import smarter_domain as sd
    from smarter_domain.cache import RedisOptions

    options = RedisOptions(socket_timeout=0.2, connect_timeout=0.2, retry_after=0.2, lock_timeout=2)
    kind = sd.AsyncDomain if asynchronous else sd.Domain
    return kind(database_url, redis_url, redis_options=options, consistency=CONSISTENCY)


def setup(database_url: str, workers: int) -> None:
    """Migrate, then the shared entities (``populate``)."""
    import smarter_domain as sd

    with sd.Domain(database_url) as domain:
        domain.migrate()
        populate(domain, workers)


def populate(domain: Any, workers: int) -> Any:
    """The shared entities: the platform account and admin (returned), one tenant account,
    ``USERS_PER_WORKER`` users for every worker."""
    admin = domain.bootstrap()
    manifest = {
        "apiVersion": "smarter.sh/v1",
        "kind": "Account",
        "metadata": {"name": ACCOUNT_NAME, "accountNumber": ACCOUNT_NUMBER},
    }
    domain.apply(manifest, actor=admin)
    for worker in range(workers):
        for n in range(USERS_PER_WORKER):
            domain.apply(_user_manifest(f"w{worker}u{n}", "first"), actor=admin)
    return admin


def _user_manifest(username: str, first_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "User",
        "metadata": {"name": username, "username": username},
        "spec": {"accountNumber": ACCOUNT_NUMBER, "config": {"firstName": first_name}},
    }


def worker_main(
    index: int,
    database_url: str,
    redis_url: str,
    seconds: float,
    output: str,
    seed: int,
    asynchronous: bool = False,
) -> None:
    """One worker process: the sync front door, or (``asynchronous``) the async one, on an
    event loop (both doors share the cache: keys, records, channel, listener protocol)."""

    async def on_a_loop() -> dict[str, Any]:
        async with _domain(database_url, redis_url, asynchronous=True) as adomain:
            found = await work_on(adomain, index, time.monotonic() + seconds, seed)
            found["latencies"] = _latencies(adomain)
            return found

    if asynchronous:
        result = asyncio.run(on_a_loop())
    else:
        with _domain(database_url, redis_url) as domain:
            result = work(domain, index, time.monotonic() + seconds, seed)
            result["latencies"] = _latencies(domain)
    result["asynchronous"] = asynchronous
    Path(output).write_text(json.dumps(result))


def _latencies(domain: Any) -> list[float]:
    listener = domain.cache.listener
    return list(listener.latencies_ms) if listener is not None else []


class _Now:
    """A sync domain (or one of its parts) with the async door's call forms: each method's
    result comes back awaitable, so one ``work_on`` drives both doors."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name in ("utils", "users", "accounts", "profiles"):
            return _Now(value)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return _ready(value(*args, **kwargs))

        return call


async def _ready(value: Any) -> Any:
    return value


def work(domain: Any, index: int, until: float, seed: int) -> dict[str, Any]:
    """``work_on`` a sync ``Domain`` (its own, in a worker process; a shared one, in the
    threads test: each thread runs its own loop)."""
    result: dict[str, Any] = asyncio.run(work_on(_Now(domain), index, until, seed))
    return result


async def work_on(domain: Any, index: int, until: float, seed: int) -> dict[str, Any]:
    """One worker's share of the load on ``domain`` (an ``AsyncDomain``, or a sync domain
    seen through ``_Now``) until ``until``: writes through brokers to the worker's own
    users (and, for worker 0, the account), reads of every shared user and the account
    through the cached utilities, lists and profiles. What it read and wrote, when, for
    ``check``; writes refused (strict consistency) and calls that met a database that was
    down, apart from the errors."""
    import smarter_domain as sd

    rng = random.Random(seed + index)
    reads: list[tuple[float, str, int, int]] = []
    writes: list[tuple[float, str, int, int]] = []
    refused: list[float] = []
    database_down: list[float] = []
    errors: list[str] = []
    utils = domain.utils
    admin = await domain.bootstrap()
    account = await domain.accounts.get_by_number(ACCOUNT_NUMBER)
    assert account is not None
    members = await domain.users.list_for_account(account.id)
    mine = [u for u in members if u.username.startswith(f"w{index}u")]
    others = [u for u in members if u.username.startswith("w")]

    def saw(kind: str, started: float, entity: Any) -> None:
        reads.append((started, kind, entity.id, entity.version))

    while time.monotonic() < until:
        started = time.monotonic()
        choice = rng.random()
        target = rng.choice(others)
        try:
            if choice < 0.12 and mine:
                user = rng.choice(mine)
                updated = await domain.apply(
                    _user_manifest(user.username, f"v{rng.randrange(10**9)}"), actor=admin
                )
                writes.append((time.monotonic(), "User", updated.id, updated.version))
            elif choice < 0.14 and index == 0:
                manifest = {
                    "apiVersion": "smarter.sh/v1",
                    "kind": "Account",
                    "metadata": {"name": ACCOUNT_NAME, "accountNumber": ACCOUNT_NUMBER},
                    "spec": {"config": {"city": f"c{rng.randrange(10**9)}"}},
                }
                updated = await domain.apply(manifest, actor=admin)
                writes.append((time.monotonic(), "Account", updated.id, updated.version))
            elif choice < 0.35:
                saw("User", started, await utils.get_cached_user_for_username(target.username))
            elif choice < 0.50:
                found = await utils.get_cached_user_for_user_id(target.id)
                assert found is not None
                saw("User", started, found)
            elif choice < 0.65:
                for user in await utils.get_users_for_account(account):
                    saw("User", started, user)
            elif choice < 0.80:
                for profile in await utils.get_user_profiles_for_account(account) or []:
                    saw("User", started, profile.user)
                    saw("Account", started, profile.account)
            elif choice < 0.90:
                found_account = await utils.get_cached_account_for_user(target)
                assert found_account is not None
                saw("Account", started, found_account)
            else:
                profile = await domain.profiles.get_for(target.id, account.id)
                for owner in await utils.valid_resource_owners_for_user(profile):
                    saw("User", started, owner.user)
        except sd.CacheUnavailable:
            refused.append(time.monotonic())  # strict consistency: the write was refused
        except sd.DatabaseError:
            database_down.append(time.monotonic())  # typed: the database is restarting
        except Exception:
            errors.append(traceback.format_exc(limit=5))
    return {
        "reads": reads,
        "writes": writes,
        "refused": refused,
        "database_down": database_down,
        "errors": errors,
        "latencies": [],
    }


def kamikaze_main(
    index: int, database_url: str, redis_url: str, until: float, journal: str, seed: int
) -> None:
    """writer-kill: writes its own users until ``until`` (CLOCK_MONOTONIC), and kill -9s
    itself in some writes: right after the commit (before the invalidation) or right after
    preparing the cache (before the commit). Every write it committed, returned or not, is in
    the journal (appended and fsynced before it dies), so the checker knows the versions."""
    import smarter_domain as sd

    rng = random.Random(seed + index + int(time.time() * 1000))
    with (
        open(journal, "a") as out,
        _domain(database_url, redis_url) as domain,
    ):
        admin = domain.bootstrap()
        mine = [u for u in domain.users.inner.list_all() if u.username.startswith(f"w{index}u")]

        def record(entries: list[Any]) -> None:
            out.write(json.dumps(entries) + "\n")
            out.flush()
            os.fsync(out.fileno())

        prepare = domain._prepare_cache

        def prepare_and_maybe_die(changes: Any) -> Any:
            finish = prepare(changes)
            dice = rng.random()
            if dice < KILL_CHANCE / 2:
                os.kill(os.getpid(), signal.SIGKILL)  # prepared, not committed
            if dice < KILL_CHANCE:

                def die_after_commit() -> None:
                    committed = [
                        (time.monotonic(), type(c.after).__name__, c.after.id, c.after.version)
                        for c in changes
                        if c.after is not None and type(c.after).__name__ in ("User", "Account")
                    ]
                    record(committed)
                    os.kill(os.getpid(), signal.SIGKILL)

                return die_after_commit
            return finish

        domain._prepare_cache = prepare_and_maybe_die  # type: ignore[method-assign]
        while time.monotonic() < until:
            user = rng.choice(mine)
            try:
                updated = domain.apply(
                    _user_manifest(user.username, f"k{rng.randrange(10**9)}"), actor=admin
                )
            except (sd.CacheUnavailable, sd.DatabaseError):
                continue
            record([(time.monotonic(), "User", updated.id, updated.version)])
            time.sleep(0.01)


def check(results: list[dict[str, Any]]) -> Report:
    report = Report()
    writes: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for result in results:
        for done, kind, entity_id, version in result["writes"]:
            writes.setdefault((kind, entity_id), []).append((done, version))
    # Per entity: the times writes returned, and the highest version returned by then.
    histories: dict[tuple[str, int], tuple[list[float], list[int]]] = {}
    for entity, history in writes.items():
        history.sort()
        times, highest, top = [], [], 0
        for done, version in history:
            top = max(top, version)
            times.append(done)
            highest.append(top)
        histories[entity] = (times, highest)
    for result in results:
        report.reads += len(result["reads"])
        report.writes += len(result["writes"])
        report.errors += len(result["errors"])
        report.refused_writes += len(result.get("refused", []))
        report.database_errors += len(result.get("database_down", []))
        report.examples.extend(result["errors"][:2])
        if result.get("asynchronous"):
            report.async_operations += len(result["reads"]) + len(result["writes"])
        for started, kind, entity_id, version in result["reads"]:
            times, highest = histories.get((kind, entity_id), ([], []))
            returned_before = bisect.bisect_left(times, started)
            required = highest[returned_before - 1] if returned_before else 0
            if version < required:
                report.stale_reads += 1
                # How old the value was: since the first write that made it stale returned.
                first = bisect.bisect_right(highest, version, 0, returned_before)
                report.oldest_stale_ms = max(
                    report.oldest_stale_ms, (started - times[first]) * 1000
                )
                if len(report.examples) < 10:
                    report.examples.append(
                        f"stale {kind} {entity_id}: saw v{version}, v{required} was committed"
                    )
    report.operations = report.reads + report.writes
    samples = sorted(x for result in results for x in result["latencies"])
    if samples:
        report.latency_ms = {
            "p50": statistics.median(samples),
            "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "max": samples[-1],
        }
    return report


def _journal(path: Path) -> list[tuple[float, str, int, int]]:
    """The kamikaze writer's journal (a line may be cut short by its death)."""
    entries: list[tuple[float, str, int, int]] = []
    if path.exists():
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entries.extend(tuple(entry) for entry in json.loads(line))
    return entries


class _Faults:
    """Injects ``fault`` into the running system; ``ended`` is when the last one ended."""

    def __init__(
        self, fault: str, redis_server: Any, rng: random.Random, postgres: Any = None
    ) -> None:
        self.fault = fault
        self.redis = redis_server
        self.postgres = postgres
        self.rng = rng
        self.ended = 0.0
        self.redis_restarts = 0

    def inject(self, processes: list[Any], disrupt: Callable[[], None] | None) -> None:
        if disrupt is not None:
            disrupt()
        elif self.fault == "redis-restart":
            self.redis.kill()
            time.sleep(0.5)
            self.redis.start()
            self.redis_restarts += 1
        elif self.fault in ("redis-pause", "redis-pause-long"):
            low, high = (1.0, 3.0) if self.fault == "redis-pause" else (6.0, 8.0)
            self.redis.pause()
            time.sleep(self.rng.uniform(low, high))
            self.redis.resume()
        elif self.fault == "postgres-restart":
            self.postgres.restart()
        elif self.fault == "postgres-kill":
            self.postgres.crash()
        elif self.fault == "cluster-failover":
            self.redis.fail_over(self.rng.choice(self.redis.masters()))
        elif self.fault == "peer-freeze":
            peer = self.rng.choice([p for p in processes if p.is_alive()])
            os.kill(peer.pid, signal.SIGSTOP)
            time.sleep(self.rng.uniform(1.0, 3.0))
            os.kill(peer.pid, signal.SIGCONT)
        self.ended = time.monotonic()


def run(
    database_url: str,
    redis_server: Any,
    *,
    seconds: float = 20,
    workers: int = 4,
    redis_restarts: int = 0,
    seed: int = 1,
    disrupt: Callable[[], None] | None = None,
    fault: str = "redis-restart",
    faults: int | None = None,
    postgres: Any = None,
    async_workers: int = 0,
) -> Report:
    """``faults`` (default ``redis_restarts``) times, evenly spread, inject ``fault`` (or,
    with ``disrupt``, call that instead: a cluster's slot moves). ``writer-kill`` runs a
    kamikaze writer for the whole run instead, respawned each time it dies. The last
    ``async_workers`` workers use the async front door (``AsyncDomain``), the others the
    sync one."""
    count = redis_restarts if faults is None else faults
    kamikaze = fault == "writer-kill"
    setup(database_url, workers + (1 if kamikaze else 0))
    context = multiprocessing.get_context("spawn")
    injector = _Faults(fault, redis_server, random.Random(seed), postgres)
    with tempfile.TemporaryDirectory(prefix="smarter-stress-") as folder:
        outputs = [str(Path(folder) / f"worker{i}.json") for i in range(workers)]
        journal = Path(folder) / "kamikaze.jsonl"
        processes = [
            context.Process(
                target=worker_main,
                args=(i, database_url, redis_server.url, seconds, outputs[i], seed),
                kwargs={"asynchronous": i >= workers - async_workers},
            )
            for i in range(workers)
        ]
        for process in processes:
            process.start()
        start = time.monotonic()
        deaths = 0
        if kamikaze:
            until = start + seconds
            while time.monotonic() < until:
                writer = context.Process(
                    target=kamikaze_main,
                    args=(workers, database_url, redis_server.url, until, str(journal), seed),
                )
                writer.start()
                writer.join(seconds + 60)
                deaths += writer.exitcode == -signal.SIGKILL
        for n in range(count if not kamikaze else 0):
            time.sleep(max(0.0, start + seconds * (n + 1) / (count + 1) - time.monotonic()))
            injector.inject(processes, disrupt)
        for process in processes:
            process.join(seconds + 120)
        results = []
        for i, process in enumerate(processes):
            if process.exitcode != 0 or not Path(outputs[i]).exists():
                results.append(
                    {
                        "reads": [],
                        "writes": [],
                        "latencies": [],
                        "errors": [f"worker {i} exited with {process.exitcode}"],
                    }
                )
            else:
                results.append(json.loads(Path(outputs[i]).read_text()))
        if kamikaze:
            results.append(
                {"reads": [], "writes": _journal(journal), "errors": [], "latencies": []}
            )
    report = check(results)
    report.redis_restarts = injector.redis_restarts
    report.fault = fault
    report.faults = deaths if kamikaze else count
    if injector.ended:
        last_refusal = max(
            (t for r in results for t in (*r.get("refused", []), *r.get("database_down", []))),
            default=0.0,
        )
        report.recovery_ms = max(0.0, (last_refusal - injector.ended) * 1000)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--redis-restarts", type=int, default=0)
    parser.add_argument("--fault", choices=[*FAULTS, "all"], default="redis-restart")
    parser.add_argument("--faults", type=int, default=None, help="how many (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--consistency", choices=["strict", "available"], default="strict")
    parser.add_argument(
        "--async-workers", type=int, default=0, help="how many workers use AsyncDomain"
    )
    args = parser.parse_args(argv)
    os.environ["SMARTER_STRESS_CONSISTENCY"] = args.consistency  # for the spawned workers

    from smarter_domain.testing import PostgresServer, RedisClusterServers, RedisServer

    chosen = list(FAULTS) if args.fault == "all" else [args.fault]
    count = args.faults if args.faults is not None else (args.redis_restarts or 3)
    if args.fault == "redis-restart" and args.faults is None:
        count = args.redis_restarts
    reports = []
    for fault in chosen:
        durable = fault == "postgres-kill"  # a crash of a non-durable server loses commits
        redis: Any = (
            RedisClusterServers(replicas=1) if fault == "cluster-failover" else RedisServer()
        )
        with PostgresServer(durable=durable) as postgres, redis as redis_server:
            url = postgres.create_database("stress")
            report = run(
                url,
                redis_server,
                seconds=args.seconds,
                workers=args.workers,
                seed=args.seed,
                fault=fault,
                faults=count,
                postgres=postgres,
                async_workers=args.async_workers,
            )
        postgres.close()
        redis.close()
        reports.append(report)
        print(
            f"stress run: {args.workers} workers ({args.async_workers} async), "
            f"{args.seconds:.0f} s, fault {fault}, consistency {args.consistency}"
        )
        for line in report.lines():
            print(f"  {line}")
        for example in report.examples[:10]:
            print(example, file=sys.stderr)
    if len(reports) > 1:
        print()
        print(
            "| fault | operations | stale reads | oldest stale | errors | writes refused "
            "| database down | refused until (after the fault) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in reports:
            print(
                f"| {r.fault} x{r.faults} | {r.operations} ({r.async_operations} async) | "
                f"{r.stale_reads} | "
                f"{r.oldest_stale_ms:.0f} ms | {r.errors} | {r.refused_writes} | "
                f"{r.database_errors} | {r.recovery_ms:.0f} ms |"
            )
    return 0 if all(r.stale_reads == 0 and r.errors == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
