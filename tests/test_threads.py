"""One Domain shared by many threads (docs/threads-and-processes.md): mixed reads and writes of
shared entities for a few seconds, checked for stale reads by the stress harness's checker (a
read that started after a write of the same entity returned, and saw an older version, is
stale). On SQLite with the memory tier only, and on PostgreSQL with Redis; then two Domains in
one process (as two processes would be), each shared by threads, on Redis."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from smarter_domain import Domain

from .conftest import FAST_FAIL
from .stress.harness import Report, check, populate, work

THREADS = 8
SECONDS = 3.0


def run_threads(domains: list[Domain], seconds: float = SECONDS) -> list[dict[str, Any]]:
    """``THREADS`` threads, dealt round-robin over ``domains``, until ``seconds`` from now;
    each thread's results (a thread that died reports it as an error)."""
    until = time.monotonic() + seconds
    results: list[dict[str, Any]] = [
        {"reads": [], "writes": [], "errors": ["did not finish"], "latencies": []}
    ] * THREADS

    def run(index: int) -> None:
        try:
            results[index] = work(domains[index % len(domains)], index, until, seed=7)
        except Exception:
            results[index] = {
                "reads": [],
                "writes": [],
                "errors": [traceback.format_exc()],
                "latencies": [],
            }

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return results


def coherent(results: list[dict[str, Any]]) -> Report:
    """The checker's report of ``results``, asserted clean: no error, no refusal (every
    server is up), no stale read, and enough of both kinds of operation to mean it."""
    report = check(results)
    print("\n".join(report.lines()))
    assert report.errors == 0, report.examples
    assert report.refused_writes == 0 and report.database_errors == 0  # all servers are up
    assert report.stale_reads == 0, report.examples
    assert report.writes > 20
    assert report.reads > 500
    return report


@pytest.fixture
def second(smarter_database_url: str, smarter_redis_url: str) -> Iterator[Domain]:
    """Another Domain in this process on the same database and Redis: to the cache, another
    process (its own memory tier, listener and origin)."""
    with Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL) as domain:
        yield domain


@pytest.mark.timeout(120)
def test_one_domain_shared_by_threads_serves_no_stale_read(domain: Domain) -> None:
    populate(domain, THREADS)
    domain.cache.stats.reset()
    report = coherent(run_threads([domain]))
    stats = domain.cache.stats.snapshot()
    assert stats["memory_hits"] > report.reads // 10  # the memory tier did serve them


@pytest.mark.timeout(120)
def test_two_domains_in_one_process_shared_by_threads_serve_no_stale_read(
    redis_domain: Domain, second: Domain
) -> None:
    populate(redis_domain, THREADS)
    coherent(run_threads([redis_domain, second]))
    for each in (redis_domain, second):
        stats = each.cache.stats.snapshot()
        assert stats["memory_hits"] > 0
        assert stats["ack_timeouts"] == 0
