"""Accounts, users and profiles.

Revision ID: smarter_domain_0001
Revises:
Create Date: 2026-11-23

Released as ``0001`` in the shared ``alembic_version`` table; ``smarter_domain.migrations``
moves such a row to the library's own version table under this id. The ``smarter_domain_``
prefix keeps the id apart from an application's own revisions when the application runs these
migrations from its own Alembic environment (``docs/alembic.md``), and the branch label names
the whole history there (``alembic upgrade smarter_domain@head``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "smarter_domain_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ("smarter_domain",)
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "smarter_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.String(length=14), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("company_name", sa.String(length=255), nullable=False),
        sa.Column("is_default_account", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("phone_number", sa.String(length=50), nullable=False),
        sa.Column("address1", sa.String(length=255), nullable=False),
        sa.Column("address2", sa.String(length=255), nullable=False),
        sa.Column("city", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=255), nullable=False),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smarter_account")),
        sa.UniqueConstraint("account_number", name=op.f("uq_smarter_account_account_number")),
    )
    # At most one default account, on SQLite and PostgreSQL alike.
    op.create_index(
        "uq_smarter_account_one_default",
        "smarter_account",
        ["is_default_account"],
        unique=True,
        sqlite_where=sa.text("is_default_account = 1"),
        postgresql_where=sa.text("is_default_account"),
    )
    op.create_table(
        "smarter_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("first_name", sa.String(length=150), nullable=False),
        sa.Column("last_name", sa.String(length=150), nullable=False),
        sa.Column("is_staff", sa.Boolean(), nullable=False),
        sa.Column("is_superuser", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        _timestamp("date_joined"),
        _timestamp("last_login", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smarter_user")),
        sa.UniqueConstraint("username", name=op.f("uq_smarter_user_username")),
    )
    op.create_table(
        "smarter_user_profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["smarter_account.id"],
            name=op.f("fk_smarter_user_profile_account_id_smarter_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["smarter_user.id"],
            name=op.f("fk_smarter_user_profile_user_id_smarter_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smarter_user_profile")),
        sa.UniqueConstraint("user_id", "account_id", name=op.f("uq_smarter_user_profile_user_id")),
    )
    op.create_index(
        op.f("ix_smarter_user_profile_account_id"), "smarter_user_profile", ["account_id"]
    )
    op.create_index(op.f("ix_smarter_user_profile_user_id"), "smarter_user_profile", ["user_id"])


def downgrade() -> None:
    op.drop_table("smarter_user_profile")
    op.drop_table("smarter_user")
    op.drop_table("smarter_account")
