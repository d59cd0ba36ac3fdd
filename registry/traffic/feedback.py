"""Feedback on responses, by request id: one per (tenant, request), later feedback replaces it.

The request is looked up in the tenant's own `usage_records` (the newest with that id), which
says which adapter version answered; another tenant's request id is as unknown as a made-up one.
A correction is checked against what was asked (a completions request takes one assistant text;
calls must name a tool the request offered, when the traffic log kept the request) and redacted
with the adapter's capture settings before it is stored. No audit event (high volume): a
structured log line instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.errors import NotFound, Unprocessable
from registry.models import (
    Adapter,
    AdapterVersion,
    Feedback,
    TrafficCapture,
    TrafficSample,
    UsageRecord,
)
from registry.models.enums import CaptureMode
from registry.traffic.capture import redactor_of
from registry.traffic.feedback_schemas import FeedbackIn, FeedbackOut

log = structlog.get_logger(__name__)
_UPDATED = ("adapter_id", "version_id", "rating", "correction", "comment", "redactions")


class FeedbackRepository:
    """One tenant's requests (as usage recorded them), samples, capture settings, feedback."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id

    def request(self, request_id: str) -> UsageRecord | None:
        stmt = (
            select(UsageRecord)
            .where(UsageRecord.tenant_id == self.tenant_id, UsageRecord.request_id == request_id)
            .order_by(UsageRecord.started_at.desc(), UsageRecord.id.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def served_by(self, usage: UsageRecord) -> tuple[str, int] | None:
        stmt = (
            select(Adapter.name, AdapterVersion.version)
            .join(AdapterVersion, AdapterVersion.adapter_id == Adapter.id)
            .where(
                Adapter.tenant_id == self.tenant_id,
                Adapter.id == usage.adapter_id,
                AdapterVersion.id == usage.version_id,
            )
        )
        row = self.session.execute(stmt).one_or_none()
        return None if row is None else (row[0], row[1])

    def sample(self, request_id: str) -> TrafficSample | None:
        stmt = (
            select(TrafficSample)
            .where(
                TrafficSample.tenant_id == self.tenant_id,
                TrafficSample.request_id == request_id,
            )
            .order_by(TrafficSample.created_at.desc(), TrafficSample.id.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def captured(self, request_ids: Sequence[str]) -> dict[str, CaptureMode]:
        """The best capture of each request: a full trace wins over a prompt."""
        if not request_ids:
            return {}
        stmt = select(TrafficSample.request_id, TrafficSample.captured).where(
            TrafficSample.tenant_id == self.tenant_id,
            TrafficSample.request_id.in_(request_ids),
        )
        out: dict[str, CaptureMode] = {}
        for rid, mode in self.session.execute(stmt):
            if rid is not None and out.get(rid) is not CaptureMode.FULL:
                out[rid] = mode
        return out

    def capture(self, adapter_id: uuid.UUID) -> TrafficCapture | None:
        stmt = select(TrafficCapture).where(
            TrafficCapture.tenant_id == self.tenant_id, TrafficCapture.adapter_id == adapter_id
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def upsert(self, values: dict[str, Any]) -> Feedback:
        """Insert, or replace the feedback on the same request: one statement, so concurrent
        posts of one request never fail on the unique index (PostgreSQL and SQLite alike)."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(Feedback).values(tenant_id=self.tenant_id, **values)
        upsert = stmt.on_conflict_do_update(
            index_elements=[Feedback.tenant_id, Feedback.request_id],
            set_={k: stmt.excluded[k] for k in (*_UPDATED, "created_by", "updated_at")},
        ).returning(Feedback)
        return self.session.scalars(upsert, execution_options={"populate_existing": True}).one()

    def _feedback(self) -> Select[Feedback]:
        return select(Feedback).where(Feedback.tenant_id == self.tenant_id)

    def list(
        self, *, adapter_id: uuid.UUID | None, rating: int | None, limit: int, offset: int
    ) -> Sequence[tuple[Feedback, str, int]]:
        stmt = (
            self._feedback()
            .add_columns(Adapter.name, AdapterVersion.version)
            .join(Adapter, Adapter.id == Feedback.adapter_id)
            .join(AdapterVersion, AdapterVersion.id == Feedback.version_id)
            .order_by(Feedback.updated_at.desc(), Feedback.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if adapter_id is not None:
            stmt = stmt.where(Feedback.adapter_id == adapter_id)
        if rating is not None:
            stmt = stmt.where(Feedback.rating == rating)
        return [(f, name, version) for f, name, version in self.session.execute(stmt)]


class FeedbackService:
    def record(
        self,
        session: Session,
        *,
        actor_subject: str,
        tenant_id: uuid.UUID,
        request_id: str,
        data: FeedbackIn,
    ) -> FeedbackOut:
        repo = FeedbackRepository(session, tenant_id)
        usage = repo.request(request_id)
        served = None if usage is None else repo.served_by(usage)
        if usage is None or served is None:
            raise NotFound(
                f"no request '{request_id}' of yours; send the x-request-id of a response from "
                "one of your adapters (a response is recorded within seconds of its answer)"
            )
        sample = repo.sample(request_id)
        if data.correction is not None:
            _fits_request(data.correction, usage, sample)
        capture = repo.capture(usage.adapter_id)
        redactor = redactor_of(capture)
        (correction, comment), redactions = redactor.redact([data.correction, data.comment])
        now = utcnow()
        row = repo.upsert(
            {
                "adapter_id": usage.adapter_id,
                "version_id": usage.version_id,
                "request_id": request_id,
                "rating": data.rating,
                "correction": correction,
                "comment": comment,
                "redactions": redactions,
                "created_by": actor_subject,
                "created_at": now,
                "updated_at": now,
            }
        )
        out = _out(row, *served, repo.captured([request_id]).get(request_id))
        log.info(
            "feedback.recorded",
            tenant_id=str(tenant_id),
            request_id=request_id,
            adapter=out.adapter,
            version=out.version,
            rating=out.rating,
            corrected=out.corrected,
            replaced=out.replaced,
            redactions=redactions,
            actor=actor_subject,
        )
        return out

    def list(
        self,
        session: Session,
        *,
        tenant_id: uuid.UUID,
        adapter_id: uuid.UUID | None = None,
        rating: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[FeedbackOut]:
        """Newest (last changed) first."""
        repo = FeedbackRepository(session, tenant_id)
        rows = repo.list(adapter_id=adapter_id, rating=rating, limit=limit, offset=offset)
        captured = repo.captured([f.request_id for f, _, _ in rows])
        return [_out(f, name, v, captured.get(f.request_id)) for f, name, v in rows]


def _fits_request(
    correction: list[dict[str, Any]], usage: UsageRecord, sample: TrafficSample | None
) -> None:
    """A correction must be an answer to what was asked: refused now, not skipped at curation."""
    if usage.endpoint == "completions":
        if len(correction) != 1 or correction[0].get("tool_calls"):
            raise Unprocessable(
                f"request '{usage.request_id}' was a completions request: correct it with one "
                'assistant message holding the corrected text, {"role": "assistant", '
                '"content": "..."}'
            )
        return
    if sample is None or "messages" not in sample.record:
        return  # the request was not kept: the tools it offered are unknown
    offered = [
        t["function"]["name"]
        for t in sample.record.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
    ]
    for i, msg in enumerate(correction, 1):
        for n, call in enumerate(msg.get("tool_calls") or (), 1):
            name = call["function"]["name"]
            if name not in offered:
                tools = ", ".join(offered[:20]) or "none"
                raise Unprocessable(
                    f"correction message {i}, call {n}: calls '{name}', which is not among the "
                    f"tools the request offered (tools: {tools})",
                )


def _out(row: Feedback, adapter: str, version: int, captured: CaptureMode | None) -> FeedbackOut:
    return FeedbackOut(
        request_id=row.request_id,
        adapter=adapter,
        version=version,
        rating=row.rating,
        corrected=row.correction is not None,
        correction=row.correction,
        comment=row.comment,
        redactions=row.redactions or {},
        captured=None if captured is None else captured.value,
        replaced=row.updated_at != row.created_at,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


feedback = FeedbackService()
