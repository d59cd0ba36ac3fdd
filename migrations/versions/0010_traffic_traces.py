"""traffic: full traces with redaction and retention per adapter, feedback on responses,
datasets curated from traffic or labelled by teachers, and drift retrains on traffic

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

New columns are nullable or have constant server defaults, so PostgreSQL rewrites no row.
`datasets` of schedules and drift policies may now be `traffic`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAPTURE = ("prompts", "full")
# Clients created with their role's whole scope set before this revision get the new scopes of
# their role (a client narrowed at creation keeps exactly what it was given).
_OLD_TENANT = {
    "tenants:read", "base_models:read", "datasets:read", "datasets:write", "adapters:read",
    "adapters:write", "training:write", "inference", "promotion:override",
}  # fmt: skip
_OLD_READ = {
    "tenants:read", "datasets:read", "adapters:read", "audit:read", "base_models:read",
}  # fmt: skip
_OLD_OPS = (_OLD_TENANT | _OLD_READ | {
    "tenants:write", "retraining:write", "audit:write", "base_models:write",
}) - {"inference"}  # fmt: skip
NEW_SCOPES = {
    "tenant": (_OLD_TENANT, {"traffic:read", "traffic:write", "teachers:read"}),
    "ops": (_OLD_OPS, {"traffic:read", "traffic:write", "teachers:read", "teachers:write"}),
    "auditor": (_OLD_READ, {"traffic:read", "teachers:read"}),
}
JOB_STATUS = ("queued", "running", "succeeded", "failed", "cancelled")


def _in(column: str, values: Sequence[str]) -> str:
    return f'"{column}" IN (' + ", ".join(f"'{v}'" for v in values) + ")"


def _dataset_modes(modes: Sequence[str]) -> None:
    for table in ("drift_policies", "training_schedules"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_datasets"), type_="check")
            batch_op.create_check_constraint(op.f(f"ck_{table}_datasets"), _in("datasets", modes))


def upgrade() -> None:
    with op.batch_alter_table("traffic_samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(64), nullable=True))
        batch_op.add_column(
            sa.Column("captured", sa.String(16), nullable=False, server_default="prompts")
        )
        batch_op.add_column(sa.Column("object_key", sa.String(500), nullable=True))
        batch_op.add_column(sa.Column("object_line", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("redactions", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.create_check_constraint(
            op.f("ck_traffic_samples_captured"), _in("captured", CAPTURE)
        )
        batch_op.create_index("ix_traffic_tenant_request", ["tenant_id", "request_id"])
        batch_op.create_index("ix_traffic_created_at", ["created_at"])
    op.create_table(
        "traffic_capture",
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=True),
        sa.Column("retention_seconds", sa.Integer(), nullable=False),
        sa.Column("redact", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("redact_patterns", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("mode", CAPTURE), name=op.f("ck_traffic_capture_mode")),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_traffic_capture_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_traffic_capture_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("adapter_id", name=op.f("pk_traffic_capture")),
    )
    op.create_index(op.f("ix_traffic_capture_tenant_id"), "traffic_capture", ["tenant_id"])
    op.create_table(
        "feedback",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("correction", sa.JSON(), nullable=True),
        sa.Column("comment", sa.String(2000), nullable=False),
        sa.Column("redactions", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("abs(rating) <= 1", name=op.f("ck_feedback_rating")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_feedback_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_feedback_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["adapter_versions.id"],
            name=op.f("fk_feedback_version_id_adapter_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index(
        "uq_feedback_tenant_request", "feedback", ["tenant_id", "request_id"], unique=True
    )
    op.create_index(
        "ix_feedback_adapter_time", "feedback", ["tenant_id", "adapter_id", "created_at"]
    )
    op.create_table(
        "teachers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("secret_name", sa.String(200), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("max_requests", sa.Integer(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teachers")),
        sa.UniqueConstraint("name", name=op.f("uq_teachers_name")),
    )
    op.create_table(
        "labelling_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("followup", sa.JSON(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=True),
        sa.Column("training_job_id", sa.Uuid(), nullable=True),
        sa.Column("error", sa.String(4000), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", JOB_STATUS), name=op.f("ck_labelling_jobs_status")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_labelling_jobs_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_labelling_jobs_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["teachers.id"], name=op.f("fk_labelling_jobs_teacher_id_teachers")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_labelling_jobs_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["training_job_id"],
            ["training_jobs.id"],
            name=op.f("fk_labelling_jobs_training_job_id_training_jobs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labelling_jobs")),
    )
    op.create_index(op.f("ix_labelling_jobs_status"), "labelling_jobs", ["status"])
    op.create_index("ix_labelling_jobs_tenant_time", "labelling_jobs", ["tenant_id", "created_at"])
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.JSON(), nullable=True))
    with op.batch_alter_table("drift_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("teacher_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_drift_policies_teacher_id_teachers"), "teachers", ["teacher_id"], ["id"]
        )
    _dataset_modes(("latest", "all", "traffic"))
    _grant_new_scopes(upgrade=True)


def _grant_new_scopes(*, upgrade: bool) -> None:
    conn = op.get_bind()
    for client_id, role, scopes in conn.execute(
        sa.text("SELECT id, role, scopes FROM oauth_clients")
    ).all():
        old, new = NEW_SCOPES.get(role, (None, set()))
        have = set(scopes.split())
        if old is None or not (old <= have if upgrade else new <= have):
            continue
        changed = have | new if upgrade else have - new
        conn.execute(
            sa.text("UPDATE oauth_clients SET scopes = :scopes WHERE id = :id"),
            {"scopes": " ".join(sorted(changed)), "id": client_id},
        )


def downgrade() -> None:
    _grant_new_scopes(upgrade=False)
    op.execute("UPDATE drift_policies SET datasets = 'latest' WHERE datasets = 'traffic'")
    op.execute("UPDATE training_schedules SET datasets = 'latest' WHERE datasets = 'traffic'")
    _dataset_modes(("latest", "all"))
    with op.batch_alter_table("drift_policies", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_drift_policies_teacher_id_teachers"), type_="foreignkey")
        batch_op.drop_column("teacher_id")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("origin")
    op.drop_index("ix_labelling_jobs_tenant_time", table_name="labelling_jobs")
    op.drop_index(op.f("ix_labelling_jobs_status"), table_name="labelling_jobs")
    op.drop_table("labelling_jobs")
    op.drop_table("teachers")
    op.drop_index("ix_feedback_adapter_time", table_name="feedback")
    op.drop_index("uq_feedback_tenant_request", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index(op.f("ix_traffic_capture_tenant_id"), table_name="traffic_capture")
    op.drop_table("traffic_capture")
    with op.batch_alter_table("traffic_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_traffic_created_at")
        batch_op.drop_index("ix_traffic_tenant_request")
        batch_op.drop_constraint(op.f("ck_traffic_samples_captured"), type_="check")
        batch_op.drop_column("redactions")
        batch_op.drop_column("object_line")
        batch_op.drop_column("object_key")
        batch_op.drop_column("captured")
        batch_op.drop_column("request_id")
