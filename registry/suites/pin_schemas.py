"""Request and response bodies of the suites pinned to an adapter (and named elsewhere)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.datasets.schemas import NAME_PATTERN
from registry.validation_types import INT32_MAX

MAX_PINNED_SUITES = 16


class SuiteRef(BaseModel):
    """A suite version by name: `version` null means its latest version at the time of the call
    (the pin keeps that exact version; a later upload does not move it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    version: int | None = Field(default=None, ge=1, le=INT32_MAX)


class SuitePinsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suites: list[SuiteRef] = Field(
        max_length=MAX_PINNED_SUITES,
        description="the whole pinned set, in order (the first is the leaderboard's default); "
        "[] unpins every suite",
    )

    @field_validator("suites")
    @classmethod
    def _unique_names(cls, refs: list[SuiteRef]) -> list[SuiteRef]:
        seen: set[str] = set()
        for ref in refs:
            if ref.name in seen:
                raise ValueError(f"suite '{ref.name}' is named twice; pin one version of it")
            seen.add(ref.name)
        return refs


class PinnedSuiteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    version: int
    sha256: str
    rows: int
    check_counts: dict[str, int]


class SuitePinsOut(BaseModel):
    suites: list[PinnedSuiteOut]
