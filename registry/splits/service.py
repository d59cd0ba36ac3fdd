"""Traffic splits (canaries): the requests for an adapter's `production` shared between
versions by weight, sticky per end user (the gateway's `serving/gateway/canary.py`).

A split is set with weights per alias or version (`{"production": 90, "candidate": 10}`); each
key is resolved to a ready version when it is set, and that is what is recorded and served: a
later move of the `candidate` alias does not change a running split. The split must include the
version production points at (the baseline, compared with the others by the automatic rollback
check, `rollback.py`). It applies only while production still points there: moving production
ends it (the periodic check then clears it, recorded as automatic). Every change is recorded in
the split history (who, when, why, automatic or not), audited, and announced to the gateways.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from registry import notify
from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.resolve import DEFAULT_ALIAS, is_version_ref, parse_version
from registry.aliases.repository import AliasRepository
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.errors import Conflict, Unprocessable
from registry.models import Adapter, AdapterVersion, Tenant, TrafficSplit, TrafficSplitEvent
from registry.models.enums import VersionStatus
from registry.splits.repository import SplitRepository
from registry.splits.schemas import Arm, RollbackPolicy, SplitOut


def public_arms(arms: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arms as shown and kept in history: key, version, weight (no internal ids)."""
    return [{"key": a["key"], "version": a["version"], "weight": a["weight"]} for a in arms]


def describe(arms: Sequence[dict[str, Any]]) -> str:
    """'v3 90% / v4 10%', or 'production only' for a cleared split."""
    return " / ".join(f"v{a['version']} {a['weight']}%" for a in arms) or "production only"


class SplitService:
    def get(self, session: Session, *, tenant: Tenant, adapter: Adapter) -> SplitOut:
        split = SplitRepository(session, tenant.id).get(adapter.id)
        production = VersionRepository(session, tenant.id).get_by_alias(adapter.id, DEFAULT_ALIAS)
        if split is None:
            arms = (
                []
                if production is None
                else [Arm(key=DEFAULT_ALIAS, version=production.version, weight=100)]
            )
            return SplitOut(adapter=adapter.name, active=False, arms=arms)
        stale = production is None or production.id != split.baseline_id
        return SplitOut(
            adapter=adapter.name,
            active=not stale,
            stale=stale,
            arms=[Arm.model_validate(a) for a in public_arms(split.arms)],
            rollback=RollbackPolicy.model_validate(split.rollback) if split.rollback else None,
            reason=split.reason,
            set_by=split.set_by,
            started_at=split.started_at,
            last_check=split.last_check,
        )

    def set(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        weights: dict[str, int],
        reason: str,
        rollback: RollbackPolicy | None,
    ) -> SplitOut:
        AdapterRepository(session, tenant.id).lock(adapter)  # one change at a time
        if adapter.archived_at is not None:
            raise Conflict(f"adapter '{adapter.name}' is archived; it serves no traffic")
        versions = VersionRepository(session, tenant.id)
        production = versions.get_by_alias(adapter.id, DEFAULT_ALIAS)
        if production is None:
            raise Unprocessable(
                f"adapter '{adapter.name}' has nothing in production: a split shares "
                "production's traffic, so promote a version first"
            )
        resolved = self._resolve(session, tenant, adapter, weights)
        if production.id not in {v.id for _, v, _ in resolved}:
            raise Unprocessable(
                f"the split must include production's version (v{production.version}), e.g. "
                "{'production': 90, 'candidate': 10}"
            )
        resolved.sort(key=lambda r: r[1].id != production.id)  # the baseline first
        arms = [
            {"key": k, "version": v.version, "version_id": str(v.id), "weight": w}
            for k, v, w in resolved
        ]
        policy = rollback.model_dump() if rollback is not None else None
        repo = SplitRepository(session, tenant.id)
        split = repo.get(adapter.id, lock=True)
        previous = split.arms if split is not None else []
        if split is not None and (split.arms, split.rollback) == (arms, policy):
            return self.get(session, tenant=tenant, adapter=adapter)  # unchanged: no event
        now = utcnow()
        if split is None:
            split = TrafficSplit(adapter_id=adapter.id, tenant_id=tenant.id, started_at=now)
            repo.add(split)
        elif [a["version_id"] for a in split.arms] != [a["version_id"] for a in arms]:
            split.started_at, split.last_check = now, None  # new versions: new evidence
        split.baseline_id, split.arms, split.rollback = production.id, arms, policy
        split.reason, split.set_by = reason, actor.subject
        self._record(
            session, actor, tenant, adapter, arms, previous, reason, rollback=policy, now=now
        )
        return self.get(session, tenant=tenant, adapter=adapter)

    def _resolve(
        self, session: Session, tenant: Tenant, adapter: Adapter, weights: dict[str, int]
    ) -> builtins.list[tuple[str, AdapterVersion, int]]:
        """Each key as a ready version: 422 naming the key that is not one."""
        versions = VersionRepository(session, tenant.id)
        out: builtins.list[tuple[str, AdapterVersion, int]] = []
        seen: dict[uuid.UUID, str] = {}
        for key, weight in weights.items():
            if is_version_ref(key):
                number = parse_version(key)
                version = versions.get(adapter.id, number)
                if version is None:
                    raise Unprocessable(
                        f"weights: adapter '{adapter.name}' has no version {number}"
                    )
            else:
                version = versions.get_by_alias(adapter.id, key)
                if version is None:
                    known = [a.alias for a in AliasRepository(session, tenant.id).list(adapter.id)]
                    raise Unprocessable(
                        f"weights: adapter '{adapter.name}' has no alias '{key}' (its aliases: "
                        f"{', '.join(known) or 'none'}); name an alias or a version such as 'v2'"
                    )
            if version.status != VersionStatus.READY:
                raise Unprocessable(
                    f"weights: {key} is v{version.version}, which is '{version.status}'; "
                    "only a ready version can take traffic"
                )
            if version.id in seen:
                raise Unprocessable(
                    f"weights: '{seen[version.id]}' and '{key}' are both v{version.version}; "
                    "name each version once"
                )
            seen[version.id] = key
            out.append((key, version, weight))
        return out

    def clear(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        reason: str,
        automatic: bool = False,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Back to production only; False when there was no split (nothing recorded)."""
        AdapterRepository(session, tenant.id).lock(adapter)
        repo = SplitRepository(session, tenant.id)
        split = repo.get(adapter.id, lock=True)
        if split is None:
            return False
        previous = split.arms
        repo.delete(split)
        self._record(
            session,
            actor,
            tenant,
            adapter,
            [],
            previous,
            reason,
            rollback=None,
            now=utcnow(),
            automatic=automatic,
            details=details,
        )
        return True

    def _record(
        self,
        session: Session,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        arms: builtins.list[dict[str, Any]],
        previous: builtins.list[dict[str, Any]],
        reason: str,
        *,
        rollback: dict[str, Any] | None,
        now: Any,
        automatic: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        SplitRepository(session, tenant.id).add(
            TrafficSplitEvent(
                tenant_id=tenant.id,
                adapter_id=adapter.id,
                arms=public_arms(arms),
                previous=public_arms(previous),
                rollback=rollback,
                actor=actor.subject,
                reason=reason,
                automatic=automatic,
                details=details or {},
                occurred_at=now,
            )
        )
        session.flush()
        action = "split.set" if arms else ("split.rollback" if automatic else "split.clear")
        audit.record(
            session,
            actor=actor,
            action=action,
            target_type="traffic_split",
            target_id=adapter.name,
            tenant_id=tenant.id,
            details={
                "from": describe(previous),
                "to": describe(arms),
                "weights": public_arms(arms),
                "reason": reason,
                "automatic": automatic,
                **({"rollback": rollback} if arms else {}),
                **(details or {}),
            },
        )
        notify.announce(session, tenant.id, adapter.id)

    def history(
        self, session: Session, *, tenant: Tenant, adapter: Adapter
    ) -> Sequence[TrafficSplitEvent]:
        return SplitRepository(session, tenant.id).history(adapter.id)


splits = SplitService()
