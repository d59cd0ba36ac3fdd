"""Adapters: a tenant's named LoRA adapters on a registered base model."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.adapters.promotion import PromotionPolicy
from registry.adapters.repository import AdapterRepository, VersionRepository
from registry.adapters.schemas import AdapterCreate, AdapterOut, TrainingConfig
from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.base_models.repository import BaseModelRepository
from registry.db import utcnow
from registry.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from registry.lora_ranks import above_base_maximum
from registry.models import Adapter, BaseModel, Tenant
from registry.notify import announce
from registry.settings import Settings
from registry.tenants.repository import TenantRepository


class AdapterService:
    def create(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        data: AdapterCreate,
        settings: Settings,
    ) -> Adapter:
        base = BaseModelRepository(session).get_by_name(data.base_model)
        if base is None:
            raise Unprocessable(f"base model '{data.base_model}' is not registered")
        self.check_config(base, data.training)
        TenantRepository(session).lock(tenant)  # serializes the quota check per tenant
        repo = AdapterRepository(session, tenant.id)
        if repo.get_by_name(data.name) is not None:
            raise Conflict(f"adapter '{data.name}' already exists")
        if repo.count_active() >= tenant.quota_adapters:
            raise PayloadTooLarge(
                f"adapter quota reached: {tenant.quota_adapters} active adapters; "
                "archive one or ask ops to raise the quota"
            )
        adapter = Adapter(
            tenant_id=tenant.id,
            name=data.name,
            base_model_id=base.id,
            training_config=data.training.model_dump(),
            promotion_policy=PromotionPolicy().model_dump(),
            created_by=actor.subject,
        )
        repo.add(adapter)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as exc:
            raise Conflict(f"adapter '{data.name}' already exists") from exc
        audit.record(
            session,
            actor=actor,
            action="adapter.create",
            target_type="adapter",
            target_id=adapter.name,
            tenant_id=tenant.id,
            details={"base_model": base.name, "training": adapter.training_config},
        )
        return adapter

    def check_config(
        self, base: BaseModel, cfg: TrainingConfig, *, rank_from: str = "training.rank"
    ) -> None:
        """Refuse a LoRA config that the base model cannot serve; `rank_from` names where the
        rank came from (the adapter's `training.rank`, or a job's `hyperparameters.rank`)."""
        if cfg.rank > base.max_lora_rank:
            raise Unprocessable(
                above_base_maximum(rank_from, cfg.rank, base.name, base.max_lora_rank)
            )
        modules = {suffix.rsplit(".", 1)[-1] for suffix in base.module_shapes}
        unknown = sorted(set(cfg.target_modules) - modules)
        if unknown:
            raise Unprocessable(
                f"training.target_modules {unknown} are not linear modules of base model "
                f"'{base.name}'; it has: {sorted(modules)}"
            )

    def get(self, session: Session, *, tenant: Tenant, name: str, lock: bool = False) -> Adapter:
        adapter = AdapterRepository(session, tenant.id).get_by_name(name, lock=lock)
        if adapter is None:
            raise NotFound(f"adapter '{name}' not found")
        return adapter

    def list(
        self, session: Session, *, tenant: Tenant, include_archived: bool
    ) -> Sequence[Adapter]:
        return AdapterRepository(session, tenant.id).list(include_archived=include_archived)

    def set_policy(
        self,
        session: Session,
        *,
        actor: Principal,
        tenant: Tenant,
        name: str,
        policy: PromotionPolicy,
    ) -> Adapter:
        adapter = self.get(session, tenant=tenant, name=name)
        adapter.promotion_policy = policy.model_dump()
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="adapter.promotion_policy",
            target_type="adapter",
            target_id=name,
            tenant_id=tenant.id,
            details=adapter.promotion_policy,
        )
        return adapter

    def archive(self, session: Session, *, actor: Principal, tenant: Tenant, name: str) -> Adapter:
        adapter = self.get(session, tenant=tenant, name=name)
        if adapter.archived_at is None:
            adapter.archived_at = utcnow()
            announce(session, tenant.id, adapter.id)  # its names stop resolving at once
            audit.record(
                session,
                actor=actor,
                action="adapter.archive",
                target_type="adapter",
                target_id=name,
                tenant_id=tenant.id,
            )
        session.flush()
        return adapter

    def to_out(self, session: Session, adapters: Sequence[Adapter]) -> builtins.list[AdapterOut]:
        if not adapters:
            return []
        tenant_id = adapters[0].tenant_id
        latest = VersionRepository(session, tenant_id).latest_numbers([a.id for a in adapters])
        bases = BaseModelRepository(session)
        out = []
        for a in adapters:
            base = bases.get(a.base_model_id)
            out.append(
                AdapterOut(
                    id=a.id,
                    name=a.name,
                    base_model=base.name if base else "?",
                    training=a.training_config,
                    promotion_policy=a.promotion_policy,
                    latest_version=latest.get(a.id),
                    archived=a.archived_at is not None,
                    created_by=a.created_by,
                    created_at=a.created_at,
                )
            )
        return out


adapters = AdapterService()
