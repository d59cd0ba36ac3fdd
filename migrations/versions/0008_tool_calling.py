"""tool calling: what a base model's template and engine can do with tools, tool rows in
datasets, tool calls in usage

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Every new column has a constant server default (or is nullable), so on PostgreSQL each ADD
COLUMN is a catalog change that rewrites no row. Existing base models are marked as having no
tool-capable template until they are registered again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "chat_template_tools", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("tool_call_parser", sa.String(64), nullable=True))
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tool_rows", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tool_calls", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("tool_calls")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("tool_rows")
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.drop_column("tool_call_parser")
        batch_op.drop_column("chat_template_tools")
