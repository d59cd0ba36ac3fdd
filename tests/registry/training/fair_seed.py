"""Queued training jobs seeded with set-based SQL (multi-row INSERTs), for the fair-queue
tests and the claim measurement: tenants, one adapter per job, a queued version per job."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from registry.db import utcnow
from registry.models import Adapter, AdapterVersion, BaseModel, Tenant, TrainingJob

CHUNK = 5000


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


class FairSeed:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.base_id = uuid.uuid4()
        self.clock = utcnow() - dt.timedelta(days=1)
        self.numbers = 0  # version numbers: unique per adapter across calls
        with Session(engine) as s, s.begin():
            s.execute(
                insert(BaseModel).values(
                    id=self.base_id,
                    name=f"base-{self.base_id.hex[:8]}",
                    uri="file:///nowhere",
                    digest="0" * 64,
                    files={},
                    total_bytes=0,
                    num_layers=1,
                    module_shapes={},
                    config={},
                    created_by="seed",
                )
            )

    def tenants(self, count: int, prefix: str = "t") -> list[uuid.UUID]:
        ids = [uuid.uuid4() for _ in range(count)]
        rows = [
            {
                "id": i,
                "slug": f"{prefix}-{i.hex[:12]}",
                "display_name": prefix,
                "quota_dataset_bytes": 1 << 30,
                "quota_adapters": 1 << 20,
            }
            for i in ids
        ]
        self._insert(Tenant, rows)
        return ids

    def jobs(
        self,
        tenant_ids: Sequence[uuid.UUID],
        *,
        trigger: str = "schedule",
        priority: int = 0,
        adapter_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[uuid.UUID]:
        """One queued job per entry of `tenant_ids` (a tenant may repeat), created one
        millisecond apart in that order; each on a new adapter unless `adapter_ids` is given."""
        if adapter_ids is None:
            adapter_ids = [uuid.uuid4() for _ in tenant_ids]
            self._insert(
                Adapter,
                [
                    {
                        "id": a,
                        "tenant_id": t,
                        "name": f"a-{a.hex[:12]}",
                        "base_model_id": self.base_id,
                        "training_config": {},
                        "promotion_policy": {},
                        "next_version": 2,
                        "created_by": "seed",
                    }
                    for a, t in zip(adapter_ids, tenant_ids, strict=True)
                ],
            )
        versions, jobs, ids = [], [], []
        for tenant_id, adapter_id in zip(tenant_ids, adapter_ids, strict=True):
            self.clock += dt.timedelta(milliseconds=1)
            self.numbers += 1
            version_id, job_id = uuid.uuid4(), uuid.uuid4()
            versions.append(
                {
                    "id": version_id,
                    "tenant_id": tenant_id,
                    "adapter_id": adapter_id,
                    "version": self.numbers,
                    "status": "queued",
                    "base_model_id": self.base_id,
                    "base_model_digest": "0" * 64,
                    "training_config": {},
                    "config_hash": "0" * 64,
                    "trigger": trigger,
                    "code_version": "seed",
                    "created_by": "seed",
                }
            )
            jobs.append(
                {
                    "id": job_id,
                    "tenant_id": tenant_id,
                    "adapter_id": adapter_id,
                    "version_id": version_id,
                    "status": "queued",
                    "trigger": trigger,
                    "priority": priority,
                    "config": {},
                    "dataset_ids": [],
                    "created_by": "seed",
                    "created_at": self.clock,
                    "updated_at": self.clock,
                }
            )
            ids.append(job_id)
        self._insert(AdapterVersion, versions)
        self._insert(TrainingJob, jobs)
        return ids

    def _insert(self, model: Any, rows: Sequence[dict[str, Any]]) -> None:
        with Session(self.engine) as s, s.begin():
            for chunk in _chunks(rows):
                s.execute(insert(model), list(chunk))

    def analyze(self) -> None:
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("ANALYZE"))
                conn.commit()
