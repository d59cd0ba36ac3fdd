"""Request and response bodies of `/v1/fine_tuning/jobs`, in OpenAI's shapes.

The request keeps hyperparameters and method loosely typed: they are checked by
hyperparameters.py and jobs.py, which answer with OpenAI's `param` naming the exact field
(a pydantic union error would name `...n_epochs.int`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.finetuning import ids
from registry.finetuning.names import SUFFIX_PATTERN
from registry.models import AdapterVersion, FineTuningJob, TrainingJob

METADATA_PAIRS, METADATA_KEY, METADATA_VALUE = 16, 64, 512
JobStatusOut = Literal[
    "validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"
]


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=100, description="a registered base model")
    training_file: str = Field(description="a file id (`file-...`) with purpose fine-tune")
    validation_file: str | None = None
    suffix: str | None = Field(
        default=None, pattern=SUFFIX_PATTERN, description="up to 64 of [A-Za-z0-9._-]"
    )
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    metadata: dict[str, str] | None = None
    method: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = Field(
        default=None, description="legacy: used when `method` is not given"
    )
    integrations: list[Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > METADATA_PAIRS:
            raise ValueError(f"{len(value)} pairs; at most {METADATA_PAIRS}")
        for key, item in value.items():
            if len(key) > METADATA_KEY:
                raise ValueError(f"key '{key[:20]}...' is over {METADATA_KEY} characters")
            if len(item) > METADATA_VALUE:
                raise ValueError(f"['{key}'] is over {METADATA_VALUE} characters")
        return value


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class LoraplexExtension(BaseModel):
    """Where the job's weights live in loraplex: adapter, version and its weights' digest."""

    adapter: str | None
    version: int | None
    adapter_digest: str | None = Field(description="sha256:<hex> of adapter_model.safetensors")


class JobOut(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatusOut
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    integrations: list[Any] = Field(default_factory=list)
    estimated_finish: int | None
    metadata: dict[str, str] | None
    method: dict[str, Any]
    user_provided_suffix: str | None
    loraplex: LoraplexExtension


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]
    has_more: bool


class EventOut(BaseModel):
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any]


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventOut]
    has_more: bool


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class CheckpointOut(BaseModel):
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CheckpointOut]
    first_id: str | None
    last_id: str | None
    has_more: bool


def unix(when: dt.datetime | None) -> int | None:
    """Unix seconds; rows hold naive UTC (SQLite) or aware datetimes."""
    if when is None:
        return None
    aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return int(aware.timestamp())


def _estimated_finish(job: TrainingJob) -> int | None:
    """From the share of steps done and the time they took; null unless running."""
    step, total = job.progress.get("step"), job.progress.get("total_steps")
    start = unix(job.started_at)
    if job.status != "running" or not step or not total or start is None:
        return None
    elapsed = max(0.0, dt.datetime.now(dt.UTC).timestamp() - start)
    return int(start + elapsed * total / step)


def job_out(
    row: FineTuningJob,
    *,
    job: TrainingJob | None,
    tenant_slug: str,
    version: AdapterVersion | None,
    adapter: str | None,
    result_files: list[str],
) -> JobOut:
    """The `fine_tuning.job` object of `row`, given what it became (`job`, `version`)."""
    status = "failed" if job is None else str(job.status)
    error = JobError(**row.error) if row.error else None
    if error is None and job is not None and job.status == "failed":
        error = JobError(code="training_failed", message=job.error or "training failed")
    succeeded = status == "succeeded"
    tokens = (job.result.get("training") or {}).get("train_tokens") if job and succeeded else None
    weights = ((version.manifest or {}).get("files") or {}) if version else {}
    digest = (weights.get("adapter_model.safetensors") or {}).get("sha256")
    finished = job.finished_at if job is not None else row.created_at
    return JobOut(
        id=ids.encode(ids.JOB, row.id),
        created_at=unix(row.created_at) or 0,
        error=error,
        fine_tuned_model=row.fine_tuned_model if succeeded else None,
        finished_at=unix(finished),
        hyperparameters=row.hyperparameters,
        model=row.model,
        organization_id=tenant_slug,
        result_files=result_files if succeeded else [],
        seed=row.seed,
        status=status,  # type: ignore[arg-type]
        trained_tokens=tokens if isinstance(tokens, int) else None,
        training_file=ids.encode(ids.FILE, row.training_file_id),
        validation_file=(
            ids.encode(ids.FILE, row.validation_file_id) if row.validation_file_id else None
        ),
        estimated_finish=_estimated_finish(job) if job is not None else None,
        metadata=row.job_metadata,
        method={"type": "supervised", "supervised": {"hyperparameters": row.hyperparameters}},
        user_provided_suffix=row.suffix or None,
        loraplex=LoraplexExtension(
            adapter=adapter,
            version=version.version if version else None,
            adapter_digest=f"sha256:{digest}" if digest else None,
        ),
    )
