"""user_roles: an account may hold several roles (an acting official, Plt, acts in two);
each account's single users.role is carried over as its first role, then dropped. The
install's ``operator`` account (command-line actions without --user) is made here.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Kept in step with bridge.store.schema, which seeds a new store with the same account (a
#: migration must not import the code: it has to run the same way after that changes).
OPERATOR = "operator"
NO_PASSWORD = "!"


def upgrade() -> None:
    conn = op.get_bind()
    # Read first: on SQLite, batch mode rebuilds the users table (drop and rename), which
    # would take any user_roles rows with it through the ON DELETE CASCADE.
    held = [(row.id, row.role) for row in conn.execute(sa.text("SELECT id, role FROM users"))]
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("role")
    user_roles = op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "role"),
    )
    assert user_roles is not None
    if held:
        op.bulk_insert(user_roles, [{"user_id": uid, "role": role, "position": 0}
                                    for uid, role in held])
    users = sa.table("users", sa.column("id", sa.Integer()), sa.column("username", sa.String()),
                     sa.column("full_name", sa.String()), sa.column("password_hash", sa.String()),
                     sa.column("active", sa.Boolean()), sa.column("created_at", sa.DateTime()),
                     sa.column("session_generation", sa.Integer()))
    found = conn.execute(sa.select(users.c.id).where(
        sa.func.lower(users.c.username) == OPERATOR)).first()
    if found is None:
        # No password: it cannot sign in on the web page until `user passwd operator`.
        conn.execute(users.insert().values(
            username=OPERATOR, full_name="Operator (command line)", password_hash=NO_PASSWORD,
            active=True, created_at=datetime.now(UTC).replace(tzinfo=None),
            session_generation=0))
        new_id = conn.execute(sa.select(users.c.id).where(users.c.username == OPERATOR)
                              ).scalar_one()
        op.bulk_insert(user_roles, [{"user_id": new_id, "role": "admin", "position": 0}])


def downgrade() -> None:
    conn = op.get_bind()
    primary = {row.user_id: row.role for row in conn.execute(sa.text(
        "SELECT user_id, role FROM user_roles ORDER BY position DESC"))}
    op.drop_table("user_roles")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=64), nullable=False,
                                      server_default=""))
    for user_id, role in primary.items():
        conn.execute(sa.text("UPDATE users SET role = :role WHERE id = :id"),
                     {"role": role, "id": user_id})
