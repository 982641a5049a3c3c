"""The unit of work: one session, one transaction, and what it changed published after commit.

A unit of work either owns its session (``domain.unit_of_work()``: it commits and closes it)
or joins one the application owns (``domain.unit_of_work(session=app_session)``): then it
works inside a SAVEPOINT of the application's transaction, its ``commit()`` only releases
that savepoint, and what it changed is prepared, published and signalled around the
*application's* commit, through SQLAlchemy's session events (``_SessionPublisher``), and
dropped if the application rolls back, the whole transaction or a savepoint around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from types import TracebackType
from typing import Self

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from .changes import Change
from .database import begin_savepoint
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

OnCommit = Callable[[], None]
"""Run once the work is durable (a broker's ``cache_invalidate`` signal)."""


class _SessionPublisher:
    """The after-commit half of the units of work that joined one application session.

    A joined unit of work hands over what it changed when it releases its savepoint; each
    hand-over is tagged with the transaction that then holds it (the application's, or a
    savepoint of the application's). Around the application's outermost commit, the
    ``before_commit`` hooks run (the cache's prepare: it may refuse the commit, raising out
    of ``session.commit()``), then after it what they returned, the ``after_commit`` hooks
    and the on-commit callbacks. A rolled-back savepoint drops what was handed over inside it;
    the end of the outermost transaction without a commit (rollback, close, a failed commit)
    drops everything, after running what a prepare returned (a hold is released).

    SQLAlchemy fires ``before_commit``/``after_commit`` for a savepoint's release too: only
    the outermost transaction's count (no nested transaction in progress).
    """

    def __init__(
        self,
        session: Session,
        before_commit: Sequence[BeforeCommit],
        after_commit: Sequence[AfterCommit],
    ) -> None:
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._entries: list[tuple[SessionTransaction, tuple[Change, ...], tuple[OnCommit, ...]]]
        self._entries = []
        self._finishers: list[Callable[[], None] | None] = []
        event.listen(session, "before_commit", self._before)
        event.listen(session, "after_commit", self._after)
        event.listen(session, "after_soft_rollback", self._rolled_back)
        event.listen(session, "after_transaction_end", self._ended)

    @classmethod
    def of(
        cls,
        session: Session,
        owner: object,
        before_commit: Sequence[BeforeCommit],
        after_commit: Sequence[AfterCommit],
    ) -> _SessionPublisher:
        """The publisher of ``owner`` (a Domain) on ``session``, made on first use."""
        publishers: dict[int, _SessionPublisher] = session.info.setdefault(
            "smarter_domain.publishers", {}
        )
        found = publishers.get(id(owner))
        if found is None:
            found = publishers[id(owner)] = cls(session, before_commit, after_commit)
        return found

    def hand_over(
        self, session: Session, changes: Sequence[Change], callbacks: Sequence[OnCommit]
    ) -> None:
        if not changes and not callbacks:
            return
        holder = session.get_nested_transaction() or session.get_transaction()
        assert holder is not None, "handed over outside a transaction"
        self._entries.append((holder, tuple(changes), tuple(callbacks)))

    def _changes(self) -> tuple[Change, ...]:
        return tuple(change for _, changes, _ in self._entries for change in changes)

    def _before(self, session: Session) -> None:
        if session.get_nested_transaction() is not None or not self._entries:
            return  # a savepoint's release, or nothing of ours
        pending = self._changes()
        if pending:
            for hook in self._before_commit:  # one at a time: a refusal keeps what ran
                self._finishers.append(hook(pending))

    def _after(self, session: Session) -> None:
        if session.get_nested_transaction() is not None or not self._entries:
            return
        entries, self._entries = self._entries, []
        self._finish()
        committed = tuple(change for _, changes, _ in entries for change in changes)
        callbacks = [callback for _, _, queued in entries for callback in queued]
        _publish(self._after_commit if committed else (), committed, callbacks)

    def _rolled_back(self, session: Session, previous: SessionTransaction) -> None:
        self._entries = [e for e in self._entries if not _within(e[0], previous)]

    def _ended(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the outermost ended without our _after: not durable
            self._entries = []
            self._finish()

    def _finish(self) -> None:
        finishers, self._finishers = self._finishers, []
        _run_finishers(finishers)


def _run_finishers(finishers: Sequence[Callable[[], None] | None]) -> None:
    """What the before-commit hooks returned, after the commit (or a failed one)."""
    for finish in finishers:
        if finish is not None:
            try:
                finish()
            except Exception:
                log.exception("after-commit step %r failed", finish)


def _publish(
    hooks: Sequence[AfterCommit], committed: tuple[Change, ...], callbacks: Sequence[OnCommit]
) -> None:
    """After a commit: the hooks with what it changed, then the callbacks. A failure is
    logged and never undoes or fails the committed write."""
    for hook in hooks:
        try:
            hook(committed)
        except Exception:
            log.exception("after-commit hook %r failed; the write stands", hook)
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("on-commit callback %r failed; the write stands", callback)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


class UnitOfWork:
    """``with domain.unit_of_work() as uow: ...; uow.commit()``.

    Leaving the block without ``commit()`` rolls back. Right before the commit the recorded
    changes go to each ``before_commit`` hook (the cache's prepare: it may refuse the commit);
    after it, what those hooks returned runs, then each ``after_commit`` hook (user hooks,
    signals) and each ``on_commit`` callback; a hook that fails after the commit is logged and
    never undoes or fails the committed write. Database failures (of commit and rollback
    too) raise the library's typed errors; when the block already failed, a rollback or close
    that fails as well (the connection died) is logged and the block's own error goes on.

    With ``session=`` (the application's ``Session``), the unit of work joins it: it runs in
    a SAVEPOINT (``session.begin_nested()``), ``commit()`` releases the savepoint (nothing
    is durable yet) and leaving without ``commit()`` rolls back to it, so a failed write
    leaves nothing half-done in the application's transaction. The library never commits,
    rolls back or closes that session: the hooks and callbacks run around the application's
    own commit, and never if it rolls back (``_SessionPublisher``). Like a ``Session``, a unit
    of work belongs to one thread.
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
        *,
        session: Session | None = None,
        owner: object = None,
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = after_commit
        self._before_commit = tuple(before_commit)
        self._joined = session
        self._owner = owner
        self._savepoint: SessionTransaction | None = None
        self._publisher: _SessionPublisher | None = None
        self._changes: list[Change] = []
        self._on_commit: list[OnCommit] = []

    @property
    def joined(self) -> bool:
        """True when working inside a session the application owns."""
        return self._joined is not None

    def __enter__(self) -> Self:
        self._changes, self._on_commit = [], []
        if self._joined is not None:
            self.session = self._joined
            self._publisher = _SessionPublisher.of(
                self.session, self._owner, self._before_commit, self._after_commit
            )
            with translated_errors():
                self._savepoint = begin_savepoint(self.session)
        else:
            self.session = self._session_factory()
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
        steps = (self.rollback,) if self._joined is not None else (self.rollback, self._close)
        for step in steps:
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
        if self._publisher is not None:
            self._publisher.hand_over(self.session, [change], [])

    def on_commit(self, callback: OnCommit) -> None:
        """Run ``callback()`` once this work is durable: right after ``commit()``, or, joined,
        after the application's commit (never if it rolls back)."""
        self._on_commit.append(callback)
        if self._publisher is not None:
            self._publisher.hand_over(self.session, [], [callback])

    @property
    def pending_changes(self) -> tuple[Change, ...]:
        return tuple(self._changes)

    def commit(self) -> tuple[Change, ...]:
        """Prepare, commit, then publish; returns what was published. Joined: release the
        savepoint and return what will be published after the application's commit."""
        pending, callbacks = tuple(self._changes), tuple(self._on_commit)
        if self._joined is not None:
            return self._release(pending)
        finishers = [hook(pending) for hook in self._before_commit] if pending else []
        try:
            with translated_errors():
                self.session.commit()
        finally:
            _run_finishers(finishers)
        self._changes, self._on_commit = [], []
        _publish(self._after_commit, pending, callbacks)
        return pending

    def _release(self, pending: tuple[Change, ...]) -> tuple[Change, ...]:
        """Release the savepoint into the application's transaction. What it holds was handed
        to the session's publisher as it was recorded, tagged with the savepoint, so it goes
        out with the application's commit even if the application commits before this (and
        is dropped if the savepoint or the transaction around it rolls back)."""
        savepoint, self._savepoint = self._savepoint, None
        if savepoint is not None and savepoint.is_active:
            with translated_errors():
                savepoint.commit()  # flushes, then RELEASE SAVEPOINT
        self._changes, self._on_commit = [], []
        # A savepoint for what this block may still do (commit() twice, like a Session).
        with translated_errors():
            self._savepoint = begin_savepoint(self.session)
        return pending

    def rollback(self) -> None:
        self._changes, self._on_commit = [], []
        if self._joined is not None:
            savepoint, self._savepoint = self._savepoint, None
            if savepoint is not None and savepoint.is_active:
                with translated_errors():
                    savepoint.rollback()
            return
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
