"""Named OCR models: fine-tuned recognition models that image-to-text tasks may name.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocr_models",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("onnx", sa.LargeBinary, nullable=False),
        sa.Column("checkpoint", sa.LargeBinary, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("base", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("base_score", sa.Float, nullable=False),
        sa.Column("held_out", sa.Integer, nullable=False),
        sa.Column("trained_on", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ocr_models")
