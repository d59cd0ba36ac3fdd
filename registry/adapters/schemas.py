from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.models.enums import Trigger, VersionStatus
from registry.validation_types import INT32_MAX

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
VERSION_MAX = 2**31 - 1  # adapter_versions.version is an INTEGER column


class TrainingConfig(BaseModel):
    """LoRA training defaults, validated at creation (PEFT LoraConfig-style)."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=8, ge=1, le=INT32_MAX, description="LoRA rank r")
    alpha: float = Field(
        default=16.0, gt=0, allow_inf_nan=False, description="LoRA alpha (scaling = alpha / r)"
    )
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        min_length=1,
        description="names of the base model's linear modules to adapt",
    )
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0)
    epochs: int = Field(default=3, ge=1, le=100)
    batch_size: int = Field(default=8, ge=1, le=1024)
    max_seq_length: int = Field(default=512, ge=16, le=32768)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seeds random, numpy, torch")
    early_stopping_patience: int = Field(
        default=3,
        ge=0,
        le=INT32_MAX,
        description="evaluations without improvement before stopping; 0: never",
    )
    max_steps: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="cap on optimizer steps"
    )

    @field_validator("target_modules")
    @classmethod
    def _unique_names(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("target_modules has duplicates")
        if any(not m or "." in m for m in value):
            raise ValueError("target_modules are module names like 'q_proj', not paths")
        return value


class AdapterCreate(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    base_model: str = Field(description="a registered base model's name")
    training: TrainingConfig = Field(default_factory=TrainingConfig)


class AdapterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    base_model: str
    training: dict[str, Any]
    promotion_policy: dict[str, Any]
    latest_version: int | None
    archived: bool
    created_by: str
    created_at: dt.datetime


class AdapterList(BaseModel):
    items: list[AdapterOut]


class VersionDatasetOut(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    sha256: str
    role: str


class VersionOut(BaseModel):
    id: uuid.UUID
    adapter: str
    version: int
    status: VersionStatus
    status_message: str
    parent_version: int | None
    datasets: list[VersionDatasetOut]
    base_model: str
    base_model_digest: str
    training_config: dict[str, Any]
    config_hash: str
    trigger: Trigger
    trigger_ref: dict[str, Any]
    job_id: str | None
    artifact_prefix: str | None
    manifest: dict[str, Any] | None
    manifest_digest: str | None
    size_bytes: int | None
    code_version: str
    created_by: str
    created_at: dt.datetime
    ready_at: dt.datetime | None
    gate: dict[str, Any] | None = Field(
        default=None,
        description="the promotion gate's last decision: passed, promote, reason, checks",
    )


class VersionList(BaseModel):
    items: list[VersionOut]
