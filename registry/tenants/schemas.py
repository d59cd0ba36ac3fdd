from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from registry.auth import scopes as sc
from registry.validation_types import INT32_MAX, INT64_MAX

SLUG_PATTERN = r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$"


class TenantCreate(BaseModel):
    slug: str = Field(pattern=SLUG_PATTERN, description="lowercase letters, digits, dashes")
    display_name: str = Field(min_length=1, max_length=200)
    quota_dataset_bytes: int | None = Field(default=None, gt=0, le=INT64_MAX, strict=True)
    quota_adapters: int | None = Field(default=None, gt=0, le=INT32_MAX, strict=True)


class TenantUpdate(BaseModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    quota_dataset_bytes: int | None = Field(default=None, gt=0, le=INT64_MAX, strict=True)
    quota_adapters: int | None = Field(default=None, gt=0, le=INT32_MAX, strict=True)


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    display_name: str
    disabled: bool
    disabled_at: dt.datetime | None
    quota_dataset_bytes: int
    quota_adapters: int
    traffic_logging: bool
    created_at: dt.datetime


class TrafficLogging(BaseModel):
    enabled: bool = Field(
        description="keep a sample of this tenant's prompts for drift detection (default on)"
    )


class TenantList(BaseModel):
    items: list[TenantOut]
    limit: int
    offset: int


class ClientCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    scopes: list[str] | None = Field(
        default=None, description=f"subset of: {sc.render(sc.ROLE_SCOPES[sc.Role.TENANT])}"
    )


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: str
    role: str
    scopes: str
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ClientCreated(ClientOut):
    client_secret: str = Field(description="shown once; only a hash is kept")
