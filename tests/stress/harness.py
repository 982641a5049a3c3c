"""Stress harness: N worker processes read (through the cached account utilities) and write
(through brokers) shared entities, with a checker for stale reads.

Every write records the version it committed and the moment ``apply()`` returned (its
invalidation published and acknowledged); every read records the version it saw and the
moment it started. The checker flags any read that started after a write of the same entity
returned and still saw an older version. Times are CLOCK_MONOTONIC, shared by all processes.

    python -m tests.stress.harness --seconds 300 --workers 8 --redis-restarts 3

starts its own PostgreSQL and Redis on loopback (or uses --database-url / --redis-url),
kills and restarts Redis during the run, and prints the figures.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import random
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


@dataclass
class Report:
    operations: int = 0
    reads: int = 0
    writes: int = 0
    stale_reads: int = 0
    errors: int = 0
    redis_restarts: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        latency = ", ".join(f"{k} {v:.2f} ms" for k, v in self.latency_ms.items()) or "none"
        return [
            f"operations: {self.operations}",
            f"reads: {self.reads}",
            f"writes: {self.writes}",
            f"stale reads: {self.stale_reads}",
            f"errors: {self.errors}",
            f"redis restarts: {self.redis_restarts}",
            f"invalidation propagation latency: {latency}",
        ]


def _options() -> Any:
    from smarter_domain.cache import RedisOptions

    return RedisOptions(socket_timeout=0.2, connect_timeout=0.2, retry_after=0.2, lock_timeout=2)


def setup(database_url: str, workers: int) -> None:
    """The shared entities: one tenant account, its staff admin, users for every worker."""
    import smarter_domain as sd

    with sd.Domain(database_url) as domain:
        domain.migrate()
        admin = domain.bootstrap()
        manifest = {
            "apiVersion": "smarter.sh/v1",
            "kind": "Account",
            "metadata": {"name": ACCOUNT_NAME, "accountNumber": "7777-7777-7777"},
        }
        domain.apply(manifest, actor=admin)
        for worker in range(workers):
            for n in range(USERS_PER_WORKER):
                domain.apply(_user_manifest(f"w{worker}u{n}", "first"), actor=admin)


def _user_manifest(username: str, first_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "User",
        "metadata": {"name": username, "username": username},
        "spec": {"accountNumber": "7777-7777-7777", "config": {"firstName": first_name}},
    }


def worker_main(
    index: int, database_url: str, redis_url: str, seconds: float, output: str, seed: int
) -> None:
    import smarter_domain as sd

    rng = random.Random(seed + index)
    reads: list[tuple[float, str, int, int]] = []
    writes: list[tuple[float, str, int, int]] = []
    errors: list[str] = []
    with sd.Domain(database_url, redis_url, redis_options=_options()) as domain:
        utils = domain.utils
        admin = domain.bootstrap()
        account = domain.accounts.get_by_number("7777-7777-7777")
        assert account is not None
        members = domain.users.inner.list_for_account(account.id)
        mine = [u for u in members if u.username.startswith(f"w{index}u")]
        others = [u for u in members if u.username.startswith("w")]
        deadline = time.monotonic() + seconds

        def saw(kind: str, started: float, entity: Any) -> None:
            reads.append((started, kind, entity.id, entity.version))

        while time.monotonic() < deadline:
            started = time.monotonic()
            choice = rng.random()
            target = rng.choice(others)
            try:
                if choice < 0.12 and mine:
                    user = rng.choice(mine)
                    updated = domain.apply(
                        _user_manifest(user.username, f"v{rng.randrange(10**9)}"), actor=admin
                    )
                    writes.append((time.monotonic(), "User", updated.id, updated.version))
                elif choice < 0.14 and index == 0:
                    manifest = {
                        "apiVersion": "smarter.sh/v1",
                        "kind": "Account",
                        "metadata": {"name": ACCOUNT_NAME, "accountNumber": "7777-7777-7777"},
                        "spec": {"config": {"city": f"c{rng.randrange(10**9)}"}},
                    }
                    updated = domain.apply(manifest, actor=admin)
                    writes.append((time.monotonic(), "Account", updated.id, updated.version))
                elif choice < 0.35:
                    saw("User", started, utils.get_cached_user_for_username(target.username))
                elif choice < 0.50:
                    found = utils.get_cached_user_for_user_id(target.id)
                    assert found is not None
                    saw("User", started, found)
                elif choice < 0.65:
                    for user in utils.get_users_for_account(account):
                        saw("User", started, user)
                elif choice < 0.80:
                    for profile in utils.get_user_profiles_for_account(account) or []:
                        saw("User", started, profile.user)
                        saw("Account", started, profile.account)
                elif choice < 0.90:
                    found_account = utils.get_cached_account_for_user(target)
                    assert found_account is not None
                    saw("Account", started, found_account)
                else:
                    profile = domain.profiles.get_for(target.id, account.id)
                    for owner in utils.valid_resource_owners_for_user(profile):
                        saw("User", started, owner.user)
            except Exception:
                errors.append(traceback.format_exc(limit=5))
        listener = domain.cache.listener
        latencies = list(listener.latencies_ms) if listener is not None else []
    Path(output).write_text(
        json.dumps({"reads": reads, "writes": writes, "errors": errors, "latencies": latencies})
    )


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
        report.examples.extend(result["errors"][:2])
        for started, kind, entity_id, version in result["reads"]:
            times, highest = histories.get((kind, entity_id), ([], []))
            returned_before = bisect.bisect_left(times, started)
            required = highest[returned_before - 1] if returned_before else 0
            if version < required:
                report.stale_reads += 1
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


def run(
    database_url: str,
    redis_server: Any,
    *,
    seconds: float = 20,
    workers: int = 4,
    redis_restarts: int = 0,
    seed: int = 1,
    disrupt: Callable[[], None] | None = None,
) -> Report:
    """``redis_restarts`` times, evenly spread: kill Redis and start it again, or, with
    ``disrupt``, call that instead (a cluster's slot moves)."""
    setup(database_url, workers)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="smarter-stress-") as folder:
        outputs = [str(Path(folder) / f"worker{i}.json") for i in range(workers)]
        processes = [
            context.Process(
                target=worker_main,
                args=(i, database_url, redis_server.url, seconds, outputs[i], seed),
            )
            for i in range(workers)
        ]
        for process in processes:
            process.start()
        restarts = 0
        start = time.monotonic()
        for n in range(redis_restarts):
            time.sleep(
                max(0.0, start + seconds * (n + 1) / (redis_restarts + 1) - time.monotonic())
            )
            if disrupt is not None:
                disrupt()
            else:
                redis_server.kill()
                time.sleep(0.5)
                redis_server.start()
            restarts += 1
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
    report = check(results)
    report.redis_restarts = restarts
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--redis-restarts", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from smarter_domain.testing import PostgresServer, RedisServer

    with PostgresServer() as postgres, RedisServer() as redis_server:
        url = postgres.create_database("stress")
        report = run(
            url,
            redis_server,
            seconds=args.seconds,
            workers=args.workers,
            redis_restarts=args.redis_restarts,
            seed=args.seed,
        )
    print(f"stress run: {args.workers} workers, {args.seconds:.0f} s")
    for line in report.lines():
        print(f"  {line}")
    for example in report.examples[:10]:
        print(example, file=sys.stderr)
    return 0 if report.stale_reads == 0 and report.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
