from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Float, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from registry.db import Base, utcnow


class BaseModel(Base):
    """A shared base model (platform-wide, registered by ops)."""

    __tablename__ = "base_models"
    __table_args__ = (CheckConstraint("max_lora_rank BETWEEN 1 AND 512", name="max_lora_rank"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    uri: Mapped[str] = mapped_column(String(1000))
    digest: Mapped[str] = mapped_column(String(64))  # over config.json + weight files
    files: Mapped[dict[str, str]] = mapped_column(JSON)  # relative name -> sha256
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    architecture: Mapped[str | None] = mapped_column(String(100))
    num_layers: Mapped[int]
    module_shapes: Mapped[dict[str, list[int]]] = mapped_column(JSON)  # suffix -> [out, in]
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Whether the tokenizer's chat template renders `tools` and assistant `tool_calls` (found
    # at registration by rendering a probe conversation), and which vLLM tool-call parser reads
    # the model's calls back (given at registration; None: the engine serves no tool calling).
    chat_template_tools: Mapped[bool] = mapped_column(default=False, server_default=false())
    tool_call_parser: Mapped[str | None] = mapped_column(String(64))
    # The highest LoRA rank served on this model (set at registration, one of vLLM's ranks):
    # uploads and training above it are refused; its engines start with `--max-lora-rank` it.
    max_lora_rank: Mapped[int] = mapped_column(Integer, server_default="64")
    # Against forgetting (set by ops): a platform suite every candidate is scored on, how far
    # below the base model's score on it a candidate may fall, and platform rows mixed into
    # every tenant's training at `rehearsal_ratio` (share of the training rows).
    general_suite_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("eval_suites.id"))
    forgetting_tolerance: Mapped[float] = mapped_column(Float, default=0.05, server_default="0.05")
    rehearsal_dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))
    rehearsal_ratio: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
