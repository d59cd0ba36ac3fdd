"""OpenAI fine-tuning API: files, fine-tuning jobs, checkpoints; pausable training jobs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

New columns have constant server defaults or are nullable, so PostgreSQL rewrites no row.
Job statuses (training and labelling jobs share the enum) gain `paused`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUS = ("queued", "running", "succeeded", "failed", "cancelled")
NEW_STATUS = (*OLD_STATUS, "paused")


def _in(column: str, values: Sequence[str]) -> str:
    return f'"{column}" IN (' + ", ".join(f"'{v}'" for v in values) + ")"


def _statuses(values: Sequence[str]) -> None:
    for table in ("training_jobs", "labelling_jobs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            batch_op.create_check_constraint(op.f(f"ck_{table}_status"), _in("status", values))


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    _statuses(NEW_STATUS)
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pause_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("resume_key", sa.String(500), nullable=True))
        batch_op.add_column(
            sa.Column("keep_checkpoints", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "tenant_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("object_key", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        _fk("tenant_files", "tenant_id", "tenants"),
        _fk("tenant_files", "dataset_id", "datasets"),
        _fk("tenant_files", "job_id", "training_jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_files")),
    )
    op.create_index("ix_tenant_files_tenant_time", "tenant_files", ["tenant_id", "created_at"])
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("training_job_id", sa.Uuid(), nullable=True),
        sa.Column("adapter_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("suffix", sa.String(64), nullable=False),
        sa.Column("fine_tuned_model", sa.String(300), nullable=False),
        sa.Column("training_file_id", sa.Uuid(), nullable=False),
        sa.Column("validation_file_id", sa.Uuid(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("method", sa.JSON(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("model_deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("fine_tuning_jobs", "tenant_id", "tenants"),
        _fk("fine_tuning_jobs", "training_job_id", "training_jobs"),
        _fk("fine_tuning_jobs", "adapter_id", "adapters"),
        _fk("fine_tuning_jobs", "training_file_id", "tenant_files"),
        _fk("fine_tuning_jobs", "validation_file_id", "tenant_files"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_tuning_jobs")),
        sa.UniqueConstraint("training_job_id", name=op.f("uq_fine_tuning_jobs_training_job_id")),
        sa.UniqueConstraint(
            "tenant_id", "fine_tuned_model", name=op.f("uq_fine_tuning_jobs_tenant_id")
        ),
    )
    op.create_index(
        "ix_fine_tuning_jobs_tenant_time", "fine_tuning_jobs", ["tenant_id", "created_at"]
    )
    op.create_table(
        "training_checkpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("base_model_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artifact_prefix", sa.String(500), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("manifest_digest", sa.String(80), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("training_checkpoints", "tenant_id", "tenants"),
        _fk("training_checkpoints", "job_id", "training_jobs"),
        _fk("training_checkpoints", "adapter_id", "adapters"),
        _fk("training_checkpoints", "version_id", "adapter_versions"),
        _fk("training_checkpoints", "base_model_id", "base_models"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_checkpoints")),
        sa.UniqueConstraint("job_id", "step", name=op.f("uq_training_checkpoints_job_id")),
    )
    op.create_index(
        op.f("ix_training_checkpoints_tenant_id"), "training_checkpoints", ["tenant_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_training_checkpoints_tenant_id"), table_name="training_checkpoints")
    op.drop_table("training_checkpoints")
    op.drop_index("ix_fine_tuning_jobs_tenant_time", table_name="fine_tuning_jobs")
    op.drop_table("fine_tuning_jobs")
    op.drop_index("ix_tenant_files_tenant_time", table_name="tenant_files")
    op.drop_table("tenant_files")
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_column("keep_checkpoints")
        batch_op.drop_column("resume_key")
        batch_op.drop_column("pause_requested")
    op.execute("UPDATE training_jobs SET status = 'cancelled' WHERE status = 'paused'")
    _statuses(OLD_STATUS)
