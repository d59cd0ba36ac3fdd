"""One suite, every version of an adapter, the base model and the aliases: like for like.

Each row is the newest score of its subject on exactly this suite version; a ready version that
was never scored on it is listed without metrics (`loraplex evals run` scores it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.adapters.promotion import GENERAL
from registry.adapters.repository import VersionRepository
from registry.aliases.repository import AliasRepository
from registry.base_models.repository import BaseModelRepository
from registry.errors import NotFound, Unprocessable, require
from registry.evals.repository import EvalRepository
from registry.models import Adapter, EvalSuite
from registry.suites.pins import pinned_suites


class SuiteRef(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    sha256: str
    rows: int
    owner: str  # "tenant" | "platform"


class LeaderboardRow(BaseModel):
    subject: str  # "version" | "base_model"
    version: int | None
    aliases: list[str]
    metrics: dict[str, float] | None
    scored_at: dt.datetime | None
    eval_id: uuid.UUID | None
    details: dict[str, Any] | None = None  # per-row results, with ?details=true


class Leaderboard(BaseModel):
    adapter: str
    suite: SuiteRef
    metrics: list[str]  # columns: pass_rate first
    rows: list[LeaderboardRow]


def _suite(session: Session, adapter: Adapter, name: str | None, version: int | None) -> EvalSuite:
    if name == GENERAL:
        base = require(BaseModelRepository(session).get(adapter.base_model_id), "base model")
        if base.general_suite_id is None:
            raise NotFound(f"base model '{base.name}' has no general suite")
        return require(session.get(EvalSuite, base.general_suite_id), "general suite")
    pinned = pinned_suites(session, adapter)
    if name is None:
        if not pinned:
            raise Unprocessable(
                f"adapter '{adapter.name}' has no eval suite pinned; name one with ?suite="
            )
        return pinned[0]
    if version is None:
        for pin in pinned:
            if pin.name == name:
                return pin
    own = select(EvalSuite).where(EvalSuite.tenant_id == adapter.tenant_id, EvalSuite.name == name)
    own = own.where(EvalSuite.version == version) if version else own
    found = session.execute(own.order_by(EvalSuite.version.desc()).limit(1)).scalar_one_or_none()
    if found is None:
        at = f" v{version}" if version else ""
        raise NotFound(f"eval suite '{name}'{at} not found")
    return found


def leaderboard(
    session: Session,
    *,
    adapter: Adapter,
    suite: str | None,
    version: int | None,
    details: bool = False,
) -> Leaderboard:
    found = _suite(session, adapter, suite, version)
    scores = EvalRepository(session, adapter.tenant_id).on_suite(
        adapter_id=adapter.id, suite_id=found.id
    )
    latest_version: dict[uuid.UUID, Any] = {}
    latest_base = None
    for row in scores:  # oldest first: later scores win
        if row.subject == "base_model":
            latest_base = row
        else:
            latest_version[row.version_id] = row
    aliases: dict[uuid.UUID, list[str]] = {}
    for alias in AliasRepository(session, adapter.tenant_id).list(adapter.id):
        aliases.setdefault(alias.version_id, []).append(alias.alias)
    versions = VersionRepository(session, adapter.tenant_id).list(adapter.id)
    rows = []
    for v in sorted(versions, key=lambda v: v.version, reverse=True):
        ev = latest_version.get(v.id)
        if ev is None and v.status != "ready":
            continue
        rows.append(_row("version", v.version, sorted(aliases.get(v.id, [])), ev, details))
    rows.append(_row("base_model", None, [], latest_base, details))
    names = {m for r in rows for m in (r.metrics or {})}
    order = ["pass_rate", *sorted(names - {"pass_rate", "rows"}), "rows"]
    return Leaderboard(
        adapter=adapter.name,
        suite=SuiteRef(
            id=found.id,
            name=found.name,
            version=found.version,
            sha256=found.sha256,
            rows=found.rows,
            owner="platform" if found.tenant_id is None else "tenant",
        ),
        metrics=[m for m in order if m in names],
        rows=rows,
    )


def _row(
    subject: str, number: int | None, aliases: list[str], ev: Any, details: bool
) -> LeaderboardRow:
    return LeaderboardRow(
        subject=subject,
        version=number,
        aliases=aliases,
        metrics=ev.metrics if ev else None,
        scored_at=ev.created_at if ev else None,
        eval_id=ev.id if ev else None,
        details=ev.details if ev and details else None,
    )
