"""What OpenTelemetry costs (``smarter_domain.telemetry``): the memory-tier hit with a domain
instrumented against one that is not (its path is untouched: target 5%), and a miss that reads
the database (a lookup span and a load span), both with the SDK's tracer and an in-memory
exporter, in alternating batches of the same run."""

from __future__ import annotations

from typing import Any

from run import Bench, paired

import smarter_domain as sd


def telemetry_rows(bench: Bench, sqlite_url: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from smarter_domain.telemetry import instrument

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with sd.Domain(sqlite_url) as plain, sd.Domain(sqlite_url) as traced:
        instrument(traced, tracer_provider=tracer_provider, meter_provider=meter_provider)
        user = plain.users.get_by_username("member7")
        assert user is not None and traced.users.get(user.id) == user

        def hit(domain: Any) -> Any:
            return lambda: domain.users.get(user.id)

        ours, base, ratio = paired(hit(traced), hit(plain), 50_000)
        bench.ratio(
            "memory-tier hit, telemetry on",
            ours,
            base,
            "the same hit, telemetry off",
            "<= 1.05x",
            ratio <= 1.05,
            ratio,
        )

        def forget(domain: Any) -> Any:
            return lambda: domain.cache.clear_memory()

        def missed() -> Any:
            forget(traced)()
            spans.clear()
            return traced.users.get(user.id)

        def missed_plain() -> Any:
            forget(plain)()
            return plain.users.get(user.id)

        ours, base, ratio = paired(missed, missed_plain, 300)
        bench.ratio(
            "  a miss read from the database (SQLite), telemetry on: a lookup and a load span",
            ours,
            base,
            "the same miss, telemetry off",
            "report",
            None,
            ratio,
        )
    tracer_provider.shutdown()
    meter_provider.shutdown()
