"""OpenTelemetry, with the SDK's in-memory exporters: the spans of lookups (the tier that
answered), loads, invalidations and broker writes, and the metrics read from the cache's own
counters; nothing is imported or changed before ``instrument`` is called."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import smarter_domain as sd
from smarter_domain import Domain
from smarter_domain.telemetry import KEY_KIND, TIER, instrument

from .aio_helpers import FAST_FAIL, on_a_loop

pytestmark = pytest.mark.smarter_backends("sqlite")


class Exported:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str) -> list[Any]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = list(metric.data.data_points)
        return found


@pytest.fixture
def exported() -> Iterator[Exported]:
    found = Exported()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


def test_spans_and_metrics_of_a_domain_with_redis(
    smarter_database_url: str, smarter_redis_url: str, exported: Exported
) -> None:
    with Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL) as domain:
        admin = domain.bootstrap()
        telemetry = instrument(
            domain,
            tracer_provider=exported.tracer_provider,
            meter_provider=exported.meter_provider,
        )
        domain.cache.clear_memory()
        domain.cache.invalidate([domain.cache.keys.user(admin.user.id)])
        exported.spans.clear()
        assert domain.users.get(admin.user.id) == admin.user  # the database answers
        domain.cache.clear_memory()
        assert domain.users.get(admin.user.id) == admin.user  # Redis answers
        assert domain.users.get(admin.user.id) == admin.user  # memory: no span
        lookups = exported.finished("smarter_domain.cache.lookup")
        assert [s.attributes[TIER] for s in lookups] == ["database", "redis"]
        assert {s.attributes[KEY_KIND] for s in lookups} == {"user"}
        [load] = exported.finished("smarter_domain.cache.load")
        assert load.parent is not None and load.parent.span_id == lookups[0].context.span_id
        domain.users.list_for_account(admin.account.id)
        assert exported.finished("smarter_domain.cache.lookup_many")
        # A broker's write: its span, and the invalidation's phases under it.
        exported.spans.clear()
        manifest = {
            "apiVersion": "smarter.sh/v1",
            "kind": "User",
            "metadata": {"name": "zq-secret-name"},
        }
        domain.apply(manifest, actor=admin)
        [apply] = exported.finished("smarter_domain.broker.apply")
        assert apply.attributes["smarter_domain.kind"] == "User"
        for phase in ("prepare", "release"):
            [span] = exported.finished(f"smarter_domain.cache.{phase}")
            assert span.parent is not None and span.parent.span_id == apply.context.span_id
            assert span.attributes["smarter_domain.cache.keys"] >= 1
            assert "zq-secret" not in str(dict(span.attributes))  # kinds, not the username
        # Another process's write reaches the listener: the propagation histogram.
        other = Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL)
        try:
            other.users.update(admin.user.id, email="x@example.com")
        finally:
            other.close()
        time.sleep(0.2)
        domain.users.get_by_username("admin")  # (in the memory tier again)
        metrics = exported.metrics()
        lookups_by = {
            (p.attributes[TIER], p.attributes["smarter_domain.cache.result"]): p.value
            for p in metrics["smarter_domain.cache.lookups"]
        }
        stats = domain.cache.stats.snapshot()
        assert lookups_by[("memory", "hit")] == stats["memory_hits"] >= 1
        assert lookups_by[("redis", "hit")] == stats["redis_hits"] >= 1
        assert metrics["smarter_domain.cache.loads"][0].value == stats["loads"]
        assert metrics["smarter_domain.cache.memory.entries"][0].value >= 1
        assert metrics["smarter_domain.cache.listener.subscribed"][0].value == 1
        assert metrics["smarter_domain.cache.breaker.open"][0].value == 0
        [propagation] = metrics["smarter_domain.cache.invalidation.propagation"]
        assert propagation.count >= 1
        telemetry.close()
        exported.spans.clear()
        domain.cache.clear_memory()
        domain.users.get(admin.user.id)
        assert exported.spans.get_finished_spans() == ()
        assert "_get_or_load" not in vars(domain.cache)  # the instance is as it was


@on_a_loop
async def test_the_async_door_is_traced_too(
    smarter_database_url: str, smarter_redis_url: str, exported: Exported
) -> None:
    async with sd.AsyncDomain(smarter_database_url, smarter_redis_url) as adomain:
        admin = await adomain.bootstrap()
        instrument(adomain, tracer_provider=exported.tracer_provider)
        await adomain.users.get(admin.user.id)  # (in Redis now)
        adomain.cache.clear_memory()
        exported.spans.clear()
        assert await adomain.users.get(admin.user.id) == admin.user  # Redis, natively
        [lookup] = exported.finished("smarter_domain.cache.lookup")
        assert lookup.attributes[TIER] == "redis"


def test_nothing_is_imported_or_patched_without_instrument(tmp_path: Any) -> None:
    code = (
        "import sys, smarter_domain as sd\n"
        f"with sd.Domain('sqlite:///{tmp_path}/t.db') as d:\n"
        "    d.migrate(); d.bootstrap(); d.users.get_by_username('admin')\n"
        "    print(d.telemetry is None, '_get_or_load' in vars(d.cache))\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", "False", "False"]


def test_instrumented_twice_and_two_domains_on_one_meter(
    smarter_database_url: str, exported: Exported
) -> None:
    """The instruments are made once per meter (a second ``create_*`` of a name would drop
    its callbacks): instrumenting again, or a second domain, still reports, each domain with
    its own attributes."""
    with Domain(smarter_database_url) as first, Domain(smarter_database_url) as second:
        first.bootstrap()
        for domain in (first, first, second):  # the first one twice
            instrument(domain, meter_provider=exported.meter_provider)
        first.users.get_by_username("admin")
        second.users.get_by_username("admin")
        second.users.get_by_username("admin")
        points = exported.metrics()["smarter_domain.cache.loads"]
        by_domain = {p.attributes["smarter_domain.domain"]: p.value for p in points}
        assert len(by_domain) == 2 and all(v >= 1 for v in by_domain.values()), by_domain


def test_a_lookup_through_the_full_path_says_the_memory_tier_answered(
    smarter_database_url: str, smarter_redis_url: str, exported: Exported
) -> None:
    """``cache_results(timeout=...)`` looks up through the full path (its own expiration):
    its memory hits are spans whose tier is ``memory``, never ``redis``."""
    with Domain(smarter_database_url, smarter_redis_url, redis_options=FAST_FAIL) as domain:
        instrument(domain, tracer_provider=exported.tracer_provider)

        @sd.cache_results(timeout=60, domain=domain)
        def square(x: int) -> int:
            return x * x

        assert [square(3) for _ in range(3)] == [9, 9, 9]
        tiers = [s.attributes[TIER] for s in exported.finished("smarter_domain.cache.lookup")]
        assert tiers == ["database", "memory", "memory"]
        domain.cache.clear_memory()
        assert square(3) == 9
        tiers = [s.attributes[TIER] for s in exported.finished("smarter_domain.cache.lookup")]
        assert tiers[-1] == "redis"
