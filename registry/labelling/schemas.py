from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from registry.adapters.schemas import VERSION_MAX
from registry.datasets.schemas import NAME_PATTERN
from registry.drift.schemas import Duration
from registry.models.enums import JobStatus

DEFAULT_WINDOW = 7 * 86400
MAX_PROMPTS = 10_000


class LabellingParams(BaseModel):
    """Which traffic prompts go to the teacher, and the dataset the kept answers become."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=NAME_PATTERN, description="name of the output dataset")
    window: Duration | None = Field(
        default=None, description="traffic of the last '24h', '7d'...; default 7d without since"
    )
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    version: int | None = Field(
        default=None, ge=1, le=VERSION_MAX, description="only prompts this version answered"
    )
    max_prompts: int = Field(default=200, ge=1, le=MAX_PROMPTS)
    skip_answered: bool = Field(
        default=True, description="skip prompts whose trace has a correction or a rating of 1"
    )

    @model_validator(mode="after")
    def _window_or_since(self) -> LabellingParams:
        if self.window is not None and self.since is not None:
            raise ValueError("give either window or since, not both")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def resolve(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        until = self.until or now
        since = self.since or until - dt.timedelta(seconds=self.window or DEFAULT_WINDOW)
        return since, until


class LabellingJobCreate(LabellingParams):
    teacher: str = Field(min_length=1, max_length=63, description="a teacher registered by ops")


class LabellingJobOut(BaseModel):
    id: uuid.UUID
    tenant: str
    adapter: str
    teacher: str
    status: JobStatus
    params: dict[str, Any] = Field(
        description="dataset, since, until, version, max_prompts, skip_answered"
    )
    followup: dict[str, Any] | None
    progress: dict[str, Any] = Field(
        description="sent, kept, refused, failed, total, calls, refused_by, budget_exhausted"
    )
    counts: dict[str, int]
    dataset_id: uuid.UUID | None
    training_job_id: uuid.UUID | None
    error: str
    cancel_requested: bool
    worker: str | None
    heartbeat_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class LabellingJobList(BaseModel):
    items: list[LabellingJobOut]
