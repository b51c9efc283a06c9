"""Pool trust: the task types an operator allows an account's pools beyond the default, and the
record of what remote pools did to each task.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No row: the account's pools serve only the types no built-in solver covers. Pools already
    # registered for other types keep their registration but lease nothing of those types.
    op.create_table(
        "pool_grants",
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("all_types", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("worker_name", sa.String(200), nullable=False),
        sa.Column("pool_account_id", sa.String(36), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
    )
    op.create_index("ix_task_events_task", "task_events", ["task_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_task_events_task", "task_events")
    op.drop_table("task_events")
    op.drop_table("pool_grants")
