"""Hostile input and a failing database (issue 12): integrity on every SQLite engine, text and
ids the database cannot hold, and every database failure as the library's typed error, with
nothing half-written. Errors are read from ``smarter_domain.model.errors`` when a test runs, so
on an older checkout each test fails on its own behaviour."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import smarter_domain as sd
from smarter_domain import Domain, UserBroker
from smarter_domain.cache import codec
from smarter_domain.migrations import downgrade, upgrade
from smarter_domain.model import errors
from smarter_domain.testing import AccountFactory, UserFactory, UserProfileFactory

UNREACHABLE = "postgresql://u:s3cret@127.0.0.1:1/x"  # a closed port
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(domain: Domain) -> tuple[Any, ...]:
    inner = (domain.accounts.inner, domain.users.inner, domain.profiles.inner)
    return inner[0].list_all(), inner[1].list_all(), inner[2].list_all()


def fake_actor() -> sd.UserProfile:
    """A profile entity for a database that cannot say who anyone is."""
    account = sd.Account(
        id=1, account_number="3141-5926-5359", name="x", created_at=NOW, updated_at=NOW
    )
    user = sd.User(id=1, username="admin", date_joined=NOW, is_superuser=True, is_staff=True)
    return sd.UserProfile(id=1, user=user, account=account, created_at=NOW, updated_at=NOW)


# 1. integrity: foreign keys on every SQLite engine ----------------------------------------


@pytest.mark.smarter_backends("sqlite")
def test_an_injected_sqlite_engine_enforces_foreign_keys(smarter_database_url: str) -> None:
    engine = create_engine(smarter_database_url)
    with engine.connect() as connection:  # pooled before the Domain exists
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 0
    with Domain(engine=engine) as domain:
        account = domain.accounts.add(name="acme")
        doomed = domain.users.add(username="doomed")
        domain.profiles.add(user_id=doomed.id, account_id=account.id, name="doomed-acme")
        domain.users.delete(doomed.id)
        assert domain.profiles.inner.list_all() == []
        heir = domain.users.add(username="heir")  # SQLite hands out the freed id again
        assert domain.profiles.inner.list_for_user(heir.id) == []
        assert domain.users.inner.list_for_account(account.id) == []
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


@pytest.mark.smarter_backends("sqlite")
def test_an_engine_whose_foreign_keys_cannot_be_enabled_is_refused(
    smarter_database_url: str,
) -> None:
    engine = create_engine(smarter_database_url)

    @event.listens_for(engine, "checkout")
    def in_a_transaction(dbapi_connection: sqlite3.Connection, *_: Any) -> None:
        dbapi_connection.isolation_level = None
        if not dbapi_connection.in_transaction:  # SQLite ignores the pragma in a transaction
            dbapi_connection.execute("BEGIN")

    with Domain(engine=engine) as domain, pytest.raises(sd.ConfigurationError):
        domain.accounts.inner.list_all()
    engine.dispose()


# 2. text the database cannot hold ---------------------------------------------------------

BAD_TEXT = ["nul\x00byte", "lone\ud800surrogate"]


@pytest.mark.parametrize("bad", BAD_TEXT, ids=["nul", "surrogate"])
def test_unstorable_text_is_a_validation_error_naming_the_field(domain: Domain, bad: str) -> None:
    account = AccountFactory(name="acme")
    user = UserFactory(username="jdoe")
    profile = UserProfileFactory(user=UserFactory(username="pat"), account=account)
    before = snapshot(domain)
    attempts: list[tuple[str, Any]] = [
        ("name", lambda: domain.accounts.add(name=bad)),
        ("city", lambda: domain.accounts.add(name="ok", city=bad)),
        ("description", lambda: domain.accounts.update(account.id, description=bad)),
        ("email", lambda: domain.users.add(username="newbie", email=bad)),
        ("first_name", lambda: domain.users.update(user.id, first_name=bad)),
        (
            "name",
            lambda: domain.profiles.add(user_id=user.id, account_id=account.id, name=bad),
        ),
        ("description", lambda: domain.profiles.update(profile.id, description=bad)),
        ("tags", lambda: domain.accounts.update(account.id, tags=["fine", bad])),
        ("annotations", lambda: domain.users.update(user.id, annotations={"k": bad})),
        ("annotations", lambda: domain.profiles.update(profile.id, annotations={bad: "v"})),
    ]
    for field, attempt in attempts:
        with pytest.raises(sd.ValidationError) as info:
            attempt()
        assert field in info.value.errors, (field, info.value.errors)
    with domain.unit_of_work() as uow, pytest.raises(sd.ValidationError):
        uow.accounts.add(name=bad)
    assert snapshot(domain) == before


@pytest.mark.parametrize("bad", BAD_TEXT, ids=["nul", "surrogate"])
def test_lookups_of_unstorable_text_find_nothing(
    domain: Domain, bad: str, count_queries: Any
) -> None:
    UserFactory(username="jdoe")
    with count_queries() as counter:  # not even asked
        assert domain.users.inner.get_by_username(bad) is None
        assert domain.accounts.inner.get_by_number(bad) is None
    assert counter.count == 0
    repositories: list[tuple[Any, Any]] = [
        (domain.users, domain.accounts),  # cached: the key of such text must not fail either
        (domain.users.inner, domain.accounts.inner),
    ]
    with domain.unit_of_work() as uow:
        repositories.append((uow.users, uow.accounts))
        for users, accounts in repositories:
            assert users.get_by_username(bad) is None
            assert users.get_by_username("jdoe" + bad) is None
            assert accounts.get_by_number(bad) is None
    assert domain.users.inner.get_by_username("jdoe") is not None


# 2. ids the database cannot hold ----------------------------------------------------------

OUT_OF_RANGE = [2**31, -(2**31) - 1, 2**63, 2**64, -(2**70)]
NOT_AN_INT: list[Any] = [True, "1", 1.0]


@pytest.fixture
def populated(domain: Domain) -> sd.UserProfile:
    return UserProfileFactory()


@pytest.mark.parametrize("bad", OUT_OF_RANGE + NOT_AN_INT, ids=repr)
def test_lookups_of_impossible_ids_find_nothing(
    domain: Domain, populated: sd.UserProfile, bad: Any
) -> None:
    def check(accounts: Any, users: Any, profiles: Any) -> None:
        for repository in (accounts, users, profiles):
            assert repository.get(bad) is None
            assert repository.get_many([bad]) == {}
        assert accounts.get_many([bad, populated.account.id]) == {
            populated.account.id: populated.account
        }
        assert profiles.get_for(bad, populated.account.id) is None
        assert profiles.get_for(populated.user.id, bad) is None
        assert users.list_for_account(bad) == []
        assert profiles.list_for_account(bad) == []
        assert profiles.list_for_user(bad) == []

    check(domain.accounts.inner, domain.users.inner, domain.profiles.inner)
    with domain.unit_of_work() as uow:
        check(uow.accounts, uow.users, uow.profiles)
    if type(bad) is int:  # the cached repositories key a non-int id like an int: inner only
        check(domain.accounts, domain.users, domain.profiles)
    assert domain.utils.get_cached_user_for_user_id(bad) is None


def test_a_str_id_does_not_poison_the_cached_entry_of_the_int_id(
    domain: Domain, populated: sd.UserProfile
) -> None:
    user_id = populated.user.id
    assert domain.users.get(str(user_id)) is None  # type: ignore[arg-type]
    assert domain.users.get(user_id) == populated.user


@pytest.mark.parametrize("bad", OUT_OF_RANGE, ids=repr)
def test_writes_to_out_of_range_ids_are_not_found(
    domain: Domain, populated: sd.UserProfile, bad: int
) -> None:
    before = snapshot(domain)
    with pytest.raises(sd.AccountNotFound):
        domain.accounts.update(bad, city="x")
    with pytest.raises(sd.UserNotFound):
        domain.users.update(bad, first_name="x")
    with pytest.raises(sd.UserProfileNotFound):
        domain.profiles.update(bad, description="x")
    for repository, not_found in (
        (domain.accounts, sd.AccountNotFound),
        (domain.users, sd.UserNotFound),
        (domain.profiles, sd.UserProfileNotFound),
    ):
        with pytest.raises(not_found):
            repository.delete(bad)
    with pytest.raises(sd.UserNotFound):
        domain.profiles.add(user_id=bad, account_id=populated.account.id)
    with pytest.raises(sd.AccountNotFound):
        domain.profiles.add(user_id=populated.user.id, account_id=bad)
    assert snapshot(domain) == before


@pytest.mark.parametrize("bad", NOT_AN_INT, ids=repr)
def test_writes_to_non_int_ids_are_validation_errors(
    domain: Domain, populated: sd.UserProfile, bad: Any
) -> None:
    before = snapshot(domain)
    with pytest.raises(sd.ValidationError):
        domain.accounts.update(bad, city="x")
    with pytest.raises(sd.ValidationError):
        domain.users.delete(bad)
    with pytest.raises(sd.ValidationError) as info:
        domain.profiles.add(user_id=bad, account_id=populated.account.id)
    assert "user_id" in info.value.errors
    with pytest.raises(sd.ValidationError) as info:
        domain.profiles.add(user_id=populated.user.id, account_id=bad)
    assert "account_id" in info.value.errors
    assert snapshot(domain) == before


# 2. a database that was never migrated, or is behind -------------------------------------


def _assert_every_path_says_migrate(domain: Domain) -> None:
    calls: list[Any] = [
        lambda: domain.users.get(1),
        lambda: domain.accounts.get_by_number("1234-5678-9012"),
        lambda: domain.profiles.list_for_account(1),
        lambda: domain.accounts.add(name="acme"),
        lambda: domain.users.add(username="jdoe"),
        lambda: domain.utils.get_cached_user_for_username("jdoe"),
        lambda: domain.utils.get_cached_default_account(),
        lambda: domain.bootstrap(),
        lambda: UserBroker(domain, actor=fake_actor()).get(),
        lambda: domain.apply(
            {"apiVersion": "smarter.sh/v1", "kind": "Account", "metadata": {"name": "acme"}},
            actor=fake_actor(),
        ),
    ]
    for call in calls:
        with pytest.raises(errors.NotMigratedError) as info:
            call()
        message = str(info.value)
        assert "domain.migrate()" in message and "smarter-domain migrate" in message
        assert isinstance(info.value.__cause__, Exception)


def test_a_database_that_was_never_migrated_says_so(
    smarter_empty_database_url: str, smarter_stack_redis_url: str | None
) -> None:
    with Domain(smarter_empty_database_url, smarter_stack_redis_url) as domain:
        _assert_every_path_says_migrate(domain)
        domain.migrate()
        domain.bootstrap()
        assert domain.utils.get_cached_user_for_username("admin").is_superuser


def test_a_database_behind_the_code_says_so(
    smarter_empty_database_url: str, smarter_stack_redis_url: str | None
) -> None:
    with Domain(smarter_empty_database_url, smarter_stack_redis_url) as domain:
        domain.migrate("0001")
        _assert_every_path_says_migrate(domain)
        domain.migrate()
        assert domain.accounts.add(name="acme").tags == ()


def test_migration_0002_keeps_existing_rows(smarter_empty_database_url: str) -> None:
    with Domain(smarter_empty_database_url) as domain:
        upgrade(domain.engine, "0001")
        with domain.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO smarter_account (id, account_number, name, description, "
                    "company_name, is_default_account, is_active, phone_number, address1, "
                    "address2, city, state, postal_code, country, language, timezone, "
                    "currency, created_at, updated_at, version) VALUES (7, '1234-5678-9012', "
                    "'old', '', '', false, true, '', '', '', '', '', '', '', '', '', '', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
                )
            )
        domain.migrate()
        old = domain.accounts.get(7)
        assert old is not None and (old.tags, old.annotations) == ((), ())
        domain.accounts.update(7, tags=["a"], annotations={"k": "v"})
        downgrade(domain.engine, "0001")
        domain.migrate()
        assert domain.accounts.inner.get(7).tags == ()  # type: ignore[union-attr]


# 2. a database that cannot be reached, or fails ----------------------------------------


def test_an_unreachable_database_is_a_database_error_without_the_password() -> None:
    with Domain(UNREACHABLE) as domain:
        calls: list[Any] = [
            lambda: domain.users.get(1),
            lambda: domain.users.get_by_username("jdoe"),
            lambda: domain.accounts.list_all(),
            lambda: domain.accounts.add(name="acme"),
            lambda: domain.utils.get_cached_user_for_username("jdoe"),
            lambda: domain.utils.get_users_for_account(fake_actor().account),
            lambda: UserBroker(domain, actor=fake_actor()).get(),
            lambda: UserBroker(domain, actor=fake_actor(), user=fake_actor().user).describe(),
            lambda: domain.bootstrap(),
        ]
        for call in calls:
            with pytest.raises(errors.DatabaseError) as info:
                call()
            assert not isinstance(info.value, errors.NotMigratedError)
            assert "PostgreSQL" in str(info.value)
            assert "s3cret" not in str(info.value)
            assert isinstance(info.value.__cause__, OperationalError)
        with pytest.raises(errors.DatabaseError), domain.unit_of_work() as uow:
            uow.accounts.get(1)


def test_migrating_an_unreachable_database_is_a_database_error() -> None:
    with Domain(UNREACHABLE) as domain, pytest.raises(errors.DatabaseError) as info:
        domain.migrate()
    assert "s3cret" not in str(info.value)
    assert isinstance(info.value.__cause__, OperationalError)


def test_a_malformed_database_url_is_a_configuration_error() -> None:
    with pytest.raises(sd.ConfigurationError) as info:
        Domain("postgresql://u:s3cret@host:port/db")
    assert "s3cret" not in str(info.value)


@pytest.mark.smarter_backends("sqlite")
def test_a_locked_sqlite_database_is_a_database_error(smarter_database_url: str) -> None:
    engine = create_engine(smarter_database_url, connect_args={"timeout": 0.1})
    locker = sqlite3.connect(smarter_database_url.removeprefix("sqlite:///"))
    with Domain(engine=engine) as domain:
        account = domain.accounts.add(name="acme")
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(errors.DatabaseError, match="SQLite") as info:
                domain.accounts.update(account.id, city="Boston")
            assert "locked" in str(info.value)
            with pytest.raises(errors.DatabaseError):
                domain.accounts.get_default()
        finally:
            locker.rollback()
            locker.close()
        assert domain.accounts.inner.get(account.id) == account
    engine.dispose()


@pytest.mark.smarter_backends("postgresql")
def test_a_postgresql_lock_timeout_is_a_database_error(smarter_database_url: str) -> None:
    options = {"connect_args": {"options": "-c lock_timeout=100"}}
    with Domain(smarter_database_url, engine_options=options) as domain:
        account = domain.accounts.add(name="acme")
        holder = create_engine(smarter_database_url)
        with holder.begin() as connection:
            connection.execute(
                text("SELECT id FROM smarter_account WHERE id = :id FOR UPDATE"),
                {"id": account.id},
            )
            with pytest.raises(errors.DatabaseError, match="PostgreSQL"):
                domain.accounts.update(account.id, city="Boston")
        holder.dispose()
        assert domain.accounts.inner.get(account.id) == account


@pytest.mark.smarter_backends("postgresql")
def test_a_data_error_is_a_validation_error(domain: Domain) -> None:
    from smarter_domain.adapters.repositories import translated_errors

    with (
        pytest.raises(sd.ValidationError) as info,
        translated_errors(),
        domain.engine.connect() as connection,
    ):
        connection.execute(text("SELECT CAST('x' AS integer)"))
    assert "database" in info.value.errors


@pytest.mark.smarter_backends("postgresql")
def test_a_connection_killed_mid_transaction(domain: Domain) -> None:
    before = snapshot(domain)
    killer = create_engine(str(domain.engine.url.render_as_string(hide_password=False)))

    def kill(session: Session) -> None:
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
        with killer.begin() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    def die_then_fail() -> None:
        with domain.unit_of_work() as uow:
            uow.accounts.add(name="acme")
            kill(uow.session)
            raise RuntimeError("the original")

    def die_then_commit() -> None:
        with domain.unit_of_work() as uow:
            uow.accounts.add(name="acme")
            kill(uow.session)
            uow.commit()

    # The block's own error goes on, whatever the rollback of a dead connection does.
    with pytest.raises(RuntimeError, match="the original"):
        die_then_fail()
    # A commit on a dead connection is a DatabaseError, and nothing is written.
    with pytest.raises(errors.DatabaseError):
        die_then_commit()
    killer.dispose()
    assert snapshot(domain) == before


@pytest.fixture
def broken_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    def rollback(self: Session) -> None:
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Session, "rollback", rollback)


def test_a_failing_rollback_does_not_mask_the_original_error(
    domain: Domain, broken_rollback: None
) -> None:
    def read_then_fail() -> None:
        with domain.unit_of_work() as uow:
            uow.accounts.get(1)
            raise KeyError("the original")

    with pytest.raises(KeyError, match="the original"):
        read_then_fail()
    with pytest.raises(sd.ConflictError), domain.unit_of_work():
        raise sd.ConflictError("the original")
    # With nothing else to report, the failed rollback itself is the (typed) error.
    with pytest.raises(errors.DatabaseError), domain.unit_of_work():
        pass


# entities with tags and annotations in the cache format -----------------------------------


def test_entities_with_metadata_round_trip_through_the_cache_codec() -> None:
    profile = fake_actor()
    user = sd.User(
        id=2, username="kim", date_joined=NOW, tags=("a", "b"), annotations=(("k", "v"),)
    )
    tagged = sd.UserProfile(
        id=3,
        user=user,
        account=profile.account,
        created_at=NOW,
        updated_at=NOW,
        tags=("x",),
        annotations=(("team", "red"), ("env", "prod")),
    )
    for entity in (user, tagged, [user, tagged]):
        decoded = codec.loads(codec.dumps(entity))
        assert decoded == entity
    assert hash(codec.loads(codec.dumps(tagged))) == hash(tagged)
    # An entry written before these fields existed still decodes, with empty metadata.
    old = codec.MAGIC + msgspec.msgpack.encode(
        {"User": {"id": 2, "username": "kim", "date_joined": NOW, "version": 3}}
    )
    assert codec.loads(old) == sd.User(id=2, username="kim", date_joined=NOW, version=3)


def test_cached_profiles_keep_tags_and_annotations(domain: Domain) -> None:
    profile = UserProfileFactory(tags=["t"], annotations={"k": "v"})
    assert domain.profiles.get(profile.id) == profile
    assert domain.profiles.get(profile.id) == profile  # from the cache


def test_repositories_store_tags_and_annotations(domain: Domain) -> None:
    account = domain.accounts.add(name="acme", tags=["b", "a"], annotations={"z": "1", "a": "2"})
    assert (account.tags, account.annotations) == (("b", "a"), (("z", "1"), ("a", "2")))
    user = domain.users.add(username="kim", tags=("x",), annotations=[("k", "v")])
    profile = domain.profiles.add(
        user_id=user.id, account_id=account.id, tags=["t"], annotations={"k": "v"}
    )
    assert domain.accounts.get(account.id) == account
    assert domain.users.get(user.id) == user
    assert domain.profiles.inner.get(profile.id) == profile
    updated = domain.users.update(user.id, tags=[], annotations={})
    assert (updated.tags, updated.annotations, updated.version) == ((), (), 2)
    for bad in ({"tags": "abc"}, {"tags": [1]}, {"annotations": [("k",)]}, {"annotations": 3}):
        with pytest.raises(sd.ValidationError):
            domain.accounts.update(account.id, **bad)
    with pytest.raises(sd.ValidationError):
        domain.accounts.update(account.id, annotations=[("k", "1"), ("k", "2")])
