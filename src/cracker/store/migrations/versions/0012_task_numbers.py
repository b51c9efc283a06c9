"""Task numbers: an integer per task for the captcha-vendor protocols, whose clients parse integer ids.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A sequence: concurrent creates never wait on each other for a number, and none is reused.
        op.execute("CREATE SEQUENCE tasks_number_seq AS bigint")
        op.add_column("tasks", sa.Column(
            "number", sa.BigInteger, nullable=True, server_default=sa.text("nextval('tasks_number_seq')")
        ))
        op.execute("ALTER SEQUENCE tasks_number_seq OWNED BY tasks.number")
    else:
        # SQLite: the insert assigns it (sqlite_tasks); the rows already there take their rowid.
        op.add_column("tasks", sa.Column("number", sa.BigInteger, nullable=True))
        op.execute("UPDATE tasks SET number = rowid")
    op.create_index("ix_tasks_number", "tasks", ["number"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_tasks_number", table_name="tasks")
    op.drop_column("tasks", "number")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS tasks_number_seq")
