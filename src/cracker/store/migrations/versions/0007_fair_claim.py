"""Fair claim: pending tasks by account, for round robin between accounts and the in-flight cap.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    # Partial: only the queue, so the claim's walk over the accounts with pending work and over
    # each one's oldest tasks never reads an account's finished history.
    op.create_index(
        "ix_tasks_pending_account", "tasks", ["account_id", "created_at"],
        postgresql_where=_PENDING, sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_pending_account", "tasks")
