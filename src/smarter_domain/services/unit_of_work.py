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
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session, sessionmaker

from ..adapters.database import begin_savepoint
from ..adapters.repositories import (
    SqlAccountRepository,
    SqlUserProfileRepository,
    SqlUserRepository,
    Writer,
    translated_errors,
)
from ..cache.concurrency import settle
from ..model.changes import Change
from ..model.errors import ConfigurationError

log = logging.getLogger(__name__)

AfterCommit = Callable[[Sequence[Change]], None]
BeforeCommit = Callable[[Sequence[Change]], Callable[[], None] | None]
"""Called with the changes right before the commit. It may refuse the commit by raising
(nothing is committed), and returns what to run right after the commit, or after a failed
commit (the cache's prepare and release: see ``Domain``)."""

OnCommit = Callable[[], None]
"""Run once the work is durable (a broker's ``cache_invalidate`` signal)."""


@dataclass
class _Entry:
    holder: SessionTransaction  # the transaction (or savepoint) it was written in
    changes: tuple[Change, ...]
    callbacks: tuple[OnCommit, ...]
    prepared: bool = False


class _SessionPublisher:
    """The after-commit half of the units of work of one Domain on one application session.

    Each change and on-commit callback is handed over as it is recorded, tagged with the
    transaction it was written in (the unit's savepoint). Every ``before_commit`` that finds
    changes not yet prepared, outside any savepoint, runs the ``before_commit`` hooks on them
    (the cache's prepare: it may refuse the commit, raising out of ``commit()``). After the
    outermost commit: what the prepares returned (the release), an invalidation of any change
    committed unprepared (written by another ``before_commit`` listener after the prepare, or
    committed with savepoints still open: SQLAlchemy fires the outermost ``before_commit``
    while they are, like a savepoint's release), the ``after_commit`` hooks, the callbacks.
    A rolled-back savepoint drops what was written in it; the end of the outermost transaction
    without a commit (rollback, close, a failed commit) drops everything, after running what
    a prepare returned (holds are released).

    The listeners are registered once, on the ``Session`` class (``_dispatch``): a listener
    added to a session while it dispatches an event would break SQLAlchemy's iteration, and
    per-session listeners would pile up on a ``scoped_session``'s class. A publisher lives
    in ``session.info`` only while it holds something: a long-lived session keeps no Domain
    alive. When the session is bound to a connection whose transaction it does not own
    (``Session(bind=connection)``), its commit is not the durable one: the changes are
    invalidated once more when that connection commits.
    """

    def __init__(
        self,
        session: Session,
        owner: object,
        before_commit: Sequence[BeforeCommit],
        after_commit: Sequence[AfterCommit],
        invalidate: Callable[[Sequence[Change]], None],
    ) -> None:
        self._session = weakref.ref(session)
        self._owner_id = id(owner)
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._invalidate = invalidate
        self._entries: list[_Entry] = []
        self._finishers: list[Callable[[], None] | None] = []

    @classmethod
    def of(
        cls,
        session: Session,
        owner: object,
        before_commit: Sequence[BeforeCommit],
        after_commit: Sequence[AfterCommit],
        invalidate: Callable[[Sequence[Change]], None],
    ) -> _SessionPublisher:
        """The publisher of ``owner`` (a Domain) on ``session``, made on first use."""
        publishers = _publishers(session, create=True)
        found = publishers.get(id(owner))
        if found is None:
            found = cls(session, owner, before_commit, after_commit, invalidate)
            publishers[id(owner)] = found
        return found

    def hand_over(
        self, session: Session, changes: Sequence[Change], callbacks: Sequence[OnCommit]
    ) -> None:
        holder = session.get_nested_transaction() or session.get_transaction()
        assert holder is not None, "handed over outside a transaction"
        self._entries.append(_Entry(holder, tuple(changes), tuple(callbacks)))

    def before(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            # A savepoint's release (nothing durable: preparing here would invalidate for a
            # transaction that may still roll back), or the outermost commit while savepoints
            # are still open in it (SQLAlchemy fires its event first): the two cannot be told
            # apart here, so the latter is invalidated right after its commit instead.
            return
        fresh = [entry for entry in self._entries if not entry.prepared]
        pending = tuple(change for entry in fresh for change in entry.changes)
        for entry in fresh:
            entry.prepared = True
        if pending:
            for hook in self._before_commit:  # one at a time: a refusal keeps what ran
                self._finishers.append(hook(pending))

    def after(self, session: Session) -> None:
        if session.get_nested_transaction() is not None:
            return  # a savepoint's release: not durable yet
        entries, self._entries = self._entries, []
        self._forget(session)
        late = tuple(c for entry in entries if not entry.prepared for c in entry.changes)
        self._finish()
        if late:
            self._invalidate(late)
        committed = tuple(change for entry in entries for change in entry.changes)
        bind = session.bind
        if committed and isinstance(bind, Connection) and bind.in_transaction():
            # Not the durable commit: the connection's own transaction goes on.
            event.listen(bind, "commit", lambda _: self._invalidate(committed), once=True)
        callbacks = [callback for entry in entries for callback in entry.callbacks]
        _publish(self._after_commit if committed else (), committed, callbacks)

    def rolled_back(self, session: Session, previous: SessionTransaction) -> None:
        self._entries = [e for e in self._entries if not _within(e.holder, previous)]

    def ended(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the outermost ended without after(): not durable
            self._entries = []
            self._forget(session)
            self._finish()

    def _finish(self) -> None:
        finishers, self._finishers = self._finishers, []
        _run_finishers(finishers)

    def _forget(self, session: Session) -> None:
        publishers = _publishers(session)
        if publishers.get(self._owner_id) is self:
            del publishers[self._owner_id]


_PUBLISHERS = "smarter_domain.publishers"


def _publishers(session: Session, create: bool = False) -> dict[int, _SessionPublisher]:
    """The publishers of ``session``, in its ``info``. A session made with another's
    ``info`` (``Session(info=other.info)``, a shallow copy) gets a dict of its own."""
    found: dict[int, _SessionPublisher] | None = session.info.get(_PUBLISHERS)
    if found is not None and all(p._session() is session for p in found.values()):
        return found
    if found is None and not create:
        return {}
    own: dict[int, _SessionPublisher] = {
        key: p for key, p in (found or {}).items() if p._session() is session
    }
    session.info[_PUBLISHERS] = own
    return own


def _dispatch(name: str) -> Callable[..., None]:
    def listener(session: Session, *args: Any) -> None:
        publishers = session.info.get(_PUBLISHERS)
        if publishers:
            for publisher in list(publishers.values()):
                if publisher._session() is session:
                    getattr(publisher, name)(session, *args)

    return listener


event.listen(Session, "before_commit", _dispatch("before"))
event.listen(Session, "after_commit", _dispatch("after"))
event.listen(Session, "after_soft_rollback", _dispatch("rolled_back"))
event.listen(Session, "after_transaction_end", _dispatch("ended"))


def _run_finishers(finishers: Sequence[Callable[[], None] | None]) -> None:
    """What the before-commit hooks returned, after the commit (or a failed one)."""
    for finish in finishers:
        if finish is not None:
            try:
                finish()
            except Exception:
                log.exception(
                    "after-commit step %r failed", finish, extra={"event": "after_commit_failed"}
                )


def _publish(
    hooks: Sequence[AfterCommit], committed: tuple[Change, ...], callbacks: Sequence[OnCommit]
) -> None:
    """After a commit: the hooks with what it changed, then the callbacks. A failure is
    logged and never undoes or fails the committed write."""
    for hook in hooks:
        try:
            settle(hook(committed), hook)  # an async hook: awaited by an AsyncDomain
        except Exception:
            log.exception(
                "after-commit hook %r failed; the write stands",
                hook,
                extra={"event": "hook_failed"},
            )
    for callback in callbacks:
        try:
            settle(callback(), callback)
        except Exception:
            log.exception(
                "on-commit callback %r failed; the write stands",
                callback,
                extra={"event": "callback_failed"},
            )


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
        session: Session | scoped_session[Session] | None = None,
        owner: object = None,
        invalidate: Callable[[Sequence[Change]], None] = lambda changes: None,
    ) -> None:
        if isinstance(session, scoped_session):
            session = session()  # the current thread's (Flask-SQLAlchemy's db.session)
        if session is not None and not isinstance(session, Session):
            raise ConfigurationError(
                f"session= takes a SQLAlchemy Session, not {type(session).__name__}"
            )
        self._session_factory = session_factory
        self._after_commit = after_commit
        self._before_commit = tuple(before_commit)
        self._invalidate = invalidate
        self._joined = session
        self._owner = owner
        self._savepoint: SessionTransaction | None = None
        self._publisher: _SessionPublisher | None = None
        self._changes: list[Change] = []
        self._on_commit: list[OnCommit] = []

    def __enter__(self) -> Self:
        self._changes, self._on_commit = [], []
        if self._joined is not None:
            self.session = self._joined
            self._publisher = _SessionPublisher.of(
                self.session,
                self._owner,
                self._before_commit,
                self._after_commit,
                self._invalidate,
            )
            self._ensure_savepoint()
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
                        extra={"event": "cleanup_failed", "step": step.__name__.strip("_")},
                    )
        if failure is not None:
            raise failure

    # The Scope protocol: every repository call shares this session.
    def reading(self) -> nullcontext[Session]:
        return nullcontext(self.session)

    def writing(self) -> nullcontext[Writer]:
        if self._joined is not None:
            self._ensure_savepoint()
        return nullcontext(self)

    def _ensure_savepoint(self) -> None:
        """Joined: every write happens inside this unit's savepoint. A new one after
        ``commit()`` released the last, or after the application ended its transaction in
        the middle of the block, so that leaving without ``commit()`` still undoes it."""
        if self._savepoint is None or not self._savepoint.is_active:
            with translated_errors():
                self._savepoint = begin_savepoint(self.session)

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
        is dropped if the savepoint or the transaction around it rolls back). If the release
        fails (its flush meets a constraint), the savepoint is rolled back: the application's
        transaction stays usable, with nothing of this unit in it."""
        savepoint, self._savepoint = self._savepoint, None
        if savepoint is not None and savepoint.is_active:
            try:
                with translated_errors():
                    savepoint.commit()  # flushes, then RELEASE SAVEPOINT
            except BaseException:
                self._abandon(savepoint)  # a failed flush leaves it inactive, not closed
                raise
        self._changes, self._on_commit = [], []
        return pending

    def rollback(self) -> None:
        self._changes, self._on_commit = [], []
        if self._joined is not None:
            savepoint, self._savepoint = self._savepoint, None
            if savepoint is not None:
                self._abandon(savepoint)
            return
        with translated_errors():
            self.session.rollback()

    def _abandon(self, savepoint: SessionTransaction) -> None:
        """Roll back to ``savepoint`` if it is still open in the session, active or made
        inactive by a failed flush (which the application could not commit past); one that
        was released or rolled back (by the application too) is left alone."""
        current = self.session.get_nested_transaction()
        while current is not None and current.nested:
            if current is savepoint:
                with translated_errors():
                    savepoint.rollback()
                return
            current = current.parent

    def _close(self) -> None:
        with translated_errors():
            self.session.close()


class AutoCommitScope:
    """Outside a unit of work: each read gets a short session, each write its own unit of work."""

    def __init__(
        self, session_factory: Callable[[], Session], unit_of_work: Callable[[], UnitOfWork]
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
