"""The library's tables as a public, stable part of its API, for the application's own schema.

* :data:`metadata` is the library's ``MetaData``; :data:`tables` names its three tables
  (``smarter_account``, ``smarter_user``, ``smarter_user_profile``: stable names, changed only
  by a migration and a major release). An application's table may reference them with a
  foreign key by object: ``ForeignKey(tables.user.c.id)``.
* :func:`copy_tables` copies them into the application's ``MetaData``, so that the string form
  ``ForeignKey("smarter_user.id")`` resolves there too (SQLAlchemy resolves a table name only
  within the ``MetaData`` of the table that names it).
* :func:`autogenerate_filters` (and :func:`include_name` / :func:`include_object`) keep the
  application's ``alembic revision --autogenerate`` and ``alembic check`` away from the
  library's tables and version table: they are the library's migrations' to change, and
  without the filters Alembic proposes to drop them.

``docs/alembic.md`` shows each in an application's Alembic environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from sqlalchemy import MetaData, Table
from sqlalchemy.exc import InvalidRequestError

from .adapters.orm import Base
from .migrations import DEFAULT_VERSION_TABLE, TABLE_NAMES, check_version_table
from .model.errors import ConfigurationError

if TYPE_CHECKING:
    from alembic.runtime.environment import (
        IncludeNameFn,
        IncludeObjectFn,
        NameFilterParentNames,
        NameFilterType,
    )
    from sqlalchemy.sql.schema import SchemaItem

__all__ = [
    "TABLE_NAMES",
    "AutogenerateFilters",
    "Tables",
    "autogenerate_filters",
    "copy_tables",
    "include_name",
    "include_object",
    "metadata",
    "tables",
]

metadata: MetaData = Base.metadata
"""The library's ``MetaData``: read it, reference its tables; never add tables to it (the
library's migrations are checked against it)."""

COPY_MARKER = "smarter_domain.copy"
"""Set in ``Table.info`` of the copies :func:`copy_tables` makes."""


@dataclass(frozen=True, slots=True)
class Tables:
    """The library's tables, by role."""

    account: Table
    user: Table
    user_profile: Table

    def __iter__(self) -> Iterator[Table]:
        return iter((self.account, self.user, self.user_profile))


def _tables_of(source: MetaData) -> Tables:
    return Tables(
        account=source.tables["smarter_account"],
        user=source.tables["smarter_user"],
        user_profile=source.tables["smarter_user_profile"],
    )


tables: Tables = _tables_of(metadata)
"""``tables.account``, ``tables.user``, ``tables.user_profile``: for
``ForeignKey(tables.user.c.id)`` in an application's table."""


def copy_tables(target: MetaData) -> Tables:
    """Copy the library's tables into ``target`` (the application's ``MetaData``) and return
    the copies, so that ``ForeignKey("smarter_user.id")`` resolves in the application's models.

    The copies only describe the tables: the library's migrations create and change them. The
    application's ``metadata.create_all()`` skips them once the library has migrated the
    database (it checks first), and :func:`autogenerate_filters` hides them from the
    application's autogenerate. Safe to call again on the same ``target``; a table of the
    application's own under one of the library's names is a ``ConfigurationError``."""
    for source in metadata.sorted_tables:
        existing = target.tables.get(source.key)
        if existing is None:
            source.to_metadata(target).info[COPY_MARKER] = True
        elif not existing.info.get(COPY_MARKER):
            raise ConfigurationError(
                f"the application's MetaData already has a table {source.key!r} of its own: "
                "the name belongs to smarter-domain"
            )
    return _tables_of(target)


class AutogenerateFilters(TypedDict):
    """Keyword arguments for the application's ``context.configure(**filters)``."""

    include_name: IncludeNameFn
    include_object: IncludeObjectFn


def _table(item: SchemaItem) -> Table | None:
    """The table a table, column, index or constraint belongs to."""
    if isinstance(item, Table):
        return item
    try:
        parent = getattr(item, "table", None)
    except InvalidRequestError:  # a constraint not attached to a table
        return None
    return parent if isinstance(parent, Table) else None


def autogenerate_filters(
    version_table: str = DEFAULT_VERSION_TABLE,
    *,
    include_name: IncludeNameFn | None = None,
    include_object: IncludeObjectFn | None = None,
) -> AutogenerateFilters:
    """``include_name`` and ``include_object`` for the application's Alembic environment that
    leave out the library's tables (their columns, indexes and constraints) and its version
    table ``version_table`` (the one ``migrate()`` was given), in the default schema, whether
    found in the database or in the application's ``MetaData`` (copies). The application's
    own filters, if given, decide about everything else."""
    excluded = frozenset((*TABLE_NAMES, check_version_table(version_table)))

    def library_name(
        name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
    ) -> bool:
        if parent_names.get("schema_name") is None:
            table_name = name if type_ == "table" else parent_names.get("table_name")
            if table_name in excluded:
                return False
        return include_name is None or include_name(name, type_, parent_names)

    def library_object(
        item: SchemaItem,
        name: str | None,
        type_: NameFilterType,
        reflected: bool,
        compare_to: SchemaItem | None,
    ) -> bool:
        owner = _table(item)
        if owner is not None and owner.schema is None and owner.name in excluded:
            return False
        return include_object is None or include_object(item, name, type_, reflected, compare_to)

    return AutogenerateFilters(include_name=library_name, include_object=library_object)


_DEFAULT_FILTERS = autogenerate_filters()

include_name: IncludeNameFn = _DEFAULT_FILTERS["include_name"]
"""Alembic ``include_name`` leaving out the library's tables and its default version table."""

include_object: IncludeObjectFn = _DEFAULT_FILTERS["include_object"]
"""Alembic ``include_object`` leaving out the library's tables and its default version
table."""
