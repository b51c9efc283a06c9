"""Webhook secret rotation: the previous secret stays valid, and signs beside the new one, until a deadline.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("webhook_secret_previous", sa.String(64), nullable=True))
        batch.add_column(sa.Column("webhook_secret_previous_until", sa.Float, nullable=True))
    # Listing an account's keys (operators, the dashboard) reads by account.
    op.create_index("ix_api_keys_account", "api_keys", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_account", "api_keys")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("webhook_secret_previous_until")
        batch.drop_column("webhook_secret_previous")
