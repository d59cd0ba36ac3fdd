"""The closed sets of values that string columns hold. Each column is typed with its enum and the
database enforces the set with a CHECK constraint (migration 0006), so a value the code does not
know can neither be written nor read back. Adding a member needs a migration that widens the
CHECK. Members are `str`s: `version.status == "ready"` holds for `VersionStatus.READY`.
"""

from __future__ import annotations

import enum

from sqlalchemy import Enum

from registry.auth.scopes import Role


class VersionStatus(enum.StrEnum):
    QUEUED = "queued"
    TRAINING = "training"
    EVALUATING = "evaluating"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


class Trigger(enum.StrEnum):
    """What started a version (a training job is never `upload`)."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    DRIFT = "drift"
    UPLOAD = "upload"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"  # training jobs only: state saved in the object store, resumable


class DatasetRole(enum.StrEnum):
    """What a version used a dataset for."""

    TRAIN = "train"
    VALIDATION = "validation"
    REHEARSAL = "rehearsal"  # ops' platform data mixed in against forgetting


class DatasetFormat(enum.StrEnum):
    CHAT = "chat"
    PROMPT_COMPLETION = "prompt_completion"


class EvalSubject(enum.StrEnum):
    """What was scored on a version's eval set: the version, or the base model (a baseline)."""

    VERSION = "version"
    BASE_MODEL = "base_model"


class SuiteFormat(enum.StrEnum):
    """An eval suite's rows: chat conversations, or raw-text prompts (no chat template)."""

    CHAT = "chat"
    PROMPT = "prompt"


class JobKind(enum.StrEnum):
    """What a job does: train a new version, or score an existing one on eval suites."""

    TRAIN = "train"
    EVALUATE = "evaluate"


class DatasetMode(enum.StrEnum):
    """Which datasets an automatic retrain uses: the newest version of each name, or all; or
    (drift policies only) the window's curated traffic with the newest uploaded data."""

    LATEST = "latest"
    ALL = "all"
    TRAFFIC = "traffic"


class CaptureMode(enum.StrEnum):
    """What the gateway keeps of a sampled request: the prompt only, or the whole trace
    (request, response, tool calls, the version that answered)."""

    PROMPTS = "prompts"
    FULL = "full"


class ScheduleOutcome(enum.StrEnum):
    NOT_RUN = ""
    QUEUED = "queued"
    SKIPPED = "skipped"


class DriftOutcome(enum.StrEnum):
    NOT_CHECKED = ""
    OK = "ok"
    TRIGGERED = "triggered"
    COOLDOWN = "cooldown"
    INSUFFICIENT = "insufficient"
    NO_DATA = "no_data"
    SKIPPED = "skipped"


class InferenceEndpoint(enum.StrEnum):
    """The OpenAPI-compatible route a gateway request came in on."""

    CHAT_COMPLETIONS = "chat.completions"
    COMPLETIONS = "completions"


class SampleSource(enum.StrEnum):
    """Who stored a traffic sample: the gateway, or a client through the API."""

    GATEWAY = "gateway"
    API = "api"


def enum_column(enum_class: type[enum.StrEnum], *, column: str, length: int) -> Enum:
    """A VARCHAR(`length`) holding the members' values, with a CHECK named `ck_<table>_<column>`
    (the metadata naming convention); reads give back the members."""
    return Enum(
        enum_class,
        name=column,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


__all__ = [
    "CaptureMode",
    "DatasetFormat",
    "DatasetMode",
    "DatasetRole",
    "DriftOutcome",
    "EvalSubject",
    "InferenceEndpoint",
    "JobKind",
    "JobStatus",
    "Role",
    "SampleSource",
    "ScheduleOutcome",
    "SuiteFormat",
    "Trigger",
    "VersionStatus",
    "enum_column",
]
