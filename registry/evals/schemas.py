from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.validation_types import JsonObject


class EvalCreate(BaseModel):
    suite: str = Field(min_length=1, max_length=100)
    metrics: dict[str, float] = Field(min_length=1, description="metric name -> number")
    subject: Literal["version", "base_model"] = Field(
        default="version",
        description="what was scored on this version's eval set: the version or the base model",
    )
    dataset_id: uuid.UUID | None = None
    details: JsonObject = Field(default_factory=dict, description="free-form; at most 256 KiB")

    @field_validator("metrics")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"metrics must be finite numbers: {bad}")
        if any(not k or len(k) > 100 for k in value):
            raise ValueError("metric names must be 1-100 characters")
        return value


class EvalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    version: int
    suite: str
    subject: str
    metrics: dict[str, float]
    dataset_id: uuid.UUID | None
    suite_id: uuid.UUID | None = None
    details: dict[str, Any]
    created_by: str
    created_at: dt.datetime


class MetricDelta(BaseModel):
    suite: str
    metric: str
    a: float | None
    b: float | None
    delta: float | None  # b - a


class Comparison(BaseModel):
    a: str  # "v3"
    b: str  # "v5" or "base_model"
    metrics: list[MetricDelta]
