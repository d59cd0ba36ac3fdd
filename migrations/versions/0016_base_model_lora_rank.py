"""Base models: the highest LoRA rank each serves (`max_lora_rank`), set by ops at registration

Revision ID: 0016
Revises: 0015
Create Date: 2027-02-08

Existing base models get 64 (the platform's `max_lora_rank` default until now) through the
column's server default, raised to the highest rank one of their adapters or adapter versions
already names (rounded up to a rank vLLM serves), so that nothing that trained, uploaded or
served before the upgrade is refused after it. The server default stays: a row written without
the column (an older registry during a rolling upgrade) gets 64, as it would have before.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT = 64
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # frozen here: as of this revision


def _rank(config: Mapping[str, Any] | None) -> int:
    """The highest rank a training config names (`rank`, or PEFT's `r` and `rank_pattern`)."""
    if not isinstance(config, Mapping):
        return 0
    pattern = config.get("rank_pattern")
    found = [config.get("rank"), config.get("r")]
    found += list(pattern.values()) if isinstance(pattern, Mapping) else []
    return max((v for v in found if isinstance(v, int) and not isinstance(v, bool)), default=0)


def _needed(rows: Iterable[Any]) -> dict[Any, int]:
    needed: dict[Any, int] = {}
    for base_id, config in rows:
        needed[base_id] = max(needed.get(base_id, 0), _rank(config))
    return needed


def upgrade() -> None:
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_lora_rank", sa.Integer(), nullable=False, server_default=str(DEFAULT))
        )
        batch_op.create_check_constraint(
            op.f("ck_base_models_max_lora_rank"), "max_lora_rank BETWEEN 1 AND 512"
        )
    conn = op.get_bind()
    base_id = sa.column("base_model_id", sa.Uuid())
    config = sa.column("training_config", sa.JSON())
    needed = _needed(conn.execute(sa.select(base_id, config).select_from(sa.table("adapters"))))
    versions = conn.execute(sa.select(base_id, config).select_from(sa.table("adapter_versions")))
    for key, rank in _needed(versions).items():
        needed[key] = max(needed.get(key, 0), rank)
    base_models = sa.table("base_models", sa.column("id", sa.Uuid()), sa.column("max_lora_rank"))
    for key, rank in needed.items():
        if rank > DEFAULT:
            served = next((r for r in VLLM_LORA_RANKS if r >= rank), VLLM_LORA_RANKS[-1])
            conn.execute(
                base_models.update().where(base_models.c.id == key).values(max_lora_rank=served)
            )


def downgrade() -> None:
    with op.batch_alter_table("base_models", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_base_models_max_lora_rank"), type_="check")
        batch_op.drop_column("max_lora_rank")
