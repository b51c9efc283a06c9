"""Pools limited to named accounts: the accounts whose tasks an account's pools may lease.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No row for a pool account: its pools lease any account's tasks, as before.
    op.create_table(
        "pool_accounts",
        sa.Column("pool_account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("pool_accounts")
