"""audit chains: one hash chain per tenant (and one for the platform), checkpoints over their heads

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-20

Existing events become the frozen `legacy` chain: `chain` gets the constant 'legacy' through
ADD COLUMN's default (on PostgreSQL no row is rewritten, so the append-only row trigger stays on)
and `chain_seq` stays NULL (legacy events are ordered by `seq`, which was gapless). The single
head row moves to `audit_chain_heads` as the `legacy` row. From here `seq` comes from the
sequence `audit_events_seq` (increasing, not gapless) on PostgreSQL, and from max(seq) + 1 on
SQLite (a single writer). Downgrading is only for a deployment that has written no new event.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from registry.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
OLD_SCHEMES = ("sha256", "hmac-sha256")
SCHEMES = (*OLD_SCHEMES, "hmac-chain")


def _scheme_check(schemes: tuple[str, ...]) -> str:
    return '"hash_scheme" IN (\'' + "', '".join(schemes) + "')"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chain", sa.String(80), nullable=False, server_default="legacy")
        )
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.drop_constraint(op.f("ck_audit_events_hash_scheme"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_audit_events_hash_scheme"), _scheme_check(SCHEMES)
        )
        batch_op.create_unique_constraint("uq_audit_events_chain_chain_seq", ["chain", "chain_seq"])
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("chain", server_default=None, existing_type=sa.String(80))
    if postgres:
        op.execute("CREATE SEQUENCE audit_events_seq OWNED BY audit_events.seq")
        op.execute(
            "SELECT setval('audit_events_seq', "
            "COALESCE((SELECT max(seq) FROM audit_events), 0) + 1, false)"
        )
        op.execute(
            "ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('audit_events_seq')"
        )
    heads = op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("last_chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chain_heads")),
    )
    old = op.get_bind().execute(sa.text("SELECT last_seq, last_hash FROM audit_chain_head"))
    row = old.first()
    if row is not None and row[0] > 0:
        op.bulk_insert(
            heads,
            [
                {
                    "chain": "legacy",
                    "last_chain_seq": row[0],
                    "last_seq": row[0],
                    "last_hash": row[1],
                }
            ],
        )
    op.drop_table("audit_chain_head")
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("prev_digest", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_checkpoint_entries",
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "checkpoint_seq", "chain", name=op.f("pk_audit_checkpoint_entries")
        ),
    )
    op.create_index(
        "ix_audit_checkpoint_entries_chain", "audit_checkpoint_entries", ["chain", "checkpoint_seq"]
    )
    op.create_table(
        "audit_chain_marks",
        sa.Column("chain", sa.String(80), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_chain_marks")),
    )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_table("audit_chain_marks")
    op.drop_index("ix_audit_checkpoint_entries_chain", "audit_checkpoint_entries")
    op.drop_table("audit_checkpoint_entries")
    op.drop_table("audit_checkpoints")
    legacy = (
        op.get_bind()
        .execute(
            sa.text("SELECT last_seq, last_hash FROM audit_chain_heads WHERE chain = 'legacy'")
        )
        .first()
    )
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    last_seq, last_hash = (legacy[0], legacy[1]) if legacy is not None else (0, GENESIS)
    op.bulk_insert(head, [{"id": 1, "last_seq": last_seq, "last_hash": last_hash}])
    op.drop_table("audit_chain_heads")
    if postgres:
        op.execute("ALTER TABLE audit_events ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE audit_events_seq")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_audit_events_chain_chain_seq", type_="unique")
        batch_op.drop_constraint(op.f("ck_audit_events_hash_scheme"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_audit_events_hash_scheme"), _scheme_check(OLD_SCHEMES)
        )
        batch_op.drop_column("chain_seq")
        batch_op.drop_column("chain")
