"""eval suites: tenant and platform suites, suites pinned to adapters, the forgetting guard and
rehearsal data of a base model, evaluate jobs, gate decisions and overrides

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

`datasets.tenant_id` becomes nullable: a NULL tenant is a platform dataset (ops' rehearsal
data). Every tenant query filters on `tenant_id = :tenant`, which a NULL never matches. New
columns have constant server defaults or are nullable, so PostgreSQL rewrites no row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLATFORM_ONLY = sa.text("tenant_id IS NULL")


def _in(column: str, values: Sequence[str]) -> str:
    return f'"{column}" IN (' + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "eval_suites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("duplicates_dropped", sa.Integer(), nullable=False),
        sa.Column("check_counts", sa.JSON(), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("source_bytes", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("format", ("chat", "prompt")), name=op.f("ck_eval_suites_format")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_eval_suites_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_suites")),
        sa.UniqueConstraint(
            "tenant_id", "name", "version", name=op.f("uq_eval_suites_tenant_id_name_version")
        ),
    )
    op.create_index(op.f("ix_eval_suites_tenant_id"), "eval_suites", ["tenant_id"])
    op.create_index(
        "uq_eval_suites_platform_name_version",
        "eval_suites",
        ["name", "version"],
        unique=True,
        postgresql_where=PLATFORM_ONLY,
        sqlite_where=PLATFORM_ONLY,
    )
    op.create_table(
        "adapter_eval_suites",
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("suite_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapters.id"], name=op.f("fk_adapter_eval_suites_adapter_id_adapters")
        ),
        sa.ForeignKeyConstraint(
            ["suite_id"],
            ["eval_suites.id"],
            name=op.f("fk_adapter_eval_suites_suite_id_eval_suites"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_adapter_eval_suites_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("adapter_id", "suite_id", name=op.f("pk_adapter_eval_suites")),
    )
    op.create_index(op.f("ix_adapter_eval_suites_tenant_id"), "adapter_eval_suites", ["tenant_id"])
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=sa.Uuid(), nullable=True)
    op.create_index(
        "uq_datasets_platform_name_version",
        "datasets",
        ["name", "version"],
        unique=True,
        postgresql_where=PLATFORM_ONLY,
        sqlite_where=PLATFORM_ONLY,
    )
    with op.batch_alter_table("adapter_version_datasets", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_adapter_version_datasets_role"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_adapter_version_datasets_role"),
            _in("role", ("train", "validation", "rehearsal")),
        )
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("general_suite_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("forgetting_tolerance", sa.Float(), nullable=False, server_default="0.05")
        )
        batch_op.add_column(sa.Column("rehearsal_dataset_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("rehearsal_ratio", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.create_foreign_key(
            op.f("fk_base_models_general_suite_id_eval_suites"),
            "eval_suites",
            ["general_suite_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            op.f("fk_base_models_rehearsal_dataset_id_datasets"),
            "datasets",
            ["rehearsal_dataset_id"],
            ["id"],
        )
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suite_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_evals_suite_id_eval_suites"), "eval_suites", ["suite_id"], ["id"]
        )
        batch_op.create_index(op.f("ix_evals_suite_id"), ["suite_id"])
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="train")
        )
        batch_op.create_check_constraint(
            op.f("ck_training_jobs_kind"), _in("kind", ("train", "evaluate"))
        )
    with op.batch_alter_table("adapter_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gate", sa.JSON(), nullable=True))
    with op.batch_alter_table("adapter_alias_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("override", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("adapter_alias_events", schema=None) as batch_op:
        batch_op.drop_column("override")
    with op.batch_alter_table("adapter_versions", schema=None) as batch_op:
        batch_op.drop_column("gate")
    op.execute(
        "DELETE FROM training_job_events WHERE job_id IN "
        "(SELECT id FROM training_jobs WHERE kind = 'evaluate')"
    )
    op.execute("DELETE FROM training_jobs WHERE kind = 'evaluate'")
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_training_jobs_kind"), type_="check")
        batch_op.drop_column("kind")
    with op.batch_alter_table("evals", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_evals_suite_id"))
        batch_op.drop_constraint(op.f("fk_evals_suite_id_eval_suites"), type_="foreignkey")
        batch_op.drop_column("suite_id")
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_base_models_rehearsal_dataset_id_datasets"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            op.f("fk_base_models_general_suite_id_eval_suites"), type_="foreignkey"
        )
        batch_op.drop_column("rehearsal_ratio")
        batch_op.drop_column("rehearsal_dataset_id")
        batch_op.drop_column("forgetting_tolerance")
        batch_op.drop_column("general_suite_id")
    op.execute("DELETE FROM adapter_version_datasets WHERE role = 'rehearsal'")
    with op.batch_alter_table("adapter_version_datasets", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_adapter_version_datasets_role"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_adapter_version_datasets_role"), _in("role", ("train", "validation"))
        )
    op.drop_index("uq_datasets_platform_name_version", table_name="datasets")
    op.execute("DELETE FROM datasets WHERE tenant_id IS NULL")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.alter_column("tenant_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_table("adapter_eval_suites")
    op.drop_index("uq_eval_suites_platform_name_version", table_name="eval_suites")
    op.drop_index(op.f("ix_eval_suites_tenant_id"), table_name="eval_suites")
    op.drop_table("eval_suites")
