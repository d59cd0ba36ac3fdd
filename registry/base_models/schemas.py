from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel as Schema
from pydantic import ConfigDict, Field

from registry.auth.principal import Principal
from registry.auth.scopes import Role

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class BaseModelCreate(Schema):
    name: str = Field(pattern=NAME_PATTERN)
    uri: str = Field(
        min_length=1,
        max_length=1000,
        description="a local folder readable by the registry, or s3://bucket/prefix",
    )
    expected_digest: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="refuse if the files differ"
    )


class BaseModelOut(Schema):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    uri: str | None = Field(description="where the files are: shown to ops and auditors only")
    digest: str
    files: dict[str, str]
    total_bytes: int
    architecture: str | None
    num_layers: int
    module_shapes: dict[str, list[int]]
    config: dict[str, Any]
    created_by: str
    created_at: dt.datetime


def base_model_out(model: object, principal: Principal) -> BaseModelOut:
    """The row as `principal` may see it: tenants do not see `uri` (server paths, buckets)."""
    out = BaseModelOut.model_validate(model)
    return (
        out if principal.role in (Role.OPS, Role.AUDITOR) else out.model_copy(update={"uri": None})
    )
