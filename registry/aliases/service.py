"""Aliases (`production`, `candidate`, a tenant's own) pointing at ready versions, with history."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.resolve import is_version_ref
from registry.aliases.repository import AliasRepository
from registry.aliases.schemas import AliasAt, AliasOut
from registry.audit.service import audit
from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.db import utcnow
from registry.errors import Conflict, Forbidden, NotFound, Unprocessable
from registry.models import Adapter, Alias, AliasEvent, Tenant
from registry.notify import announce


class AliasService:
    def set(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        alias: str,
        number: int,
        reason: str,
    ) -> AliasOut:
        if is_version_ref(alias):  # `adapter@v2` must mean one thing
            raise Unprocessable(f"alias '{alias}' reads as a version number; pick another name")
        AdapterRepository(session, tenant.id).lock(adapter)  # one alias move at a time
        target = VersionRepository(session, tenant.id).get(adapter.id, number)
        if target is None:
            raise NotFound(f"version {number} of adapter '{adapter.name}' not found")
        if target.status != "ready":
            raise Conflict(
                f"version {number} is '{target.status}'; only a ready version can hold an alias"
            )
        override = self._override(actor, alias, target.version, target.gate)
        repo = AliasRepository(session, tenant.id)
        row = repo.get(adapter.id, alias)
        versions = VersionRepository(session, tenant.id)
        previous = versions.numbers([row.version_id]).get(row.version_id) if row else None
        if row is not None and row.version_id == target.id:
            return self._out(row, number)  # already there: no event
        now = utcnow()
        if row is None:
            row = Alias(
                adapter_id=adapter.id,
                alias=alias,
                tenant_id=tenant.id,
                version_id=target.id,
                updated_by=actor.subject,
                updated_at=now,
            )
            repo.add(row)
        else:
            row.version_id, row.updated_by, row.updated_at = target.id, actor.subject, now
        self._record(
            session, actor, tenant, adapter, alias, previous, number, reason, now, override
        )
        return self._out(row, number)

    @staticmethod
    def _override(
        actor: Principal, alias: str, number: int, gate: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Putting a version the promotion gate refused into production is an override: only
        for a caller with the `promotion:override` scope, and recorded as one."""
        if alias != "production" or not gate or gate.get("passed", True):
            return None
        if sc.PROMOTION_OVERRIDE not in actor.scopes:
            raise Forbidden(
                f"version {number} failed the promotion gate ({gate.get('reason', '')}); "
                f"putting it in production anyway needs the '{sc.PROMOTION_OVERRIDE}' scope"
            )
        return {"override": True, "gate": gate.get("reason", "")}

    def delete(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        alias: str,
        reason: str,
    ) -> None:
        AdapterRepository(session, tenant.id).lock(adapter)
        repo = AliasRepository(session, tenant.id)
        row = repo.get(adapter.id, alias)
        if row is None:
            raise NotFound(f"alias '{alias}' of adapter '{adapter.name}' not found")
        previous = VersionRepository(session, tenant.id).numbers([row.version_id])[row.version_id]
        repo.delete(row)
        self._record(session, actor, tenant, adapter, alias, previous, None, reason, utcnow())

    def _record(
        self,
        session: Session,
        actor: Principal,
        tenant: Tenant,
        adapter: Adapter,
        alias: str,
        previous: int | None,
        number: int | None,
        reason: str,
        now: dt.datetime,
        override: dict[str, Any] | None = None,
    ) -> None:
        AliasRepository(session, tenant.id).add(
            AliasEvent(
                tenant_id=tenant.id,
                adapter_id=adapter.id,
                alias=alias,
                from_version=previous,
                to_version=number,
                actor=actor.subject,
                reason=reason,
                override=override is not None,
                occurred_at=now,
            )
        )
        session.flush()
        announce(session, tenant.id, adapter.id)  # gateways drop the cached route on commit
        audit.record(
            session,
            actor=actor,
            action="alias.delete" if number is None else "alias.set",
            target_type="alias",
            target_id=f"{adapter.name}@{alias}",
            tenant_id=tenant.id,
            details={
                "from_version": previous,
                "to_version": number,
                "reason": reason,
                **(override or {}),
            },
        )

    def list(
        self, session: Session, *, tenant: Tenant, adapter: Adapter
    ) -> builtins.list[AliasOut]:
        rows = AliasRepository(session, tenant.id).list(adapter.id)
        numbers = VersionRepository(session, tenant.id).numbers([r.version_id for r in rows])
        return [self._out(r, numbers[r.version_id]) for r in rows]

    def resolve(self, session: Session, *, tenant: Tenant, adapter: Adapter, alias: str) -> int:
        row = AliasRepository(session, tenant.id).get(adapter.id, alias)
        if row is None:
            raise NotFound(f"alias '{alias}' of adapter '{adapter.name}' not found")
        return VersionRepository(session, tenant.id).numbers([row.version_id])[row.version_id]

    def history(
        self, session: Session, *, tenant: Tenant, adapter: Adapter, alias: str
    ) -> Sequence[AliasEvent]:
        return AliasRepository(session, tenant.id).history(adapter.id, alias)

    def at(
        self, session: Session, *, tenant: Tenant, adapter: Adapter, alias: str, when: dt.datetime
    ) -> AliasAt:
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        event = AliasRepository(session, tenant.id).at(adapter.id, alias, when)
        if event is None:
            raise NotFound(f"alias '{alias}' of adapter '{adapter.name}' did not exist at {when}")
        return AliasAt(alias=alias, time=when, version=event.to_version, since=event.occurred_at)

    @staticmethod
    def _out(row: Alias, number: int) -> AliasOut:
        return AliasOut(
            alias=row.alias, version=number, updated_by=row.updated_by, updated_at=row.updated_at
        )


aliases = AliasService()
