"""The ``cache_invalidate`` signal (blinker), sent by brokers after their writes commit.

``@cache_invalidate.connect`` works as in blinker (held weakly), and so does a Django-style
``@receiver(cache_invalidate)`` (held strongly, so a locally defined handler stays connected).
A receiver that raises is logged and the others still run: it cannot undo or fail the write.
An ``async def`` receiver is awaited when an ``AsyncDomain`` sends (sync ones are called); a
sync ``Domain`` cannot await it and logs a warning instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from blinker import Signal

from ..cache.concurrency import settle

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

cache_invalidate = Signal(
    "Sent after a broker's write commits and its cache entries are invalidated: "
    "send(BrokerClass, user_profile=actor, instance=entity, kind=..., action=...)."
)


def receiver(signal: Signal, *, sender: Any = None) -> Callable[[F], F]:
    """Connect the decorated function to ``signal``, strongly (as Django's ``receiver``)."""

    def decorate(function: F) -> F:
        if sender is None:
            signal.connect(function, weak=False)
        else:
            signal.connect(function, sender=sender, weak=False)
        return function

    return decorate


def send_safely(signal: Signal, sender: Any, **payload: Any) -> None:
    """Call every receiver; log (never raise) what a receiver raises."""
    for handler in signal.receivers_for(sender):
        try:
            settle(handler(sender, **payload), handler)
        except Exception:
            log.exception(
                "signal receiver %r failed; the write stands",
                handler,
                extra={"event": "receiver_failed"},
            )
