from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from registry.drift.schemas import Duration
from registry.models.enums import CaptureMode
from registry.traffic.redaction import check_patterns

MIN_RETENTION_SECONDS = 3600


def _checked_patterns(value: list[Any]) -> list[dict[str, str]]:
    return check_patterns(value)  # ValueError names the bad entry: 422


class CaptureIn(BaseModel):
    """What the gateway keeps of one adapter's traffic (a PUT replaces all of it)."""

    model_config = ConfigDict(extra="forbid")

    mode: CaptureMode = Field(
        default=CaptureMode.PROMPTS,
        description="prompts: the prompt only (drift); full: request, answer and tool calls",
    )
    sample_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="share of requests kept; null: the platform's"
    )
    retention: Duration | None = Field(
        default=None,
        description="how long traces are kept ('30d', >= 1h); null: the platform's default now",
    )
    redact: bool = Field(default=True, description="replace e-mails, phones, cards, keys")
    redact_patterns: Annotated[list[Any], AfterValidator(_checked_patterns)] = Field(
        default_factory=list,
        description='your own RE2 patterns: [{"name": "ORDER_ID", "pattern": "ORD-[0-9]{6}"}]',
    )

    @model_validator(mode="after")
    def _long_enough(self) -> CaptureIn:
        if self.retention is not None and self.retention < MIN_RETENTION_SECONDS:
            raise ValueError("retention is at least 1h")
        return self


class CaptureOut(BaseModel):
    tenant: str
    adapter: str
    configured: bool = Field(description="false: no settings stored, these are the defaults")
    mode: CaptureMode
    sample_rate: float | None = Field(description="as set; null: the platform's rate")
    effective_sample_rate: float = Field(description="the share of requests the gateway keeps")
    retention: Duration
    retention_seconds: int
    redact: bool
    redact_patterns: list[dict[str, str]]
    tenant_traffic_logging: bool = Field(
        description="false: the tenant opted out of traffic logging; nothing is captured"
    )
    updated_by: str | None
    updated_at: dt.datetime | None


class EraseOut(BaseModel):
    tenant: str
    adapter: str | None
    rows: int = Field(description="traffic samples (prompts and traces) deleted")
    feedback: int
    objects: int = Field(description="trace batch objects deleted from the object store")


class FeedbackView(BaseModel):
    rating: int
    corrected: bool
    correction: list[dict[str, Any]] | None
    comment: str
    redactions: dict[str, int]
    created_by: str
    updated_at: dt.datetime


class TraceOut(BaseModel):
    id: int
    request_id: str | None
    adapter: str
    version: int | None
    captured: CaptureMode
    source: str
    created_at: dt.datetime
    redactions: dict[str, int]
    record: dict[str, Any] = Field(description="the (redacted) prompt in the dataset row format")
    trace: dict[str, Any] | None = Field(
        description="full traces: request, response, tool calls; null when prompts only or erased"
    )
    feedback: FeedbackView | None


class TracePage(BaseModel):
    items: list[TraceOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")
