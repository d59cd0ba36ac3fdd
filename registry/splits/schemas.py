from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.aliases.schemas import ALIAS_PATTERN

MAX_ARMS = 5
_KEY = re.compile(f"{ALIAS_PATTERN[1:-1]}|[vV]?[0-9]{{1,10}}")
# Defaults of the automatic rollback policy (a split set without `rollback` gets these).
DEFAULT_MIN_REQUESTS = 50
DEFAULT_MAX_ERROR_RATE_INCREASE = 0.05
DEFAULT_MAX_LATENCY_RATIO = 1.5


class RollbackPolicy(BaseModel):
    """Roll the split back to production when a candidate version, over at least
    `min_requests` since the split began (and production over as many), answers with an error
    rate (non-200) higher than production's by more than `max_error_rate_increase` (absolute,
    0.05 = 5 points), or with a p95 latency above `max_latency_ratio` times production's.
    A criterion set to null is not checked."""

    model_config = ConfigDict(extra="forbid")

    min_requests: int = Field(default=DEFAULT_MIN_REQUESTS, ge=1, le=1_000_000)
    max_error_rate_increase: float | None = Field(
        default=DEFAULT_MAX_ERROR_RATE_INCREASE, ge=0.0, le=1.0, allow_inf_nan=False
    )
    max_latency_ratio: float | None = Field(
        default=DEFAULT_MAX_LATENCY_RATIO, ge=1.0, le=1000.0, allow_inf_nan=False
    )


class SplitSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: dict[str, int] = Field(
        description="alias or version ('v3') -> whole percent; the weights sum to 100 and must "
        "include the version production points at, e.g. {'production': 90, 'candidate': 10}",
    )
    reason: str = Field(default="", max_length=2000)
    rollback: RollbackPolicy | None = Field(
        default_factory=RollbackPolicy,
        description="automatic rollback; null: none (the split stays until changed)",
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, int]) -> dict[str, int]:
        if not 2 <= len(weights) <= MAX_ARMS:
            raise ValueError(
                f"a split names 2 to {MAX_ARMS} versions (got {len(weights)}); to send all "
                "traffic to production, clear the split instead"
            )
        odd = [k[:50] for k in weights if not _KEY.fullmatch(k)]
        if odd:
            raise ValueError(
                f"{', '.join(repr(k) for k in odd)}: a key is an alias (lowercase letters, "
                "digits, '-', '_') or a version such as 'v2'"
            )
        bad = {k: w for k, w in weights.items() if not 0 <= w <= 100}
        if bad:
            raise ValueError(f"each weight is a whole percent from 0 to 100; got {bad}")
        total = sum(weights.values())
        if total != 100:
            shown = " + ".join(f"{k} {w}" for k, w in weights.items())
            raise ValueError(f"the weights must sum to 100; {shown} = {total}")
        return weights


class Arm(BaseModel):
    key: str = Field(description="the alias or version as it was named when the split was set")
    version: int
    weight: int


class SplitOut(BaseModel):
    adapter: str
    active: bool = Field(description="false: no split, or production moved since it was set")
    arms: list[Arm] = Field(description="the first arm is production's version (the baseline)")
    rollback: RollbackPolicy | None = None
    reason: str = ""
    set_by: str | None = None
    started_at: dt.datetime | None = None
    stale: bool = Field(
        default=False,
        description="production was moved since: the split no longer applies (until cleared)",
    )
    last_check: dict[str, Any] | None = Field(
        default=None, description="the last automatic check: at, decision, reason, figures"
    )


class SplitEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    arms: list[dict[str, Any]] = Field(description="the split after the change; [] cleared")
    previous: list[dict[str, Any]]
    rollback: dict[str, Any] | None
    actor: str
    reason: str
    automatic: bool
    details: dict[str, Any]
    occurred_at: dt.datetime


def parse_weights(text: str) -> dict[str, int]:
    """'production=90, candidate=10' (the CLI's and the console's form) -> weights; a
    ValueError saying what is wrong (the model then checks the keys and the sum)."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value.lstrip("-").isdigit() or not value.isascii():
            raise ValueError(
                f"{part[:50]!r}: write each share as KEY=PERCENT, e.g. production=90,candidate=10"
            )
        if key in out:
            raise ValueError(f"{key!r} is named twice")
        out[key] = int(value)
    if not out:
        raise ValueError("no weights given: e.g. production=90,candidate=10")
    return out
