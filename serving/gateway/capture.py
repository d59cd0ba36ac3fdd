"""What the gateway keeps of a sampled request, and how it becomes rows and trace batches.

An adapter's capture settings (its `traffic_capture` row, or the platform default: prompts at
`traffic_sample_rate`, redacted) are loaded with its route and cached with it, so a change
reaches the gateway within the resolve TTL and costs no query per request. The request path
only decides sampling and keeps references (`Sampled`); redaction, encoding and sizing happen at
flush, in a worker thread, before anything is stored (`prepare`).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import TrafficCapture
from registry.models.enums import CaptureMode
from registry.traffic.redaction import Redactor
from registry.traffic.traces import batch_key, encode_batch

MAX_SAMPLE_BYTES = 64 * 1024  # a prompt row (the database keeps it)
MAX_TRACE_BYTES = 1 << 20  # a full trace (the object store keeps it)

REDACTIONS = Counter(
    "loraplex_gateway_redactions_total",
    "Values replaced in captured traffic before storing, by kind",
    ["tenant", "kind"],
)
TRACES = Counter(
    "loraplex_gateway_traces_captured_total", "Full traces written to the object store", ["tenant"]
)
TRACES_DROPPED = Counter(
    "loraplex_gateway_traces_dropped_total",
    "Full traces not kept: over the size limit, or over the buffer while the store was down",
    ["reason"],
)

# Kept next to `messages` so that a sampled agent trace is a trainable row (tools and all).
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")


@dataclass(frozen=True)
class CaptureSettings:
    mode: CaptureMode = CaptureMode.PROMPTS
    rate: float = 0.0
    redact: bool = True
    patterns: tuple[tuple[str, str], ...] = ()

    @property
    def full(self) -> bool:
        return self.mode == CaptureMode.FULL


def load_settings(session: Session, adapter_id: uuid.UUID, default_rate: float) -> CaptureSettings:
    row = session.scalar(select(TrafficCapture).where(TrafficCapture.adapter_id == adapter_id))
    if row is None:
        return CaptureSettings(rate=default_rate)
    return CaptureSettings(
        mode=CaptureMode(row.mode),
        rate=default_rate if row.sample_rate is None else row.sample_rate,
        redact=row.redact,
        patterns=tuple((p["name"], p["pattern"]) for p in row.redact_patterns or ()),
    )


@functools.lru_cache(maxsize=1024)
def redactor(redact: bool, patterns: tuple[tuple[str, str], ...]) -> Redactor:
    """Compiled once per distinct setting (the tenant's patterns were checked when set)."""
    return Redactor.build([{"name": n, "pattern": p} for n, p in patterns], enabled=redact)


def sample_records(endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's prompts in the dataset row format, for the traffic log."""
    if endpoint == "chat.completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return []
        tools = {k: body[k] for k in TOOL_FIELDS if body.get(k) is not None}
        return [{"messages": messages, **tools}]
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt if isinstance(prompt, list) else []
    return [{"prompt": p} for p in prompts if isinstance(p, str) and p]


@dataclass
class Sampled:
    """A sampled request, as the request path leaves it: references only, nothing copied."""

    tenant_id: uuid.UUID
    tenant: str  # slug, for metrics
    adapter_id: uuid.UUID
    adapter: str
    version_id: uuid.UUID
    version: int
    request_id: str
    endpoint: str
    body: dict[str, Any]
    settings: CaptureSettings
    created_at: dt.datetime
    status: int = 0
    response: dict[str, Any] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass
class TraceBatch:
    """One (tenant, adapter) object and its rows; the key is fixed once chosen, so a retry
    after a failed row insert overwrites the same object instead of leaving an orphan."""

    tenant_id: uuid.UUID
    tenant: str
    adapter_id: uuid.UUID
    key: str
    traces: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    data: bytes = b""


def prepare(
    sampled: list[Sampled], now: dt.datetime
) -> tuple[list[dict[str, Any]], list[TraceBatch]]:
    """Redacted `traffic_samples` rows (prompts only) and trace batches (full traces)."""
    rows: list[dict[str, Any]] = []
    batches: dict[tuple[uuid.UUID, uuid.UUID], TraceBatch] = {}
    for s in sampled:
        red = redactor(s.settings.redact, s.settings.patterns)
        records = sample_records(s.endpoint, s.body)
        trace = _trace(s, red, records) if s.settings.full and len(records) == 1 else None
        if trace is not None:
            row = _row(s, trace["request"], trace["redactions"], CaptureMode.FULL)
            group = (s.tenant_id, s.adapter_id)
            if group not in batches:
                key = batch_key(s.tenant_id, s.adapter_id, now)
                batches[group] = TraceBatch(s.tenant_id, s.tenant, s.adapter_id, key, [], [])
            batch = batches[group]
            row["object_key"], row["object_line"] = batch.key, len(batch.traces)
            batch.traces.append(trace)
            batch.rows.append(row)
            _count(s.tenant, trace["redactions"])
            continue
        for record in records:
            redacted, counts = red.redact(record)
            if len(orjson.dumps(redacted)) > MAX_SAMPLE_BYTES:
                continue
            rows.append(_row(s, redacted, counts, CaptureMode.PROMPTS))
            _count(s.tenant, counts)
    for batch in batches.values():
        batch.data = encode_batch(batch.traces)
    return rows, list(batches.values())


def _trace(s: Sampled, red: Redactor, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The redacted trace of a complete 200 answer; None (prompt row only) otherwise."""
    if s.status != 200 or s.response is None:
        return None
    request, counts = red.redact(records[0])
    if len(orjson.dumps(request)) > MAX_SAMPLE_BYTES:
        TRACES_DROPPED.labels("too_large").inc()
        return None
    response, answer_counts = red.redact(s.response)
    for kind, n in answer_counts.items():
        counts[kind] = counts.get(kind, 0) + n
    trace = {
        "request_id": s.request_id,
        "created_at": s.created_at.isoformat(),
        "adapter": s.adapter,
        "version": s.version,
        "endpoint": s.endpoint,
        "request": request,
        "response": response,
        "finish_reason": s.finish_reason,
        "usage": s.usage,
        "redactions": counts,
    }
    if len(orjson.dumps(trace)) > MAX_TRACE_BYTES:
        TRACES_DROPPED.labels("too_large").inc()
        return None
    return trace


def _row(
    s: Sampled, record: dict[str, Any], counts: dict[str, int], mode: CaptureMode
) -> dict[str, Any]:
    return {
        "tenant_id": s.tenant_id,
        "adapter_id": s.adapter_id,
        "version_id": s.version_id,
        "source": "gateway",
        "record": record,
        "request_id": s.request_id,
        "captured": mode,
        "object_key": None,
        "object_line": None,
        "redactions": counts,
        "created_at": s.created_at,
    }


def _count(tenant: str, counts: dict[str, int]) -> None:
    for kind, n in counts.items():
        REDACTIONS.labels(tenant, kind).inc(n)
