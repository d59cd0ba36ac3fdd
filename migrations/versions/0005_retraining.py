"""training schedules, drift policies, drift metric details

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:04:54.368899
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import registry.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_policies",
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=50), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("min_samples", sa.Integer(), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("datasets", sa.String(length=16), nullable=False),
        sa.Column("dataset_names", sa.JSON(), nullable=True),
        sa.Column("last_checked_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=False),
        sa.Column("last_message", sa.String(length=2000), nullable=False),
        sa.Column("last_triggered_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Uuid(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_drift_policies_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_drift_policies_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("adapter_id", name=op.f("pk_drift_policies")),
    )
    with op.batch_alter_table("drift_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drift_policies_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "training_schedules",
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("datasets", sa.String(length=16), nullable=False),
        sa.Column("dataset_names", sa.JSON(), nullable=True),
        sa.Column("next_run_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_due_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", registry.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Uuid(), nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=False),
        sa.Column("last_message", sa.String(length=2000), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", registry.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_training_schedules_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_training_schedules_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("adapter_id", name=op.f("pk_training_schedules")),
    )
    with op.batch_alter_table("training_schedules", schema=None) as batch_op:
        batch_op.create_index("ix_training_schedules_due", ["enabled", "next_run_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_training_schedules_tenant_id"), ["tenant_id"], unique=False
        )

    with op.batch_alter_table("drift_metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("drift_metrics", schema=None) as batch_op:
        batch_op.drop_column("details")

    with op.batch_alter_table("training_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_schedules_tenant_id"))
        batch_op.drop_index("ix_training_schedules_due")

    op.drop_table("training_schedules")
    with op.batch_alter_table("drift_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_policies_tenant_id"))

    op.drop_table("drift_policies")
