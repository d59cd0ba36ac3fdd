from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from registry.adapters.schemas import VERSION_MAX

ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"


class AliasSet(BaseModel):
    version: int = Field(ge=1, le=VERSION_MAX)
    reason: str = Field(default="", max_length=2000)


class AliasOut(BaseModel):
    alias: str
    version: int
    updated_by: str
    updated_at: dt.datetime


class AliasEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    override: bool = False  # a version the promotion gate refused, promoted anyway
    occurred_at: dt.datetime


class AliasAt(BaseModel):
    alias: str
    time: dt.datetime
    version: int | None
    since: dt.datetime | None = Field(description="when the alias took that value")
