"""Curated datasets from production traffic: full traces plus the tenant's feedback.

Which traces become rows (oldest first, so the same traffic gives the same content):
* a corrected trace, always: the correction replaces the served answer;
* a trace rated -1 without a correction, never;
* the others when `ratings` is None (any rating, unrated included) or holds their rating
  (unrated ones are then left out), and not with `corrected_only`.
Traces whose object is gone, whose answer was cut at max_tokens (unless corrected or rated 1),
or whose row would not pass an upload's checks are skipped and counted by reason. More traces
to read than LORAPLEX_CURATION_MAX_TRACES is a 422 asking for a narrower window: a silently
truncated window would make the counts (and the dataset) depend on where the cut fell.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from registry.adapters.repository import VersionRepository
from registry.adapters.service import adapters
from registry.auth.principal import Principal
from registry.datasets.derived import store_rows
from registry.errors import NotFound, Unprocessable
from registry.models import Dataset, Feedback, Tenant, TrafficSample
from registry.models.enums import CaptureMode
from registry.owned import Registered
from registry.settings import Settings
from registry.storage import ObjectStore
from registry.traffic.curation_rows import CHAT, COMPLETIONS, RowBuilder
from registry.traffic.traces import read_traces

_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class TrafficFilter:
    adapter: str  # the adapter's name
    since: dt.datetime
    until: dt.datetime
    version: int | None = None  # only traces this version answered
    ratings: list[int] | None = None  # None: any rating, unrated included
    corrected_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "version": self.version,
            "ratings": self.ratings,
            "corrected_only": self.corrected_only,
        }


@dataclass(frozen=True)
class Curated:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]


class _Traces:
    """The queries: one adapter's full traces in a window, joined with this tenant's feedback."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self.session, self.tenant_id = session, tenant_id
        fb = Feedback
        self.corrected = and_(
            fb.id.is_not(None), func.coalesce(cast(fb.correction, String), "null") != "null"
        )

    def _where(self, stmt: _S, adapter_id: uuid.UUID, filt: TrafficFilter) -> _S:
        ts = TrafficSample
        return stmt.outerjoin(
            Feedback,
            and_(Feedback.tenant_id == self.tenant_id, Feedback.request_id == ts.request_id),
        ).where(
            ts.tenant_id == self.tenant_id,
            ts.adapter_id == adapter_id,
            ts.captured == CaptureMode.FULL,
            ts.object_key.is_not(None),
            ts.created_at >= filt.since,
            ts.created_at < filt.until,
        )

    def counts(
        self, adapter_id: uuid.UUID, version_id: uuid.UUID | None, filt: TrafficFilter
    ) -> list[tuple[int | None, bool, int]]:
        """(rating or None, corrected, traces) per kind of feedback."""
        corrected = self.corrected.label("corrected")
        stmt = select(Feedback.rating, corrected, func.count()).select_from(TrafficSample)
        stmt = self._where(stmt, adapter_id, filt)
        stmt = stmt.group_by(Feedback.rating, corrected)
        if version_id is not None:
            stmt = stmt.where(TrafficSample.version_id == version_id)
        return [(r, bool(c), int(n)) for r, c, n in self.session.execute(stmt).all()]

    def kept(
        self,
        adapter_id: uuid.UUID,
        version_id: uuid.UUID | None,
        filt: TrafficFilter,
        keep: ColumnElement[bool],
    ) -> Sequence[Any]:
        ts = TrafficSample
        stmt = select(
            ts.object_key,
            ts.object_line,
            ts.redactions,
            Feedback.rating,
            Feedback.correction,
            Feedback.redactions.label("feedback_redactions"),
        ).select_from(ts)
        stmt = self._where(stmt, adapter_id, filt).where(keep)
        if version_id is not None:
            stmt = stmt.where(ts.version_id == version_id)
        return self.session.execute(stmt.order_by(ts.created_at, ts.id)).all()


def _fate(rating: int | None, corrected: bool, filt: TrafficFilter) -> str:
    """'' when the trace becomes a row, else why not."""
    if corrected:
        return ""
    if rating == -1:
        return "rejected"  # rated -1 and nobody said what the answer should have been
    if filt.corrected_only:
        return "uncorrected"
    if filt.ratings is not None and rating not in filt.ratings:
        return "unrated" if rating is None else "rating"
    return ""


def _keep_clause(t: _Traces, filt: TrafficFilter) -> ColumnElement[bool]:
    """`_fate(...) == ''` in SQL."""
    if filt.corrected_only or filt.ratings == []:
        return t.corrected
    rating = Feedback.rating
    rest = or_(rating.is_(None), rating != -1)
    if filt.ratings is not None:
        rest = and_(rating != -1, rating.in_(filt.ratings))
    return or_(t.corrected, rest)


def curate_rows(
    session: Session,
    store: ObjectStore,
    tenant: Tenant,
    filt: TrafficFilter,
    *,
    max_traces: int,
    settings: Settings,
) -> Curated:
    """The rows `filt` selects and a summary whose counts are exact: `matched` full traces in
    the window = `rows` + the sum of `skipped` by reason."""
    if filt.since >= filt.until:
        raise Unprocessable("the window is empty: 'since' must be before 'until'")
    adapter = adapters.get(session, tenant=tenant, name=filt.adapter)
    version_id = None
    if filt.version is not None:
        version = VersionRepository(session, tenant.id).get(adapter.id, filt.version)
        if version is None:
            raise NotFound(f"version {filt.version} of adapter '{adapter.name}' not found")
        version_id = version.id
    q = _Traces(session, tenant.id)
    skipped: Counter[str] = Counter()
    matched = to_read = 0
    for rating, corrected, n in q.counts(adapter.id, version_id, filt):
        matched += n
        fate = _fate(rating, corrected, filt)
        if fate:
            skipped[fate] += n
        else:
            to_read += n
    if to_read > max_traces:
        raise Unprocessable(
            f"{to_read:,} traces of '{adapter.name}' match, more than the {max_traces:,} one "
            "curated dataset may read (LORAPLEX_CURATION_MAX_TRACES); narrow the window "
            "('since'/'until' or a shorter 'window') or filter by ratings or version"
        )
    found = q.kept(adapter.id, version_id, filt, _keep_clause(q, filt))
    traces = dict(read_traces(store, [(f.object_key, f.object_line) for f in found]))
    builder = RowBuilder(
        max_line_bytes=settings.max_line_bytes,
        max_tools=settings.dataset_max_tools,
        schema_steps=settings.dataset_schema_steps,
    )
    # One format per dataset: chat when any chat trace is there, completions otherwise.
    endpoints = {(t or {}).get("endpoint", CHAT) for t in traces.values()}
    fmt = CHAT if CHAT in endpoints or not endpoints else COMPLETIONS
    rows: list[dict[str, Any]] = []
    corrected_rows = redacted = 0
    redactions: Counter[str] = Counter()
    for f in found:
        trace = traces.get((f.object_key, f.object_line))
        if trace is None:
            skipped["missing"] += 1  # erased or expired since the rows were read
            continue
        if trace.get("endpoint", CHAT) != fmt:
            skipped["other_format"] += 1
            continue
        correction = f.correction if isinstance(f.correction, list) else None
        row, reason = builder.build(trace, correction, f.rating)
        if row is None:
            skipped[reason] += 1
            continue
        rows.append(row)
        corrected_rows += correction is not None
        counts = Counter(f.redactions or {})
        if correction is not None:
            counts.update(f.feedback_redactions or {})
        redacted += sum(counts.values()) > 0
        redactions.update(counts)
    summary = {
        "matched": matched,
        "rows": len(rows),
        "corrected": corrected_rows,
        "redacted": redacted,
        "redactions": dict(sorted(redactions.items())),
        "skipped": dict(sorted(skipped.items())),
        "window": {"since": filt.since.isoformat(), "until": filt.until.isoformat()},
        "filters": filt.to_dict(),
    }
    if len(rows) + sum(skipped.values()) != matched:  # a trace counted twice or not at all
        raise RuntimeError(f"curation counts do not add up: {summary}")
    return Curated(rows, summary)


def curate(
    session: Session,
    *,
    actor: Principal,
    tenant: Tenant,
    name: str,
    filt: TrafficFilter,
    min_count: int,
    store: ObjectStore,
    settings: Settings,
) -> tuple[Registered[Dataset], dict[str, Any]]:
    """Curate `filt`'s traffic into a version of the tenant's dataset `name` (origin
    {"kind": "traffic", **summary}); fewer than `min_count` rows is a 422 and stores nothing."""
    curated = curate_rows(
        session, store, tenant, filt, max_traces=settings.curation_max_traces, settings=settings
    )
    summary = curated.summary
    if len(curated.rows) < max(min_count, 1):
        raise Unprocessable(
            f"{len(curated.rows)} rows from the traffic of '{filt.adapter}' "
            f"({summary['matched']} full traces in the window), fewer than the {min_count} "
            "asked for; widen the window, relax the filters, add feedback, or turn on full "
            "capture (PUT .../traffic-capture with mode 'full')",
            traffic=summary,
        )
    done = store_rows(
        session,
        actor=actor,
        tenant=tenant,
        name=name,
        rows=curated.rows,
        origin={"kind": "traffic", **summary},
        store=store,
        settings=settings,
    )
    return done, summary
