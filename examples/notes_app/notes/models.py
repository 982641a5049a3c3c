"""The application's own model: a note written by a smarter-domain user.

The application keeps its own ``MetaData``; the library's tables are copied into it so that
``ForeignKey("smarter_user.id")`` resolves by name (``copy_tables``). The copies only
describe the tables: the library's migrations own them, and the application's Alembic leaves
them alone (``autogenerate_filters`` in ``migrations/env.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from smarter_domain.schema import copy_tables

metadata = MetaData()
copy_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class Note(Base):
    __tablename__ = "notes_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("smarter_user.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(String(500))
    created: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
