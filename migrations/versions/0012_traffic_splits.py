"""Traffic splits (canaries): an adapter's active split and its history

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-10

Two new tables; no existing row changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "traffic_splits",
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("baseline_id", sa.Uuid(), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("rollback", sa.JSON(), nullable=True),
        sa.Column("last_check", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        _fk("traffic_splits", "adapter_id", "adapters"),
        _fk("traffic_splits", "tenant_id", "tenants"),
        _fk("traffic_splits", "baseline_id", "adapter_versions"),
        sa.PrimaryKeyConstraint("adapter_id", name=op.f("pk_traffic_splits")),
    )
    op.create_index(op.f("ix_traffic_splits_tenant_id"), "traffic_splits", ["tenant_id"])
    op.create_table(
        "traffic_split_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("adapter_id", sa.Uuid(), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("rollback", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        _fk("traffic_split_events", "tenant_id", "tenants"),
        _fk("traffic_split_events", "adapter_id", "adapters"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traffic_split_events")),
    )
    op.create_index(
        op.f("ix_traffic_split_events_tenant_id"), "traffic_split_events", ["tenant_id"]
    )
    op.create_index("ix_split_events_lookup", "traffic_split_events", ["adapter_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_split_events_lookup", table_name="traffic_split_events")
    op.drop_index(op.f("ix_traffic_split_events_tenant_id"), table_name="traffic_split_events")
    op.drop_table("traffic_split_events")
    op.drop_index(op.f("ix_traffic_splits_tenant_id"), table_name="traffic_splits")
    op.drop_table("traffic_splits")
