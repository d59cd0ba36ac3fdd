"""OpenAI's file shapes: `FileObject`, its list page and the delete answer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from registry.finetuning import ids
from registry.models.finetuning import TenantFile


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int  # unix seconds
    filename: str
    purpose: str
    status: str  # processed | error
    status_details: str | None = None  # an error file's message, naming the line
    expires_at: int | None = None  # files do not expire

    @classmethod
    def of(cls, row: TenantFile) -> FileObject:
        return cls(
            id=ids.encode(ids.FILE, row.id),
            bytes=row.bytes,
            created_at=int(row.created_at.timestamp()),
            filename=row.filename,
            purpose=row.purpose,
            status=row.status,
            status_details=(row.error or {}).get("message"),
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
