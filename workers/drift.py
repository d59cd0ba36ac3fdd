"""The drift task: for each adapter with a drift policy (or the one asked for), compare the
last window of its traffic with the training prompts of the version that answered it, store
the metrics through the registry, and let the policy decide whether to retrain.

Beat runs it every `drift_interval_seconds`; `loraplex drift compute` runs it by hand.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict, defaultdict
from typing import Any

import structlog
from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.drift.metrics import drift_metrics
from registry.drift.repository import DriftRepository, enabled_policies
from registry.drift.schemas import DriftCreate
from registry.drift.service import MONITOR, drift_policies
from registry.errors import Inconsistent
from registry.models import Adapter, AdapterVersion, Tenant
from registry.tenants.repository import TenantRepository
from workers.context import WorkerContext
from workers.drift_stats import Profile, compare, describe
from workers.inputs import read_rows

log = structlog.get_logger(__name__)

DEFAULT_WINDOW = 86400
_PROFILES: OrderedDict[uuid.UUID, Profile | None] = OrderedDict()  # versions are immutable
_PROFILE_CACHE = 32


def reference_profile(
    ctx: WorkerContext, session: Session, version: AdapterVersion
) -> Profile | None:
    """The training prompts of `version` (digest-checked), or None if it was not trained here."""
    if version.id in _PROFILES:
        _PROFILES.move_to_end(version.id)
        return _PROFILES[version.id]
    used = VersionRepository(session, version.tenant_id).datasets([version.id])[version.id]
    rows: list[dict[str, Any]] = []
    for dataset, role in used:
        if role == "train":
            rows += read_rows(ctx.store, dataset)
    profile = Profile.of(rows) if rows else None
    _PROFILES[version.id] = profile
    while len(_PROFILES) > _PROFILE_CACHE:
        _PROFILES.popitem(last=False)
    return profile


def _targets(
    session: Session, tenant: str | None, adapter: str | None
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    if tenant is None:
        if adapter is not None:
            raise ValueError("--adapter needs --tenant")
        return list(enabled_policies(session))
    row = TenantRepository(session).get_by_slug(tenant)
    if row is None:
        raise ValueError(f"tenant '{tenant}' not found")
    if adapter is None:
        return [t for t in enabled_policies(session) if t[0] == row.id]
    found = AdapterRepository(session, row.id).get_by_name(adapter)
    if found is None:
        raise ValueError(f"adapter '{adapter}' of tenant '{tenant}' not found")
    policy = DriftRepository(session, row.id).policy(found.id)
    return [(row.id, found.id, policy.window_seconds if policy else DEFAULT_WINDOW)]


def compute_drift(
    ctx: WorkerContext,
    *,
    now: dt.datetime | None = None,
    tenant: str | None = None,
    adapter: str | None = None,
) -> list[dict[str, Any]]:
    """One pass; returns, per adapter, the metrics stored and the policy's decision."""
    now = now or utcnow()
    with ctx.session() as session:
        targets = _targets(session, tenant, adapter)
    report = []
    for tenant_id, adapter_id, window in targets:
        with ctx.session() as session:  # one transaction per adapter: metrics and decision
            report.append(_one(ctx, session, tenant_id, adapter_id, window, now))
    return report


def _one(
    ctx: WorkerContext,
    session: Session,
    tenant_id: uuid.UUID,
    adapter_id: uuid.UUID,
    window: int,
    now: dt.datetime,
) -> dict[str, Any]:
    tenant = session.get(Tenant, tenant_id)
    found = session.get(Adapter, adapter_id)
    if tenant is None or found is None or found.tenant_id != tenant.id:
        raise Inconsistent(f"adapter {adapter_id} of tenant {tenant_id} is gone")
    start = now - dt.timedelta(seconds=window)
    samples = DriftRepository(session, tenant.id).window(
        found.id, start, now, ctx.settings.drift_max_samples
    )
    by_version: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for version_id, record in samples:
        if version_id is not None:
            by_version[version_id].append(record)
    actor = Principal.local_operator(MONITOR)
    versions_repo = VersionRepository(session, tenant.id)
    measured: list[dict[str, Any]] = []
    results: list[tuple[AdapterVersion, int, dict[str, float], dict[str, Any]]] = []
    for version_id, records in by_version.items():
        version = versions_repo.get_by_id(version_id)
        if version is None:
            continue
        reference = reference_profile(ctx, session, version)
        if reference is None:
            measured.append({"version": version.version, "skipped": "no training data"})
            continue
        live = Profile.of(records)
        results.append((version, live.size, compare(reference, live), describe(reference, live)))
    # The adapter's row lock before writing, as creating a job takes it before anything else:
    # passes over one adapter write one after the other and never deadlock with a job being
    # created meanwhile. (Reading the reference data from the store happened above, unlocked.)
    AdapterRepository(session, tenant.id).lock(found)
    for version, size, values, described in results:
        details = {"version": version.version, **described}
        for metric, value in values.items():
            drift_metrics.record(
                session,
                actor=actor,
                tenant=tenant,
                adapter=found,
                data=DriftCreate(
                    metric=metric,
                    value=value,
                    window_start=start,
                    window_end=now,
                    sample_size=size,
                    version=version.version,
                    details=details,
                ),
            )
        measured.append({"version": version.version, "samples": size, **values})
    decision = drift_policies.check(
        session,
        tenant=tenant,
        adapter=found,
        now=now,
        settings=ctx.settings,
        queue=ctx.queue,
        store=ctx.store,
    )
    entry = {
        "tenant": tenant.slug,
        "adapter": found.name,
        "window_start": start.isoformat(),
        "window_end": now.isoformat(),
        "samples": len(samples),
        "versions": measured,
        "decision": (
            {
                "outcome": decision.outcome,
                "message": decision.message,
                "job_id": str(decision.job_id) if decision.job_id else None,
            }
            if decision
            else None
        ),
    }
    log.info("drift.computed", **{k: v for k, v in entry.items() if k != "versions"})
    return entry
