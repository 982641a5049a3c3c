"""Smarter's manifest metadata: tags and annotations on accounts, users and profiles.

Revision ID: smarter_domain_0002
Revises: smarter_domain_0001
Create Date: 2026-11-24

Released as ``0002`` in the shared ``alembic_version`` table (see ``0001_initial_schema``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "smarter_domain_0002"
down_revision: str | None = "smarter_domain_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("smarter_account", "smarter_user", "smarter_user_profile")


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): existing rows take the server defaults, and SQLite
    # never rebuilds a table that foreign keys point at.
    for table in TABLES:
        op.add_column(
            table, sa.Column("tags", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        op.add_column(
            table,
            sa.Column("annotations", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        )


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "annotations")
        op.drop_column(table, "tags")
