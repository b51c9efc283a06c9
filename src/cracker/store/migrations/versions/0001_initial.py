"""Initial schema: accounts, API keys, offers, tasks, ledger; default offers.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Default prices in units of 0.0001 USD, frozen here as of this revision; operators change them
# with `cracker offers set`.
_DEFAULT_OFFERS = {
    "image-to-text": 5,
    "altcha": 2,
    "cap": 3,
    "mcaptcha": 2,
    "friendly-captcha": 3,
    "pow-sha256": 1,
    "turnstile": 9,
    "hcaptcha": 9,
    "recaptcha-v2": 9,
    "recaptcha-v3": 12,
    "cf-clearance": 20,
    "vercel": 9,
}


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("available", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.CheckConstraint("available >= 0", name="ck_accounts_available_nonnegative"),
        sa.CheckConstraint("held >= 0", name="ck_accounts_held_nonnegative"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    offers = op.create_table(
        "offers",
        sa.Column("type", sa.String(40), primary_key=True),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.CheckConstraint("price >= 0", name="ck_offers_price_nonnegative"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("solution", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("completed_at", sa.Float, nullable=True),
        sa.Column("deadline_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_tasks_claim", "tasks", ["status", "type", "created_at"])
    op.create_index("ix_tasks_deadline", "tasks", ["status", "deadline_at"])
    op.create_index("ix_tasks_account", "tasks", ["account_id", "created_at"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(36), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("available_delta", sa.BigInteger, nullable=False),
        sa.Column("held_delta", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("task_id", "kind", name="uq_ledger_task_kind"),
    )
    op.create_index("ix_ledger_account", "ledger", ["account_id"])
    now = time.time()
    op.bulk_insert(
        offers,
        [{"type": t, "price": p, "enabled": True, "updated_at": now} for t, p in _DEFAULT_OFFERS.items()],
    )


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("tasks")
    op.drop_table("offers")
    op.drop_table("api_keys")
    op.drop_table("accounts")
