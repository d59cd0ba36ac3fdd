"""audit keyed: which hash scheme each audit event uses (legacy SHA-256 or HMAC-SHA256)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Existing events keep their plain SHA-256 hashes and are marked `sha256` by the column's server
default; new ones are `hmac-sha256`. On PostgreSQL the append-only trigger is a row trigger on
UPDATE/DELETE: ADD COLUMN with a constant default rewrites no row through it, so it stays on.
SQLite rebuilds the table in batch mode (it has no trigger).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMES = ("sha256", "hmac-sha256")


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hash_scheme", sa.String(16), nullable=False, server_default="sha256")
        )
        batch_op.create_check_constraint(
            op.f("ck_audit_events_hash_scheme"),
            '"hash_scheme" IN (\'' + "', '".join(SCHEMES) + "')",
        )


def downgrade() -> None:
    # Keyed events then fail the older, unkeyed verification: downgrade only to roll back a
    # deployment that has not written any yet.
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_audit_events_hash_scheme"), type_="check")
        batch_op.drop_column("hash_scheme")
