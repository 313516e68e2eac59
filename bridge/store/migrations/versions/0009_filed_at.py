"""cases.filed_at: when the citizen filed the report on LAPOR! (received_at is now when it
reached our body); existing LAPOR! cases keep their filing time in both

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 00:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filed_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE cases SET filed_at = received_at WHERE lapor_id IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("filed_at")
