"""Running the async front door's tests: each test is a coroutine run on its own loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from smarter_domain.cache import RedisOptions

P = ParamSpec("P")
R = TypeVar("R")

FAST_FAIL = RedisOptions(
    socket_timeout=0.2, connect_timeout=0.2, retry_after=0.3, lock_timeout=2, lock_sleep=0.01
)


def on_a_loop(test: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """Run the ``async def`` test with ``asyncio.run`` (pytest sees its fixtures)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return asyncio.run(asyncio.wait_for(test(*args, **kwargs), 90))

    return run


def at_once(awaitable: Coroutine[Any, Any, R]) -> R:
    """The result of a coroutine that must finish without suspending once (no I/O awaited):
    it is stepped by hand, outside any loop, and fails if it ever waits."""
    try:
        awaitable.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    awaitable.close()
    raise AssertionError("the coroutine awaited something: it did not complete at once")
