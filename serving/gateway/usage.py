"""Usage records, sampled prompts and full traces, written in batches off the request path.

Requests append to in-memory buffers; a background task writes them every
`usage_flush_seconds` (or sooner when they grow). A flush first redacts and encodes what was
sampled (capture.py, in a worker thread), then writes usage rows and prompt rows in one
transaction, then each trace batch: its object to the store FIRST, then its rows. A failed
write is retried with the next flush; the buffers are bounded, and what overflows is counted
and logged rather than slowing requests down. A store that is down holds back traces only,
never usage. Shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from registry.models import TrafficSample, UsageRecord
from registry.storage import ObjectStore
from serving.gateway.capture import TRACES, TRACES_DROPPED, Sampled, TraceBatch, prepare
from serving.gateway.capture import sample_records as sample_records

log = structlog.get_logger(__name__)

DROPPED = Counter("loraplex_gateway_usage_dropped_total", "Usage rows dropped on overflow")
MAX_BUFFER = 100_000
MAX_HELD_TRACE_BYTES = 128 << 20  # trace batches held back while the store or database is down


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


class UsageWriter:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        flush_seconds: float,
        store: ObjectStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.flush_seconds = flush_seconds
        self.store = store
        self.rng = rng or random.Random()
        self._usage: list[Usage] = []
        self._samples: list[Sampled] = []
        self._rows: list[dict[str, Any]] = []  # redacted prompt rows waiting for the database
        self._batches: list[TraceBatch] = []  # trace batches waiting for the store or database
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def record(self, usage: Usage) -> None:
        if len(self._usage) >= MAX_BUFFER:
            DROPPED.inc()
            return
        self._usage.append(usage)
        if len(self._usage) >= 1000:
            self._wake.set()

    def sample(self, rate: float) -> bool:
        """Whether to capture this request (decided before anything is copied)."""
        return rate > 0 and self.rng.random() < rate

    def capture(self, sampled: Sampled) -> None:
        if len(self._samples) >= MAX_BUFFER:
            TRACES_DROPPED.labels("buffer_full").inc()
            return
        self._samples.append(sampled)

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
        """Writes what is buffered; returns the usage rows written."""
        usage, sampled, rows, batches = self._usage, self._samples, self._rows, self._batches
        if not (usage or sampled or rows or batches):
            return 0
        self._usage, self._samples, self._rows, self._batches = [], [], [], []
        if sampled:
            try:
                new_rows, new_batches = await asyncio.to_thread(
                    prepare, sampled, dt.datetime.now(dt.UTC)
                )
                rows += new_rows
                batches += new_batches
            except Exception:  # a bug, not an outage: retrying would fail the same way
                log.exception("gateway.capture_prepare_failed", requests=len(sampled))
        written = 0
        try:
            await asyncio.to_thread(self._write, usage, rows)
            written = len(usage)
        except Exception as exc:  # keep them for the next batch; requests never wait on this
            log.warning("gateway.usage_write_failed", rows=len(usage), error=str(exc))
            self._usage[:0] = usage[: MAX_BUFFER - len(self._usage)]
            self._rows[:0] = rows[: MAX_BUFFER - len(self._rows)]
        if batches:
            held = await asyncio.to_thread(self._write_traces, batches)
            self._hold(held)
        return written

    def _write(self, usage: list[Usage], rows: list[dict[str, Any]]) -> None:
        if not usage and not rows:
            return
        with self.sessions.begin() as session:
            if usage:
                session.execute(insert(UsageRecord), [u.__dict__ for u in usage])
            if rows:
                session.execute(insert(TrafficSample), rows)

    def _write_traces(self, batches: list[TraceBatch]) -> list[TraceBatch]:
        """Each batch: object first, then its rows. Stops at the first failure (the store or
        database is likely down for the rest too) and returns what is left."""
        for i, batch in enumerate(batches):
            try:
                if self.store is None:
                    raise RuntimeError("the gateway has no object store")
                self.store.put_bytes(batch.key, batch.data)
                with self.sessions.begin() as session:
                    session.execute(insert(TrafficSample), batch.rows)
            except Exception as exc:
                log.warning(
                    "gateway.trace_write_failed",
                    key=batch.key,
                    traces=len(batch.rows),
                    held=len(batches) - i,
                    error=str(exc),
                )
                return batches[i:]
            TRACES.labels(batch.tenant).inc(len(batch.rows))
        return []

    def _hold(self, held: list[TraceBatch]) -> None:
        """Keep batches for the next flush, newest first, within MAX_HELD_TRACE_BYTES."""
        kept: list[TraceBatch] = []
        size = 0
        for batch in reversed(held + self._batches):
            size += len(batch.data)
            if size > MAX_HELD_TRACE_BYTES:
                TRACES_DROPPED.labels("store_down").inc(len(batch.rows))
                log.error("gateway.traces_dropped", key=batch.key, traces=len(batch.rows))
                continue
            kept.append(batch)
        self._batches = kept[::-1]
