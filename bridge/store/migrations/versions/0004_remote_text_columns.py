"""remote text columns: unbounded, so that no LAPOR! value can stop the sync

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 19:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "tracking_id": 64,
    "category": 200,
    "location": 300,
    "remote_status_code": 32,
    "remote_status_name": 100,
    "remote_disposition_name": 300,
}


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, length in COLUMNS.items():
            batch_op.alter_column(name, existing_type=sa.String(length=length),
                                  type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, length in COLUMNS.items():
            batch_op.alter_column(name, existing_type=sa.Text(),
                                  type_=sa.String(length=length), existing_nullable=True)
