"""Queue samples: per task type, the queued and running tasks every sampling interval (the
operator's charts over time).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The primary key (slot first) serves the charts' time-range read and retention's purge.
    op.create_table(
        "queue_samples",
        sa.Column("sampled_at", sa.Float, primary_key=True),
        sa.Column("type", sa.String(64), primary_key=True),
        sa.Column("pending", sa.Integer, nullable=False),
        sa.Column("running", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_samples")
