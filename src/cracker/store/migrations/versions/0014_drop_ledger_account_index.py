"""Drop ix_ledger_account: ix_ledger_account_id (account_id, id), added in 0008, serves every
read it served (its first column is the same), and each index is one more page written per ledger
row: two ledger rows per task (hold, then capture or release).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_ledger_account", table_name="ledger")


def downgrade() -> None:
    op.create_index("ix_ledger_account", "ledger", ["account_id"])
