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
import itertools
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

TIER = "smarter_domain.cache.tier"
KEY_KIND = "smarter_domain.cache.key_kind"
KEYS = "smarter_domain.cache.keys"
RESULT = "smarter_domain.cache.result"

_ids = itertools.count(1)


class Telemetry:
    """What ``instrument`` turned on for one domain; ``close()`` turns it off."""

    def __init__(self, domain: Any, tracer: Any, meter: Any) -> None:
        self.domain = domain
        self.tracer = tracer
        self.meter = meter
        guard = domain.cache.guard
        #: What tells this domain's metrics from another's on the same meter.
        self.labels = {
            "smarter_domain.cache.namespace": domain.cache.keys.namespace,
            "smarter_domain.domain": guard.origin if guard is not None else f"local-{next(_ids)}",
        }
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
    front = getattr(domain, "acache", None)
    if front is not None:
        _trace_async_door(telemetry, front)
    _measure_cache(telemetry, core.cache)
    core.telemetry = telemetry
    return telemetry


_tier: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "smarter_domain_lookup_tier", default=None
)


def _trace_cache(telemetry: Telemetry, cache: Any) -> None:
    kind_of = cache.keys.kind_of

    @contextmanager
    def lookup(key: str) -> Iterator[None]:
        """One lookup span, whose tier the lookup's steps set (``memory`` unless Redis or
        the database answers). Not nested in another: the paths come here more than once."""
        if _tier.get() is not None:
            yield
            return
        tier = ["memory"]
        token = _tier.set(tier)
        try:
            with telemetry.span("smarter_domain.cache.lookup", **{KEY_KIND: kind_of(key)}) as s:
                yield
                if s is not None:
                    s.set_attribute(TIER, tier[0])
        finally:
            _tier.reset(token)

    def answered(tier: str) -> None:
        found = _tier.get()
        if found is not None and found[0] != "database":
            found[0] = tier

    def traced_loader(loader: Callable[[], Any], key: str) -> Callable[[], Any]:
        if getattr(loader, "_smarter_traced", False):
            return loader

        def load() -> Any:
            answered("database")
            token = _tier.set(None)  # the loader's own cache reads are lookups of their own
            try:
                with telemetry.span("smarter_domain.cache.load", **{KEY_KIND: kind_of(key)}):
                    return loader()
            finally:
                _tier.reset(token)

        load._smarter_traced = True  # type: ignore[attr-defined]
        return load

    def get_or_load(original: Any, key: str, loader: Any, expiration_time: Any) -> Any:
        with lookup(key):
            return original(key, traced_loader(loader, key), expiration_time)

    def looked_up(
        original: Any,
        key: str,
        loader: Any,
        local: Any,
        found: Any,
        expiration_time: Any = None,
    ) -> Any:
        with lookup(key):
            if cache.is_hit(found):
                answered("redis")
            return original(key, traced_loader(loader, key), local, found, expiration_time)

    def second_tier(
        original: Any, key: str, loader: Any, expiration_time: Any, found: Any = None
    ) -> Any:
        result = original(key, traced_loader(loader, key), expiration_time, found)
        tier = _tier.get()
        if tier is not None and tier[0] == "memory" and cache.guard is not None:
            tier[0] = "redis"  # the loader did not run: Redis answered
        return result

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
            attributes = {KEYS: len(keys), KEY_KIND: kinds}
            with telemetry.span(f"smarter_domain.cache.{name}", **attributes):
                return original(keys, *args)

        return traced

    telemetry.patch(cache, "_get_or_load", get_or_load)
    telemetry.patch(cache, "looked_up", looked_up)
    telemetry.patch(cache, "_second_tier", second_tier)
    telemetry.patch(cache, "values_or_load", values_or_load)
    for name in ("invalidate", "prepare", "release"):
        telemetry.patch(cache, name, phase(name))


def _trace_async_door(telemetry: Telemetry, front: Any) -> None:
    """The async door's lookups, from their start (its Redis lookup is awaited before the
    sync logic's ``looked_up``)."""
    kind_of = front.cache.keys.kind_of

    async def load_missed(original: Any, key: str, loader: Any, expiration_time: Any = None) -> Any:
        tier = ["memory"]
        token = _tier.set(tier)
        try:
            with telemetry.span("smarter_domain.cache.lookup", **{KEY_KIND: kind_of(key)}) as s:
                value = await original(key, loader, expiration_time)
                if s is not None:
                    s.set_attribute(TIER, tier[0])
                return value
        finally:
            _tier.reset(token)

    telemetry.patch(front, "load_missed", load_missed)


class _Instruments:
    """The metric instruments of one meter, made once (a second ``create_*`` of a name on a
    meter returns the first instrument and drops the new callbacks), observing every live
    ``Telemetry`` of that meter, each with its domain's attributes."""

    def __init__(self, meter: Any) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        self.live: weakref.WeakSet[Telemetry] = weakref.WeakSet()

        def observe(
            read: Callable[[Telemetry, Any], list[tuple[float, dict[str, Any]]]],
        ) -> Callable[[CallbackOptions], list[Observation]]:
            def callback(options: CallbackOptions) -> list[Observation]:
                found = []
                for telemetry in list(self.live):
                    if telemetry.closed:
                        continue
                    cache = telemetry.domain.cache
                    for value, attributes in read(telemetry, cache):
                        found.append(Observation(value, {**telemetry.labels, **attributes}))
                return found

            return callback

        def lookups(t: Telemetry, cache: Any) -> list[tuple[float, dict[str, Any]]]:
            stats = cache.stats.snapshot()
            return [
                (stats[f"{tier}_{counter}"], {TIER: tier, RESULT: result})
                for tier in ("memory", "redis")
                for result, counter in (("hit", "hits"), ("miss", "misses"))
            ]

        def counted(name: str) -> Callable[[Telemetry, Any], list[tuple[float, dict[str, Any]]]]:
            return lambda t, cache: [(cache.stats.snapshot()[name], {})]

        def errors(t: Telemetry, cache: Any) -> list[tuple[float, dict[str, Any]]]:
            stats = cache.stats.snapshot()
            return [
                (stats["redis_errors"], {"error.type": "redis"}),
                (stats["decode_errors"], {"error.type": "decode"}),
            ]

        def entries(t: Telemetry, cache: Any) -> list[tuple[float, dict[str, Any]]]:
            value = cache.memory_entries()
            return [] if value is None else [(value, {})]

        def breaker(t: Telemetry, cache: Any) -> list[tuple[float, dict[str, Any]]]:
            guard = cache.guard
            return [] if guard is None else [(float(guard.breaker.is_down), {})]

        def pending(t: Telemetry, cache: Any) -> list[tuple[float, dict[str, Any]]]:
            guard = cache.guard
            return [] if guard is None else [(float(guard.pending_deletes), {})]

        def subscribed(t: Telemetry, cache: Any) -> list[tuple[float, dict[str, Any]]]:
            listener = cache.listener
            return [] if listener is None else [(float(bool(listener.healthy)), {})]

        meter.create_observable_counter(
            "smarter_domain.cache.lookups",
            [observe(lookups)],
            unit="{lookup}",
            description="Lookups per tier, hits and misses",
        )
        meter.create_observable_counter(
            "smarter_domain.cache.loads",
            [observe(counted("loads"))],
            unit="{load}",
            description="Misses read from the database",
        )
        meter.create_observable_counter(
            "smarter_domain.cache.invalidations",
            [observe(counted("invalidations"))],
            unit="{key}",
            description="Keys invalidated by this process's writes",
        )
        meter.create_observable_counter(
            "smarter_domain.cache.errors",
            [observe(errors)],
            unit="{error}",
            description="Redis errors, and foreign or undecodable values under the cache's keys",
        )
        meter.create_observable_gauge(
            "smarter_domain.cache.memory.entries",
            [observe(entries)],
            unit="{entry}",
            description="Entries in the memory tier",
        )
        meter.create_observable_gauge(
            "smarter_domain.cache.breaker.open",
            [observe(breaker)],
            description="1 while the circuit breaker skips Redis",
        )
        meter.create_observable_gauge(
            "smarter_domain.cache.invalidations.pending",
            [observe(pending)],
            unit="{key}",
            description="Invalidations held back by an outage",
        )
        meter.create_observable_gauge(
            "smarter_domain.cache.listener.subscribed",
            [observe(subscribed)],
            description="1 while the invalidation listener is subscribed",
        )
        self.propagation = meter.create_histogram(
            "smarter_domain.cache.invalidation.propagation",
            unit="s",
            description="From a writer's publish to this process's listener",
        )


_instruments: dict[int, tuple[Any, _Instruments]] = {}  # id(meter): the meter, its instruments


def _measure_cache(telemetry: Telemetry, cache: Any) -> None:
    meter = telemetry.meter
    known = _instruments.get(id(meter))
    if known is None or known[0] is not meter:
        known = _instruments[id(meter)] = (meter, _Instruments(meter))
    instruments = known[1]
    instruments.live.add(telemetry)
    listener = cache.listener
    if listener is not None:
        record, labels = instruments.propagation.record, dict(telemetry.labels)

        def latency(seconds: float) -> None:
            record(seconds, labels)

        listener.latency_hook = latency
