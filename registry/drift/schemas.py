from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from registry.adapters.schemas import VERSION_MAX
from registry.datasets.schemas import NAME_PATTERN
from registry.training.selection import DatasetMode
from registry.validation_types import INT64_MAX, JsonObject

PROMPT_LENGTH_PSI = "prompt_length_psi"
UNIGRAM_JSD = "unigram_jsd"
OOV_RATE = "oov_rate"
DriftMetricName = Literal["prompt_length_psi", "unigram_jsd", "oov_rate"]

# PSI 0.2 is the usual "significant shift" line (Evidently, NannyML and most credit-risk
# practice); the other two were set above what traffic drawn from the training distribution
# reaches at 200 prompts (README: drift defaults).
DEFAULT_THRESHOLDS: dict[str, float] = {PROMPT_LENGTH_PSI: 0.2, UNIGRAM_JSD: 0.1, OOV_RATE: 0.1}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_SECONDS = 3650 * 86400  # ten years; the columns are 32-bit integers
_SHORT = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(value: Any) -> int:
    """Seconds from 3600, '90m', '24h', '7d', '2w' or an ISO 8601 duration ('P7D', 'PT12H')."""
    if isinstance(value, bool):
        raise ValueError("a duration is seconds or text like '24h', '7d', 'PT12H'")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a duration must be a finite number of seconds")
    if isinstance(value, int | float):
        seconds = int(value)
    elif isinstance(value, str) and (m := _SHORT.match(value.lower())):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    elif isinstance(value, str) and value.upper().startswith("P"):
        from pydantic import TypeAdapter

        try:
            seconds = int(TypeAdapter(dt.timedelta).validate_python(value).total_seconds())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 duration") from exc
    else:
        raise ValueError(f"{value!r} is not a duration; use seconds or e.g. '24h', '7d', 'PT12H'")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration is at most {MAX_DURATION_SECONDS // 86400} days")
    return seconds


def format_duration(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    int, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class DriftPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: DriftMetricName = "prompt_length_psi"
    threshold: float | None = Field(
        default=None, gt=0, le=100, description="default: 0.2 PSI, 0.1 JSD, 0.1 OOV rate"
    )
    window: Duration = Field(default=86400, description="traffic looked at: '24h', '7d', ...")
    min_samples: int = Field(default=200, ge=1, le=1_000_000)
    cooldown: Duration = Field(default=7 * 86400, description="no second drift retrain within")
    enabled: bool = True
    datasets: DatasetMode = Field(
        default=DatasetMode.LATEST,
        description="'latest' | 'all': uploaded data; 'traffic': the window's corrected and "
        "approved traffic (labelled by `teacher` where named) with the newest uploaded data",
    )
    dataset_names: list[str] | None = Field(
        default=None,
        max_length=50,
        description="dataset names to train on (with 'traffic': the uploaded ones to add)",
    )
    teacher: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="datasets 'traffic' only: the teacher that answers the window's prompts "
        "nobody corrected or approved",
    )
    traffic_dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=NAME_PATTERN,
        description="datasets 'traffic' only: the curated dataset's name; "
        "default '<adapter>-traffic'",
    )

    @model_validator(mode="after")
    def _traffic_only(self) -> DriftPolicyIn:
        if self.datasets != DatasetMode.TRAFFIC:
            for field in ("teacher", "traffic_dataset"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{field} is only for datasets 'traffic'")
        return self

    def resolved_threshold(self) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLDS[self.metric]


class DriftPolicyOut(BaseModel):
    tenant: str
    adapter: str
    metric: str
    threshold: float
    window: Duration
    min_samples: int
    cooldown: Duration
    enabled: bool
    datasets: str
    dataset_names: list[str] | None
    teacher: str | None = Field(description="datasets 'traffic': the teacher that labels")
    traffic_dataset: str | None = Field(description="datasets 'traffic': the curated dataset")
    last_checked_at: dt.datetime | None
    last_outcome: str = Field(
        description="ok | triggered | cooldown | insufficient | no_data | skipped | ''"
    )
    last_message: str
    last_triggered_at: dt.datetime | None
    last_job_id: str | None
    updated_by: str
    updated_at: dt.datetime


MAX_TRAFFIC_SAMPLES = 1000
MAX_SAMPLE_BYTES = 32 * 1024


class TrafficIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(min_length=1, max_length=100)
    version: int | None = Field(
        default=None,
        ge=1,
        le=VERSION_MAX,
        description="the version that answered; default: production now",
    )
    samples: list[JsonObject] = Field(
        min_length=1,
        max_length=MAX_TRAFFIC_SAMPLES,
        description="prompts in the dataset row format: {'messages': [...]} or {'prompt': '...'}",
    )


class TrafficOut(BaseModel):
    adapter: str
    version: int
    accepted: int
    redacted: int = Field(
        default=0, description="samples in which redaction replaced something before storing"
    )


class DriftCreate(BaseModel):
    metric: str = Field(min_length=1, max_length=50)
    value: float
    window_start: dt.datetime
    window_end: dt.datetime
    sample_size: int = Field(ge=0, le=INT64_MAX)
    version: int | None = Field(
        default=None, ge=1, le=VERSION_MAX, description="the version that served"
    )
    details: JsonObject = Field(default_factory=dict, description="how it was computed")

    @model_validator(mode="after")
    def _window(self) -> DriftCreate:
        if not math.isfinite(self.value):
            raise ValueError("value must be a finite number")
        for field in (self.window_start, self.window_end):
            if field.tzinfo is None:
                raise ValueError("window_start and window_end need a timezone (e.g. Z)")
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class DriftOut(BaseModel):
    metric: str
    value: float
    window_start: dt.datetime
    window_end: dt.datetime
    sample_size: int
    version: int | None
    details: dict[str, Any]
    created_at: dt.datetime
