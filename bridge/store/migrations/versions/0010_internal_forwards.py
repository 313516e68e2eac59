"""internal forwards: a case forwarded to another body of the same deployment

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-20 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "internal_forwards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("to_body", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("remote_case_id", sa.Integer(), nullable=True),
        sa.Column("remote_register_no", sa.String(length=64), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("internal_forwards", schema=None) as batch_op:
        batch_op.create_index("ix_internal_forwards_case_id", ["case_id"], unique=False)
        batch_op.create_index("ix_internal_forwards_status", ["status", "id"], unique=False)
    op.create_table(
        "internal_arrivals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_body", sa.String(length=40), nullable=False),
        sa.Column("forward_id", sa.Integer(), nullable=False),
        sa.Column("from_case_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(), nullable=False),
        sa.Column("returned_at", sa.DateTime(), nullable=True),
        sa.Column("return_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("internal_arrivals", schema=None) as batch_op:
        batch_op.create_index("ix_internal_arrivals_case_id", ["case_id"], unique=False)
        batch_op.create_index("ux_internal_arrivals_forward", ["from_body", "forward_id"],
                              unique=True)


def downgrade() -> None:
    op.drop_table("internal_arrivals")
    op.drop_table("internal_forwards")
