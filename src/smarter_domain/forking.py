"""A Domain survives ``os.fork()``: gunicorn ``--preload``, Celery's prefork pool,
``multiprocessing`` with the fork start method.

Only the forking thread exists in a child. Without this module a Domain built before the fork
would have, in the child: no invalidation listener (so its memory tier is never trusted again
and every read goes to Redis, or, for the rest of the inherited trust window, it is trusted
with nobody dropping what other processes invalidate), its parent's origin (so neither
process drops what the other invalidates, and their acknowledgements count as one), its
parent's database connections (two processes on one socket), and locks that threads of the
parent held at the fork, held forever.

So every Domain registers here (held weakly: registering does not keep it alive) and one
``os.register_at_fork(after_in_child=...)`` hook gives each live Domain, in the child:

- its own SQLAlchemy pool, if the Domain made its engine: ``engine.dispose(close=False)``,
  the way SQLAlchemy documents, which leaves the parent's connections alone (an injected
  engine is the application's: it disposes it the same way in its own at-fork hook, or
  builds its engine after the fork);
- its own Redis connections: redis-py's pools (of a server, of Sentinel's master, and of
  each Cluster node) compare their pid on every checkout and start afresh in a child, and
  the listener opens its own connection for each subscription;
- a new origin, new locks, none of the parent's loads in flight, per-key mutexes, counters
  or held-back invalidations (``TieredCache.after_fork_in_child`` says why for each);
- with Redis, an empty memory tier and a listener thread of its own: the fork returns in the
  child once it is subscribed (``SUBSCRIBE_WAIT`` at most; until then reads bypass the
  memory tier, as in any process whose listener is not subscribed).

Nothing is held across the fork (no ``before`` hook): the locks worth holding are held
across I/O (a load in flight holds its key for a whole database query), so waiting for them
would stall every fork, and everything the short ones guard is either thrown away in the
child or consistent at every bytecode boundary.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import Engine

if TYPE_CHECKING:
    from .cache.tiered import TieredCache

log = logging.getLogger(__name__)

SUBSCRIBE_WAIT = 0.5
"""How long the fork waits, in the child, for the child's listener to subscribe (a few
milliseconds when Redis answers; the listener's connect timeout when it does not)."""


class Forkable(Protocol):
    """What the hook calls: a Domain (this module never imports it: the Domain is the
    composition root, and nothing imports it back)."""

    def _after_fork_in_child(self) -> None: ...


_domains: weakref.WeakSet[Forkable] = weakref.WeakSet()


def track(domain: Forkable) -> None:
    """Have ``domain`` made the child's own after every fork of this process (held weakly)."""
    _domains.add(domain)


def after_fork_in_child(cache: TieredCache, engine: Engine | None) -> None:
    """Make a Domain's cache (and the engine it owns, if any) the child's own."""
    if engine is not None:
        engine.dispose(close=False)
    cache.after_fork_in_child(SUBSCRIBE_WAIT)


def _in_child() -> None:
    for domain in list(_domains):
        try:
            domain._after_fork_in_child()
        except Exception:  # one Domain's failure must not leave the others unprepared
            log.exception(
                "could not prepare %r for the forked process",
                domain,
                extra={"event": "fork_preparation_failed"},
            )


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_in_child)
