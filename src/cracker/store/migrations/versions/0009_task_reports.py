"""Reports of wrong (and right) answers: one per task, with the refund and the labelled image.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_reports",
        sa.Column("task_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("task_type", sa.String(40), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=True),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("expected", sa.Text, nullable=True),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("refund", sa.BigInteger, nullable=False),
        sa.Column("refund_refused", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_task_reports_account", "task_reports", ["account_id", "task_type", "created_at"])
    op.create_index("ix_task_reports_model", "task_reports", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_task_reports_model", "task_reports")
    op.drop_index("ix_task_reports_account", "task_reports")
    op.drop_table("task_reports")
