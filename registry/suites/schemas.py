from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from registry.models import EvalSuite
from registry.models.enums import SuiteFormat


class EvalSuiteOut(BaseModel):
    """An eval-suite version. `EvalSuiteOut.model_validate(suite)` takes an `EvalSuite` row;
    `owner` says whose it is (a platform suite is ops', e.g. a base model's general suite)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    version: int
    format: SuiteFormat
    sha256: str
    bytes: int
    rows: int
    duplicates_dropped: int
    check_counts: dict[str, int]  # check kind -> rows that have it
    owner: Literal["tenant", "platform"]
    created_by: str
    created_at: dt.datetime

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, EvalSuite):
            fields = set(cls.model_fields) - {"owner"}
            owner = "platform" if data.tenant_id is None else "tenant"
            return {name: getattr(data, name) for name in fields} | {"owner": owner}
        return data


class EvalSuiteList(BaseModel):
    items: list[EvalSuiteOut]
    limit: int
    offset: int
