"""A curated dataset's request and answer (POST /v1/tenants/{tenant}/datasets/from-traffic)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from registry.datasets.schemas import NAME_PATTERN, DatasetOut
from registry.drift.schemas import Duration
from registry.errors import Unprocessable
from registry.validation_types import INT32_MAX

DEFAULT_WINDOW = 7 * 86400
MIN_WINDOW = 60


class FromTrafficIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="the dataset to add a version to")
    adapter: str = Field(min_length=1, max_length=100, description="whose traffic")
    version: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="only traces this version answered"
    )
    since: AwareDatetime | None = Field(default=None, description="default: until - window")
    until: AwareDatetime | None = Field(default=None, description="default: now")
    window: Duration | None = Field(
        default=None, description="'24h', '7d', ... before 'until'; default 7d (not with since)"
    )
    ratings: list[Literal[-1, 0, 1]] | None = Field(
        default=None,
        max_length=3,
        description="keep uncorrected traces rated so (unrated ones are then left out); "
        "default: any rating, unrated included. Corrected traces are always kept, "
        "traces rated -1 without a correction never",
    )
    corrected_only: bool = False
    min_count: int = Field(
        default=1, ge=1, le=INT32_MAX, description="fewer rows is a 422; nothing is stored"
    )

    @model_validator(mode="after")
    def _one_window(self) -> FromTrafficIn:
        if self.window is not None and self.since is not None:
            raise ValueError("give 'window' or 'since', not both")
        if self.window is not None and self.window < MIN_WINDOW:
            raise ValueError("'window' is at least one minute")
        return self

    def bounds(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        until = self.until or now
        try:
            since = self.since or until - dt.timedelta(seconds=self.window or DEFAULT_WINDOW)
        except OverflowError:
            raise Unprocessable("'until' is too early for the window; give 'since'") from None
        return since, until


class FromTrafficOut(DatasetOut):
    traffic: dict[str, Any] = Field(
        description="matched (full traces in the window), rows, corrected, redacted (rows "
        "with a redaction), redactions (by kind), skipped (by reason), window, filters"
    )
