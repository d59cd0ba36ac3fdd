from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    version: int
    format: str
    sha256: str
    bytes: int
    rows: int
    tool_rows: int  # rows with a `tools` list or an assistant tool call
    duplicates_dropped: int
    source_sha256: str
    source_bytes: int
    created_by: str
    created_at: dt.datetime
    origin: dict[str, Any] | None = Field(
        default=None,
        description="null: uploaded; {'kind': 'traffic', ...} curated from traffic (window, "
        "filters, counts); {'kind': 'teacher', ...} labelled by a teacher model",
    )


class DatasetList(BaseModel):
    items: list[DatasetOut]
    limit: int
    offset: int
