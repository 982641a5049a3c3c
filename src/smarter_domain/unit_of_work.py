"""The unit of work: one session, one transaction, and what it changed published after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from .changes import Change
from .repositories.sql import (
    SqlAccountRepository,
    SqlUserProfileRepository,
    SqlUserRepository,
    Writer,
    translated_errors,
)

log = logging.getLogger(__name__)

AfterCommit = Callable[[Sequence[Change]], None]
BeforeCommit = Callable[[Sequence[Change]], Callable[[], None] | None]
"""Called with the changes right before the commit. It may refuse the commit by raising
(nothing is committed), and returns what to run right after the commit, or after a failed
commit (the cache's prepare and release: see ``Domain``)."""


class UnitOfWork:
    """``with domain.unit_of_work() as uow: ...; uow.commit()``.

    Leaving the block without ``commit()`` rolls back. Right before the commit the recorded
    changes go to each ``before_commit`` hook (the cache's prepare: it may refuse the commit);
    after it, what those hooks returned runs, then each ``after_commit`` hook (user hooks,
    signals); a hook that fails after the commit is logged and never undoes or fails the
    committed write. Database failures (of commit and rollback
    too) raise the library's typed errors; when the block already failed, a rollback or close
    that fails as well (the connection died) is logged and the block's own error goes on.
    """

    session: Session
    accounts: SqlAccountRepository
    users: SqlUserRepository
    profiles: SqlUserProfileRepository

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        after_commit: Sequence[AfterCommit] = (),
        before_commit: Sequence[BeforeCommit] = (),
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = tuple(after_commit)
        self._before_commit = tuple(before_commit)
        self._changes: list[Change] = []

    def __enter__(self) -> Self:
        self.session = self._session_factory()
        self._changes = []
        self.accounts = SqlAccountRepository(self)
        self.users = SqlUserRepository(self)
        self.profiles = SqlUserProfileRepository(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure: Exception | None = None
        for step in (self.rollback, self._close):
            try:
                step()
            except Exception as step_failure:
                if exc is None and failure is None:
                    failure = step_failure
                else:
                    log.warning(
                        "unit of work: %s failed after %r",
                        step.__name__.strip("_"),
                        exc or failure,
                        exc_info=True,
                    )
        if failure is not None:
            raise failure

    # The Scope protocol: every repository call shares this session.
    def reading(self) -> nullcontext[Session]:
        return nullcontext(self.session)

    def writing(self) -> nullcontext[Writer]:
        return nullcontext(self)

    def record(self, change: Change) -> None:
        self._changes.append(change)

    @property
    def pending_changes(self) -> tuple[Change, ...]:
        return tuple(self._changes)

    def commit(self) -> tuple[Change, ...]:
        """Prepare, commit, then publish; returns what was published."""
        pending = tuple(self._changes)
        finishers = [hook(pending) for hook in self._before_commit] if pending else []
        try:
            with translated_errors():
                self.session.commit()
        finally:
            for finish in finishers:
                if finish is not None:
                    try:
                        finish()
                    except Exception:
                        log.exception("after-commit step %r failed", finish)
        committed, self._changes = pending, []
        for hook in self._after_commit:
            try:
                hook(committed)
            except Exception:
                log.exception("after-commit hook %r failed; the write stands", hook)
        return committed

    def rollback(self) -> None:
        self._changes = []
        with translated_errors():
            self.session.rollback()

    def _close(self) -> None:
        with translated_errors():
            self.session.close()


class AutoCommitScope:
    """Outside a unit of work: each read gets a short session, each write its own unit of work."""

    def __init__(
        self, session_factory: sessionmaker[Session], unit_of_work: Callable[[], UnitOfWork]
    ) -> None:
        self._session_factory = session_factory
        self._unit_of_work = unit_of_work

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._session_factory() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Writer]:
        with self._unit_of_work() as uow:
            yield uow
            uow.commit()
