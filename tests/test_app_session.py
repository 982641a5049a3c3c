"""Joining the application's transaction: ``domain.unit_of_work(session=app_session)`` and
``domain.apply(..., session=...)``.

The library's rows and the application's commit or roll back together; the library never
commits, rolls back or closes the application's session; the cache is prepared and
invalidated, and ``cache_invalidate`` sent, around the application's commit only (never on a
rollback, of the whole transaction or of a savepoint). Run on both stacks: SQLite with the
memory tier, PostgreSQL with Redis (where a second Domain stands for another process).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, event, func, select
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from smarter_domain import (
    CacheUnavailable,
    Change,
    ConfigurationError,
    ConflictError,
    Domain,
    PermissionDenied,
    User,
    UserBroker,
    cache_invalidate,
)
from smarter_domain.adapters.orm import Base, UserRow
from smarter_domain.testing.servers import free_port

pytestmark = pytest.mark.smarter_backends("sqlite", "postgresql")

app_metadata = MetaData()
notes = Table(
    "app_note",
    app_metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey(Base.metadata.tables["smarter_user"].c.id), nullable=False),
    Column("text", String(100), nullable=False),
)


@pytest.fixture
def app(domain: Domain) -> Iterator[Domain]:
    """The application's own table next to the library's, in the same database."""
    app_metadata.create_all(domain.engine)
    try:
        yield domain
    finally:
        app_metadata.drop_all(domain.engine)


@pytest.fixture
def peer(
    domain: Domain, smarter_database_url: str, smarter_stack_redis_url: str | None
) -> Iterator[Domain]:
    """Another process's view: a second Domain (on the SQLite stack there is no shared
    tier, so the same Domain stands in)."""
    if smarter_stack_redis_url is None:
        yield domain
        return
    other = Domain(smarter_database_url, smarter_stack_redis_url)
    try:
        yield other
    finally:
        other.close()


@pytest.fixture
def signals() -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def record(sender: Any, **payload: Any) -> None:
        seen.append((payload["action"], getattr(payload["instance"], "username", "?")))

    cache_invalidate.connect(record)
    try:
        yield seen
    finally:
        cache_invalidate.disconnect(record)


@pytest.fixture
def committed(app: Domain) -> list[tuple[Change, ...]]:
    seen: list[tuple[Change, ...]] = []
    app.on_commit(lambda changes: seen.append(tuple(changes)))
    return seen


def note_count(domain: Domain) -> int:
    with domain.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(notes)) or 0)


def user_manifest(username: str, first_name: str = "First") -> dict[str, Any]:
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "User",
        "metadata": {"name": username, "username": username},
        "spec": {"accountNumber": "3141-5926-5358", "config": {"firstName": first_name}},
    }


def account_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "smarter.sh/v1",
        "kind": "Account",
        "metadata": {"name": "pi", "accountNumber": "3141-5926-5358"},
    }


def test_app_row_and_library_row_commit_together(
    app: Domain, peer: Domain, committed: list[tuple[Change, ...]]
) -> None:
    assert peer.users.get_by_username("joint") is None  # a cached miss, in every tier
    with Session(app.engine) as session:
        with app.unit_of_work(session=session) as uow:
            user = uow.users.add(username="joint")
            uow.commit()  # releases the savepoint only
        session.execute(notes.insert().values(user_id=user.id, text="hello"))
        # Nothing is durable yet: the cache reads committed data only, the hooks wait.
        assert peer.users.get_by_username("joint") is None
        assert app.users.get_by_username("joint") is None
        assert committed == []
        assert session.in_transaction()  # the library neither committed nor closed it
        session.commit()
    assert [c.action for c in committed[0]] == ["create"]
    assert len(committed) == 1
    assert peer.users.get_by_username("joint") == user
    assert app.users.get_by_username("joint") == user
    assert note_count(app) == 1


def test_a_rollback_of_the_app_undoes_both_and_publishes_nothing(
    app: Domain, peer: Domain, committed: list[tuple[Change, ...]], signals: list[Any]
) -> None:
    user = app.users.add(username="steady", first_name="Before")
    assert peer.users.get(user.id) == user  # cached
    actor = app.bootstrap()
    app.apply(account_manifest(), actor=actor)
    invalidations = peer.cache.stats.snapshot()["invalidations"]
    committed.clear()
    signals.clear()
    with Session(app.engine) as session:
        with app.unit_of_work(session=session) as uow:
            changed = uow.users.update(user.id, first_name="Uncommitted")
            uow.commit()
        session.execute(notes.insert().values(user_id=user.id, text="lost"))
        app.apply(user_manifest("newcomer"), actor=actor, session=session)
        assert peer.users.get(user.id) == user
        session.rollback()
    assert changed.first_name == "Uncommitted"
    assert committed == [] and signals == []
    assert peer.users.get(user.id) == user
    assert app.users.get(user.id) == user
    assert app.users.get_by_username("newcomer") is None
    assert note_count(app) == 0
    assert peer.cache.stats.snapshot()["invalidations"] == invalidations


def test_savepoints_of_the_app_keep_or_drop_what_they_hold(
    app: Domain, peer: Domain, committed: list[tuple[Change, ...]], signals: list[Any]
) -> None:
    actor = app.bootstrap()
    app.apply(account_manifest(), actor=actor)
    kept_before = app.users.add(username="kept", first_name="Before")
    assert peer.users.get(kept_before.id) == kept_before
    committed.clear()
    signals.clear()
    with Session(app.engine) as session:
        dropped = session.begin_nested()
        app.apply(user_manifest("dropped"), actor=actor, session=session)
        dropped.rollback()
        with session.begin_nested():  # released into the transaction
            app.apply(user_manifest("kept", "After"), actor=actor, session=session)
        inner = session.begin_nested()
        with session.begin_nested():
            app.apply(user_manifest("nested"), actor=actor, session=session)
        inner.rollback()  # takes the savepoint inside it along
        session.commit()
    assert app.users.get_by_username("dropped") is None
    assert app.users.get_by_username("nested") is None
    kept = app.users.get_by_username("kept")
    assert kept is not None and kept.first_name == "After"
    assert peer.users.get(kept_before.id) == kept  # the peer's entry was invalidated
    assert signals == [("apply", "kept")]
    usernames = [c.after.username for c in committed[0] if isinstance(c.after, User)]
    assert usernames == ["kept"]


def test_a_failed_apply_leaves_nothing_half_done_in_the_app_transaction(
    app: Domain, committed: list[tuple[Change, ...]], signals: list[Any]
) -> None:
    actor = app.bootstrap()
    app.apply(account_manifest(), actor=actor)
    member = app.apply(user_manifest("member"), actor=actor)
    stranger = UserBroker.of(app, actor, member)  # superuser: may act
    committed.clear()
    signals.clear()
    profile = app.profiles.get_for(member.id, app.accounts.get_by_number("3141-5926-5358").id)  # type: ignore[union-attr]
    assert profile is not None
    with Session(app.engine) as session:
        session.execute(notes.insert().values(user_id=member.id, text="stays"))
        with pytest.raises(PermissionDenied):
            # The first document is written, the second refused: both are undone.
            app.apply_all(
                [user_manifest("half"), user_manifest("member-2")],
                actor=profile,  # a plain member may not create users
                session=session,
            )
        assert session.in_transaction()
        stranger.session = session
        session.commit()
    assert app.users.get_by_username("half") is None
    assert note_count(app) == 1
    assert committed == [] and signals == []


def test_a_refused_prepare_fails_the_app_commit_and_commits_nothing(
    smarter_database_url: str, app: Domain
) -> None:
    """Strict consistency and a Redis that cannot be reached: the application's commit is
    refused with ``CacheUnavailable``, its own rows included."""
    dead = Domain(smarter_database_url, f"redis://127.0.0.1:{free_port()}/0")
    try:
        with Session(dead.engine) as session:
            with dead.unit_of_work(session=session) as uow:
                user = uow.users.add(username="refused")
                uow.commit()
            session.execute(notes.insert().values(user_id=user.id, text="refused too"))
            with pytest.raises(CacheUnavailable):
                session.commit()
            session.rollback()
            # The session is the application's and still usable.
            assert session.execute(select(func.count()).select_from(notes)).scalar() == 0
        assert app.users.get_by_username("refused") is None
        assert note_count(app) == 0
    finally:
        dead.close()


def test_one_session_many_transactions_each_publishes_its_own(
    app: Domain, committed: list[tuple[Change, ...]]
) -> None:
    with Session(app.engine) as session:
        with app.unit_of_work(session=session) as uow:
            uow.users.add(username="first")
            uow.commit()
        session.commit()
        with app.unit_of_work(session=session) as uow:
            uow.users.add(username="gone")
            uow.commit()
        session.rollback()
        with app.unit_of_work(session=session) as uow:
            uow.users.add(username="second")
            uow.commit()
        session.close()  # ends the transaction without a commit: nothing published
        with app.unit_of_work(session=session) as uow:
            uow.users.add(username="third")
            uow.commit()
        session.commit()
    names = [[c.after.username for c in changes] for changes in committed]  # type: ignore[union-attr]
    assert names == [["first"], ["third"]]
    assert app.users.get_by_username("second") is None


def test_leaving_the_block_without_commit_rolls_back_only_its_savepoint(
    app: Domain, committed: list[tuple[Change, ...]]
) -> None:
    with Session(app.engine) as session:
        with app.unit_of_work(session=session) as uow:
            user = uow.users.add(username="mine")
            uow.commit()
        with app.unit_of_work(session=session) as uow:
            uow.users.add(username="abandoned")  # no commit(): rolled back to its savepoint
        session.execute(notes.insert().values(user_id=user.id, text="note"))
        session.commit()
    assert app.users.get_by_username("mine") == user
    assert app.users.get_by_username("abandoned") is None
    assert [[c.after.username for c in changes] for changes in committed] == [["mine"]]  # type: ignore[union-attr]


def test_two_domains_joining_one_session_each_publish_their_own(
    app: Domain, smarter_database_url: str
) -> None:
    other = Domain(smarter_database_url)
    seen: list[str] = []
    app.on_commit(lambda changes: seen.extend(f"app:{c.after.username}" for c in changes))  # type: ignore[union-attr]
    other.on_commit(lambda changes: seen.extend(f"other:{c.after.username}" for c in changes))  # type: ignore[union-attr]
    try:
        with Session(app.engine) as session:
            with app.unit_of_work(session=session) as uow:
                uow.users.add(username="a")
                uow.commit()
            with other.unit_of_work(session=session) as uow:
                uow.users.add(username="b")
                uow.commit()
            session.commit()
    finally:
        other.close()
    assert sorted(seen) == ["app:a", "other:b"]


def test_an_app_commit_inside_the_block_publishes_what_was_done(
    app: Domain, peer: Domain, committed: list[tuple[Change, ...]]
) -> None:
    """The application commits while the unit of work is still open: what the unit had
    written is durable, so it is invalidated right then, not lost with the savepoint."""
    user = app.users.add(username="early", first_name="Before")
    assert peer.users.get(user.id) == user
    committed.clear()
    with Session(app.engine) as session:
        with app.unit_of_work(session=session) as uow:
            uow.users.update(user.id, first_name="After")
            session.commit()
            fresh = peer.users.get(user.id)
            assert fresh is not None and fresh.first_name == "After"
            uow.commit()  # nothing left to release: no error
        session.commit()
    assert [[c.action for c in changes] for changes in committed] == [["update"]]


# What an adversarial review found (each failed before its fix).


def test_the_outermost_commit_with_a_savepoint_still_open_is_invalidated(
    app: Domain, peer: Domain
) -> None:
    """``session.begin()`` commits the outermost transaction with the application's savepoint
    still open: SQLAlchemy fires its ``before_commit`` then, like a savepoint's release. The
    change is invalidated right after the commit instead of being lost."""
    user = app.users.add(username="rooted", first_name="Before")
    assert peer.users.get(user.id) == user
    with Session(app.engine) as session, session.begin():
        session.begin_nested()
        with app.unit_of_work(session=session) as uow:
            uow.users.update(user.id, first_name="After")
            uow.commit()
    assert peer.users.get(user.id).first_name == "After"  # type: ignore[union-attr]
    with Session(app.engine) as session:
        transaction = session.begin()
        with app.unit_of_work(session=session) as uow:
            uow.users.update(user.id, first_name="Again")
            transaction.commit()  # the transaction object's commit, mid-block
            uow.commit()
    assert peer.users.get(user.id).first_name == "Again"  # type: ignore[union-attr]


def test_a_write_by_another_before_commit_listener_is_invalidated(
    app: Domain, peer: Domain
) -> None:
    user = app.users.add(username="listened", first_name="Before")
    assert peer.users.get(user.id) == user
    with Session(app.engine) as session:
        with app.unit_of_work(session=session) as uow:
            uow.users.add(username="first-write")
            uow.commit()

        def touch(s: Session) -> None:
            if s.get_nested_transaction() is None and not s.info.get("touched"):
                s.info["touched"] = True
                with app.unit_of_work(session=s) as late:
                    late.users.update(user.id, first_name="After")
                    late.commit()

        event.listen(session, "before_commit", touch)
        session.commit()
    assert peer.users.get(user.id).first_name == "After"  # type: ignore[union-attr]


def test_a_scoped_session_is_joined_and_leaves_no_listeners_behind(
    app: Domain, peer: Domain
) -> None:
    user = app.users.add(username="scoped", first_name="Before")
    assert peer.users.get(user.id) == user
    factory = sessionmaker(app.engine)
    scoped = scoped_session(factory)
    listeners = len(list(factory().dispatch.before_commit))
    for n in range(3):
        with app.unit_of_work(session=scoped) as uow:
            uow.users.update(user.id, first_name=f"After{n}")
            uow.commit()
        scoped.commit()
        scoped.remove()
    assert peer.users.get(user.id).first_name == "After2"  # type: ignore[union-attr]
    assert len(list(factory().dispatch.before_commit)) == listeners
    with pytest.raises(ConfigurationError):
        app.unit_of_work(session="not a session")  # type: ignore[arg-type]


def test_a_failed_release_leaves_the_app_transaction_usable(app: Domain) -> None:
    """The application's own pending object breaks the flush of ``uow.commit()``: the unit's
    savepoint is rolled back, and the application's earlier work can still be committed."""
    taken = app.users.add(username="taken")
    with Session(app.engine) as session:
        session.execute(notes.insert().values(user_id=taken.id, text="the app's own work"))

        def work() -> None:
            with app.unit_of_work(session=session) as uow:
                uow.users.add(username="mine-too")
                session.add(UserRow(username="taken"))  # the application's mistake
                uow.commit()

        with pytest.raises(ConflictError):
            work()
        session.commit()
    assert note_count(app) == 1
    assert app.users.get_by_username("mine-too") is None


def test_writes_after_an_app_commit_inside_the_block_still_roll_back_with_it(
    app: Domain, committed: list[tuple[Change, ...]]
) -> None:
    with Session(app.engine) as session:

        def work() -> None:
            with app.unit_of_work(session=session) as uow:
                uow.users.add(username="before-the-app-commit")
                session.commit()
                uow.users.add(username="after-the-app-commit")
                raise RuntimeError("the block fails: no uow.commit()")

        with pytest.raises(RuntimeError):
            work()
        session.commit()
    assert app.users.get_by_username("after-the-app-commit") is None
    names = [[c.after.username for c in changes] for changes in committed]  # type: ignore[union-attr]
    assert names == [["before-the-app-commit"]]


@pytest.mark.smarter_backends("postgresql")  # SQLite: the parent's open write locks the file
def test_a_session_made_with_another_sessions_info_publishes_its_own(
    app: Domain, peer: Domain
) -> None:
    user = app.users.add(username="copied", first_name="Before")
    assert peer.users.get(user.id) == user
    with Session(app.engine) as parent:
        with app.unit_of_work(session=parent) as uow:
            uow.users.add(username="parent-write")
            uow.commit()
        with Session(app.engine, info=parent.info) as child:
            with app.unit_of_work(session=child) as uow:
                uow.users.update(user.id, first_name="After")
                uow.commit()
            child.commit()
        assert peer.users.get(user.id).first_name == "After"  # type: ignore[union-attr]
        parent.rollback()
    assert app.users.get_by_username("parent-write") is None


def test_nothing_of_a_domain_stays_in_a_long_lived_session(app: Domain) -> None:
    with Session(app.engine) as session:
        for n in range(5):
            with app.unit_of_work(session=session) as uow:
                uow.users.add(username=f"long-{n}")
                uow.commit()
            if n % 2:
                session.rollback()
            else:
                session.commit()
        assert not session.info.get("smarter_domain.publishers")


@pytest.mark.parametrize("mode", ["conditional_savepoint", "rollback_only", "create_savepoint"])
def test_a_session_on_an_external_transaction_invalidates_at_its_real_commit(
    app: Domain, peer: Domain, smarter_backend: str, mode: str
) -> None:
    """``Session(bind=connection)`` on a connection whose transaction the session does not
    own: ``session.commit()`` is not durable. Another process may cache the old row in
    between; the connection's own commit invalidates again."""
    if smarter_backend == "sqlite" and mode == "create_savepoint":
        pytest.skip("pysqlite turns the release of the session's outermost savepoint into a commit")
    user = app.users.add(username="external", first_name="Before")
    assert peer.users.get(user.id) == user
    with app.engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode=mode)  # type: ignore[arg-type]
        with app.unit_of_work(session=session) as uow:
            uow.users.update(user.id, first_name="After")
            uow.commit()
        session.commit()
        peer.cache.clear_memory()
        assert peer.users.get(user.id).first_name == "Before"  # type: ignore[union-attr]
        session.close()
        outer.commit()
    assert peer.users.get(user.id).first_name == "After"  # type: ignore[union-attr]
