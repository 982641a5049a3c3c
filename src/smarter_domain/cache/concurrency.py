"""How one body of synchronous logic serves both front doors: SQLAlchemy's own asyncio design.

The library's rules (the tiers' coherence protocol, the unit of work, the brokers, the
utilities) are written once, as plain functions. The async front door (``AsyncDomain``) runs
them in a greenlet on the event loop's thread (``spawn``: SQLAlchemy's ``greenlet_spawn``),
and each I/O call inside them is a coroutine of a native asyncio driver (asyncpg or aiosqlite
through SQLAlchemy's asyncio extension, ``redis.asyncio``) that the greenlet hands to the loop
and waits for (``await_only``): the loop runs other tasks meanwhile, and no blocking socket
call ever runs on its thread. This is exactly how ``AsyncSession`` runs the ORM.

The few places where the logic waits without I/O (a lease holder's fill, a trust window, a
load another caller is running) wait through this module too: ``pause`` sleeps on the loop
inside a greenlet and blocks the thread elsewhere, and ``Landing`` lets both threads and
greenlets wait for one load. Everything else the logic does is brief and lock-protected (the
memory tier, the stripes, the breaker), so it is as safe on the loop as in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.util import concurrency as _sqlalchemy

try:  # the asyncio extra; the sync front door never needs it
    from greenlet import getcurrent as _current_greenlet  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - greenlet is installed wherever the tests run
    _current_greenlet = None

T = TypeVar("T")

greenlet_spawn = _sqlalchemy.greenlet_spawn
# ``await_`` since SQLAlchemy 2.1 (``await_only`` before it, deprecated in 2.2)
await_only: Callable[[Awaitable[Any]], Any] = (
    getattr(_sqlalchemy, "await_", None) or _sqlalchemy.await_only
)


def in_greenlet() -> bool:
    """Whether this code runs in a greenlet of ``spawn`` (SQLAlchemy's marker attribute),
    where ``await_only`` may wait for a coroutine. False without greenlet installed."""
    if _current_greenlet is None:
        return False
    return bool(getattr(_current_greenlet(), "__sqlalchemy_greenlet_provider__", False))


__all__ = ["Landing", "await_only", "finish", "in_greenlet", "pause", "settle", "spawn"]

log = logging.getLogger(__name__)


async def spawn(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a greenlet on the running loop, where ``await_only``
    may wait for coroutines (the sync logic's I/O)."""
    result: T = await greenlet_spawn(function, *args, **kwargs)
    return result


async def finish(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``spawn`` for work that must not stop halfway once begun: a commit with the cache's
    release and the signals after it, a rollback, an invalidation. It runs in a task of its
    own, which a cancellation of the caller (a client gone, a request's time limit, anyio's
    repeated cancellation) does not interrupt; the caller waits for it to end (its I/O is
    bounded by the timeouts), then gets the cancellation. Interrupted after the database
    committed, the write would be durable but its cache left held off and unsignalled."""
    task = asyncio.get_running_loop().create_task(spawn(function, *args, **kwargs))
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():  # the task itself (the loop is shutting down)
                raise
            interrupted = True
        except BaseException:
            break  # the work's own error: raised by ``result()`` below
    if interrupted:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise asyncio.CancelledError()
    return task.result()


def pause(seconds: float) -> None:
    """Sleep: on the event loop (other tasks run) inside ``spawn``, else in this thread."""
    if seconds <= 0:
        return
    if in_greenlet():
        await_only(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


def wait(awaitable: Awaitable[T]) -> T:
    """``await_only``: the result of ``awaitable``, from inside ``spawn``."""
    result: T = await_only(awaitable)
    return result


def settle(result: Any, what: object) -> None:
    """Await what a hook returned if it is awaitable (an ``async def`` receiver or hook):
    on the event loop inside ``spawn`` (the async front door). A sync domain has no loop to
    await it on: it is closed unawaited, with a warning naming ``what``."""
    if not inspect.isawaitable(result):
        return
    if in_greenlet():
        await_only(result)
        return
    close = getattr(result, "close", None)
    if close is not None:
        close()
    log.warning(
        "%r is async: it is awaited by an AsyncDomain only, and was not run",
        what,
        extra={"event": "async_hook_not_run"},
    )


class Landing:
    """The end of one load, which threads and greenlets on event loops may wait for: a
    thread blocks on a lock, a greenlet awaits a future of its own loop (so a load that
    another task of the same loop runs goes on while it waits)."""

    __slots__ = ("_done", "_lock", "_mutex", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._mutex = threading.Lock()
        self._done = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def land(self) -> None:
        with self._mutex:
            self._done = True
            waiters, self._waiters = self._waiters, []
        self._lock.release()
        for loop, future in waiters:
            if loop.is_closed():
                continue
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop closed meanwhile: nobody waits there any more
                continue

    def wait(self) -> None:
        if in_greenlet():
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            with self._mutex:
                if self._done:
                    return
                self._waiters.append((loop, future))
            await_only(future)
            return
        with self._lock:
            pass


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
