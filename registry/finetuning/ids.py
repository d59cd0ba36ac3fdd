"""OpenAI-style ids for loraplex rows: a prefix and the row's uuid (hex) or integer id.

An id that does not parse answers exactly like one that does not exist (404), so ids of other
tenants' rows and malformed ids are indistinguishable."""

from __future__ import annotations

import re
import uuid

FILE, JOB, CHECKPOINT, EVENT = "file-", "ftjob-", "ftckpt-", "ftevent-"
_HEX = re.compile(r"^[0-9a-f]{32}$")


def encode(prefix: str, row_id: uuid.UUID) -> str:
    return f"{prefix}{row_id.hex}"


def decode(prefix: str, text: str | None) -> uuid.UUID | None:
    """The uuid behind `text`, or None when it is not one of `prefix`'s ids."""
    if not text or not text.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    return uuid.UUID(hex=rest) if _HEX.match(rest) else None


def event_id(row_id: int) -> str:
    return f"{EVENT}{row_id}"


def decode_event(text: str | None) -> int | None:
    if not text or not text.startswith(EVENT) or not text[len(EVENT) :].isdigit():
        return None
    value = int(text[len(EVENT) :])
    return value if value < 2**63 else None
