"""Dashboard sessions; a note on ledger rows (a top-up's reason); indexes for the dashboard's reads.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        # SHA-256 of the cookie's token: a copy of the database does not sign anyone in.
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(36), sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        # The synchronizer token every form of the session carries back.
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_dashboard_sessions_expires", "dashboard_sessions", ["expires_at"])
    # A plain ADD COLUMN on both databases: no copy of a large ledger.
    op.add_column("ledger", sa.Column("note", sa.Text, nullable=True))
    # The account's ledger, newest first, a page at a time (SQLite's rowid already orders the
    # single-column index; PostgreSQL needs the id in the index).
    op.create_index("ix_ledger_account_id", "ledger", ["account_id", "id"])
    # The operator's last-day figures read only the last day's tasks, not the retention window.
    op.create_index("ix_tasks_created", "tasks", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_created", "tasks")
    op.drop_index("ix_ledger_account_id", "ledger")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("note")
    op.drop_index("ix_dashboard_sessions_expires", "dashboard_sessions")
    op.drop_table("dashboard_sessions")
