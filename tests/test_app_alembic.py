"""An application with its own Alembic, in one database with the library (issue 14), end to
end through the ``alembic`` command on SQLite and PostgreSQL: the library's version table
beside the application's, in either order; the recipe of ``docs/alembic.md`` (the application
runs the library's migrations as a branch of its own history); ``alembic check`` with the
library's filters; and the application's foreign keys to the library's tables, by object and
by name, enforced by the database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, NoReferencedTableError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from smarter_domain import schema
from smarter_domain.adapters.database import create_domain_engine
from smarter_domain.migrations import (
    DEFAULT_VERSION_TABLE,
    current,
    head,
    upgrade,
    versions_directory,
)
from smarter_domain.model.errors import ConfigurationError

from .test_migrations import make_first_release_database, versions

FkStyle = Literal["object", "string", "none"]

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/app_migrations
prepend_sys_path = %(here)s
path_separator = newline
version_locations =
    %(here)s/app_migrations/versions
{library_versions}
"""

ENV_PY = '''\
"""The application's env.py, as docs/alembic.md shows it."""
import os

from alembic import context
from sqlalchemy import create_engine

from app_models import metadata
from smarter_domain.schema import autogenerate_filters

filters = autogenerate_filters() if os.environ.get("APP_FILTERS") == "on" else {}
engine = create_engine(os.environ["APP_DATABASE_URL"])
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, **filters)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
'''

REVISION = '''\
"""The application's notes, each by one of the library's users."""
import sqlalchemy as sa
from alembic import op

revision = "app_0001"
down_revision = None
branch_labels = ("app",)
depends_on = {depends_on!r}


def upgrade():
    op.create_table(
        "app_note",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(){foreign_key}, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_app_note_user_id", "app_note", ["user_id"])


def downgrade():
    op.drop_table("app_note")
'''

MODELS = {
    "object": """\
from sqlalchemy import Column, ForeignKey, Integer, MetaData, Table, Text
from smarter_domain.schema import tables

metadata = MetaData()
note = Table(
    "app_note", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey(tables.user.c.id, name="fk_app_note_user"),
           nullable=False, index=True),
    Column("body", Text, nullable=False),
)
""",
    "string": """\
from sqlalchemy import ForeignKey, MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from smarter_domain.schema import copy_tables

metadata = MetaData()
copy_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Note(Base):
    __tablename__ = "app_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("smarter_user.id", name="fk_app_note_user"), index=True
    )
    body: Mapped[str] = mapped_column(Text)
""",
    "none": """\
from sqlalchemy import Column, Integer, MetaData, Table, Text

metadata = MetaData()
note = Table(
    "app_note", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("body", Text, nullable=False),
)
""",
}


class App:
    """An application's Alembic environment in a directory of its own."""

    def __init__(self, root: Path, url: str, *, recipe: bool, style: FkStyle) -> None:
        self.root, self.url = root, url
        versions = root / "app_migrations" / "versions"
        versions.mkdir(parents=True)
        library = f"    {versions_directory()}" if recipe else ""
        (root / "alembic.ini").write_text(ALEMBIC_INI.format(library_versions=library))
        (root / "app_migrations" / "env.py").write_text(ENV_PY)
        foreign_key = (
            "" if style == "none" else ', sa.ForeignKey("smarter_user.id", name="fk_app_note_user")'
        )
        revision = REVISION.format(
            depends_on="smarter_domain_0001" if recipe else None, foreign_key=foreign_key
        )
        (versions / "app_0001_notes.py").write_text(revision)
        (root / "app_models.py").write_text(MODELS[style])

    def alembic(self, *args: str, filters: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "APP_DATABASE_URL": self.url,
            "APP_FILTERS": "on" if filters else "off",
            "PATH": os.environ.get("PATH", ""),
        }
        return subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(self.root / "alembic.ini"), *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, filters: bool = True) -> str:
        result = self.alembic(*args, filters=filters)
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr


@pytest.fixture
def engine(smarter_empty_database_url: str) -> Iterator[Engine]:
    engine = create_domain_engine(smarter_empty_database_url)  # SQLite: foreign keys on
    yield engine
    engine.dispose()


def add_user(engine: Engine, username: str) -> int:
    with engine.begin() as connection:
        return int(
            connection.execute(
                insert(schema.tables.user)
                .values(username=username)
                .returning(schema.tables.user.c.id)
            ).scalar_one()
        )


def assert_notes_need_a_user(engine: Engine) -> None:
    """The database itself refuses a note by a user who does not exist."""
    user_id = add_user(engine, "jdoe")
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO app_note (user_id, body) VALUES (:u, 'hi')"), {"u": user_id}
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO app_note (user_id, body) VALUES (999, 'x')"))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM app_note")) == 1


# -- the library's version table beside the application's ----------------------------------


@pytest.mark.parametrize("library_first", [True, False], ids=["library-first", "app-first"])
def test_migrate_and_the_application_alembic_coexist_in_either_order(
    engine: Engine, smarter_empty_database_url: str, tmp_path: Path, library_first: bool
) -> None:
    app = App(tmp_path, smarter_empty_database_url, recipe=False, style="none")
    steps = [lambda: upgrade(engine), lambda: app.ok("upgrade", "head")]
    for step in steps if library_first else steps[::-1]:
        step()
    for step in steps:  # and again, each a no-op
        step()
    assert versions(engine, "alembic_version") == ["app_0001"]
    assert versions(engine, DEFAULT_VERSION_TABLE) == [head()]
    assert "app_0001 (head)" in app.ok("current")
    assert {"app_note", "smarter_user"} <= set(inspect(engine).get_table_names())


def test_the_application_alembic_works_again_once_the_first_release_row_is_moved(
    engine: Engine, smarter_empty_database_url: str, tmp_path: Path
) -> None:
    # The bug of the first release: its revision in alembic_version, unknown to the app.
    make_first_release_database(engine, "0002")
    app = App(tmp_path, smarter_empty_database_url, recipe=False, style="object")
    failed = app.alembic("upgrade", "head")
    assert failed.returncode != 0
    assert "Can't locate revision identified by '0002'" in failed.stdout + failed.stderr
    upgrade(engine)
    app.ok("upgrade", "head")
    assert versions(engine, "alembic_version") == ["app_0001"]
    assert versions(engine, DEFAULT_VERSION_TABLE) == [head()]
    assert_notes_need_a_user(engine)


# -- the recipe: the application runs the library's migrations -----------------------------


def test_the_application_runs_the_library_migrations_as_a_branch(
    engine: Engine, smarter_empty_database_url: str, tmp_path: Path
) -> None:
    app = App(tmp_path, smarter_empty_database_url, recipe=True, style="string")
    heads = app.ok("heads")
    assert "smarter_domain_0002 (smarter_domain) (head)" in heads and "app_0001" in heads
    app.ok("upgrade", "heads")
    assert versions(engine, "alembic_version") == ["app_0001", "smarter_domain_0002"]
    assert versions(engine, DEFAULT_VERSION_TABLE) is None
    assert_notes_need_a_user(engine)
    assert "No new upgrade operations detected" in app.ok("check")

    # The library sees its schema where the application keeps it and leaves it to it.
    assert current(engine) == head()
    upgrade(engine)  # at head already: nothing to do, nothing written
    assert versions(engine, DEFAULT_VERSION_TABLE) is None
    app.ok("downgrade", "smarter_domain@-1")
    # app_0001 depends on smarter_domain_0001: Alembic records it through app_0001 alone.
    assert versions(engine, "alembic_version") == ["app_0001"]
    with pytest.raises(ConfigurationError, match="alembic upgrade heads"):
        upgrade(engine)
    assert versions(engine, DEFAULT_VERSION_TABLE) is None
    assert "tags" not in {c["name"] for c in inspect(engine).get_columns("smarter_user")}
    app.ok("upgrade", "smarter_domain@head")
    assert versions(engine, "alembic_version") == ["app_0001", "smarter_domain_0002"]


# -- autogenerate and `alembic check` ------------------------------------------------------


@pytest.mark.parametrize("style", ["object", "string"])
def test_alembic_check_passes_with_the_library_filters(
    engine: Engine, smarter_empty_database_url: str, tmp_path: Path, style: FkStyle
) -> None:
    upgrade(engine)
    app = App(tmp_path, smarter_empty_database_url, recipe=False, style=style)
    app.ok("upgrade", "head")
    assert "No new upgrade operations detected" in app.ok("check")


def test_without_the_filters_alembic_check_would_drop_the_library_tables(
    engine: Engine, smarter_empty_database_url: str, tmp_path: Path
) -> None:
    upgrade(engine)
    app = App(tmp_path, smarter_empty_database_url, recipe=False, style="object")
    app.ok("upgrade", "head")
    result = app.alembic("check", filters=False)
    assert result.returncode != 0
    for name in ("smarter_user", "smarter_account", "smarter_user_profile", DEFAULT_VERSION_TABLE):
        assert f"('remove_table', Table('{name}'" in result.stdout + result.stderr


def test_the_filters_leave_out_only_the_library(tmp_path: Path) -> None:
    filters = schema.autogenerate_filters("platform_schema_versions")
    include_name, include_object = filters["include_name"], filters["include_object"]
    default = {"schema_name": None}
    assert not include_name("smarter_user", "table", default)
    assert not include_name("platform_schema_versions", "table", default)
    assert include_name(DEFAULT_VERSION_TABLE, "table", default)  # not this library's table
    assert include_name("app_note", "table", default)
    assert include_name("smarter_user", "table", {"schema_name": "other"})
    assert not include_name("ix_x", "index", {"schema_name": None, "table_name": "smarter_user"})
    user = schema.tables.user
    assert not include_object(user, "smarter_user", "table", False, None)
    assert not include_object(user.c.username, "username", "column", False, None)
    index = next(iter(schema.tables.user_profile.indexes))
    assert not include_object(index, index.name, "index", False, None)
    note = Table("app_note", MetaData(), Column("user_id", ForeignKey(user.c.id)))
    fk = next(iter(note.foreign_key_constraints))
    assert include_object(note, "app_note", "table", False, None)
    assert include_object(fk, None, "foreign_key_constraint", False, None)
    # The application's own filters still decide about everything else.
    mine = schema.autogenerate_filters(include_name=lambda name, *_: name != "app_note")
    assert not mine["include_name"]("app_note", "table", default)
    assert not mine["include_name"]("smarter_user", "table", default)
    assert mine["include_name"]("app_other", "table", default)


# -- foreign keys to the library's tables --------------------------------------------------


class NoteBase(DeclarativeBase):
    metadata = MetaData()


schema.copy_tables(NoteBase.metadata)


class Note(NoteBase):
    __tablename__ = "app_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("smarter_user.id"), index=True)
    body: Mapped[str] = mapped_column(Text)


def note_table(style: str) -> tuple[MetaData, list[Table]]:
    """The application's note table and what ``create_all`` should create."""
    if style == "declarative":
        return NoteBase.metadata, [Note.__table__]  # type: ignore[list-item]
    metadata = MetaData()
    if style == "object":
        target = ForeignKey(schema.tables.user.c.id)
    else:
        schema.copy_tables(metadata)
        target = ForeignKey("smarter_user.id")
    note = Table(
        "app_note",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("user_id", Integer, target, nullable=False),
        Column("body", Text, nullable=False),
    )
    return metadata, [note]


@pytest.mark.parametrize("style", ["object", "string", "declarative"])
def test_application_tables_reference_the_library_tables(engine: Engine, style: str) -> None:
    upgrade(engine)
    metadata, app_tables = note_table(style)
    metadata.create_all(engine)  # the library's copies exist already: skipped
    assert_notes_need_a_user(engine)
    if style == "declarative":
        with Session(engine) as session:
            session.add(Note(user_id=12345, body="nobody's"))
            with pytest.raises(IntegrityError):
                session.commit()
    with engine.connect() as connection:
        rows = connection.execute(select(app_tables[0].c.body)).scalars().all()
    assert rows == ["hi"]


def test_a_string_foreign_key_resolves_only_with_the_copies() -> None:
    metadata = MetaData()
    note = Table("app_note", metadata, Column("user_id", ForeignKey("smarter_user.id")))
    foreign_key = next(iter(note.foreign_keys))
    with pytest.raises(NoReferencedTableError):
        _ = foreign_key.column
    copies = schema.copy_tables(metadata)
    assert next(iter(note.foreign_keys)).column is copies.user.c.id


def test_copy_tables_is_idempotent_and_guards_the_names() -> None:
    metadata = MetaData()
    first = schema.copy_tables(metadata)
    assert schema.copy_tables(metadata) == first
    assert set(metadata.tables) == set(schema.TABLE_NAMES)
    assert schema.metadata.tables["smarter_user"] is schema.tables.user
    assert first.user is not schema.tables.user
    theirs = MetaData()
    Table("smarter_user", theirs, Column("id", Integer, primary_key=True))
    with pytest.raises(ConfigurationError, match="smarter_user"):
        schema.copy_tables(theirs)


def test_switching_from_migrate_to_the_recipe(
    engine: Engine, smarter_empty_database_url: str, tmp_path: Path
) -> None:
    # As docs/alembic.md says: migrate, stamp the application's history, drop our table.
    upgrade(engine)
    app = App(tmp_path, smarter_empty_database_url, recipe=True, style="string")
    app.ok("stamp", str(current(engine)))
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {DEFAULT_VERSION_TABLE}"))
    app.ok("upgrade", "heads")
    assert versions(engine, "alembic_version") == ["app_0001", "smarter_domain_0002"]
    upgrade(engine)  # at head where the application records it: nothing to do
    assert versions(engine, DEFAULT_VERSION_TABLE) is None
    assert_notes_need_a_user(engine)
