from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field, field_validator

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
    datasets: str
    dataset_names: list[str] | None
    next_run_at: dt.datetime | None = Field(description="UTC; null while disabled")
    upcoming: list[dt.datetime] = Field(description="the next few runs, UTC")
    last_due_at: dt.datetime | None
    last_run_at: dt.datetime | None
    last_job_id: uuid.UUID | None
    last_outcome: str = Field(description="queued | skipped | '' (never ran)")
    last_message: str
    updated_by: str
    updated_at: dt.datetime


class ScheduleList(BaseModel):
    items: list[ScheduleOut]


class TickOut(BaseModel):
    now: dt.datetime
    claimed: int
    queued: list[uuid.UUID] = Field(description="training jobs created")
    skipped: list[str] = Field(description="'tenant/adapter: why' for due schedules not run")
