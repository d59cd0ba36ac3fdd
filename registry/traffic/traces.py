"""Full traces in the object store: one JSONL object per gateway flush, tenant and adapter.

The gateway appends each fully captured request to its buffer; a flush writes, per (tenant,
adapter), one object under `trace_prefix(tenant, adapter)` holding one trace per line, and one
`traffic_samples` row per trace pointing at (`object_key`, `object_line`). Everything in a trace
was redacted before it was buffered. A trace line:

    {"request_id": "...", "created_at": "2026-12-05T10:00:00+00:00",
     "adapter": "orders", "version": 3, "endpoint": "chat.completions",
     "request": {"messages": [...], "tools": [...], "tool_choice": ...}   # or {"prompt": "..."}
     "response": {"role": "assistant", "content": "...", "tool_calls": [...]}  # chat
                 # or {"text": "..."} for completions; first choice only
     "finish_reason": "stop", "usage": {"prompt_tokens": 12, "completion_tokens": 30},
     "redactions": {"email": 1}}

Retention and erasure delete rows and then every object no remaining row points at.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from registry.storage import ObjectNotFound, ObjectStore


def tenant_trace_prefix(tenant_id: uuid.UUID) -> str:
    return f"tenants/{tenant_id}/traces/"


def trace_prefix(tenant_id: uuid.UUID, adapter_id: uuid.UUID) -> str:
    return f"{tenant_trace_prefix(tenant_id)}{adapter_id}/"


def batch_key(tenant_id: uuid.UUID, adapter_id: uuid.UUID, when: dt.datetime) -> str:
    """A new batch object's key: per day, then a random name (two gateways never collide)."""
    day = when.astimezone(dt.UTC).strftime("%Y-%m-%d")
    return f"{trace_prefix(tenant_id, adapter_id)}{day}/{uuid.uuid4().hex}.jsonl"


def encode_batch(traces: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(t) + b"\n" for t in traces)


def decode_batch(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def read_traces(
    store: ObjectStore, locations: Iterable[tuple[str, int]]
) -> Iterator[tuple[tuple[str, int], dict[str, Any] | None]]:
    """The traces at (object_key, line), one GET per distinct object; None where the object or
    the line is gone (erased meanwhile)."""
    by_key: dict[str, list[int]] = {}
    for key, line in locations:
        by_key.setdefault(key, []).append(line)
    for key, lines in by_key.items():
        try:
            batch = decode_batch(store.get_bytes(key))
        except ObjectNotFound:
            batch = []
        for line in lines:
            yield (key, line), batch[line] if 0 <= line < len(batch) else None
