"""tracked cases: LAPOR! reports followed by id (detail and follow-ups polled)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracked_cases",
        sa.Column("lapor_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("tracked_at", sa.DateTime(), nullable=False),
        sa.Column("last_polled_at", sa.DateTime(), nullable=True),
        sa.Column("last_change_at", sa.DateTime(), nullable=True),
        sa.Column("last_change_seen_at", sa.DateTime(), nullable=True),
        sa.Column("next_due_at", sa.DateTime(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("seen_followups", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lapor_id"),
        sa.UniqueConstraint("case_id"),
    )
    with op.batch_alter_table("tracked_cases", schema=None) as batch_op:
        batch_op.create_index("ix_tracked_due", ["closed", "next_due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tracked_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_tracked_due")
    op.drop_table("tracked_cases")
