from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from registry.auth.principal import Principal
from registry.auth.scopes import Role
from registry.models import Teacher
from registry.teachers.secrets import SECRET_NAME_PATTERN

TEACHER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


def _check_base_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("base_url takes no query, fragment or credentials (use secret_name)")
    url = value.strip().rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if url.endswith(suffix):
            raise ValueError(
                f"base_url ends before {suffix} (e.g. https://api.example.com/v1): "
                "loraplex appends the endpoint"
            )
    return url


BaseUrl = Annotated[str, Field(min_length=8, max_length=500), AfterValidator(_check_base_url)]
Name = Annotated[str, Field(pattern=TEACHER_NAME_PATTERN)]
SecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN)]
Rpm = Annotated[int, Field(ge=1, le=100_000)]
Timeout = Annotated[float, Field(gt=0, le=600)]
Retries = Annotated[int, Field(ge=0, le=10)]
Budget = Annotated[int, Field(ge=1, le=1_000_000)]
MaxTokens = Annotated[int, Field(ge=1, le=32_768)]


class TeacherCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    base_url: BaseUrl = Field(description="OpenAI-compatible root, e.g. https://host/v1")
    model: str = Field(min_length=1, max_length=200)
    secret_name: SecretName | None = Field(
        default=None,
        description="a file in LORAPLEX_SECRETS_DIR or an environment variable of the workers "
        "holding the API key; none: no Authorization header",
    )
    requests_per_minute: Rpm = 60
    timeout_seconds: Timeout = 30.0
    max_retries: Retries = 3
    max_requests: Budget = Field(default=1000, description="calls per labelling job, retries too")
    max_tokens: MaxTokens = 256
    enabled: bool = True


class TeacherPatch(BaseModel):
    """Only the fields given change; `secret_name: null` removes the key."""

    model_config = ConfigDict(extra="forbid")

    base_url: BaseUrl | None = None
    model: str | None = Field(default=None, min_length=1, max_length=200)
    secret_name: SecretName | None = None
    requests_per_minute: Rpm | None = None
    timeout_seconds: Timeout | None = None
    max_retries: Retries | None = None
    max_requests: Budget | None = None
    max_tokens: MaxTokens | None = None
    enabled: bool | None = None


class TeacherOut(BaseModel):
    id: uuid.UUID
    name: str
    base_url: str
    model: str
    secret_name: str | None = Field(description="shown to ops only; the value never is")
    requests_per_minute: int
    timeout_seconds: float
    max_retries: int
    max_requests: int
    max_tokens: int
    enabled: bool
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


def teacher_out(row: Teacher, principal: Principal) -> TeacherOut:
    out = TeacherOut.model_validate(row, from_attributes=True)
    if principal.role is Role.TENANT:
        out.secret_name = None
    return out


class TeacherList(BaseModel):
    items: list[TeacherOut]
