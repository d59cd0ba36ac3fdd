"""Fair training queues: job priority and retry backoff, tenants' turns, claim indexes

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-25

`priority` (constant server default 0: no row is rewritten on PostgreSQL) and `not_before`
(nullable) on training_jobs; a new table of when each tenant last had a job started; indexes
for the fair claim, per-tenant running counts and the drain rate (finished_at).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("not_before", registry.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_training_jobs_claim", ["status", "priority", "created_at"])
        batch_op.create_index("ix_training_jobs_tenant_status", ["tenant_id", "status"])
        batch_op.create_index("ix_training_jobs_finished_at", ["finished_at"])
    op.create_table(
        "training_tenant_turns",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("last_started_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_training_tenant_turns_tenant_id_tenants"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_training_tenant_turns")),
    )


def downgrade() -> None:
    op.drop_table("training_tenant_turns")
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_training_jobs_finished_at")
        batch_op.drop_index("ix_training_jobs_tenant_status")
        batch_op.drop_index("ix_training_jobs_claim")
        batch_op.drop_column("not_before")
        batch_op.drop_column("priority")
