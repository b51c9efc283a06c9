"""Scale-out: the worker registry (built-in worker processes and remote pools) and task routing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        # True when no built-in solver accepts the task (a real-site-key turnstile, say): only an
        # attached pool may lease it. Existing tasks were all taken by built-in solvers.
        batch.add_column(sa.Column("pool_only", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_workers_expires", "workers", ["expires_at"])


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("pool_only")
