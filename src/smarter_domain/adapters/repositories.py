"""SQLAlchemy implementations of the repository interfaces.

A repository runs inside a ``Scope``: either a unit of work (every call shares its session
and its transaction) or an auto-commit scope (each read gets a short session, each write its
own unit of work). Every read is one indexed query; profiles load their user and account in
the same statement.

Every failure of the database reaches callers as the library's typed error, with the driver's
exception chained (``translated_errors``); what cannot be stored (text with NUL characters or
lone surrogates, ids outside the integer columns' range) is rejected before any SQL runs, and a
lookup of it simply finds nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from sqlalchemy import JSON, Boolean, Select, String, bindparam, select, true
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    PendingRollbackError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.exc import StaleDataError
from typing_extensions import Unpack

from ..model.account_number import generate_account_number, validate_account_number
from ..model.changes import Change
from ..model.entities import (
    ID_MAX,
    ID_MIN,
    USERNAME_PATTERN,
    Account,
    User,
    UserProfile,
    is_valid_id,
)
from ..model.errors import (
    AccountNotFound,
    ConflictError,
    DatabaseError,
    NotFoundError,
    NotMigratedError,
    SmarterError,
    UserNotFound,
    UserProfileNotFound,
    ValidationError,
)
from ..model.fields import AccountChanges, AccountFields, UserFields, UserProfileFields
from ..model.text import text_problem
from .orm import AccountRow, Base, UserProfileRow, UserRow, UTCDateTime

TAG_MAX_LENGTH = 255
ANNOTATION_KEY_MAX_LENGTH = 255
ANNOTATION_VALUE_MAX_LENGTH = 4096


def is_storable_text(value: object) -> bool:
    """A str the database can compare: lookups of anything else find nothing, unasked."""
    return isinstance(value, str) and text_problem(value) is None


def require_id(value: object, field: str, not_found: type[NotFoundError], what: str) -> int:
    """The id of a row a write needs: ValidationError for a non-int, ``not_found`` for an int
    no row can have."""
    if type(value) is not int:
        raise ValidationError(
            f"invalid {what} id", {field: f"must be an int, got {type(value).__name__}"}
        )
    if not ID_MIN <= value <= ID_MAX:
        raise not_found(f"no {what} with id {value}")
    return value


class Writer(Protocol):
    """The part of a unit of work a repository writes through."""

    @property
    def session(self) -> Session: ...

    def record(self, change: Change) -> None: ...


class Scope(Protocol):
    def reading(self) -> AbstractContextManager[Session]: ...

    def writing(self) -> AbstractContextManager[Writer]: ...


RowT = TypeVar("RowT", bound=Base)
EntityT = TypeVar("EntityT", Account, User, UserProfile)


def conflict_from(exc: IntegrityError) -> SmarterError:
    """Translate a driver's constraint violation into the library's typed error."""
    lowered = str(exc.orig).lower()
    text = _detail(exc)  # what is shown: the first line, no credentials, statement or values
    if "foreign key" in lowered:
        return ConflictError("a referenced row was deleted concurrently", {"reference": text})
    rules = (
        ("default", "is_default_account", "another account is already the default account"),
        ("account_number", "account_number", "is already taken"),
        ("username", "username", "is already taken"),
        ("user_id", "profile", "the user already has a profile in this account"),
    )
    for needle, field, problem in rules:
        if needle in lowered:
            return ConflictError("the write breaks a uniqueness rule", {field: problem})
    return ConflictError("the write breaks a database constraint", {"database": text})


NOT_MIGRATED_SQLSTATES = frozenset({"42P01", "42703"})
"""PostgreSQL's undefined_table and undefined_column."""
_SQLITE_NOT_MIGRATED = ("no such table", "no such column", "has no column named")
_SECRETS = (
    (re.compile(r"(://[^/\s:@]*:)[^@\s]*@"), r"\1***@"),  # scheme://user:password@host
    (re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE), r"\1***"),  # key=value
)


def _backend(exc: DBAPIError) -> str:
    module = type(exc.orig).__module__
    if module.startswith("sqlite3"):
        return "SQLite"
    if module.startswith(("psycopg", "pg8000", "asyncpg")):
        return "PostgreSQL"
    return module.partition(".")[0] or "database"


def _detail(exc: DBAPIError) -> str:
    """The driver's message, first line only, without credentials, statement or parameters."""
    lines = str(exc.orig).strip().splitlines()
    text = lines[0] if lines else type(exc.orig).__name__
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text[:300]


def _is_not_migrated(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in NOT_MIGRATED_SQLSTATES:
        return True
    message = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and any(m in message for m in _SQLITE_NOT_MIGRATED)


def database_error_from(exc: DBAPIError) -> SmarterError:
    """The library's typed error for any error the driver raised."""
    if isinstance(exc, IntegrityError):
        return conflict_from(exc)
    if isinstance(exc, DataError):
        return ValidationError("the database refused a value", {"database": _detail(exc)})
    backend = _backend(exc)
    if _is_not_migrated(exc):
        return NotMigratedError(
            f"the {backend} database has no smarter-domain schema, or an older one: run "
            "domain.migrate() or `smarter-domain migrate`"
        )
    return DatabaseError(f"the {backend} database failed: {_detail(exc)}")


@contextmanager
def translated_errors() -> Iterator[None]:
    """Every error of the database layer, as the library's typed error (cause chained): the one
    place reads, writes, commits and rollbacks translate them."""
    try:
        yield
    except DBAPIError as exc:
        raise database_error_from(exc) from exc
    except StaleDataError as exc:
        raise ConflictError(
            "the row was changed or deleted by a concurrent write", {"version": str(exc)}
        ) from exc
    except PendingRollbackError as exc:
        raise DatabaseError(
            "the transaction failed earlier and was rolled back: start a new unit of work"
        ) from exc
    except PoolTimeoutError as exc:
        raise DatabaseError(f"no database connection became free in time: {exc}") from exc
    except OSError as exc:
        # A driver that does not wrap what its connect raises (asyncpg: a refused or timed
        # out connection is the socket's own error).
        raise DatabaseError(f"the database cannot be reached: {type(exc).__name__}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):  # its own errors, unwrapped at connect
            raise DatabaseError(f"the PostgreSQL database failed: {type(exc).__name__}") from exc
        raise


def check_fields(
    row_type: type[Base],
    values: Mapping[str, object],
    allowed: frozenset[str],
    immutable: frozenset[str] = frozenset(),
) -> None:
    """Reject unknown, immutable and ill-typed fields, all at once, before any SQL runs."""
    errors: dict[str, str] = {}
    columns = row_type.__table__.c
    for key, value in values.items():
        if key in immutable:
            errors[key] = "cannot be changed once set"
            continue
        if key not in allowed:
            errors[key] = "unknown field"
            continue
        column_type = columns[key].type
        if value is None:
            if not columns[key].nullable:
                errors[key] = "may not be null"
        elif isinstance(column_type, JSON):
            problem = _metadata_problem(key, value)
            if problem is not None:
                errors[key] = problem
        elif isinstance(column_type, Boolean):
            if not isinstance(value, bool):
                errors[key] = f"must be a bool, got {type(value).__name__}"
        elif isinstance(column_type, UTCDateTime):
            if not isinstance(value, datetime) or value.tzinfo is None:
                errors[key] = "must be a timezone-aware datetime"
        elif isinstance(column_type, String) and not isinstance(value, str):
            errors[key] = f"must be a string, got {type(value).__name__}"
        elif isinstance(column_type, String) and (problem := text_problem(str(value))):
            errors[key] = problem
        elif (
            isinstance(column_type, String)
            and column_type.length is not None
            and len(str(value)) > column_type.length
        ):
            errors[key] = f"at most {column_type.length} characters"
    if errors:
        raise ValidationError(f"invalid {row_type.__tablename__} fields", errors)


def _text_problem(value: object, max_length: int) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > max_length:
        return f"at most {max_length} characters"
    return text_problem(value)


def _annotation_pairs(value: object) -> list[Any] | None:
    """The (key, value) pairs of a mapping or of a sequence of pairs; None for anything else."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in value
    ):
        return list(value)
    return None


def _metadata_problem(key: str, value: object) -> str | None:
    """What is wrong with ``tags`` (strings) or ``annotations`` (string pairs), if anything."""
    if key == "tags":
        if not isinstance(value, list | tuple):
            return f"must be a sequence of strings, got {type(value).__name__}"
        for index, tag in enumerate(value):
            problem = _text_problem(tag, TAG_MAX_LENGTH)
            if problem is not None:
                return f"tag {index} {problem}"
        return None
    pairs = _annotation_pairs(value)
    if pairs is None:
        return f"must be a mapping of strings, got {type(value).__name__}"
    seen: set[str] = set()
    for name, text in pairs:
        problem = _text_problem(name, ANNOTATION_KEY_MAX_LENGTH)
        if problem is not None:
            return f"a key {problem}"
        problem = _text_problem(text, ANNOTATION_VALUE_MAX_LENGTH)
        if problem is not None:
            return f"the value of {name!r} {problem}"
        if name in seen:
            return f"key {name!r} given twice"
        seen.add(name)
    return None


def storable(values: Mapping[str, Any]) -> dict[str, Any]:
    """Checked fields as the row stores them: tags a JSON list, annotations a JSON object."""
    stored = dict(values)
    if "tags" in stored:
        stored["tags"] = list(stored["tags"])
    if "annotations" in stored:
        stored["annotations"] = dict(_annotation_pairs(stored["annotations"]) or ())
    return stored


_FIELD_NAMES: dict[tuple[type[Any], tuple[str, ...]], tuple[str, ...]] = {}


def _values(row: Base, entity_type: type[Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    names = _FIELD_NAMES.get((entity_type, skip))
    if names is None:
        names = tuple(f.name for f in dataclass_fields(entity_type) if f.name not in skip)
        _FIELD_NAMES[entity_type, skip] = names
    values = {name: getattr(row, name) for name in names}
    values["tags"] = tuple(values["tags"] or ())
    values["annotations"] = tuple((values["annotations"] or {}).items())
    return values


def account_from_row(row: AccountRow) -> Account:
    return Account(**_values(row, Account))


def user_from_row(row: UserRow) -> User:
    return User(**_values(row, User))


def profile_from_row(row: UserProfileRow) -> UserProfile:
    return UserProfile(
        user=user_from_row(row.user),
        account=account_from_row(row.account),
        **_values(row, UserProfile, skip=("user", "account")),
    )


class _SqlRepository(Generic[RowT, EntityT]):
    row_type: ClassVar[type[Any]]
    not_found: ClassVar[type[NotFoundError]]
    mutable_fields: ClassVar[frozenset[str]]
    immutable_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    # Subclasses say how a row is selected and turned into an entity.
    def _select(self) -> Select[RowT]:
        return select(self.row_type)

    def _to_entity(self, row: RowT) -> EntityT:
        raise NotImplementedError

    def _cascade(self, session: Session, row: RowT) -> list[Change]:
        """Deletions the database will cascade to when ``row`` goes."""
        return []

    core_reads: ClassVar[bool] = False
    """Whether reads select the table's columns (Core rows, read by name like the ORM row's
    attributes) instead of ORM instances: a cache miss then pays no identity map, instance
    state or attribute instrumentation for an object it turns into an entity and drops.
    Writes always load ORM rows."""

    def _read_select(self) -> Select[Any]:
        return select(self.row_type.__table__) if self.core_reads else self._select()

    def _one(self, stmt: Select[Any], params: dict[str, Any] | None = None) -> EntityT | None:
        with translated_errors(), self._scope.reading() as session:
            row: RowT | None
            if self.core_reads:  # a Core row reads by name like the ORM row's attributes
                row = cast("RowT | None", session.execute(stmt, params).first())
            else:
                row = session.scalars(stmt, params).one_or_none()
            return None if row is None else self._to_entity(row)

    def _all(self, stmt: Select[Any]) -> list[EntityT]:
        with translated_errors(), self._scope.reading() as session:
            if self.core_reads:
                return [self._to_entity(cast(RowT, row)) for row in session.execute(stmt)]
            return [self._to_entity(row) for row in session.scalars(stmt).unique()]

    def _require_id(self, entity_id: object) -> int:
        what = self.row_type.__tablename__.removeprefix("smarter_").replace("_", " ")
        return require_id(entity_id, "id", self.not_found, what)

    def _load_for_write(self, session: Session, entity_id: int) -> RowT:
        row = session.scalars(self._select().where(self.row_type.id == entity_id)).unique().first()
        if row is None:
            raise self.not_found(f"no {self.row_type.__tablename__} with id {entity_id}")
        return row

    @functools.cached_property
    def _by_id(self) -> Select[Any]:
        """Built once: a hot read should not rebuild (and re-coerce) its statement."""
        return self._read_select().where(self.row_type.__table__.c.id == bindparam("id"))

    def get(self, entity_id: int) -> EntityT | None:
        if not is_valid_id(entity_id):
            return None
        return self._one(self._by_id, {"id": entity_id})

    def get_many(self, entity_ids: Sequence[int]) -> dict[int, EntityT]:
        if isinstance(entity_ids, str | bytes):
            return {}
        wanted = {i for i in entity_ids if is_valid_id(i)}
        if not wanted:
            return {}
        found = self._all(self._read_select().where(self.row_type.__table__.c.id.in_(wanted)))
        return {entity.id: entity for entity in found}

    def _insert(self, writer: Writer, row: RowT) -> EntityT:
        with translated_errors():
            writer.session.add(row)
            writer.session.flush()
            entity = self._to_entity(row)
            writer.record(Change("create", None, entity))
            return entity

    def _update(self, entity_id: int, changes: Mapping[str, object]) -> EntityT:
        entity_id = self._require_id(entity_id)
        check_fields(self.row_type, changes, self.mutable_fields, self.immutable_fields)
        with translated_errors(), self._scope.writing() as writer:
            row = self._load_for_write(writer.session, entity_id)
            before = self._to_entity(row)
            for key, value in storable(changes).items():
                setattr(row, key, value)
            writer.session.flush()
            after = self._to_entity(row)
            writer.record(Change("update", before, after))
            return after

    def delete(self, entity_id: int) -> None:
        entity_id = self._require_id(entity_id)
        with translated_errors(), self._scope.writing() as writer:
            row = self._load_for_write(writer.session, entity_id)
            before = self._to_entity(row)
            cascaded = self._cascade(writer.session, row)
            writer.session.delete(row)
            writer.session.flush()
            for change in cascaded:
                writer.record(change)
            writer.record(Change("delete", before, None))


def _profiles_select() -> Select[UserProfileRow]:
    return select(UserProfileRow).options(
        joinedload(UserProfileRow.user, innerjoin=True),
        joinedload(UserProfileRow.account, innerjoin=True),
    )


def _cascade_profiles(session: Session, stmt: Select[UserProfileRow]) -> list[Change]:
    rows = session.scalars(stmt).unique().all()
    changes = [Change("delete", profile_from_row(row), None) for row in rows]
    for row in rows:
        session.expunge(row)
    return changes


_ACCOUNTS = AccountRow.__table__
_USERS = UserRow.__table__
_ACCOUNT_BY_NUMBER = select(_ACCOUNTS).where(_ACCOUNTS.c.account_number == bindparam("number"))
_DEFAULT_ACCOUNT = select(_ACCOUNTS).where(_ACCOUNTS.c.is_default_account == true())
_USER_BY_USERNAME = select(_USERS).where(_USERS.c.username == bindparam("username"))
_PROFILE_FOR = _profiles_select().where(
    UserProfileRow.user_id == bindparam("user_id"),
    UserProfileRow.account_id == bindparam("account_id"),
)


class SqlAccountRepository(_SqlRepository[AccountRow, Account]):
    row_type = AccountRow
    core_reads = True
    not_found = AccountNotFound
    mutable_fields = AccountChanges.__optional_keys__
    immutable_fields = frozenset({"id", "account_number"})

    def _to_entity(self, row: AccountRow) -> Account:
        return account_from_row(row)

    def _cascade(self, session: Session, row: AccountRow) -> list[Change]:
        return _cascade_profiles(
            session, _profiles_select().where(UserProfileRow.account_id == row.id)
        )

    def get_by_number(self, account_number: str) -> Account | None:
        if not is_storable_text(account_number):
            return None
        return self._one(_ACCOUNT_BY_NUMBER, {"number": account_number})

    def get_default(self) -> Account | None:
        return self._one(_DEFAULT_ACCOUNT)

    def list_all(self) -> list[Account]:
        return self._all(select(_ACCOUNTS).order_by(_ACCOUNTS.c.id))

    def add(
        self, *, name: str, account_number: str | None = None, **fields: Unpack[AccountFields]
    ) -> Account:
        values: dict[str, object] = {"name": name, **fields}
        check_fields(AccountRow, values, self.mutable_fields)
        if not name.strip():
            raise ValidationError("invalid account", {"name": "may not be blank"})
        if account_number is None:
            account_number = generate_account_number(
                lambda candidate: self.get_by_number(candidate) is not None
            )
        validate_account_number(account_number)
        with translated_errors(), self._scope.writing() as writer:
            row = AccountRow(account_number=account_number, **storable(values))
            return self._insert(writer, row)

    def update(self, account_id: int, **changes: Unpack[AccountChanges]) -> Account:
        if "name" in changes and not str(changes["name"]).strip():
            raise ValidationError("invalid account", {"name": "may not be blank"})
        return self._update(account_id, changes)


class SqlUserRepository(_SqlRepository[UserRow, User]):
    row_type = UserRow
    core_reads = True
    not_found = UserNotFound
    mutable_fields = UserFields.__optional_keys__
    immutable_fields = frozenset({"id", "username", "date_joined"})

    def _to_entity(self, row: UserRow) -> User:
        return user_from_row(row)

    def _cascade(self, session: Session, row: UserRow) -> list[Change]:
        return _cascade_profiles(
            session, _profiles_select().where(UserProfileRow.user_id == row.id)
        )

    def get_by_username(self, username: str) -> User | None:
        if not is_storable_text(username):
            return None
        return self._one(_USER_BY_USERNAME, {"username": username})

    def list_for_account(self, account_id: int) -> list[User]:
        if not is_valid_id(account_id):
            return []
        profiles = UserProfileRow.__table__
        return self._all(
            select(_USERS)
            .join(profiles, profiles.c.user_id == _USERS.c.id)
            .where(profiles.c.account_id == account_id)
            .order_by(_USERS.c.id)
        )

    def list_all(self) -> list[User]:
        return self._all(select(_USERS).order_by(_USERS.c.id))

    def add(self, *, username: str, **fields: Unpack[UserFields]) -> User:
        if not isinstance(username, str) or not USERNAME_PATTERN.fullmatch(username):
            raise ValidationError(
                "invalid user",
                {"username": "1 to 150 letters, digits and @/./+/-/_ only"},
            )
        check_fields(UserRow, fields, self.mutable_fields)
        with translated_errors(), self._scope.writing() as writer:
            return self._insert(writer, UserRow(username=username, **storable(fields)))

    def update(self, user_id: int, **changes: Unpack[UserFields]) -> User:
        return self._update(user_id, changes)


class SqlUserProfileRepository(_SqlRepository[UserProfileRow, UserProfile]):
    row_type = UserProfileRow
    not_found = UserProfileNotFound
    mutable_fields = UserProfileFields.__optional_keys__
    immutable_fields = frozenset({"id", "user_id", "account_id", "user", "account"})

    def _select(self) -> Select[UserProfileRow]:
        return _profiles_select()

    def _to_entity(self, row: UserProfileRow) -> UserProfile:
        return profile_from_row(row)

    def get_for(self, user_id: int, account_id: int) -> UserProfile | None:
        if not (is_valid_id(user_id) and is_valid_id(account_id)):
            return None
        return self._one(_PROFILE_FOR, {"user_id": user_id, "account_id": account_id})

    def list_for_account(self, account_id: int) -> list[UserProfile]:
        if not is_valid_id(account_id):
            return []
        return self._all(
            self._select()
            .where(UserProfileRow.account_id == account_id)
            .order_by(UserProfileRow.id)
        )

    def list_for_user(self, user_id: int) -> list[UserProfile]:
        if not is_valid_id(user_id):
            return []
        return self._all(
            self._select().where(UserProfileRow.user_id == user_id).order_by(UserProfileRow.id)
        )

    def list_all(self) -> list[UserProfile]:
        return self._all(self._select().order_by(UserProfileRow.id))

    def add(
        self, *, user_id: int, account_id: int, **fields: Unpack[UserProfileFields]
    ) -> UserProfile:
        user_id = require_id(user_id, "user_id", UserNotFound, "user")
        account_id = require_id(account_id, "account_id", AccountNotFound, "account")
        check_fields(UserProfileRow, fields, self.mutable_fields)
        with translated_errors(), self._scope.writing() as writer:
            user = writer.session.get(UserRow, user_id)
            if user is None:
                raise UserNotFound(f"no user with id {user_id}")
            account = writer.session.get(AccountRow, account_id)
            if account is None:
                raise AccountNotFound(f"no account with id {account_id}")
            row = UserProfileRow(user=user, account=account, **storable(fields))
            return self._insert(writer, row)

    def update(self, profile_id: int, **changes: Unpack[UserProfileFields]) -> UserProfile:
        return self._update(profile_id, changes)
