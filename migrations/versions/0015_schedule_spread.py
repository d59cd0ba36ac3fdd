"""Retrain schedules: a spread window after the due time, and the fire time the tick claims on

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-01

`spread_seconds` (constant server default 0: no row is rewritten on PostgreSQL) and
`next_fire_at` (nullable), set to `next_run_at` for every existing schedule: with no spread
a schedule fires at its due time, as before. The tick's index moves from the due time to the
fire time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_schedules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("spread_seconds", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("next_fire_at", registry.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE training_schedules SET next_fire_at = next_run_at")
    with op.batch_alter_table("training_schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_training_schedules_due")
        batch_op.create_index("ix_training_schedules_fire", ["enabled", "next_fire_at"])


def downgrade() -> None:
    with op.batch_alter_table("training_schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_training_schedules_fire")
        batch_op.create_index("ix_training_schedules_due", ["enabled", "next_run_at"])
        batch_op.drop_column("next_fire_at")
        batch_op.drop_column("spread_seconds")
