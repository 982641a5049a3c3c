"""The unit of work's async front door: ``async with adomain.unit_of_work() as uow``.

It is the sync ``UnitOfWork`` (one copy of its rules: savepoints when joined, prepare before
the commit, release and signals after it, typed errors), each step run in a greenlet
(``concurrency.spawn``) as ``AsyncSession`` runs the ``Session``: its SQL goes through the
engine's asyncio driver and its Redis calls through ``redis.asyncio``, so the loop serves other
tasks while they wait. Joined to an application's ``AsyncSession``, it works in that
session's ``sync_session`` (the one ``AsyncSession`` drives): the library's rows and the
application's commit or roll back together, and the cache is prepared and invalidated around
the application's ``await session.commit()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from ..cache.concurrency import finish, spawn
from ..model.changes import Change
from ..model.errors import ConfigurationError
from ..model.repositories_async import (
    AsyncAccountRepository,
    AsyncUserProfileRepository,
    AsyncUserRepository,
)
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def sync_session_of(session: Any) -> Session | None:
    """The ``Session`` an ``AsyncSession`` drives (a sync one is refused: its I/O would block
    the loop)."""
    if session is None:
        return None
    sync = getattr(session, "sync_session", None)
    if sync is None:
        raise ConfigurationError(
            f"session= takes a SQLAlchemy AsyncSession here, not {type(session).__name__}"
        )
    return cast("Session", sync)


class AwaitingRepository:
    """Every method of a sync repository as a coroutine, run in a greenlet."""

    __slots__ = ("_sync",)

    def __init__(self, sync: object) -> None:
        self._sync = sync

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._sync, name)
        if name.startswith("_") or not callable(method):
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await spawn(method, *args, **kwargs)

        call.__name__ = name
        return call


class AsyncUnitOfWork:
    """``async with adomain.unit_of_work() as uow: ...; await uow.commit()``: see the sync
    ``UnitOfWork`` for what each step does. Like an ``AsyncSession``, one belongs to one task
    at a time."""

    accounts: AsyncAccountRepository
    users: AsyncUserRepository
    profiles: AsyncUserProfileRepository

    def __init__(self, sync: UnitOfWork) -> None:
        self.sync = sync

    @property
    def session(self) -> Session:
        """The sync ``Session`` the work runs in (the ``sync_session`` of a joined
        ``AsyncSession``); use it inside ``AsyncSession.run_sync`` or the library's own
        calls."""
        return self.sync.session

    async def __aenter__(self) -> Self:
        await spawn(self.sync.__enter__)
        self.accounts = cast(AsyncAccountRepository, AwaitingRepository(self.sync.accounts))
        self.users = cast(AsyncUserRepository, AwaitingRepository(self.sync.users))
        self.profiles = cast(AsyncUserProfileRepository, AwaitingRepository(self.sync.profiles))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await finish(self.sync.__exit__, exc_type, exc, tb)  # its rollback and close, whole

    async def commit(self) -> tuple[Change, ...]:
        """Prepare, commit, release, publish: to the end, even if the caller is cancelled
        (``concurrency.finish``)."""
        return await finish(self.sync.commit)

    async def rollback(self) -> None:
        await finish(self.sync.rollback)

    def on_commit(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``callback()`` (awaited if it is async) once this work is durable."""
        self.sync.on_commit(cast(Callable[[], None], callback))

    @property
    def pending_changes(self) -> tuple[Change, ...]:
        return self.sync.pending_changes
