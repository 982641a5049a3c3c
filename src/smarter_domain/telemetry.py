"""OpenTelemetry for a domain (``pip install smarter-domain[otel]``): opt-in, per domain.

    from smarter_domain.telemetry import instrument
    telemetry = instrument(domain)        # a Domain or an AsyncDomain; the global providers,
                                          # or tracer_provider= / meter_provider=

Nothing here is imported, and nothing is paid, until ``instrument`` is called: the hit path
is untouched either way (a memory-tier hit makes no span; it is counted, like every lookup,
by metrics read from the cache's own counters when the metrics are collected).

Spans (attributes ``smarter_domain.cache.key_kind``: ``user``, ``username``, ``fn``...: never
the key's personal data):
- ``smarter_domain.cache.lookup``: a lookup the memory tier could not answer, with the tier
  that did (``smarter_domain.cache.tier``: ``memory``, ``redis`` or ``database``);
- ``smarter_domain.cache.lookup_many``: a multi-get (``smarter_domain.cache.keys``: how many);
- ``smarter_domain.cache.load``: the database read of a miss;
- ``smarter_domain.cache.invalidate``, ``.prepare``, ``.release``: a write's invalidation, in
  its phases (``smarter_domain.cache.keys``);
- ``smarter_domain.broker.apply`` / ``.delete`` (``smarter_domain.kind``: Account, User,
  UserProfile).

Metrics (meter ``smarter_domain``):
- ``smarter_domain.cache.lookups`` (counter, ``{lookup}``; ``smarter_domain.cache.tier`` and
  ``smarter_domain.cache.result``: ``hit`` or ``miss``), ``smarter_domain.cache.loads``,
  ``smarter_domain.cache.invalidations``, ``smarter_domain.cache.errors``
  (``error.type``: ``redis`` or ``decode``);
- ``smarter_domain.cache.invalidation.propagation`` (histogram, ``s``): how long an
  invalidation took to reach this process's listener from its writer;
- gauges: ``smarter_domain.cache.breaker.open``, ``smarter_domain.cache.listener.subscribed``
  (1 or 0), ``smarter_domain.cache.memory.entries``,
  ``smarter_domain.cache.invalidations.pending``.

For Prometheus, give ``instrument`` a ``MeterProvider`` whose reader is the OpenTelemetry
Prometheus exporter's (``opentelemetry-exporter-prometheus``): see docs/production.md.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

TIER = "smarter_domain.cache.tier"
KEY_KIND = "smarter_domain.cache.key_kind"
KEYS = "smarter_domain.cache.keys"
RESULT = "smarter_domain.cache.result"

_in_lookup: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "smarter_domain_in_lookup", default=False
)


class Telemetry:
    """What ``instrument`` turned on for one domain; ``close()`` turns it off."""

    def __init__(self, domain: Any, tracer: Any, meter: Any) -> None:
        self.domain = domain
        self.tracer = tracer
        self.meter = meter
        self._patched: list[tuple[Any, str]] = []
        self.closed = False

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        if self.closed:
            return nullcontext()
        return self.tracer.start_as_current_span(name, attributes=attributes)  # type: ignore[no-any-return]

    def patch(self, owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
        """Put ``wrapper`` (which gets the original) on this instance only."""
        original = getattr(owner, name)
        setattr(owner, name, functools.wraps(original)(functools.partial(wrapper, original)))
        self._patched.append((owner, name))

    def close(self) -> None:
        """Remove the instrumentation (the observable metrics then report nothing more)."""
        self.closed = True
        for owner, name in reversed(self._patched):
            vars(owner).pop(name, None)
        self._patched = []
        listener = self.domain.cache.listener
        if listener is not None:
            listener.latency_hook = None
        self.domain.telemetry = None


def instrument(
    domain: Any, *, tracer_provider: Any = None, meter_provider: Any = None
) -> Telemetry:
    """Spans and metrics for ``domain`` (a ``Domain``, or an ``AsyncDomain``: its sync domain
    is instrumented, which both doors share)."""
    try:
        from opentelemetry import metrics, trace
    except ImportError as exc:
        from .model.errors import ConfigurationError

        raise ConfigurationError(
            f"telemetry needs OpenTelemetry ({exc.name}): pip install 'smarter-domain[otel]'"
        ) from exc
    core = getattr(domain, "sync", domain)
    if getattr(core, "telemetry", None) is not None:
        core.telemetry.close()
    from importlib.metadata import version

    tracer = trace.get_tracer("smarter_domain", version("smarter-domain"), tracer_provider)
    meter = metrics.get_meter("smarter_domain", version("smarter-domain"), meter_provider)
    telemetry = Telemetry(core, tracer, meter)
    _trace_cache(telemetry, core.cache)
    _measure_cache(telemetry, core.cache)
    core.telemetry = telemetry
    return telemetry


def _trace_cache(telemetry: Telemetry, cache: Any) -> None:
    kind_of = cache.keys.kind_of

    @contextmanager
    def lookup(key: str) -> Iterator[list[str]]:
        """One lookup span (not nested in another: the async door's paths come here twice)."""
        if _in_lookup.get():
            yield []
            return
        token = _in_lookup.set(True)
        tier = ["redis" if cache.guard is not None else "memory"]
        try:
            with telemetry.span("smarter_domain.cache.lookup", **{KEY_KIND: kind_of(key)}) as s:
                yield tier
                if s is not None:
                    s.set_attribute(TIER, tier[0])
        finally:
            _in_lookup.reset(token)

    def traced_loader(loader: Callable[[], Any], key: str, tier: list[str]) -> Callable[[], Any]:
        if not tier:  # a lookup inside the span of another (it wrapped the loader already)
            return loader

        def load() -> Any:
            tier[0] = "database"
            with telemetry.span("smarter_domain.cache.load", **{KEY_KIND: kind_of(key)}):
                return loader()

        return load

    def get_or_load(original: Any, key: str, loader: Any, expiration_time: Any) -> Any:
        with lookup(key) as tier:
            return original(key, traced_loader(loader, key, tier), expiration_time)

    def looked_up(
        original: Any,
        key: str,
        loader: Any,
        local: Any,
        found: Any,
        expiration_time: Any = None,
    ) -> Any:
        with lookup(key) as tier:
            return original(key, traced_loader(loader, key, tier), local, found, expiration_time)

    def values_or_load(original: Any, slices: Any, count: int, loader: Any) -> Any:
        def load(missing: list[str]) -> Any:
            with telemetry.span("smarter_domain.cache.load", **{KEYS: len(missing)}):
                return loader(missing)

        with telemetry.span("smarter_domain.cache.lookup_many", **{KEYS: count}):
            return original(slices, count, load)

    def phase(name: str) -> Callable[..., Any]:
        def traced(original: Any, keys: Any, *args: Any) -> Any:
            keys = list(keys)
            kinds = sorted({kind_of(k) for k in keys})
            with telemetry.span(
                f"smarter_domain.cache.{name}", **{KEYS: len(keys), KEY_KIND: kinds}
            ):
                return original(keys, *args)

        return traced

    telemetry.patch(cache, "_get_or_load", get_or_load)
    telemetry.patch(cache, "looked_up", looked_up)
    telemetry.patch(cache, "values_or_load", values_or_load)
    for name in ("invalidate", "prepare", "release"):
        telemetry.patch(cache, name, phase(name))


def _measure_cache(telemetry: Telemetry, cache: Any) -> None:
    from opentelemetry.metrics import CallbackOptions, Observation

    meter = telemetry.meter

    def observing(read: Callable[[], list[Observation]]) -> Callable[[CallbackOptions], Any]:
        def callback(options: CallbackOptions) -> list[Observation]:
            return [] if telemetry.closed else read()

        return callback

    def lookups() -> list[Observation]:
        stats = cache.stats.snapshot()
        return [
            Observation(stats[f"{tier}_{counter}"], {TIER: tier, RESULT: result})
            for tier in ("memory", "redis")
            for result, counter in (("hit", "hits"), ("miss", "misses"))
        ]

    def counted(name: str) -> Callable[[], list[Observation]]:
        return lambda: [Observation(cache.stats.snapshot()[name])]

    def errors() -> list[Observation]:
        stats = cache.stats.snapshot()
        return [
            Observation(stats["redis_errors"], {"error.type": "redis"}),
            Observation(stats["decode_errors"], {"error.type": "decode"}),
        ]

    def gauge(read: Callable[[], float | None]) -> Callable[[], list[Observation]]:
        def observe() -> list[Observation]:
            value = read()
            return [] if value is None else [Observation(value)]

        return observe

    guard = cache.guard
    meter.create_observable_counter(
        "smarter_domain.cache.lookups",
        [observing(lookups)],
        unit="{lookup}",
        description="Lookups per tier, hits and misses",
    )
    meter.create_observable_counter(
        "smarter_domain.cache.loads",
        [observing(counted("loads"))],
        unit="{load}",
        description="Misses read from the database",
    )
    meter.create_observable_counter(
        "smarter_domain.cache.invalidations",
        [observing(counted("invalidations"))],
        unit="{key}",
        description="Keys invalidated by this process's writes",
    )
    meter.create_observable_counter(
        "smarter_domain.cache.errors",
        [observing(errors)],
        unit="{error}",
        description="Redis errors, and foreign or undecodable values under the cache's keys",
    )
    meter.create_observable_gauge(
        "smarter_domain.cache.memory.entries",
        [observing(gauge(cache.memory_entries))],
        unit="{entry}",
        description="Entries in the memory tier",
    )
    if guard is not None:
        meter.create_observable_gauge(
            "smarter_domain.cache.breaker.open",
            [observing(gauge(lambda: float(guard.breaker.is_down)))],
            description="1 while the circuit breaker skips Redis",
        )
        meter.create_observable_gauge(
            "smarter_domain.cache.invalidations.pending",
            [observing(gauge(lambda: float(guard.pending_deletes)))],
            unit="{key}",
            description="Invalidations held back by an outage",
        )
    listener = cache.listener
    if listener is not None:
        meter.create_observable_gauge(
            "smarter_domain.cache.listener.subscribed",
            [observing(gauge(lambda: float(bool(listener.healthy))))],
            description="1 while the invalidation listener is subscribed",
        )
        propagation = meter.create_histogram(
            "smarter_domain.cache.invalidation.propagation",
            unit="s",
            description="From a writer's publish to this process's listener",
        )
        listener.latency_hook = propagation.record
