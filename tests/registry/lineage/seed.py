"""Builds an adapter's version chain directly through the models (no HTTP), for lineage tests.

Version 1 is an upload; version n >= 2 was trained by job `job-n` on `support@(n-1)` (train)
and `heldout@1` (validation) and has a held-out eval; version 3 is a drift retrain by
`ops-scheduler` with a base-model baseline eval. `production` moved to every version in turn;
`candidate` went to version 3.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from registry.models import (
    Adapter,
    AdapterVersion,
    AdapterVersionDataset,
    AliasEvent,
    Dataset,
    Eval,
)
from registry.models import BaseModel as BaseModelRow
from tests.conftest import Stack

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)


@dataclass
class Chain:
    tenant_id: uuid.UUID
    adapter_id: uuid.UUID
    base_name: str
    base_digest: str
    versions: dict[int, uuid.UUID] = field(default_factory=dict)
    datasets: dict[str, uuid.UUID] = field(default_factory=dict)  # "support@2" -> id
    evals: dict[str, uuid.UUID] = field(default_factory=dict)  # "v3/base_model" -> id
    alias_events: dict[str, int] = field(default_factory=dict)  # "production 2->3" -> id


def _dataset(tenant_id: uuid.UUID, adapter: str, name: str, version: int, creator: str) -> Dataset:
    held = name == "heldout"
    return Dataset(
        tenant_id=tenant_id,
        name=name if adapter == "support" else f"{adapter}-{name}",
        version=version,
        format="chat",
        sha256="d" * 63 + ("h" if held else str(version % 10)),
        bytes=1000,
        rows=100 if held else 1000 * version,
        duplicates_dropped=0,
        source_sha256="e" * 64,
        source_bytes=1000,
        object_key=f"k/{name}/{version}",
        created_by=creator,
    )


def seed_chain(
    stack: Stack, tenant_id: uuid.UUID, *, creator: str, depth: int, name: str = "support"
) -> Chain:
    base = BaseModelRow(
        name=f"tiny-{uuid.uuid4().hex[:8]}",
        uri="s3://models/tiny",
        digest=uuid.uuid4().hex * 2,
        files={},
        total_bytes=1,
        architecture="LlamaForCausalLM",
        num_layers=2,
        module_shapes={},
        config={},
        created_by="ops",
    )
    with stack.session() as s:
        s.add(base)
        s.flush()
        adapter = Adapter(
            tenant_id=tenant_id,
            name=name,
            base_model_id=base.id,
            training_config={},
            promotion_policy={"mode": "manual"},
            next_version=depth + 1,
            created_by=creator,
        )
        heldout = _dataset(tenant_id, name, "heldout", 1, creator)
        s.add_all([adapter, heldout])
        s.flush()
        c = Chain(tenant_id, adapter.id, base.name, base.digest)
        c.datasets["heldout@1"] = heldout.id
        parent: AdapterVersion | None = None
        for n in range(1, depth + 1):
            drift = n == 3
            v = AdapterVersion(
                tenant_id=tenant_id,
                adapter_id=adapter.id,
                version=n,
                status="ready",
                parent_id=parent.id if parent else None,
                base_model_id=base.id,
                base_model_digest=base.digest,
                training_config={},
                config_hash="c" * 64,
                trigger="upload" if n == 1 else "drift" if drift else "manual",
                trigger_ref={"policy": "psi>0.2", "metric": 0.31} if drift else {},
                job_id=None if n == 1 else f"job-{n}",
                manifest_digest="m" * 63 + str(n % 10),
                code_version="test",
                created_by="ops-scheduler" if drift else creator,
                created_at=T0 + n * DAY,
                ready_at=T0 + n * DAY + HOUR,
            )
            s.add(v)
            s.flush()
            c.versions[n] = v.id
            if n >= 2:
                train = _dataset(tenant_id, name, "support", n - 1, creator)
                s.add(train)
                s.flush()
                c.datasets[f"support@{n - 1}"] = train.id
                s.add_all(
                    [
                        AdapterVersionDataset(version_id=v.id, dataset_id=train.id, role="train"),
                        AdapterVersionDataset(
                            version_id=v.id, dataset_id=heldout.id, role="validation"
                        ),
                    ]
                )
                subjects = {"version": 1.0 / n} | ({"base_model": 1.9} if drift else {})
                for subject, loss in subjects.items():
                    ev = Eval(
                        tenant_id=tenant_id,
                        adapter_id=adapter.id,
                        version_id=v.id,
                        subject=subject,
                        suite="heldout",
                        metrics={"eval_loss": loss},
                        dataset_id=heldout.id,
                        created_by="worker",
                        created_at=T0 + n * DAY + HOUR,
                    )
                    s.add(ev)
                    s.flush()
                    c.evals[f"v{n}/{subject}"] = ev.id
            moves = [("production", n - 1 if n > 1 else None, n, T0 + n * DAY + 2 * HOUR)]
            if drift:
                moves.insert(0, ("candidate", None, 3, T0 + n * DAY + HOUR))
            for alias, old, new, when in moves:
                reason = "drift retrain won" if drift and alias == "production" else ""
                e = AliasEvent(
                    tenant_id=tenant_id,
                    adapter_id=adapter.id,
                    alias=alias,
                    from_version=old,
                    to_version=new,
                    actor="ops",
                    reason=reason,
                    occurred_at=when,
                )
                s.add(e)
                s.flush()
                c.alias_events[f"{alias} {old or '-'}->{new}"] = e.id
            parent = v
        s.commit()
    return c
