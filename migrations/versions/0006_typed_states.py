"""typed states: CHECK constraints on the string columns that hold a closed set of values

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

The sets are written out here rather than read from `registry.models.enums`: a migration is a
snapshot, and a later one widens a CHECK when an enum gains a member.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSION_STATUS = ("queued", "training", "evaluating", "ready", "failed", "cancelled", "archived")
TRIGGER = ("manual", "schedule", "drift", "upload")
JOB_STATUS = ("queued", "running", "succeeded", "failed", "cancelled")
ROLE = ("tenant", "ops", "auditor")
DATASET_MODE = ("latest", "all")

# table -> column -> allowed values; each CHECK is named ck_<table>_<column>
CHECKS: dict[str, dict[str, Sequence[str]]] = {
    "adapter_versions": {"status": VERSION_STATUS, "trigger": TRIGGER},
    "adapter_version_datasets": {"role": ("train", "validation")},
    "audit_events": {"actor_role": ROLE},
    "datasets": {"format": ("chat", "prompt_completion")},
    "drift_policies": {
        "datasets": DATASET_MODE,
        "last_outcome": (
            "",
            "ok",
            "triggered",
            "cooldown",
            "insufficient",
            "no_data",
            "skipped",
        ),
    },
    "evals": {"subject": ("version", "base_model")},
    "oauth_clients": {"role": ROLE},
    "traffic_samples": {"source": ("gateway", "api")},
    "training_jobs": {"status": JOB_STATUS, "trigger": TRIGGER},
    "training_schedules": {"datasets": DATASET_MODE, "last_outcome": ("", "queued", "skipped")},
    "usage_records": {"endpoint": ("chat.completions", "completions")},
}


def _condition(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f'"{column}" IN ({quoted})'


def upgrade() -> None:
    for table, columns in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, values in columns.items():
                batch_op.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), _condition(column, values)
                )


def downgrade() -> None:
    for table, columns in reversed(CHECKS.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
