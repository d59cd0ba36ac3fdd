from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field, field_validator

from registry.schedules.spread import MAX_SPREAD_SECONDS
from registry.training.selection import DatasetMode


class ScheduleIn(BaseModel):
    cron: str = Field(
        min_length=1,
        max_length=200,
        description="5 fields: minute hour day-of-month month day-of-week "
        "(e.g. '0 3 1 1,4,7,10 *': 03:00 on the first day of each quarter)",
        examples=["0 3 1 1,4,7,10 *"],
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA zone the cron is in")
    enabled: bool = True
    spread_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_SPREAD_SECONDS,
        description="fire within this many seconds after each due time, at a place fixed by "
        "the adapter and the due time (0: at the due time; at most 90 days, and shorter than "
        "the time between two runs)",
        examples=[21600],
    )
    datasets: DatasetMode = Field(
        default=DatasetMode.LATEST,
        description="'latest': the newest version of each dataset name; 'all': every version",
    )
    dataset_names: list[str] | None = Field(
        default=None,
        max_length=50,
        description="dataset names to train on; default: those the current version was "
        "trained on, else all of the tenant's",
    )

    @field_validator("datasets")
    @classmethod
    def _not_traffic(cls, value: DatasetMode) -> DatasetMode:
        if value == DatasetMode.TRAFFIC:
            raise ValueError(
                "traffic is for drift policies: a schedule has no window of traffic to curate; "
                "use 'latest' or 'all'"
            )
        return value


class ScheduleOut(BaseModel):
    tenant: str
    adapter: str
    cron: str
    timezone: str
    enabled: bool
    spread_seconds: int
    datasets: str
    dataset_names: list[str] | None
    next_run_at: dt.datetime | None = Field(
        description="next due time (the cron's), UTC; null while disabled"
    )
    next_fire_at: dt.datetime | None = Field(
        description="when the next run fires: the due time plus this adapter's place in the "
        "spread window, UTC; null while disabled"
    )
    upcoming: list[dt.datetime] = Field(description="the next few due times, UTC")
    last_due_at: dt.datetime | None
    last_run_at: dt.datetime | None = Field(description="when the last run actually fired, UTC")
    last_job_id: uuid.UUID | None
    last_outcome: str = Field(description="queued | skipped | '' (never ran)")
    last_message: str
    updated_by: str
    updated_at: dt.datetime


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


class TickOut(BaseModel):
    now: dt.datetime = Field(description="when the tick started (or the --now it acted at)")
    claimed: int = Field(description="due schedules claimed (each queued or skipped)")
    queued_count: int = 0
    skipped_count: int = 0
    batches: int = Field(default=0, description="transactions (one per batch of claims)")
    seconds: float = 0.0
    more_due: bool = Field(
        default=False,
        description="the time budget ran out after a full batch: more may be due (the next "
        "tick goes on)",
    )
    queued: list[uuid.UUID] = Field(
        description="training jobs created: the first ones only (queued_count has them all)"
    )
    skipped: list[str] = Field(
        description="'tenant/adapter: why' for due schedules not run: the first ones only"
    )
