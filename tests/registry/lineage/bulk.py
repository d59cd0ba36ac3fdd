"""Bulk seeding at benchmark scale: tenants with adapters of 10-30 chained versions, each
version trained on its own `train` dataset version plus the adapter's `heldout` set, with one
eval; `candidate` moves to every version, `production` to about 30% of them.

Rows go in with COPY (PostgreSQL only). Used by
bench/lineage_bench.py, and at small scale by test_bulk_seed.py so the bench data stays valid.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from typing import Any

from sqlalchemy import Connection

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
Pick = tuple[str, str, int]  # tenant slug, adapter name, version number


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def _copy(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row([json.dumps(v) if isinstance(v, dict) else v for v in r.values()])


def bulk_seed(
    conn: Connection, n_tenants: int, n_versions: int, rng: random.Random
) -> dict[str, Any]:
    """COPY the rows in on `conn` (PostgreSQL; the caller commits). Returns {'rows': per-table
    counts, 'picks': (slug, adapter, n) of every version, 'tips': each adapter's last}."""
    t: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "tenants",
            "base_models",
            "adapters",
            "datasets",
            "adapter_versions",
            "adapter_version_datasets",
            "evals",
            "adapter_alias_events",
            "adapter_aliases",
        )
    }
    for i in range(3):
        t["base_models"].append(
            dict(
                id=uuid.uuid4(),
                name=f"base-{i}",
                uri=f"s3://models/base-{i}",
                digest=_hex(rng),
                files={"model.safetensors": _hex(rng)},
                total_bytes=10**9,
                architecture="Llama",
                num_layers=16,
                module_shapes={"q_proj": [2048, 2048]},
                config={},
                created_by="ops",
                created_at=T0,
            )
        )
    for i in range(n_tenants):
        t["tenants"].append(
            dict(
                id=uuid.uuid4(),
                slug=f"t{i:05d}",
                display_name=f"T{i}",
                quota_dataset_bytes=10**10,
                quota_adapters=50,
                created_at=T0,
                updated_at=T0,
            )
        )
    picks: list[Pick] = []
    tips: list[Pick] = []
    cfg = {"rank": 8, "alpha": 16.0, "target_modules": ["q_proj", "v_proj"], "epochs": 3}
    made = 0
    while made < n_versions:
        tenant = t["tenants"][len(tips) % n_tenants]
        base = rng.choice(t["base_models"])
        depth = min(rng.randint(10, 30), n_versions - made)
        name, who = f"adapter-{len(tips) // n_tenants}", f"lpx_{tenant['slug']}"
        a = dict(
            id=uuid.uuid4(),
            tenant_id=tenant["id"],
            name=name,
            base_model_id=base["id"],
            training_config=cfg,
            promotion_policy={"mode": "manual"},
            next_version=depth + 1,
            created_by=who,
            created_at=T0,
        )
        t["adapters"].append(a)
        own = dict(
            tenant_id=tenant["id"],
            created_by=who,
            format="chat",
            bytes=10**6,
            duplicates_dropped=0,
            source_bytes=10**6,
        )
        held = dict(
            id=uuid.uuid4(),
            name=f"{name}-heldout",
            version=1,
            sha256=_hex(rng),
            rows=500,
            source_sha256=_hex(rng),
            object_key=f"d/{uuid.uuid4()}",
            created_at=T0,
            **own,
        )
        t["datasets"].append(held)
        parent, production = None, 1  # version 1 is always promoted
        for n in range(1, depth + 1):
            when = T0 + dt.timedelta(days=made + n)
            v = dict(
                id=uuid.uuid4(),
                tenant_id=tenant["id"],
                adapter_id=a["id"],
                version=n,
                status="ready",
                status_message="",
                parent_id=parent,
                base_model_id=base["id"],
                base_model_digest=base["digest"],
                training_config=cfg,
                config_hash=_hex(rng),
                trigger=rng.choice(["manual", "schedule", "drift"]) if n > 1 else "manual",
                trigger_ref={},
                job_id=str(uuid.uuid4()),
                artifact_prefix=f"a/{n}",
                manifest={"files": {"adapter_model.safetensors": {"sha256": _hex(rng)}}},
                manifest_digest=_hex(rng),
                size_bytes=10**7,
                code_version="0.1.0",
                created_by=who,
                created_at=when,
                updated_at=when,
                ready_at=when,
            )
            train = dict(
                id=uuid.uuid4(),
                name=f"{name}-train",
                version=n,
                sha256=_hex(rng),
                rows=5000,
                source_sha256=_hex(rng),
                object_key=f"d/{uuid.uuid4()}",
                created_at=when,
                **own,
            )
            t["adapter_versions"].append(v)
            t["datasets"].append(train)
            t["adapter_version_datasets"] += [
                dict(version_id=v["id"], dataset_id=train["id"], role="train"),
                dict(version_id=v["id"], dataset_id=held["id"], role="validation"),
            ]
            t["evals"].append(
                dict(
                    id=uuid.uuid4(),
                    tenant_id=tenant["id"],
                    adapter_id=a["id"],
                    version_id=v["id"],
                    subject="version",
                    suite="heldout",
                    metrics={"eval_loss": rng.random()},
                    dataset_id=held["id"],
                    details={},
                    created_by="worker",
                    created_at=when,
                )
            )
            moves = [("candidate", n - 1 or None)]  # every version is a candidate first
            if n == 1 or rng.random() < 0.3:
                moves.append(("production", production if n > 1 else None))
                production = n
            for alias, old in moves:
                t["adapter_alias_events"].append(
                    dict(
                        tenant_id=tenant["id"],
                        adapter_id=a["id"],
                        alias=alias,
                        from_version=old,
                        to_version=n,
                        actor="ops",
                        reason="bench",
                        occurred_at=when,
                    )
                )
            picks.append((tenant["slug"], name, n))
            parent = v["id"]
        for alias, n in (("production", production), ("candidate", depth)):
            t["adapter_aliases"].append(
                dict(
                    adapter_id=a["id"],
                    alias=alias,
                    tenant_id=tenant["id"],
                    version_id=t["adapter_versions"][n - depth - 1]["id"],
                    updated_by="ops",
                    updated_at=T0,
                )
            )
        tips.append((tenant["slug"], name, depth))
        made += depth
    raw = conn.connection.driver_connection
    for table, rows in t.items():
        _copy(raw, table, rows)
    return {"rows": {k: len(v) for k, v in t.items()}, "picks": picks, "tips": tips}
