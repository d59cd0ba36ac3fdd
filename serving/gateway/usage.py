"""Usage records and sampled prompts, written in batches off the request path.

Requests append to an in-memory buffer; a background task writes it every
`usage_flush_seconds` (or sooner when it grows), in one transaction per batch. A failed write is
retried with the next batch; the buffer is bounded, and what overflows is counted and logged
rather than slowing requests down. Shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from registry.models import TrafficSample, UsageRecord

log = structlog.get_logger(__name__)

DROPPED = Counter("loraplex_gateway_usage_dropped_total", "Usage rows dropped on overflow")
MAX_BUFFER = 100_000
MAX_SAMPLE_BYTES = 64 * 1024


@dataclass
class Usage:
    tenant_id: uuid.UUID
    adapter_id: uuid.UUID
    version_id: uuid.UUID
    request_id: str
    client_id: str
    model: str
    endpoint: str
    stream: bool
    status_code: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    started_at: dt.datetime
    tool_calls: int = 0  # tool calls in the answer, summed over choices


# Kept next to `messages` so that a sampled agent trace is a trainable row (tools and all).
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")


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


class UsageWriter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        flush_seconds: float,
        sample_rate: float,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.flush_seconds = flush_seconds
        self.sample_rate = sample_rate
        self.rng = rng or random.Random()
        self._usage: list[Usage] = []
        self._samples: list[TrafficSample] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, usage: Usage) -> None:
        if len(self._usage) >= MAX_BUFFER:
            DROPPED.inc()
            return
        self._usage.append(usage)
        if len(self._usage) >= 1000:
            self._wake.set()

    def maybe_sample(
        self,
        *,
        tenant_id: uuid.UUID,
        adapter_id: uuid.UUID,
        version_id: uuid.UUID,
        endpoint: str,
        body: dict[str, Any],
    ) -> bool:
        if self.sample_rate <= 0 or self.rng.random() >= self.sample_rate:
            return False
        for record in sample_records(endpoint, body):
            if len(orjson.dumps(record)) > MAX_SAMPLE_BYTES or len(self._samples) >= MAX_BUFFER:
                continue
            self._samples.append(
                TrafficSample(
                    tenant_id=tenant_id,
                    adapter_id=adapter_id,
                    version_id=version_id,
                    source="gateway",
                    record=record,
                )
            )
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_seconds)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> int:
        usage, samples = self._usage, self._samples
        if not usage and not samples:
            return 0
        self._usage, self._samples = [], []
        try:
            await asyncio.to_thread(self._write, usage, samples)
        except Exception as exc:  # keep them for the next batch; requests never wait on this
            log.warning("gateway.usage_write_failed", rows=len(usage), error=str(exc))
            self._usage[:0] = usage[: MAX_BUFFER - len(self._usage)]
            self._samples[:0] = samples[: MAX_BUFFER - len(self._samples)]
            return 0
        return len(usage)

    def _write(self, usage: list[Usage], samples: list[TrafficSample]) -> None:
        with self.sessions.begin() as session:
            session.add_all([UsageRecord(**u.__dict__) for u in usage])
            session.add_all(samples)
